//! `sleep`: waits `ms` milliseconds (default 0), then returns `{"slept": ms}`. With
//! `"busy": true` it spins on the clock instead of sleeping in `poll_oneoff`, so only epoch
//! interruption can stop it early. Used by concurrency and timeout tests.
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wisp_sdk::bail;

/// The longest timeout an action can have (OpenWhisk's maximum): sleeping longer is pointless.
const MAX_MS: u64 = 300_000;

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    ms: u64,
    #[serde(default)]
    busy: bool,
}

#[derive(Serialize)]
struct Slept {
    slept: u64,
    busy: bool,
}

#[wisp_sdk::action]
fn main(p: Params) -> wisp_sdk::Result<Slept> {
    if p.ms > MAX_MS {
        bail!("ms must be at most {MAX_MS}, got {}", p.ms);
    }
    let wanted = Duration::from_millis(p.ms);
    if p.busy {
        let start = Instant::now();
        while start.elapsed() < wanted {
            std::hint::spin_loop();
        }
    } else {
        std::thread::sleep(wanted);
    }
    Ok(Slept {
        slept: p.ms,
        busy: p.busy,
    })
}
