//! Shared harness of the CLI tests: a real `wisp up` child process on a free port with its own
//! data dir, HOME and config file, and a runner for the real `wisp` binary against it.
//!
//! Every child is killed by a Drop guard (SIGTERM, then SIGKILL), so a failing test leaves no
//! process behind.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `wisp` binary under test.
pub const WISP: &str = env!("CARGO_BIN_EXE_wisp");

/// How long to wait for a server to come up or for an eventually-visible record.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// An isolated CLI environment: HOME and the config file in a temp dir.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Extra variables for every command (e.g. WISP_ADMIN_KEY).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            vars: Vec::new(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("wskprops")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `wisp` with this environment (and none of the caller's wisp/OpenWhisk settings).
    pub fn command(&self) -> Command {
        std::fs::create_dir_all(self.home()).unwrap();
        let mut cmd = Command::new(WISP);
        cmd.env("HOME", self.home())
            .env("WSK_CONFIG_FILE", self.config_file())
            .env_remove("WISP_APIHOST")
            .env_remove("WISP_AUTH")
            .env_remove("WISP_ADMIN_KEY")
            .env_remove("WISP_RUNTIME_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `wisp ARGS...` to completion.
    pub fn wisp<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.command();
        cmd.args(args);
        Run::of(&mut cmd)
    }
}

/// The outcome of one `wisp` command.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(cmd: &mut Command) -> Run {
        let args = format!("{:?}", cmd.get_args().collect::<Vec<_>>());
        let out = cmd.output().expect("run wisp");
        Run {
            args,
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success; returns self for chaining.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert!(
            self.success,
            "wisp {} failed ({:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts failure with exactly one `error: ...` line on stderr containing `needle`;
    /// returns that line.
    #[track_caller]
    pub fn fails_with(&self, needle: &str) -> String {
        assert!(
            !self.success,
            "wisp {} should have failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.stdout, self.stderr
        );
        assert_eq!(self.code, Some(1), "exit code of wisp {}", self.args);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "wisp {}: stderr should be one line:\n{}",
            self.args,
            self.stderr
        );
        assert!(
            lines[0].starts_with("error: "),
            "wisp {}: {:?}",
            self.args,
            lines[0]
        );
        assert!(
            lines[0].contains(needle),
            "wisp {}: {:?} should contain {needle:?}",
            self.args,
            lines[0]
        );
        lines[0].to_string()
    }

    /// stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "wisp {}: stdout is not JSON ({e}):\n{}",
                self.args, self.stdout
            )
        })
    }
}

/// A running `wisp up` child; SIGTERMed (then killed) on drop.
pub struct Platform {
    pub child: Option<Child>,
    pub port: u16,
    pub apihost: String,
    /// The guest `uuid:key` `wisp up` printed.
    pub auth: String,
    /// Everything `wisp up` printed on stdout up to "ready".
    pub banner: Vec<String>,
    pub stderr_log: PathBuf,
}

impl Platform {
    /// Starts `wisp up --port <free> --data-dir <env.data_dir()> EXTRA...` and waits for
    /// "ready" and `/health`.
    pub fn start(env: &Env, extra: &[&str]) -> Platform {
        Self::start_on(env, free_port(), extra)
    }

    pub fn start_on(env: &Env, port: u16, extra: &[&str]) -> Platform {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let stderr_log = env.dir.path().join(format!("up-{port}-{n}.log"));
        let stderr_file = std::fs::File::create(&stderr_log).unwrap();
        let mut cmd = env.command();
        cmd.arg("up")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(env.data_dir())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        let mut child = cmd.spawn().expect("spawn wisp up");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut platform = Platform {
            child: Some(child),
            port,
            apihost: format!("http://127.0.0.1:{port}"),
            auth: String::new(),
            banner: Vec::new(),
            stderr_log,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let done = line == "ready";
                    if let Some(a) = line.trim().strip_prefix("AUTH=") {
                        platform.auth = a.to_string();
                    }
                    platform.banner.push(line);
                    if done {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = platform.child.as_mut().unwrap().wait().unwrap();
                    panic!(
                        "wisp up exited ({status}) before ready:\n{}\n--- stderr ---\n{}",
                        platform.banner.join("\n"),
                        platform.stderr()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "wisp up did not print ready within {PATIENCE:?}:\n{}\n--- stderr ---\n{}",
                platform.banner.join("\n"),
                platform.stderr()
            );
        }
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wisp_testkit::wait_healthy(addr).unwrap_or_else(|e| {
            panic!(
                "wisp up is not healthy: {e:#}\n--- stderr ---\n{}",
                platform.stderr()
            )
        });
        assert!(
            !platform.auth.is_empty(),
            "no AUTH= line in {:?}",
            platform.banner
        );
        platform
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited with status 0.
    pub fn stop(&mut self) -> bool {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal` (SIGTERM, or SIGINT as Ctrl-C does) and waits for the exit; returns
    /// whether it exited with status 0.
    pub fn stop_with(&mut self, signal: libc::c_int) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        send_signal(&child, signal);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn send_signal(child: &Child, signal: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is our own child, which has not
    // been reaped yet (we hold its `Child` and have not waited on it), so it cannot be reused.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Retries `f` until it returns `Some`, for records that become visible shortly after an
/// answer (activation records are written in batches). Panics with `what` after [`PATIENCE`].
#[track_caller]
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The path of a built function of `functions/`.
pub fn function(name: &str) -> PathBuf {
    wisp_testkit::function_path(name)
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
