//! `recursion` (hostile): unbounded, non-tail recursion that overflows the stack (wasm's
//! call stack or Rust's shadow stack, which sits at the bottom of linear memory): a trap.
//! Status: `action developer error`.
use std::hint::black_box;

fn depth(n: u64) -> u64 {
    if black_box(n) == u64::MAX {
        return 0;
    }
    // black_box on the result stops LLVM from turning this into a loop.
    black_box(depth(n + 1)).wrapping_add(n)
}

fn main() {
    wisp_sdk::log("recursion: recursing without bound");
    let d = depth(0);
    // Never reached.
    println!("{{\"depth\": {d}}}");
}
