//! `loop` (hostile): spins forever. The runtime must end it at its timeout with status
//! `action developer error`, without delaying other activations.
use std::hint::black_box;

fn main() {
    wisp_sdk::log("loop: spinning forever");
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}
