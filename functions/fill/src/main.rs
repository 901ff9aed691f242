//! `fill`: grows linear memory by `mb` MiB (default 64), writing every 4 KiB page of it so the
//! host really commits it, holds it for `hold_ms` milliseconds (default 0, sleeping in
//! `poll_oneoff`), then returns `{"filled_mb": mb, "pages": n}`. Unlike `membomb` it stops
//! below its cap and succeeds: memory-budget tests use it to hold a known amount of resident
//! memory at once.
use std::hint::black_box;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

fn default_mb() -> usize {
    64
}

#[derive(Deserialize)]
struct Params {
    #[serde(default = "default_mb")]
    mb: usize,
    #[serde(default)]
    hold_ms: u64,
}

#[derive(Serialize)]
struct Filled {
    filled_mb: usize,
    pages: usize,
}

#[wisp_sdk::action]
fn main(p: Params) -> wisp_sdk::Result<Filled> {
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(p.mb);
    let mut pages = 0;
    for i in 0..p.mb {
        // One MiB at a time, each page written (a fresh allocation is zeroed lazily by the host:
        // writing is what makes it resident).
        let mut chunk = vec![0u8; MIB];
        for page in chunk.chunks_mut(PAGE) {
            page[0] = (i as u8) | 1;
            pages += 1;
        }
        chunks.push(black_box(chunk));
    }
    if p.hold_ms > 0 {
        std::thread::sleep(Duration::from_millis(p.hold_ms));
    }
    black_box(&chunks);
    Ok(Filled {
        filled_mb: p.mb,
        pages,
    })
}
