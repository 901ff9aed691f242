//! Runtime configuration: the library's [`RuntimeConfig`] and the binary's [`RuntimeArgs`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Which instance allocator the [`Engine`](wasmtime::Engine) uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Allocator {
    /// Wasmtime's pooling allocator: `pool_slots` instance, memory, table and stack slots are
    /// reserved up front and recycled between activations (the fast path, and the default).
    #[default]
    Pooling,
    /// mmap/munmap per instance. Only for comparison in benchmarks.
    OnDemand,
}

/// Everything a [`Runtime`](crate::Runtime) needs. Cheap to clone; `Default` is a sensible
/// local configuration (no disk cache, no token).
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The memory budget, MB: announced on `/health` (`userMemory`; the scheduler divides it
    /// into slots of each activation's memory limit) and enforced here: every activation
    /// reserves its `limits.memory` from it before it is instantiated (see [`admission`]).
    ///
    /// [`admission`]: crate::admission
    pub user_memory_mb: u64,
    /// Fraction of the budget one namespace may hold while it has another activation running
    /// (`(0, 1]`; 1 = no per-namespace cap).
    pub max_namespace_share: f64,
    /// Where serialized compiled modules are kept so that a restarted runtime does not
    /// recompile. `None`: memory cache only. Made private (0700) at start; files are 0600.
    pub cache_dir: Option<PathBuf>,
    /// Upper bound of the bytes of `.cwasm` files in `cache_dir`; the least recently used are
    /// deleted past it.
    pub cache_max_bytes: u64,
    /// The bearer token `/run`, `/prepare` and `DELETE /code/{digest}` require.
    /// `None`: requests are accepted without a token (a warning is logged at start; the binary
    /// refuses to start so unless given `--insecure-no-token`).
    pub token: Option<String>,
    /// Instance slots of the pooling allocator; also the number of activations that may be
    /// instantiated at once (excess requests wait for a slot).
    pub pool_slots: u32,
    /// Instance allocator.
    pub allocator: Allocator,
    /// Copy-on-write initialisation of linear memory from the module image (the default).
    /// `false` copies the data segments instead; with `pagemap_scan` on, CoW measured slightly
    /// faster for `hello` (see the `prewarmed` benches).
    pub memory_init_cow: bool,
    /// Bytes of each linear memory slot kept resident (reset with memset rather than madvise)
    /// when a slot is recycled.
    pub memory_keep_resident: usize,
    /// Reset recycled memory slots by scanning for the pages the guest dirtied (Linux 6.7+
    /// `PAGEMAP_SCAN`; ignored where unavailable) instead of memsetting all of
    /// `memory_keep_resident`.
    pub pagemap_scan: bool,
    /// Epoch tick: how often running activations yield to others and check their deadline.
    pub epoch_tick: Duration,
    /// Threads of the background pool where guests that run longer than their first ticks
    /// finish, away from the request workers (see [`guests`](crate::guests)). 0: no pool,
    /// every guest runs on the task that received it.
    pub guest_threads: usize,
    /// OS `nice` value of the pool's threads (Linux): higher runs less when request workers
    /// want the CPU too. 0 = the same priority.
    pub guest_nice: i32,
    /// Upper bound, in bytes of compiled code, of the in-memory code cache.
    pub code_cache_bytes: u64,
    /// Largest accepted `/run` or `/prepare` body (inline code included). The params alone are
    /// limited to [`MAX_PAYLOAD_BYTES`](wisp_core::run::MAX_PAYLOAD_BYTES).
    pub max_body_bytes: usize,
    /// Largest code blob accepted in `code`.
    pub max_code_bytes: usize,
    /// HTTP timeouts and limits of the server ([`wisp_serve::ServeLimits`]).
    pub http: wisp_serve::ServeLimits,
}

impl RuntimeConfig {
    pub const DEFAULT_USER_MEMORY_MB: u64 = 2048;
    /// Half the budget: with two tenants flooding, each still gets half; a tenant alone still
    /// runs four activations of the default 256 MB on the default 2048 MB budget, twice as
    /// many as this machine has cores for the CPU-bound code wasm actions are (they have no
    /// sockets); and a tenant's 5 s loops always leave the other half free for anyone else.
    pub const DEFAULT_MAX_NAMESPACE_SHARE: f64 = 0.5;
    /// 1 GiB of compiled code on disk: ~1,000 small actions, or 20 of the largest (48 MB).
    pub const DEFAULT_CACHE_MAX_MB: u64 = 1024;
    pub const DEFAULT_POOL_SLOTS: u32 = 128;
    pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(2);
    pub const DEFAULT_GUEST_NICE: i32 = 10;
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            user_memory_mb: Self::DEFAULT_USER_MEMORY_MB,
            max_namespace_share: Self::DEFAULT_MAX_NAMESPACE_SHARE,
            cache_dir: None,
            cache_max_bytes: Self::DEFAULT_CACHE_MAX_MB << 20,
            token: None,
            pool_slots: Self::DEFAULT_POOL_SLOTS,
            allocator: Allocator::Pooling,
            memory_init_cow: true,
            memory_keep_resident: 1 << 20,
            pagemap_scan: true,
            epoch_tick: Self::DEFAULT_EPOCH_TICK,
            guest_threads: std::thread::available_parallelism().map_or(2, usize::from),
            guest_nice: Self::DEFAULT_GUEST_NICE,
            code_cache_bytes: 1 << 30,
            max_body_bytes: wisp_core::run::MAX_ACTION_PUT_BYTES,
            max_code_bytes: 48 << 20,
            http: wisp_serve::ServeLimits::default(),
        }
    }
}

/// Command-line flags of the `wisp-runtime` binary (each also read from its `WISP_*` variable).
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "wisp-runtime",
    version,
    about = "The wisp invoker: runs WebAssembly actions behind POST /run."
)]
pub struct RuntimeArgs {
    /// TCP port to listen on.
    #[arg(long, env = "WISP_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on (0.0.0.0 for every interface, as the Kubernetes manifests set).
    #[arg(long, env = "WISP_BIND", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// Memory budget in MB: announced to schedulers on /health and enforced (each activation
    /// reserves its memory limit before it starts; past the budget activations wait).
    #[arg(long = "user-memory", env = "WISP_USER_MEMORY", default_value_t = RuntimeConfig::DEFAULT_USER_MEMORY_MB)]
    pub user_memory: u64,
    /// Fraction of the memory budget one namespace may hold (0 < share <= 1), so that one
    /// tenant cannot make another one's activations wait for its long ones.
    #[arg(long = "max-namespace-share", env = "WISP_MAX_NAMESPACE_SHARE", default_value_t = RuntimeConfig::DEFAULT_MAX_NAMESPACE_SHARE, value_parser = parse_share)]
    pub max_namespace_share: f64,
    /// Directory for serialized compiled modules, so a restart does not recompile.
    #[arg(long = "cache-dir", env = "WISP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most MB of compiled modules kept in --cache-dir (least recently used deleted first).
    #[arg(long = "cache-max-mb", env = "WISP_CACHE_MAX_MB", default_value_t = RuntimeConfig::DEFAULT_CACHE_MAX_MB)]
    pub cache_max_mb: u64,
    /// Accept requests without a token when WISP_RUNTIME_TOKEN is not set (anyone who can reach
    /// the port may then run code here). Without it the runtime refuses to start tokenless.
    #[arg(long = "insecure-no-token", env = "WISP_INSECURE_NO_TOKEN")]
    pub insecure_no_token: bool,
    /// Activations instantiated at once (pooling-allocator slots); more wait for a slot.
    #[arg(long = "pool-slots", env = "WISP_POOL_SLOTS", default_value_t = RuntimeConfig::DEFAULT_POOL_SLOTS)]
    pub pool_slots: u32,
    /// Threads of the background pool long-running guests move to (lower OS priority than
    /// the request workers); 0 runs every guest on the request workers. Default: one per core.
    #[arg(long = "guest-threads", env = "WISP_GUEST_THREADS")]
    pub guest_threads: Option<usize>,
    /// Shared internal token required on /run and /prepare (never pass it as a flag).
    #[arg(skip = std::env::var("WISP_RUNTIME_TOKEN").ok().filter(|t| !t.is_empty()))]
    pub token: Option<String>,
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        Ok(v) => Err(format!("{v} is not a fraction in (0, 1]")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// The flags cannot start a runtime.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error(
        "WISP_RUNTIME_TOKEN is not set: set it to the schedulers' shared token, or pass --insecure-no-token to accept requests from anyone"
    )]
    NoToken,
}

impl RuntimeArgs {
    /// Where to listen.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// The library configuration these flags describe; refuses a runtime without a token
    /// unless `--insecure-no-token` says so.
    pub fn into_config(self) -> Result<RuntimeConfig, ArgsError> {
        if self.token.is_none() && !self.insecure_no_token {
            return Err(ArgsError::NoToken);
        }
        let defaults = RuntimeConfig::default();
        Ok(RuntimeConfig {
            guest_threads: self.guest_threads.unwrap_or(defaults.guest_threads),
            user_memory_mb: self.user_memory,
            max_namespace_share: self.max_namespace_share,
            cache_dir: self.cache_dir,
            cache_max_bytes: self.cache_max_mb.saturating_mul(1 << 20),
            token: self.token,
            pool_slots: self.pool_slots,
            ..defaults
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_become_the_config() {
        let args = RuntimeArgs::try_parse_from([
            "wisp-runtime",
            "--port",
            "9000",
            "--user-memory",
            "512",
            "--cache-dir",
            "/tmp/wisp-cache",
            "--pool-slots",
            "16",
            "--bind",
            "0.0.0.0",
            "--max-namespace-share",
            "0.25",
            "--cache-max-mb",
            "64",
            "--insecure-no-token",
        ])
        .unwrap();
        assert_eq!(args.port, 9000);
        assert_eq!(args.addr().to_string(), "0.0.0.0:9000");
        let config = args.into_config().unwrap();
        assert_eq!(config.max_namespace_share, 0.25);
        assert_eq!(config.cache_max_bytes, 64 << 20);
        assert_eq!(config.user_memory_mb, 512);
        assert_eq!(
            config.cache_dir.as_deref(),
            Some(std::path::Path::new("/tmp/wisp-cache"))
        );
        assert_eq!(config.pool_slots, 16);
        assert_eq!(config.allocator, Allocator::Pooling);
    }

    #[test]
    fn defaults_match_the_design() {
        let args = RuntimeArgs::try_parse_from(["wisp-runtime"]).unwrap();
        assert_eq!(args.port, 8080);
        assert_eq!(args.addr().to_string(), "127.0.0.1:8080");
        assert_eq!(args.user_memory, 2048);
        assert_eq!(args.max_namespace_share, 0.5);
        assert!(RuntimeArgs::try_parse_from(["wisp-runtime", "--port", "x"]).is_err());
        for bad in ["0", "1.5", "-1", "half"] {
            assert!(
                RuntimeArgs::try_parse_from(["wisp-runtime", "--max-namespace-share", bad])
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_token_is_refused_unless_insecure() {
        let mut args = RuntimeArgs::try_parse_from(["wisp-runtime"]).unwrap();
        args.token = None;
        assert!(matches!(
            args.clone().into_config(),
            Err(ArgsError::NoToken)
        ));
        args.insecure_no_token = true;
        assert!(args.clone().into_config().unwrap().token.is_none());
        args.insecure_no_token = false;
        args.token = Some("t".into());
        assert_eq!(args.into_config().unwrap().token.as_deref(), Some("t"));
    }
}
