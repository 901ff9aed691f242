//! `membomb` (hostile): allocates and touches 1 MiB chunks without bound, so linear memory grows
//! until the action's memory cap stops it (a trap on `memory.grow`, or an allocation failure
//! that aborts). Status: `action developer error`.
use std::hint::black_box;

const CHUNK: usize = 1 << 20;

fn main() {
    wisp_sdk::log("membomb: allocating until the memory cap");
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        // Write every page so the memory is really committed.
        chunk.resize(CHUNK, 0xA5u8);
        for page in chunk.chunks_mut(4096) {
            page[0] = chunks.len() as u8;
        }
        chunks.push(black_box(chunk));
        if chunks.len().is_multiple_of(64) {
            wisp_sdk::log!("membomb: {} MiB allocated", chunks.len());
        }
    }
}
