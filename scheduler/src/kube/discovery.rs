//! Runtime discovery: a reflector over the pods labelled `wisp.dev/runtime=true` in every
//! namespace, turned into balancer lists.
//!
//! A pod is a runtime when it is Ready (condition `Ready=True`), has a pod IP and is not being
//! deleted; its URL is `http://<podIP>:<port named "http", else 8080>`. Which list it joins:
//! - no `wisp.dev/user` label and in the scheduler's own namespace (the shared DaemonSet):
//!   the shared balancer, via [`Balancer::add_runtime`] / [`Balancer::remove_runtime`];
//! - label `wisp.dev/user=NAME` and in namespace `wisp-user-NAME` (a dedicated runtime):
//!   NAME's own balancer in [`RuntimePools`], which exists while NAME has one Ready runtime.
//!
//! Pods elsewhere are ignored: a pod anyone labels in some other namespace must not receive the
//! runtime token or users' code. After every change the whole reflector store is reconciled
//! (not the single event), so a watch restart (`Init` … `InitDone`) drops pods deleted meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{DEFAULT_RUNTIME_PORT, NAMESPACE_PREFIX, RUNTIME_LABEL, USER_LABEL};
use crate::balancer::{Balancer, BalancerConfig};

/// Starts the health supervision of a new per-user balancer (stopped with the token).
pub type HealthSpawner = Box<dyn Fn(&Arc<Balancer>, CancellationToken) + Send + Sync>;

/// The shared balancer plus one balancer per user with dedicated runtimes. One per scheduler
/// (`Arc`); a per-user balancer lives while that user has a Ready dedicated runtime.
pub struct RuntimePools {
    shared: Arc<Balancer>,
    dedicated: RwLock<HashMap<String, Dedicated>>,
    health: Option<HealthSpawner>,
    /// Parent of every per-user balancer's stop token (the scheduler's background token).
    parent: CancellationToken,
}

struct Dedicated {
    balancer: Arc<Balancer>,
    stop: CancellationToken,
}

impl std::fmt::Debug for RuntimePools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimePools")
            .field("shared", &self.shared.len())
            .field("dedicated", &self.dedicated_users())
            .finish()
    }
}

impl RuntimePools {
    /// Pools around the shared balancer; per-user balancers get no health task.
    pub fn new(shared: Arc<Balancer>) -> Self {
        RuntimePools {
            shared,
            dedicated: RwLock::new(HashMap::new()),
            health: None,
            parent: CancellationToken::new(),
        }
    }

    /// Per-user balancers get a health task from `spawn` (the scheduler's prober), stopped when
    /// the balancer goes or when `parent` is cancelled.
    pub fn with_health(mut self, spawn: HealthSpawner, parent: CancellationToken) -> Self {
        self.health = Some(spawn);
        self.parent = parent;
        self
    }

    /// The balancer of every user without dedicated runtimes.
    pub fn shared(&self) -> &Arc<Balancer> {
        &self.shared
    }

    /// User `name`'s own balancer, while it has dedicated runtimes.
    pub fn dedicated(&self, name: &str) -> Option<Arc<Balancer>> {
        self.read().get(name).map(|d| Arc::clone(&d.balancer))
    }

    /// Users that have dedicated runtimes now, sorted.
    pub fn dedicated_users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.read().keys().cloned().collect();
        users.sort();
        users
    }

    /// The balancer an activation of namespace `ns` goes to: its own while one of its dedicated
    /// runtimes is healthy, the shared one otherwise.
    pub fn for_namespace(&self, ns: &str) -> Arc<Balancer> {
        match self.dedicated(ns) {
            Some(b) if b.healthy_count() > 0 => b,
            _ => Arc::clone(&self.shared),
        }
    }

    /// Sets user `name`'s dedicated runtime list (URL order); an empty list removes its balancer.
    pub fn set_dedicated(&self, name: &str, urls: &BTreeSet<String>) {
        let mut map = self.write();
        if urls.is_empty() {
            if let Some(gone) = map.remove(name) {
                gone.stop.cancel();
                tracing::info!(user = name, "no dedicated runtime left");
            }
            return;
        }
        let entry = map.entry(name.to_string()).or_insert_with(|| {
            let mut config: BalancerConfig = self.shared.config().clone();
            config.cluster_size = self.shared.cluster_size();
            let balancer = Balancer::new(config);
            let stop = self.parent.child_token();
            if let Some(spawn) = &self.health {
                spawn(&balancer, stop.clone());
            }
            tracing::info!(user = name, "dedicated runtimes found");
            Dedicated { balancer, stop }
        });
        entry.balancer.set_runtimes(urls.iter().cloned().collect());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Dedicated>> {
        self.dedicated.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Dedicated>> {
        self.dedicated.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RuntimePools {
    fn drop(&mut self) {
        for d in self.read().values() {
            d.stop.cancel();
        }
    }
}

/// Where a Ready runtime pod is reached, and whom it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `Some(user)` for a dedicated runtime.
    pub user: Option<String>,
    /// `http://<podIP>:<port>`.
    pub url: String,
}

/// The runtime `pod` is, if it is one that is Ready and allowed (see the module docs);
/// `own_namespace` is where the shared runtimes run (the scheduler's namespace).
pub fn endpoint(pod: &Pod, own_namespace: &str) -> Option<Endpoint> {
    let meta = &pod.metadata;
    let labels = meta.labels.as_ref()?;
    if labels.get(RUNTIME_LABEL).map(String::as_str) != Some("true")
        || meta.deletion_timestamp.is_some()
    {
        return None;
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let user = match labels.get(USER_LABEL) {
        Some(user) if namespace.strip_prefix(NAMESPACE_PREFIX) == Some(user.as_str()) => {
            Some(user.clone())
        }
        Some(_) => return None,
        None if namespace == own_namespace => None,
        None => return None,
    };
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    if !ready {
        return None;
    }
    let port = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("http"))
        .map_or(DEFAULT_RUNTIME_PORT, |p| p.container_port);
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Some(Endpoint {
        user,
        url: format!("http://{host}:{port}"),
    })
}

/// Turns the pods seen into balancer lists. Keeps what it added to the shared balancer, so
/// it only ever removes runtimes it discovered.
pub struct Discovery {
    pools: Arc<RuntimePools>,
    own_namespace: String,
    shared: Mutex<BTreeSet<String>>,
}

impl Discovery {
    pub fn new(pools: Arc<RuntimePools>, own_namespace: impl Into<String>) -> Self {
        Discovery {
            pools,
            own_namespace: own_namespace.into(),
            shared: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn pools(&self) -> &Arc<RuntimePools> {
        &self.pools
    }

    /// Makes the balancers match `pods` (the reflector's whole store).
    pub fn reconcile<'a>(&self, pods: impl IntoIterator<Item = &'a Pod>) {
        let mut shared = BTreeSet::new();
        let mut dedicated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in pods
            .into_iter()
            .filter_map(|p| endpoint(p, &self.own_namespace))
        {
            match e.user {
                None => {
                    shared.insert(e.url);
                }
                Some(user) => {
                    dedicated.entry(user).or_default().insert(e.url);
                }
            }
        }
        let mut known = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let balancer = self.pools.shared();
        for gone in known.difference(&shared) {
            balancer.remove_runtime(gone);
        }
        for new in shared.difference(&known) {
            balancer.add_runtime(new.clone());
        }
        *known = shared;
        drop(known);
        for user in self.pools.dedicated_users() {
            if !dedicated.contains_key(&user) {
                self.pools.set_dedicated(&user, &BTreeSet::new());
            }
        }
        for (user, urls) in &dedicated {
            self.pools.set_dedicated(user, urls);
        }
    }

    /// Reconciles from a reflector store.
    pub fn reconcile_store(&self, store: &Store<Pod>) {
        let pods = store.state();
        self.reconcile(pods.iter().map(|p| p.as_ref()));
    }
}

/// The label selector of runtime pods.
pub fn runtime_selector() -> String {
    format!("{RUNTIME_LABEL}=true")
}

/// Watches runtime pods in every namespace until `shutdown`, keeping `pools` in step. Shared
/// runtimes are taken from the client's default namespace (in a pod: its own namespace).
pub fn spawn_discovery(
    client: kube::Client,
    pools: Arc<RuntimePools>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let discovery = Discovery::new(pools, client.default_namespace());
    let api: Api<Pod> = Api::all(client);
    let (store, writer) = reflector::store::<Pod>();
    let config = watcher::Config::default().labels(&runtime_selector());
    let events = reflector::reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.next() => event,
            };
            match event {
                None => break,
                Some(Ok(
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone,
                )) => discovery.reconcile_store(&store),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "watching runtime pods"),
            }
        }
    })
}
