//! wisp's scheduler (the OpenWhisk controller): the REST API, users and their keys, the entity
//! store, activation records, and the sharding load balancer that spreads activations over
//! runtimes. **Architecture Invariant**: it never links wasmtime; runtimes are reached over HTTP.
//!
//! Main types, what they cost and how long they live:
//! - [`Scheduler`]: one per process. [`Scheduler::open`] opens the store (running migrations),
//!   builds the balancer and the invoker and starts the health task; [`Scheduler::serve`] serves
//!   until cancelled, then finishes in-flight requests, waits for running activations and
//!   flushes their records.
//! - [`store::Store`] (`Arc<dyn Store>`): the embedded SQLite file ([`store::sqlite`]) or
//!   PostgreSQL ([`store::postgres`], shared by several replicas), both on the SQL of
//!   [`store::common`], behind the entity cache ([`store::cache`]); activation records are
//!   written in group commits ([`store::batcher`]).
//! - [`balancer::Balancer`] (`Arc`): lives as long as the scheduler; `schedule` never waits; a
//!   `Lease` lives as long as one activation.
//! - [`invoke::Invoker`]: cheap to clone; one keep-alive HTTP client to the runtimes per process.
//!   It holds the limiter of namespace limits (`activation::limits`): OpenWhisk's
//!   `invocationsPerMinute`, `concurrentInvocations` and `firesPerMinute`, checked in memory
//!   (a sharded map and a few atomics) before an activation or a fire is accepted; 429 past them.
//! - [`state::AppState`]: a few `Arc`s cloned into every handler.
//! - [`kube::Provisioner`] and [`kube::RuntimePools`] (in the state): per-user namespaces and
//!   per-user balancers of dedicated runtimes; both inert unless `config.kubernetes` (then a pod
//!   reflector task runs for the scheduler's lifetime, see [`kube`]).
//! - [`alarm`]: the built-in alarm feed; one poller task per scheduler (a query a second) fires
//!   periodic triggers, claiming each tick in the store so replicas fire it once.
//! - [`api::router`]: the axum app (OpenWhisk API v1, admin API, code endpoint, health, metrics).

pub(crate) mod activation;
pub mod admin;
pub mod alarm;
pub mod api;
pub mod auth;
pub mod balancer;
pub mod config;
pub mod invoke;
pub mod kube;
pub mod metrics;
pub mod runtime_client;
pub mod state;
pub mod store;
pub mod web;

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

pub use activation::limits::{Clock, ManualClock, SystemClock};
pub use config::{SchedulerArgs, SchedulerConfig};

use balancer::{Balancer, BalancerConfig};
use invoke::{Invoker, InvokerConfig};
use metrics::Metrics;
use runtime_client::{RuntimeClient, RuntimeProber};
use state::AppState;
use store::Credentials;

/// A scheduler: store, balancer, invoker and health task. Dropping it stops the health task.
pub struct Scheduler {
    state: AppState,
    background: CancellationToken,
    /// The owner of the activations this scheduler accepts.
    instance: String,
}

/// How often a replica on a shared store says it is alive.
const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// A replica not seen alive for this long is gone: another claims what it accepted.
const DEAD_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether other replicas may share the store (PostgreSQL), so acceptances can be orphaned.
fn config_is_shared(state: &AppState) -> bool {
    state.config.store.is_some()
}

/// On a shared store: says every [`HEARTBEAT_EVERY`] that `instance` is alive, and finishes the
/// acceptances of replicas not seen for [`DEAD_AFTER`] (claimed in the store first, so two
/// replicas never finish the same one).
fn spawn_orphan_claimer(store: Arc<dyn store::Store>, instance: String, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = store.heartbeat(&instance, true).await {
                tracing::warn!(error = %e, "heartbeat failed");
                continue;
            }
            let orphans = store::Recovery::Orphans {
                dead_after: DEAD_AFTER,
            };
            match store.recover_accepted(&instance, orphans).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(n, "finished activations accepted by a replica that is gone")
                }
                Err(e) => tracing::warn!(error = %e, "claiming orphaned activations failed"),
            }
        }
    });
}

impl Scheduler {
    /// Opens the store in `config.data_dir` (or `config.store`), registers the runtimes and
    /// starts pinging them. Needs a tokio runtime.
    pub async fn open(config: SchedulerConfig) -> anyhow::Result<Scheduler> {
        let config = Arc::new(config);
        let (store, cache_stats) =
            store::open(&config)
                .await
                .with_context(|| match &config.store {
                    Some(url) => format!("opening the store {}", store::redact_url(url)),
                    None => format!("opening the store in {}", config.data_dir.display()),
                })?;
        let instance = config
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("wisp-{}", uuid::Uuid::new_v4().simple()));
        let recovery = if config.store.is_some() {
            store.heartbeat(&instance, true).await?;
            store::Recovery::Own
        } else {
            store::Recovery::Everything
        };
        let recovered = store
            .recover_accepted(&instance, recovery)
            .await
            .context("finishing the activations a previous run accepted")?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "activations accepted before a restart ended as whisk internal errors"
            );
        }
        let balancer = Balancer::new(BalancerConfig {
            cluster_size: config.cluster_size.max(1),
            ..BalancerConfig::default()
        });
        balancer.set_runtimes(config.runtimes.clone());
        let client = RuntimeClient::new(config.runtime_token.as_deref());
        let background = CancellationToken::new();
        let prober = Arc::new(RuntimeProber::new(client.clone()));
        balancer.spawn_health_task(Arc::clone(&prober), background.child_token());
        let health: crate::kube::discovery::HealthSpawner = Box::new(move |b, stop| {
            b.spawn_health_task(Arc::clone(&prober), stop);
        });
        let pools = Arc::new(
            crate::kube::RuntimePools::new(balancer.clone())
                .with_health(health, background.child_token()),
        );
        let limiter = Arc::new(activation::limits::Limiter::new(
            config.limit_defaults(),
            config.cluster_size,
            Arc::clone(&config.clock),
        ));
        let invoker = Invoker::with_client(
            store.clone(),
            Arc::clone(&pools),
            InvokerConfig {
                runtime_token: config.runtime_token.clone(),
                api_host: config.api_host.clone().unwrap_or_default(),
                instance: instance.clone(),
            },
            client,
            Arc::clone(&limiter),
        );
        let provisioner = if config.kubernetes {
            let settings = config
                .kube_settings
                .clone()
                .with_quota_overrides(&config.user_quota)
                .map_err(anyhow::Error::msg)?;
            let client = crate::kube::connect()
                .await
                .context("Kubernetes is on (--kubernetes) but unreachable")?;
            if config.runtimes.is_empty() {
                tracing::info!("discovering runtimes from pods labelled wisp.dev/runtime=true");
                crate::kube::spawn_discovery(
                    client.clone(),
                    Arc::clone(&pools),
                    background.child_token(),
                );
            }
            crate::kube::Provisioner::Kube(crate::kube::KubeProvisioner::new(client, settings))
        } else {
            crate::kube::Provisioner::Off
        };
        let state = AppState {
            provisioner,
            pools,
            store,
            balancer,
            invoker,
            config,
            metrics: Arc::new(Metrics::new(Some(cache_stats)).with_limiter(limiter)),
        };
        alarm::spawn_poller(state.clone(), background.child_token());
        if config_is_shared(&state) {
            spawn_orphan_claimer(
                state.store.clone(),
                instance.clone(),
                background.child_token(),
            );
        }
        Ok(Scheduler {
            state,
            background,
            instance,
        })
    }

    /// The shared state (store, balancer, invoker, config, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The same scheduler with another provisioner of per-user namespaces (tests: a
    /// `kube::Client` over a mock service).
    pub fn with_provisioner(mut self, provisioner: crate::kube::Provisioner) -> Self {
        self.state.provisioner = provisioner;
        self
    }

    /// Creates user/namespace `name` if missing. With `auth` = Some("uuid:key") the user's key
    /// is set to it. Returns Some("uuid:key") when it created the user or set the key, None when
    /// it existed and `auth` was None. With Kubernetes on, a user created or re-keyed here also
    /// gets its namespace `wisp-user-NAME` (server-side apply, so a restart converges it), as
    /// `admin user add` does; a user that existed already keeps the namespace it got then.
    pub async fn ensure_user(
        &self,
        name: &str,
        auth: Option<&str>,
    ) -> anyhow::Result<Option<String>> {
        admin::validate_user_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = &self.state.store;
        let created = match auth {
            Some(auth) => {
                let creds = Credentials::parse(auth)
                    .with_context(|| format!("auth for user {name:?} must be 'uuid:key'"))?;
                store
                    .set_user_key(name, &creds)
                    .await
                    .with_context(|| format!("setting the key of user {name:?}"))?;
                creds.auth()
            }
            None => {
                if store.get_user(name).await?.is_some() {
                    return Ok(None);
                }
                match store.create_user(name).await {
                    Ok(creds) => creds.auth(),
                    // Created concurrently by another replica (which provisions it).
                    Err(store::StoreError::Conflict { .. }) => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("creating user {name:?}")),
                }
            }
        };
        self.state
            .provisioner
            .add_user(name, &created, 0)
            .await
            .with_context(|| format!("creating the Kubernetes namespace of user {name:?}"))?;
        Ok(Some(created))
    }

    /// The HTTP app (for serving on a listener of your own, or testing without a socket).
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Serves until `shutdown` is cancelled; then finishes in-flight requests, waits for running
    /// activations and flushes activation records, so no acknowledged record is lost.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let app = self.router();
        // Timeouts (request head, body, idle keep-alive), a connection cap, and JSON 414/431/408
        // answers: the API is public.
        let served = wisp_serve::serve(listener, app, wisp_serve::ServeLimits::default(), shutdown)
            .await
            .context("serving the REST API");
        self.shutdown().await?;
        served
    }

    /// Stops the health task, waits for running activations and closes the store (flushing
    /// queued activation records). Idempotent.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        self.background.cancel();
        self.state.invoker.drain().await;
        if config_is_shared(&self.state)
            && let Err(e) = self.state.store.heartbeat(&self.instance, false).await
        {
            tracing::warn!(error = %e, "cannot deregister this replica");
        }
        self.state
            .store
            .close()
            .await
            .context("flushing activation records")?;
        Ok(())
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.background.cancel();
    }
}
