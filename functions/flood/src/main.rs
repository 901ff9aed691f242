//! `flood` (hostile): writes `mb` MiB (default 20) of log lines, alternating stdout and stderr,
//! then a valid result line `{"flooded": true, "lines": N, "bytes": B}`. The runtime must cap
//! the logs (with its truncation marker) and still find the result: status `success`.
use std::io::{BufWriter, Write};

use serde::{Deserialize, Serialize};
use wisp_sdk::bail;

const MAX_MB: u64 = 256;

#[derive(Deserialize)]
struct Params {
    #[serde(default = "default_mb")]
    mb: u64,
}

fn default_mb() -> u64 {
    20
}

#[derive(Serialize)]
struct Flooded {
    flooded: bool,
    lines: u64,
    bytes: u64,
}

#[wisp_sdk::action]
fn main(p: Params) -> wisp_sdk::Result<Flooded> {
    if p.mb > MAX_MB {
        bail!("mb must be at most {MAX_MB}, got {}", p.mb);
    }
    let target = p.mb * 1024 * 1024;
    let filler = "x".repeat(80);
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut err = BufWriter::with_capacity(64 * 1024, std::io::stderr().lock());
    let (mut lines, mut bytes) = (0u64, 0u64);
    while bytes < target {
        let line = format!("flood line {lines:>9} {filler}\n");
        // Write errors (a closed or full pipe) must not stop the action from answering.
        let _ = if lines % 2 == 0 {
            out.write_all(line.as_bytes())
        } else {
            err.write_all(line.as_bytes())
        };
        lines += 1;
        bytes += line.len() as u64;
    }
    let _ = out.flush();
    let _ = err.flush();
    Ok(Flooded {
        flooded: true,
        lines,
        bytes,
    })
}
