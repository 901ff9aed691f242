//! Runtime configuration: the library's [`RuntimeConfig`] and the binary's [`RuntimeArgs`].

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
    /// Capacity this runtime announces on `/health` (`userMemory`, MB). The scheduler divides it
    /// into slots of each activation's memory limit.
    pub user_memory_mb: u64,
    /// Where serialized compiled modules are kept so that a restarted runtime does not
    /// recompile. `None`: memory cache only.
    pub cache_dir: Option<PathBuf>,
    /// The bearer token `/run` and `/prepare` require (and that code fetches send).
    /// `None`: requests are accepted without a token (a warning is logged at start).
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
    /// Upper bound, in bytes of compiled code, of the in-memory code cache.
    pub code_cache_bytes: u64,
    /// Largest accepted `/run` or `/prepare` body (inline code included). The params alone are
    /// limited to [`MAX_PAYLOAD_BYTES`](wisp_core::run::MAX_PAYLOAD_BYTES).
    pub max_body_bytes: usize,
    /// Largest code blob accepted from `code` or fetched from `code_url`.
    pub max_code_bytes: usize,
}

impl RuntimeConfig {
    pub const DEFAULT_USER_MEMORY_MB: u64 = 2048;
    pub const DEFAULT_POOL_SLOTS: u32 = 128;
    pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(2);
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            user_memory_mb: Self::DEFAULT_USER_MEMORY_MB,
            cache_dir: None,
            token: None,
            pool_slots: Self::DEFAULT_POOL_SLOTS,
            allocator: Allocator::Pooling,
            memory_init_cow: true,
            memory_keep_resident: 1 << 20,
            pagemap_scan: true,
            epoch_tick: Self::DEFAULT_EPOCH_TICK,
            code_cache_bytes: 1 << 30,
            max_body_bytes: wisp_core::run::MAX_ACTION_PUT_BYTES,
            max_code_bytes: 48 << 20,
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
    /// TCP port to listen on (all interfaces).
    #[arg(long, env = "WISP_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Capacity in MB announced to schedulers on /health (they divide it by each action's memory limit).
    #[arg(long = "user-memory", env = "WISP_USER_MEMORY", default_value_t = RuntimeConfig::DEFAULT_USER_MEMORY_MB)]
    pub user_memory: u64,
    /// Directory for serialized compiled modules, so a restart does not recompile.
    #[arg(long = "cache-dir", env = "WISP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Activations instantiated at once (pooling-allocator slots); more wait for a slot.
    #[arg(long = "pool-slots", env = "WISP_POOL_SLOTS", default_value_t = RuntimeConfig::DEFAULT_POOL_SLOTS)]
    pub pool_slots: u32,
    /// Shared internal token required on /run and /prepare (never pass it as a flag).
    #[arg(skip = std::env::var("WISP_RUNTIME_TOKEN").ok().filter(|t| !t.is_empty()))]
    pub token: Option<String>,
}

impl RuntimeArgs {
    /// The library configuration these flags describe.
    pub fn into_config(self) -> RuntimeConfig {
        RuntimeConfig {
            user_memory_mb: self.user_memory,
            cache_dir: self.cache_dir,
            token: self.token,
            pool_slots: self.pool_slots,
            ..RuntimeConfig::default()
        }
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
        ])
        .unwrap();
        assert_eq!(args.port, 9000);
        let config = args.into_config();
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
        assert_eq!(args.user_memory, 2048);
        assert!(RuntimeArgs::try_parse_from(["wisp-runtime", "--port", "x"]).is_err());
    }
}
