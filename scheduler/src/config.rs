//! Command-line flags and the scheduler's configuration.
//!
//! [`SchedulerArgs`] is what `wisp-scheduler` parses (every flag also read from a `WISP_*`
//! environment variable, so pods are configured by environment); [`SchedulerConfig`] is what the
//! library runs with (`wisp up` and tests build it directly, with [`Default`] for the rest).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::activation::limits::{
    Clock, DEFAULT_CONCURRENT_INVOCATIONS, DEFAULT_FIRES_PER_MINUTE,
    DEFAULT_INVOCATIONS_PER_MINUTE, SystemClock,
};

/// Flags of the `wisp-scheduler` binary.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "wisp-scheduler",
    version,
    about = "The wisp controller: OpenWhisk-compatible REST API, store and load balancer"
)]
pub struct SchedulerArgs {
    /// Port of the REST API.
    #[arg(long, env = "WISP_PORT", default_value_t = 3233)]
    pub port: u16,
    /// Address to listen on: loopback unless set (the Kubernetes manifests set 0.0.0.0).
    #[arg(long, env = "WISP_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Base URL of a runtime (repeatable; the env var takes a comma-separated list).
    #[arg(long = "runtime", env = "WISP_RUNTIMES", value_delimiter = ',')]
    pub runtimes: Vec<String>,
    /// Folder of the embedded store (`wisp.db`).
    #[arg(long, env = "WISP_DATA_DIR", default_value = "./wisp-data")]
    pub data_dir: PathBuf,
    /// Store URL: empty = the embedded file in the data dir, `postgres://...` = PostgreSQL.
    #[arg(long, env = "WISP_STORE", default_value = "")]
    pub store: String,
    /// Shared internal token the scheduler presents to runtimes on `/run` and `/prepare`.
    /// Required: the scheduler refuses to start without it unless `--insecure-no-token`.
    #[arg(long, env = "WISP_RUNTIME_TOKEN", hide_env_values = true)]
    pub runtime_token: Option<String>,
    /// This replica's name: the owner of the activations it accepts. A restarted replica with
    /// the same name finishes those it left unfinished; others claim them once it has been
    /// gone a minute. Default: `HOSTNAME:PORT` (a pod's name is its hostname).
    #[arg(long = "instance-id", env = "WISP_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Start without `WISP_RUNTIME_TOKEN` (runtimes must then accept requests without a token:
    /// anyone who can reach them can run code). Only for a machine nobody else can reach.
    #[arg(long = "insecure-no-token", env = "WISP_INSECURE_NO_TOKEN")]
    pub insecure_no_token: bool,
    /// Key guarding the admin API (`Authorization: Bearer KEY`); the admin API is disabled without it.
    #[arg(long, env = "WISP_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Public URL of this API given to actions as `__OW_API_HOST` (default `http://127.0.0.1:PORT`).
    #[arg(long, env = "WISP_API_HOST")]
    pub api_host: Option<String>,
    /// Base URL runtimes fetch code from (default: the API host).
    /// Activation records kept per namespace (older ones are deleted).
    #[arg(long, env = "WISP_ACTIVATION_RETENTION", default_value_t = 10_000)]
    pub activation_retention: u64,
    /// Number of scheduler replicas sharing the runtimes' capacity (horizontal sharding).
    #[arg(long, env = "WISP_CLUSTER_SIZE", default_value_t = 1)]
    pub cluster_size: usize,
    /// Namespace created at start if missing (e.g. `guest`); its key is printed when generated.
    #[arg(long, env = "WISP_INITIAL_USER")]
    pub initial_user: Option<String>,
    /// `uuid:key` for the initial user.
    #[arg(long, env = "WISP_INITIAL_AUTH", hide_env_values = true)]
    pub initial_auth: Option<String>,
    /// Kubernetes: per-user namespaces and runtime pod discovery. `auto` = on when running in a
    /// pod (`KUBERNETES_SERVICE_HOST` set).
    #[arg(long, env = "WISP_KUBERNETES", value_enum, default_value = "auto")]
    pub kubernetes: crate::kube::KubeMode,
    /// Image of dedicated runtimes (`wisp admin user add --dedicated-runtimes N`).
    #[arg(long, env = "WISP_RUNTIME_IMAGE")]
    pub runtime_image: Option<String>,
    /// Overrides of each user namespace's ResourceQuota, `RESOURCE=QUANTITY` (repeatable; the
    /// env var takes a comma-separated list), e.g. `pods=4,limits.memory=4Gi`.
    #[arg(long = "user-quota", env = "WISP_USER_QUOTA", value_delimiter = ',')]
    pub user_quota: Vec<String>,
    /// Durability of a commit of the embedded store: `normal` = no fsync per commit in WAL mode
    /// (survives `kill -9` of the scheduler; the last commits may be lost when the machine loses
    /// power), `full` = an fsync per commit (survives a power loss too; ~+0.3 ms per invoke).
    #[arg(long, env = "WISP_STORE_SYNC", value_enum, default_value = "normal")]
    pub store_sync: StoreSync,
    /// Activations a namespace may start per minute unless its user has a limit of its own
    /// (OpenWhisk's `invocationsPerMinute`; `wisp admin user limits` sets one). OpenWhisk's 60
    /// is sized for container activations of 100 ms and more; a warm wasm activation costs
    /// ~1,000x less, hence 120,000 (2,000/s): it stops one tenant flooding the store with
    /// records and still lets `wisp bench` run 32 clients for 10 s on one namespace (~53,000
    /// invokes) with 2x headroom. With several replicas each enforces ceil(limit / cluster
    /// size).
    #[arg(long, env = "WISP_DEFAULT_INVOCATIONS_PER_MINUTE", default_value_t = DEFAULT_INVOCATIONS_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..))]
    pub default_invocations_per_minute: u32,
    /// Activations of a namespace in flight at once unless its user has a limit of its own
    /// (OpenWhisk's `concurrentInvocations`, default 30 there). An activation in flight holds
    /// runtime memory and a pool slot however cheap wasm is, so this stays near OpenWhisk's:
    /// 64, twice the 32 clients of the load tests. Per replica: ceil(limit / cluster size).
    #[arg(long, env = "WISP_DEFAULT_CONCURRENT_INVOCATIONS", default_value_t = DEFAULT_CONCURRENT_INVOCATIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub default_concurrent_invocations: u32,
    /// Trigger fires (API and alarms) a namespace may make per minute unless its user has a
    /// limit of its own (OpenWhisk's `firesPerMinute`, default 60 there). A fire is a rules
    /// query and a record write, not wasm, so 600 (10/s): far beyond what alarms or webhooks
    /// need; the activations a fire starts count as invocations too. Per replica: ceil(limit /
    /// cluster size).
    #[arg(long, env = "WISP_DEFAULT_FIRES_PER_MINUTE", default_value_t = DEFAULT_FIRES_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..))]
    pub default_fires_per_minute: u32,
}

/// How the embedded store makes a commit durable (SQLite's `PRAGMA synchronous`, in WAL mode).
/// Either way an acknowledged activation or entity is committed before the answer, and the
/// database stays consistent.
///
/// Measured with the invoke bench on the 2-core machine (busy, so relative figures only),
/// against records that are not waited for: `normal` costs ~5% of the 32-client throughput and
/// ~+0.14 ms per single invoke, `full` ~14% and ~+0.38 ms (an fsync per group commit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreSync {
    /// `synchronous=NORMAL`: the WAL is fsynced at checkpoints only; survives a crash of the
    /// process (the commit is in the OS page cache), not of the machine.
    #[default]
    Normal,
    /// `synchronous=FULL`: the WAL is fsynced at every commit; survives a power loss.
    Full,
}

impl StoreSync {
    /// The SQLite setting.
    pub fn sqlite(self) -> sqlx::sqlite::SqliteSynchronous {
        match self {
            StoreSync::Full => sqlx::sqlite::SqliteSynchronous::Full,
            StoreSync::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
        }
    }
}

impl SchedulerArgs {
    /// The address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Refuses flags that would leave the scheduler open: no runtime token without
    /// `--insecure-no-token`.
    pub fn check_secure(&self) -> Result<(), String> {
        let has_token = self.runtime_token.as_deref().is_some_and(|t| !t.is_empty());
        if has_token || self.insecure_no_token {
            Ok(())
        } else {
            Err(
                "WISP_RUNTIME_TOKEN is not set: set the token shared with the runtimes, \
                 or pass --insecure-no-token on a machine nobody else can reach"
                    .into(),
            )
        }
    }

    /// The library configuration these flags describe.
    pub fn into_config(self) -> SchedulerConfig {
        let kubernetes = self
            .kubernetes
            .enabled(std::env::var("KUBERNETES_SERVICE_HOST").ok().as_deref());
        let mut kube_settings = crate::kube::KubeSettings {
            runtime_token: self.runtime_token.clone().filter(|t| !t.is_empty()),
            ..crate::kube::KubeSettings::default()
        };
        if let Some(image) = self.runtime_image.filter(|i| !i.trim().is_empty()) {
            kube_settings.runtime_image = image;
        }
        let api_host = self
            .api_host
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.port));
        let instance_id = self
            .instance_id
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| format!("{}:{}", hostname(), self.port));
        SchedulerConfig {
            instance_id: Some(instance_id),
            runtimes: self
                .runtimes
                .into_iter()
                .filter(|r| !r.trim().is_empty())
                .collect(),
            data_dir: self.data_dir,
            store: Some(self.store).filter(|s| !s.trim().is_empty()),
            runtime_token: self.runtime_token.filter(|t| !t.is_empty()),
            admin_key: self.admin_key.filter(|k| !k.is_empty()),
            api_host: Some(api_host),
            activation_retention: self.activation_retention,
            cluster_size: self.cluster_size.max(1),
            kubernetes,
            kube_settings,
            user_quota: self.user_quota,
            store_sync: self.store_sync,
            default_invocations_per_minute: self.default_invocations_per_minute,
            default_concurrent_invocations: self.default_concurrent_invocations,
            default_fires_per_minute: self.default_fires_per_minute,
            ..SchedulerConfig::default()
        }
    }
}

/// The machine's host name (a pod's name on Kubernetes), or `wisp` when it cannot be read.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wisp".into())
}

/// Everything the scheduler library runs with. Built once at start, shared as `Arc`.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This replica's name, the owner of the activations it accepts (see
    /// [`SchedulerArgs::instance_id`]); `None`: a random one per start.
    pub instance_id: Option<String>,
    /// Base URLs of the runtimes (static list).
    pub runtimes: Vec<String>,
    /// Folder of the embedded store.
    pub data_dir: PathBuf,
    /// `None`/empty: the embedded store; `postgres://...` / `postgresql://...`: PostgreSQL
    /// (several replicas share it; see `store::postgres`).
    pub store: Option<String>,
    /// Bearer token for runtimes' `/run` and the code endpoint.
    pub runtime_token: Option<String>,
    /// Admin API key; `None` disables the admin API (403).
    pub admin_key: Option<String>,
    /// `__OW_API_HOST`.
    pub api_host: Option<String>,
    /// Activation records kept per namespace.
    pub activation_retention: u64,
    /// Scheduler replicas sharing runtime capacity.
    pub cluster_size: usize,
    /// Largest number of activation records written in one transaction.
    pub activation_batch_size: usize,
    /// Entries of the entity cache (actions, packages, identities).
    pub entity_cache_capacity: u64,
    /// How long a cached entity lives without a write (writes through this process invalidate).
    pub entity_cache_ttl: Duration,
    /// Largest request body of the REST API.
    pub max_body_bytes: usize,
    /// Talk to Kubernetes (per-user namespaces, runtime discovery). Off by default: only the
    /// `wisp-scheduler` binary turns it on (`--kubernetes`).
    pub kubernetes: bool,
    /// Shape of the per-user objects (used when `kubernetes`).
    pub kube_settings: crate::kube::KubeSettings,
    /// `--user-quota` items, applied over `kube_settings.quota` at start (bad ones fail it).
    pub user_quota: Vec<String>,
    /// Durability of the embedded store's commits (`--store-sync`).
    pub store_sync: StoreSync,
    /// Namespace limits for users without their own (`--default-invocations-per-minute`,
    /// `--default-concurrent-invocations`, `--default-fires-per-minute`; the reasoning behind
    /// the defaults is on those flags). Each ≥ 1; a 0 is taken as 1.
    pub default_invocations_per_minute: u32,
    pub default_concurrent_invocations: u32,
    pub default_fires_per_minute: u32,
    /// The clock of the per-minute limit windows (the wall clock; tests move a
    /// [`crate::ManualClock`]).
    pub clock: Arc<dyn Clock>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            instance_id: None,
            runtimes: Vec::new(),
            data_dir: PathBuf::from("./wisp-data"),
            store: None,
            runtime_token: None,
            admin_key: None,
            api_host: None,
            activation_retention: 10_000,
            cluster_size: 1,
            activation_batch_size: 512,
            entity_cache_capacity: 10_000,
            entity_cache_ttl: Duration::from_secs(300),
            max_body_bytes: wisp_core::run::MAX_PAYLOAD_BYTES,
            kubernetes: false,
            kube_settings: crate::kube::KubeSettings::default(),
            user_quota: Vec::new(),
            store_sync: StoreSync::default(),
            default_invocations_per_minute: DEFAULT_INVOCATIONS_PER_MINUTE,
            default_concurrent_invocations: DEFAULT_CONCURRENT_INVOCATIONS,
            default_fires_per_minute: DEFAULT_FIRES_PER_MINUTE,
            clock: Arc::new(SystemClock),
        }
    }
}

impl SchedulerConfig {
    /// The namespace limits of users that have none of their own.
    pub(crate) fn limit_defaults(&self) -> crate::activation::limits::LimitDefaults {
        crate::activation::limits::LimitDefaults {
            invocations_per_minute: self.default_invocations_per_minute.max(1),
            concurrent_invocations: self.default_concurrent_invocations.max(1),
            fires_per_minute: self.default_fires_per_minute.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn flags_become_a_config() {
        let args = SchedulerArgs::try_parse_from([
            "wisp-scheduler",
            "--port",
            "4000",
            "--runtime",
            "http://a:8080",
            "--runtime",
            "http://b:8080,http://c:8080",
            "--data-dir",
            "/tmp/x",
            "--admin-key",
            "k",
        ])
        .unwrap();
        assert_eq!(args.listen_addr().port(), 4000);
        let config = args.into_config();
        assert_eq!(
            config.runtimes,
            ["http://a:8080", "http://b:8080", "http://c:8080"]
        );
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.store, None, "empty --store is the embedded file");
        assert_eq!(config.admin_key.as_deref(), Some("k"));
        assert_eq!(config.api_host.as_deref(), Some("http://127.0.0.1:4000"));
        assert_eq!(config.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn defaults_match_the_design() {
        let args = SchedulerArgs::try_parse_from(["wisp-scheduler"]).unwrap();
        assert_eq!(args.port, 3233);
        assert!(args.store.is_empty());
        assert_eq!(args.kubernetes, crate::kube::KubeMode::Auto);
        assert_eq!(args.store_sync, StoreSync::Normal);
        assert_eq!(args.default_invocations_per_minute, 120_000);
        assert_eq!(args.default_concurrent_invocations, 64);
        assert_eq!(args.default_fires_per_minute, 600);
        let limited = SchedulerArgs::try_parse_from([
            "wisp-scheduler",
            "--default-invocations-per-minute",
            "10",
            "--default-concurrent-invocations",
            "2",
            "--default-fires-per-minute",
            "3",
        ])
        .unwrap()
        .into_config()
        .limit_defaults();
        assert_eq!(
            (
                limited.invocations_per_minute,
                limited.concurrent_invocations,
                limited.fires_per_minute
            ),
            (10, 2, 3)
        );
        for bad in ["0", "-1", "1.5", "x"] {
            assert!(
                SchedulerArgs::try_parse_from([
                    "wisp-scheduler",
                    "--default-concurrent-invocations",
                    bad
                ])
                .is_err(),
                "{bad}"
            );
        }
        let full = SchedulerArgs::try_parse_from(["wisp-scheduler", "--store-sync", "full"])
            .unwrap()
            .into_config();
        assert_eq!(full.store_sync, StoreSync::Full);
        assert!(SchedulerArgs::try_parse_from(["wisp-scheduler", "--store-sync", "off"]).is_err());
        assert!(
            !SchedulerConfig::default().kubernetes,
            "the library never assumes a cluster"
        );
    }

    #[test]
    fn secure_by_default() {
        let args =
            SchedulerArgs::try_parse_from(["wisp-scheduler", "--runtime-token", "t"]).unwrap();
        assert!(args.bind.is_loopback(), "listens on loopback unless --bind");
        assert!(args.check_secure().is_ok());
        let open =
            SchedulerArgs::try_parse_from(["wisp-scheduler", "--runtime-token", ""]).unwrap();
        assert!(
            open.check_secure()
                .unwrap_err()
                .contains("WISP_RUNTIME_TOKEN")
        );
        let insecure = SchedulerArgs::try_parse_from([
            "wisp-scheduler",
            "--runtime-token",
            "",
            "--insecure-no-token",
        ])
        .unwrap();
        assert!(insecure.check_secure().is_ok());
    }

    #[test]
    fn kubernetes_flags() {
        let config = SchedulerArgs::try_parse_from([
            "wisp-scheduler",
            "--kubernetes",
            "on",
            "--runtime-image",
            "registry.example/wisp-runtime:1.2.3",
            "--user-quota",
            "pods=2,limits.memory=2Gi",
            "--runtime-token",
            "t",
        ])
        .unwrap()
        .into_config();
        assert!(config.kubernetes);
        assert_eq!(
            config.kube_settings.runtime_image,
            "registry.example/wisp-runtime:1.2.3"
        );
        assert_eq!(config.kube_settings.runtime_token.as_deref(), Some("t"));
        assert_eq!(config.user_quota, ["pods=2", "limits.memory=2Gi"]);
        let off = SchedulerArgs::try_parse_from(["wisp-scheduler", "--kubernetes", "off"])
            .unwrap()
            .into_config();
        assert!(!off.kubernetes);
        assert!(
            SchedulerArgs::try_parse_from(["wisp-scheduler", "--kubernetes", "maybe"]).is_err()
        );
    }
}
