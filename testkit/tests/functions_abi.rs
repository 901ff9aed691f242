//! Every guest of `functions/` obeys the action ABI (params on stdin, last stdout line = result,
//! logs elsewhere, `__OW_*` env) and each hostile one misbehaves the way it claims to — checked
//! under a second, independent WASI host: Node.js's `node:wasi`. This keeps the guests honest on
//! their own, so a failing runtime test points at the runtime. (The runtime's tests run the same
//! guests under wasmtime with limits; `membomb` is only exercised there: it needs a memory cap.)
//!
//! Skipped, with a printed note, when `node` is not installed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A WASI preview-1 host in 20 lines of JavaScript: passes the `__OW_*` variables of its own
/// environment to the guest, exits with the guest's exit code, or with 200 after a trap.
const HARNESS: &str = r#"
import { WASI } from 'node:wasi';
import { readFileSync } from 'node:fs';
const env = {};
for (const [k, v] of Object.entries(process.env)) if (k.startsWith('__OW_')) env[k] = v;
const wasi = new WASI({ version: 'preview1', args: [], env, returnOnExit: true });
const module = await WebAssembly.compile(readFileSync(process.argv[2]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
let code;
try {
  code = wasi.start(instance);
} catch (e) {
  process.stderr.write(`\n[wasm trap] ${e}\n`);
  process.exit(200);
}
process.exit(code);
"#;

const TRAP_EXIT: i32 = 200;

#[derive(Debug, PartialEq)]
enum End {
    Exit(i32),
    /// Still running when the test stopped waiting (and killed it).
    StillRunning,
}

#[derive(Debug)]
struct Run {
    stdout: String,
    stderr: String,
    end: End,
}

impl Run {
    fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }

    /// The result object: the last stdout line, which must parse as a JSON object.
    fn result(&self) -> Value {
        let line = self.last_line();
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("last line {line:?} is not JSON ({e}); run: {self:?}"));
        assert!(value.is_object(), "result is not an object: {line}");
        value
    }

    fn assert_trapped(&self) {
        assert_eq!(self.end, End::Exit(TRAP_EXIT), "expected a trap: {self:?}");
        assert!(self.stderr.contains("[wasm trap]"), "{}", self.stderr);
    }
}

fn node() -> Option<&'static PathBuf> {
    static NODE: OnceLock<Option<PathBuf>> = OnceLock::new();
    NODE.get_or_init(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("node"))
            .find(|p| p.is_file())
    })
    .as_ref()
}

fn harness() -> &'static Path {
    static HARNESS_PATH: OnceLock<PathBuf> = OnceLock::new();
    HARNESS_PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wisp-wasi-harness.mjs");
        std::fs::write(&path, HARNESS).expect("write the node harness");
        path
    })
}

/// Runs function `name` with `stdin` under node; gives up (and kills it) after `patience`.
/// `None` when node is missing.
fn invoke_with(name: &str, stdin: &str, env: &[(&str, &str)], patience: Duration) -> Option<Run> {
    let Some(node) = node() else {
        eprintln!("note: node is not installed; skipping the node:wasi ABI check of {name}");
        return None;
    };
    let wasm = wisp_testkit::function_path(name);
    let mut cmd = Command::new(node);
    cmd.arg("--no-warnings")
        .arg(harness())
        .arg(&wasm)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn node");
    let mut stdin_pipe = child.stdin.take().unwrap();
    let input = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin_pipe.write_all(input.as_bytes());
    });
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let end = wait(&mut child, patience);
    writer.join().unwrap();
    Some(Run {
        stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
        end,
    })
}

fn invoke(name: &str, params: Value) -> Option<Run> {
    invoke_with(name, &params.to_string(), &[], Duration::from_secs(120))
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn wait(child: &mut Child, patience: Duration) -> End {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            return End::Exit(status.code().unwrap_or(-1));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return End::StillRunning;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn hello_greets_and_logs_on_stderr() {
    let Some(run) = invoke("hello", json!({"name": "Ada"})) else {
        return;
    };
    assert_eq!(run.end, End::Exit(0));
    assert_eq!(run.stdout, "{\"greeting\":\"Hello, Ada!\"}\n");
    assert_eq!(run.stderr, "hello: greeting Ada\n");

    let Some(run) = invoke_with("hello", "", &[], Duration::from_secs(60)) else {
        return;
    };
    assert_eq!(run.result(), json!({"greeting": "Hello, stranger!"}));
}

#[test]
fn bad_params_are_an_application_error_not_a_crash() {
    let Some(run) = invoke("hello", json!({"name": 42})) else {
        return;
    };
    assert_eq!(run.end, End::Exit(0));
    let error = run.result()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("invalid parameters: "), "{error}");
}

#[test]
fn echo_returns_its_params_unchanged() {
    let params =
        json!({"s": "a\nb \"q\" ü", "n": [1, 2.5, -3], "o": {"deep": {"x": null}}, "t": true});
    let Some(run) = invoke("echo", params.clone()) else {
        return;
    };
    assert_eq!(run.end, End::Exit(0));
    assert_eq!(run.result(), params);
}

#[test]
fn web_hello_answers_escaped_html() {
    let Some(run) = invoke(
        "web-hello",
        json!({"__ow_method": "get", "__ow_path": "", "__ow_query": "name=%3Cscript%3E"}),
    ) else {
        return;
    };
    let result = run.result();
    assert_eq!(result["statusCode"], 200);
    assert_eq!(result["headers"], json!({"content-type": "text/html"}));
    let body = result["body"].as_str().unwrap();
    assert!(body.contains("Hello, &lt;script&gt;!"), "{body}");
    assert!(!body.contains("<script>"), "{body}");

    // A name in the params wins over the query string.
    let Some(run) = invoke(
        "web-hello",
        json!({"__ow_query": "name=query", "name": "Param"}),
    ) else {
        return;
    };
    assert!(
        run.result()["body"]
            .as_str()
            .unwrap()
            .contains("Hello, Param!")
    );
}

#[test]
fn primes_counts_with_a_sieve() {
    for (n, count, largest) in [
        (0, 0, Value::Null),
        (2, 1, json!(2)),
        (100, 25, json!(97)),
        (1_000_000, 78_498, json!(999_983)),
    ] {
        let Some(run) = invoke("primes", json!({ "n": n })) else {
            return;
        };
        assert_eq!(
            run.result(),
            json!({"n": n, "count": count, "largest": largest})
        );
    }
    let Some(run) = invoke("primes", json!({})) else {
        return;
    };
    assert_eq!(
        run.result(),
        json!({"error": "missing parameter n (a non-negative integer)"})
    );
}

#[test]
fn aggregate_computes_daily_min_mean_max_count_per_sensor() {
    let Some(run) = invoke(
        "aggregate",
        json!({"readings": [
            {"sensor": "s1", "timestamp": "2026-11-23T10:00:00Z", "value": 1.5},
            {"sensor": "s1", "timestamp": 1_795_428_000_000_i64, "value": 2.5},
            // 01:00 at +02:00 is 23:00 UTC the day before.
            {"sensor": "s1", "timestamp": "2026-11-24T01:00:00+02:00", "value": 8},
            {"sensor": "s1", "timestamp": "2026-11-24T00:00:00.250Z", "value": 4},
            {"sensor": "s 2", "timestamp": "2026-11-23T23:59:59Z", "value": -1},
        ]}),
    ) else {
        return;
    };
    let result = run.result();
    assert_eq!(result["readings"], 5);
    assert_eq!(
        result["aggregates"],
        json!([
            {"sensor": "s 2", "day": "2026-11-23", "min": -1.0, "mean": -1.0, "max": -1.0, "count": 1},
            {"sensor": "s1", "day": "2026-11-23", "min": 1.5, "mean": 4.0, "max": 8.0, "count": 3},
            {"sensor": "s1", "day": "2026-11-24", "min": 4.0, "mean": 4.0, "max": 4.0, "count": 1},
        ])
    );
    assert_eq!(
        result["influx"][0],
        "daily_aggregates,sensor=s\\ 2 min=-1,mean=-1,max=-1,count=1i 1795392000000000000"
    );

    let Some(run) = invoke(
        "aggregate",
        json!({"readings": [{"sensor": "s1", "timestamp": "2026-13-01T00:00:00Z", "value": 1}]}),
    ) else {
        return;
    };
    let error = run.result()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("reading 0: timestamp"), "{error}");
}

#[test]
fn env_reports_the_ow_variables() {
    let env = [
        ("__OW_ACTIVATION_ID", "0123456789abcdef0123456789abcdef"),
        ("__OW_ACTION_NAME", "/guest/default/env"),
        ("__OW_NAMESPACE", "guest"),
        ("__OW_DEADLINE", "1795428000000"),
        ("__OW_API_HOST", "http://127.0.0.1:3233"),
        ("__OW_ACTION_VERSION", "0.0.1"),
    ];
    let Some(run) = invoke_with("env", "{}", &env, Duration::from_secs(60)) else {
        return;
    };
    let mut expected: serde_json::Map<String, Value> =
        env.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    expected.insert("env_other".into(), json!([]));
    assert_eq!(run.result(), Value::Object(expected));
}

#[test]
fn sleep_answers_after_sleeping_or_spinning() {
    for busy in [false, true] {
        let Some(run) = invoke("sleep", json!({"ms": 20, "busy": busy})) else {
            return;
        };
        assert_eq!(run.result(), json!({"slept": 20, "busy": busy}));
    }
    let Some(run) = invoke("sleep", json!({"ms": 300_001})) else {
        return;
    };
    assert!(run.result()["error"].is_string());
}

#[test]
fn flood_writes_megabytes_of_logs_then_a_valid_result() {
    let Some(run) = invoke("flood", json!({"mb": 2})) else {
        return;
    };
    assert_eq!(run.end, End::Exit(0));
    let result = run.result();
    assert_eq!(result["flooded"], true);
    let lines = result["lines"].as_u64().unwrap();
    let stdout_logs = run.stdout.lines().count() as u64 - 1;
    let stderr_logs = run.stderr.lines().count() as u64;
    assert_eq!(stdout_logs + stderr_logs, lines);
    assert!(
        stdout_logs.abs_diff(stderr_logs) <= 1,
        "{stdout_logs} vs {stderr_logs}"
    );
    assert!(result["bytes"].as_u64().unwrap() >= 2 * 1024 * 1024);
    assert!(run.stdout.len() + run.stderr.len() >= 2 * 1024 * 1024);
}

#[test]
fn badresult_ends_without_a_json_object() {
    let Some(run) = invoke("badresult", json!({})) else {
        return;
    };
    assert_eq!(run.end, End::Exit(0));
    assert_eq!(run.last_line(), "this is not json");
    let Some(run) = invoke("badresult", json!({"kind": "array"})) else {
        return;
    };
    assert_eq!(run.last_line(), "[1,2,3]");
    let Some(run) = invoke("badresult", json!({"kind": "none"})) else {
        return;
    };
    assert_eq!(run.stdout, "");
    assert_eq!(run.end, End::Exit(0));
}

#[test]
fn exitcode_exits_non_zero_after_a_log_line() {
    let Some(run) = invoke("exitcode", json!({})) else {
        return;
    };
    assert_eq!(run.end, End::Exit(3));
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "exitcode: exiting with code 3\n");
}

#[test]
fn trap_panics_into_a_wasm_trap() {
    let Some(run) = invoke("trap", json!({})) else {
        return;
    };
    run.assert_trapped();
    assert!(run.stderr.contains("this action panics on purpose"));
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn recursion_overflows_the_stack_into_a_trap() {
    let Some(run) = invoke("recursion", json!({})) else {
        return;
    };
    run.assert_trapped();
    assert_eq!(run.stdout, "");
}

#[test]
fn loop_never_ends_on_its_own() {
    let Some(run) = invoke_with("loop", "{}", &[], Duration::from_secs(2)) else {
        return;
    };
    assert_eq!(run.end, End::StillRunning);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("loop: spinning forever"));
}

#[test]
fn the_c_action_speaks_the_same_abi() {
    if wisp_testkit::c_function_path().is_none() {
        eprintln!("note: clang + wasi-libc not installed; skipping hello-c");
        return;
    }
    let Some(run) = invoke(
        "hello-c",
        json!({"other": {"name": "nested"}, "name": "Jürgen \"Q\""}),
    ) else {
        return;
    };
    assert_eq!(run.end, End::Exit(0));
    assert_eq!(
        run.result(),
        json!({"greeting": "Hello from C, Jürgen \"Q\"!"})
    );
    assert_eq!(run.stderr, "hello-c: greeting Jürgen \"Q\"\n");
    let Some(run) = invoke("hello-c", json!({})) else {
        return;
    };
    assert_eq!(run.result(), json!({"greeting": "Hello from C, stranger!"}));
    let Some(run) = invoke_with("hello-c", "[1,2]", &[], Duration::from_secs(60)) else {
        return;
    };
    assert_eq!(
        run.result(),
        json!({"error": "invalid parameters: expected a JSON object"})
    );
}
