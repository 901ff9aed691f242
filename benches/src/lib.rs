//! Reusable setup for wisp's criterion benches (`benches/benches/*.rs`): requests for the
//! `functions/` modules, never-seen variants of a module, and a real runtime server on
//! loopback. Everything here is built once per bench group; only the step a bench names is timed.

use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;
use wisp_core::{ActivationId, Digest, Limits, RunRequest};
use wisp_runtime::{Runtime, RuntimeConfig};

/// The token bench servers are started with.
pub const BENCH_TOKEN: &str = "bench-token";

/// A `/run` request for `digest` with `params` (code not attached: prepare it first).
pub fn run_request(digest: &Digest, params: Value) -> RunRequest {
    let Value::Object(params) = params else {
        panic!("params must be a JSON object")
    };
    RunRequest {
        activation_id: ActivationId::generate(),
        namespace: "guest".into(),
        action: "/guest/default/hello".into(),
        version: "0.0.1".into(),
        digest: digest.clone(),
        code: None,
        limits: Limits::default(),
        params,
        api_host: "http://127.0.0.1:3233".into(),
    }
}

/// The standard `hello` request of every bench.
pub fn hello_request(digest: &Digest) -> RunRequest {
    run_request(digest, json!({"name": "bench"}))
}

/// `module` with a custom section holding `n` appended: the same program, a never-seen digest
/// (so it must be compiled again).
pub fn distinct_variant(module: &[u8], n: u64) -> Vec<u8> {
    let name = b"wisp-bench";
    let payload = n.to_le_bytes();
    let body_len = 1 + name.len() + payload.len();
    let mut out = module.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, body_len as u64);
    leb128(&mut out, name.len() as u64);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A runtime serving HTTP on 127.0.0.1:0 inside the current tokio runtime.
pub struct RuntimeServer {
    pub addr: SocketAddr,
    pub runtime: Runtime,
    pub shutdown: CancellationToken,
}

impl RuntimeServer {
    /// Starts `config` (token forced to [`BENCH_TOKEN`]) and waits until it is healthy.
    pub async fn start(config: RuntimeConfig) -> anyhow::Result<Self> {
        let config = RuntimeConfig {
            token: Some(BENCH_TOKEN.into()),
            ..config
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let runtime = Runtime::new(config)?;
        let shutdown = CancellationToken::new();
        tokio::spawn(wisp_runtime::serve_runtime(
            runtime.clone(),
            listener,
            shutdown.clone(),
        ));
        tokio::task::spawn_blocking(move || wisp_testkit::wait_healthy(addr)).await??;
        Ok(RuntimeServer {
            addr,
            runtime,
            shutdown,
        })
    }

    pub fn run_url(&self) -> String {
        format!("http://{}{}", self.addr, wisp_core::run::RUN_PATH)
    }
}

impl Drop for RuntimeServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_have_distinct_digests_and_grow_by_one_section() {
        let m = b"\0asm\x01\0\0\0".to_vec();
        let a = distinct_variant(&m, 1);
        let b = distinct_variant(&m, 2);
        assert_ne!(Digest::of(&a), Digest::of(&b));
        // id 0, size 19, name length 10, "wisp-bench", 8 payload bytes.
        assert_eq!(&a[8..11], &[0, 19, 10]);
        assert_eq!(a.len(), m.len() + 2 + 19);
    }
}
