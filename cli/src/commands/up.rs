//! `wisp up`: the whole platform in one process, for a laptop or CI.
//!
//! Starts N runtimes on `127.0.0.1:0` (each with its own disk cache under
//! `<data-dir>/cache/rt-<i>` and one shared random internal token), then the scheduler on
//! `127.0.0.1:PORT` with the embedded store under the data dir and those runtimes as its
//! `--runtime` list. Namespace `guest` gets a fresh key on first start, kept in
//! `<data-dir>/guest.auth` (mode 0600) so that every restart prints the same key; `--auth`
//! replaces it. `APIHOST` and `AUTH` are written to the CLI config. Ctrl-C or SIGTERM stops the
//! scheduler first (in-flight requests finish, activation records are flushed), then the runtimes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wisp_runtime::{Runtime, RuntimeConfig};
use wisp_scheduler::{Scheduler, SchedulerConfig};

use crate::Ctx;
use crate::config::{self, Props};

/// A runtime task's index and how its server ended.
type RuntimeExit = (u16, anyhow::Result<()>);

/// The namespace `wisp up` creates.
pub const GUEST: &str = "guest";
/// The file under the data dir holding the guest's `uuid:key`.
pub const GUEST_AUTH_FILE: &str = "guest.auth";

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Port of the REST API on 127.0.0.1 (0 picks a free one; the chosen URL is printed).
    #[arg(long, default_value_t = 3233)]
    pub port: u16,
    /// Where the store, the guest key and the runtimes' code caches live (default ~/.wisp/data).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Number of runtimes to start in this process.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub runtimes: u16,
    /// Capacity of each runtime in MB (activations take their memory limit from it).
    #[arg(long, value_name = "MB", default_value_t = RuntimeConfig::DEFAULT_USER_MEMORY_MB)]
    pub user_memory: u64,
    /// Key of the admin API (`wisp admin ...`); without it the admin API is disabled.
    #[arg(long = "admin-key", env = "WISP_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Activation records kept per namespace (the oldest are pruned beyond it).
    #[arg(
        long,
        value_name = "N",
        env = "WISP_ACTIVATION_RETENTION",
        default_value_t = SchedulerConfig::default().activation_retention
    )]
    pub activation_retention: u64,
    /// Bound of each runtime's on-disk compiled-code cache, MB (least recently used evicted).
    #[arg(long, value_name = "MB", default_value_t = RuntimeConfig::DEFAULT_CACHE_MAX_MB)]
    pub cache_max_mb: u64,
    /// Namespace limit for users without their own: activations started per minute. The
    /// defaults are the scheduler's, so a newcomer's platform behaves like a shared one; a
    /// load test raises them (`scripts/perf-report.sh` does).
    #[arg(long, value_name = "N", default_value_t = SchedulerConfig::default().default_invocations_per_minute,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub default_invocations_per_minute: u32,
    /// Namespace limit: activations accepted and not yet ended.
    #[arg(long, value_name = "N", default_value_t = SchedulerConfig::default().default_concurrent_invocations,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub default_concurrent_invocations: u32,
    /// Namespace limit: trigger fires per minute.
    #[arg(long, value_name = "N", default_value_t = SchedulerConfig::default().default_fires_per_minute,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub default_fires_per_minute: u32,
}

/// The default data dir: `~/.wisp/data`.
pub fn default_data_dir() -> PathBuf {
    config::home_dir().join(".wisp").join("data")
}

pub async fn run(ctx: &Ctx, args: UpArgs) -> anyhow::Result<()> {
    ctx.check_flag_values()?;
    // `wisp up --auth uuid:key` fixes the guest key (the global flag; WISP_AUTH is not used
    // here: it is the key of whatever server the CLI talks to, not the one being started).
    let fixed_auth = ctx.global.auth.clone();
    if let Some(a) = &fixed_auth {
        crate::client::Auth::basic(a).context("invalid --auth")?;
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    // 0700 with the store's files 0600 from the start: they hold every tenant's data.
    wisp_scheduler::store::sqlite::make_private(&data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;

    // The API port first: a taken port is the most likely failure, report it before any work.
    let api_listener = bind_api(args.port).await?;
    let api_addr = api_listener.local_addr()?;
    let apihost = format!("http://{api_addr}");

    let token = std::env::var("WISP_RUNTIME_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(random_token);

    // Runtimes.
    let runtime_shutdown = CancellationToken::new();
    let mut runtime_tasks: JoinSet<RuntimeExit> = JoinSet::new();
    let mut runtime_urls = Vec::new();
    for i in 0..args.runtimes {
        let cache_dir = data_dir.join("cache").join(format!("rt-{i}"));
        std::fs::create_dir_all(&cache_dir)
            .with_context(|| format!("cannot create {}", cache_dir.display()))?;
        let config = RuntimeConfig {
            user_memory_mb: args.user_memory,
            cache_dir: Some(cache_dir),
            cache_max_bytes: args.cache_max_mb.saturating_mul(1 << 20),
            token: Some(token.clone()),
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::new(config).with_context(|| format!("cannot start runtime {i}"))?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind a port for a runtime on 127.0.0.1")?;
        let addr: SocketAddr = listener.local_addr()?;
        runtime_urls.push(format!("http://{addr}"));
        let shutdown = runtime_shutdown.clone();
        runtime_tasks.spawn(async move {
            (
                i,
                wisp_runtime::serve_runtime(runtime, listener, shutdown).await,
            )
        });
        tracing::info!(runtime = i, %addr, "runtime listening");
    }

    // Scheduler.
    let scheduler_config = SchedulerConfig {
        runtimes: runtime_urls.clone(),
        data_dir: data_dir.clone(),
        store: None,
        runtime_token: Some(token.clone()),
        admin_key: args.admin_key.clone().filter(|k| !k.is_empty()),
        api_host: Some(apihost.clone()),
        activation_retention: args.activation_retention,
        default_invocations_per_minute: args.default_invocations_per_minute,
        default_concurrent_invocations: args.default_concurrent_invocations,
        default_fires_per_minute: args.default_fires_per_minute,
        ..SchedulerConfig::default()
    };
    let scheduler = match Scheduler::open(scheduler_config).await {
        Ok(s) => s,
        Err(e) => {
            stop_runtimes(&runtime_shutdown, runtime_tasks).await;
            return Err(e.context("cannot start the scheduler"));
        }
    };
    let auth = match guest_key(&scheduler, &data_dir, fixed_auth.as_deref()).await {
        Ok(a) => a,
        Err(e) => {
            stop_runtimes(&runtime_shutdown, runtime_tasks).await;
            return Err(e);
        }
    };

    // The CLI config, other keys kept.
    let config_file = config::config_path();
    let mut props = Props::load(&config_file)?;
    props.set(config::APIHOST, &apihost);
    props.set(config::AUTH, &auth);
    props.save()?;

    let mut signals = match Signals::register() {
        Ok(s) => s,
        Err(e) => {
            stop_runtimes(&runtime_shutdown, runtime_tasks).await;
            return Err(e);
        }
    };
    let scheduler_shutdown = CancellationToken::new();
    let mut scheduler_task = {
        let shutdown = scheduler_shutdown.clone();
        tokio::spawn(async move { scheduler.serve(api_listener, shutdown).await })
    };

    {
        let mut out = anstream::stdout();
        let _ = writeln!(
            out,
            "wisp is up: scheduler on {apihost}, {} runtime{}, data in {}",
            args.runtimes,
            if args.runtimes == 1 { "" } else { "s" },
            data_dir.display()
        );
        let _ = writeln!(out, "  APIHOST={apihost}");
        let _ = writeln!(out, "  AUTH={auth}");
        let _ = writeln!(out, "  (both written to {})", config_file.display());
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }

    // Run until a signal, or until a server stops on its own (an error).
    let mut scheduler_done = false;
    let outcome: anyhow::Result<()> = tokio::select! {
        signal = signals.recv() => {
            tracing::info!(signal, "shutting down");
            Ok(())
        }
        res = &mut scheduler_task => {
            scheduler_done = true;
            match res {
                Ok(Ok(())) => Err(anyhow::anyhow!("the scheduler stopped unexpectedly")),
                Ok(Err(e)) => Err(e.context("the scheduler failed")),
                Err(e) => Err(anyhow::Error::new(e).context("the scheduler task panicked")),
            }
        }
        err = first_runtime_exit(&mut runtime_tasks) => Err(err),
    };

    // Scheduler first (finishes in-flight requests and flushes records), then the runtimes.
    scheduler_shutdown.cancel();
    if !scheduler_done {
        match scheduler_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("scheduler shutdown: {e:#}"),
            Err(e) => tracing::error!("scheduler task: {e}"),
        }
    }
    stop_runtimes(&runtime_shutdown, runtime_tasks).await;
    if outcome.is_ok() {
        let mut err = anstream::stderr();
        let _ = writeln!(err, "wisp stopped; data kept in {}", data_dir.display());
    }
    outcome
}

/// Binds the REST API's port, with a clear one-line error when it is taken.
async fn bind_api(port: u16) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port {port} on 127.0.0.1 is already in use (is another `wisp up` running? \
             choose another port with --port)"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on 127.0.0.1:{port}")),
    }
}

/// The guest's `uuid:key`: `--auth` if given, else the one kept in `guest.auth`, else a fresh
/// one from the scheduler; saved to `guest.auth` whenever it changes.
async fn guest_key(
    scheduler: &Scheduler,
    data_dir: &Path,
    fixed: Option<&str>,
) -> anyhow::Result<String> {
    let file = data_dir.join(GUEST_AUTH_FILE);
    let stored = match std::fs::read_to_string(&file) {
        Ok(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let wanted = fixed.map(str::to_string).or_else(|| stored.clone());
    let key = match scheduler
        .ensure_user(GUEST, wanted.as_deref())
        .await
        .context("cannot create the guest namespace")?
    {
        Some(key) => key,
        None => match wanted {
            Some(key) => key,
            None => {
                // The user exists but its key was not kept here: give it a fresh one.
                let fresh = fresh_auth();
                scheduler
                    .ensure_user(GUEST, Some(&fresh))
                    .await
                    .context("cannot set the guest key")?;
                fresh
            }
        },
    };
    if stored.as_deref() != Some(key.as_str()) {
        config::write_private(&file, format!("{key}\n").as_bytes())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(key)
}

/// A `uuid:key` in OpenWhisk's shape (a v4 UUID and 64 alphanumerics).
fn fresh_auth() -> String {
    let key: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(64)
        .map(char::from)
        .collect();
    format!("{}:{key}", uuid::Uuid::new_v4())
}

/// 32 random bytes as hex: the internal token between the scheduler and the runtimes.
fn random_token() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn stop_runtimes(shutdown: &CancellationToken, mut tasks: JoinSet<RuntimeExit>) {
    shutdown.cancel();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((i, Err(e))) => tracing::error!("runtime {i} shutdown: {e:#}"),
            Err(e) => tracing::error!("runtime task: {e}"),
        }
    }
}

/// The first runtime to stop while it should be serving, as an error (pending while all run).
async fn first_runtime_exit(tasks: &mut JoinSet<RuntimeExit>) -> anyhow::Error {
    match tasks.join_next().await {
        Some(Ok((i, Ok(())))) => anyhow::anyhow!("runtime {i} stopped unexpectedly"),
        Some(Ok((i, Err(e)))) => e.context(format!("runtime {i} failed")),
        Some(Err(e)) => anyhow::Error::new(e).context("a runtime task panicked"),
        None => std::future::pending().await,
    }
}

/// Ctrl-C (SIGINT) and SIGTERM, registered before "ready" is printed so that a signal sent
/// right after it is never lost.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Waits for either signal; returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_look_like_openwhisk_keys() {
        let a = fresh_auth();
        let (uuid, key) = a.split_once(':').unwrap();
        assert!(uuid::Uuid::parse_str(uuid).is_ok());
        assert_eq!(key.len(), 64);
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(fresh_auth(), a);
        assert_eq!(random_token().len(), 64);
    }

    #[tokio::test]
    async fn a_taken_port_is_one_clear_line() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind_api(port).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("port {port} on 127.0.0.1 is already in use")),
            "{err}"
        );
    }
}
