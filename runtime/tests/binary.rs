//! The `wisp-runtime` binary's safe defaults: it refuses to start without a token (one clear
//! line, non-zero exit) unless told `--insecure-no-token`, and listens on 127.0.0.1 unless
//! `--bind` says otherwise.

mod common;

use common::Process;
use std::process::{Command, Stdio};

#[test]
fn without_a_token_it_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_wisp-runtime"))
        .args(["--port", "0"])
        .env_remove("WISP_RUNTIME_TOKEN")
        .env_remove("WISP_INSECURE_NO_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("WISP_RUNTIME_TOKEN") && lines[0].contains("--insecure-no-token"),
        "{stderr}"
    );
}

#[test]
fn insecure_no_token_starts_and_it_binds_loopback_by_default() -> anyhow::Result<()> {
    // With a token (Process sets it) on the default address.
    let rt = Process::start(&[])?;
    assert!(rt.addr.ip().is_loopback(), "{}", rt.addr);
    drop(rt);
    // Without one, only when told so.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wisp-runtime"))
        .args(["--port", "0", "--insecure-no-token", "--bind", "127.0.0.1"])
        .env_remove("WISP_RUNTIME_TOKEN")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout");
    let listening = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .find(|l| l.contains("wisp-runtime listening"));
    let _ = child.kill();
    let _ = child.wait();
    let line = listening.expect("it started");
    assert!(line.contains("addr=127.0.0.1:"), "{line}");
    Ok(())
}
