//! The entity cache (seed 001's "datastore cache"): a [`Store`] decorator that keeps actions,
//! packages and identities in moka caches, so the invoke path reads no database when warm.
//! A namespace's limits are cached too (by namespace), so admission control reads no
//! database per invoke either.
//! Every write through it invalidates the entry it touched, after the write commits; entries also
//! expire after a TTL. Writes of other processes arrive through [`CachedStore::follow`] (on
//! PostgreSQL, a `LISTEN` on the schema's change notifications, see [`super::postgres`]), so
//! scheduler replicas sharing a store see each other's writes at once; the TTL only bounds
//! staleness when that feed is interrupted. A load that raced with an invalidation is not kept.
//! Concurrent misses for one key load once (`try_get_with`). Hits and misses are counted for
//! `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use wisp_core::{ActionDoc, ActivationId, ActivationRecord, Digest, PackageDoc};

use super::{
    ActivationFilter, AlarmRow, Credentials, EntityKey, LimitsUpdate, NamespaceLimits, RuleDoc,
    Store, StoreError, StoreResult, StoredIdentity, TriggerDoc, User,
};

/// Hit/miss counters of the entity cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Invalidations received from [`CachedStore::follow`]'s feed (other processes' writes).
    pub remote_invalidations: AtomicU64,
}

/// A write another process made, as the cache applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Action(EntityKey),
    Package {
        namespace: String,
        name: String,
    },
    /// The identity of a uuid (its key changed, or the user was created or deleted).
    Identity(String),
    /// The limits of a namespace (changed, or its user was created or deleted).
    Limits(String),
    /// Anything may have changed (the feed was interrupted).
    All,
}

/// The caches, shared with the task that applies a change feed.
#[derive(Clone)]
struct Caches {
    actions: Cache<EntityKey, Option<Arc<ActionDoc>>>,
    packages: Cache<(String, String), Option<Arc<PackageDoc>>>,
    identities: Cache<String, Option<Arc<StoredIdentity>>>,
    /// By namespace; `None` = no such user (the defaults apply).
    limits: Cache<String, Option<Arc<NamespaceLimits>>>,
    /// Bumped by every invalidation: a load that saw it change may hold an older row.
    generation: Arc<AtomicU64>,
}

impl Caches {
    async fn apply(&self, change: Invalidation) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        match change {
            Invalidation::Action(key) => self.actions.invalidate(&key).await,
            Invalidation::Package { namespace, name } => {
                self.packages.invalidate(&(namespace, name)).await
            }
            Invalidation::Identity(uuid) => self.identities.invalidate(&uuid).await,
            Invalidation::Limits(namespace) => self.limits.invalidate(&namespace).await,
            Invalidation::All => {
                self.actions.invalidate_all();
                self.packages.invalidate_all();
                self.identities.invalidate_all();
                self.limits.invalidate_all();
            }
        }
    }
}

/// A caching [`Store`] decorator. One per process; cheap to share.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    caches: Caches,
    stats: Arc<CacheStats>,
    /// The task applying [`Self::follow`]'s feed; stopped on close.
    follower: Mutex<Option<AbortHandle>>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>, capacity: u64, ttl: Duration) -> Self {
        CachedStore {
            inner,
            caches: Caches {
                actions: build(capacity, ttl),
                packages: build(capacity, ttl),
                identities: build(capacity, ttl),
                limits: build(capacity, ttl),
                generation: Arc::new(AtomicU64::new(0)),
            },
            stats: Arc::new(CacheStats::default()),
            follower: Mutex::new(None),
        }
    }

    /// Applies `changes` (writes of other processes to the same store) as they arrive, until
    /// the sender goes away or the store is closed. Needs a tokio runtime.
    pub fn follow(&self, mut changes: mpsc::UnboundedReceiver<Invalidation>) {
        let caches = self.caches.clone();
        let stats = self.stats.clone();
        let task = tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                stats.remote_invalidations.fetch_add(1, Ordering::Relaxed);
                caches.apply(change).await;
            }
        });
        let previous = self
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    fn stop_following(&self) {
        if let Some(task) = self
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }

    /// Drops the cached entry of a local write.
    async fn invalidate(&self, change: Invalidation) {
        self.caches.apply(change).await;
    }

    /// The hit/miss counters (shared with `/metrics`).
    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    /// The store below the cache.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn count(&self, hit: bool) {
        let c = if hit {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn build<K, V>(capacity: u64, ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(capacity)
        .time_to_live(ttl)
        .build()
}

impl Drop for CachedStore {
    fn drop(&mut self) {
        self.stop_following();
    }
}

/// Loads through `cache`, counting hits and misses.
async fn cached<K, V>(
    this: &CachedStore,
    cache: &Cache<K, Option<Arc<V>>>,
    key: K,
    load: impl std::future::Future<Output = StoreResult<Option<V>>>,
) -> StoreResult<Option<V>>
where
    K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    if let Some(v) = cache.get(&key).await {
        this.count(true);
        return Ok(v.map(|v| (*v).clone()));
    }
    this.count(false);
    let generation = this.caches.generation.load(Ordering::Acquire);
    let loaded = cache
        .try_get_with(key.clone(), async { load.await.map(|o| o.map(Arc::new)) })
        .await
        .map_err(|e: Arc<StoreError>| match Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(shared) => StoreError::WriteFailed(shared.to_string()),
        })?;
    // An invalidation during the load may have come before the loaded (older) row was cached.
    if this.caches.generation.load(Ordering::Acquire) != generation {
        cache.invalidate(&key).await;
    }
    Ok(loaded.map(|v| (*v).clone()))
}

#[async_trait]
impl Store for CachedStore {
    async fn create_user(&self, name: &str) -> StoreResult<Credentials> {
        let c = self.inner.create_user(name).await?;
        self.invalidate(Invalidation::Identity(c.uuid.clone()))
            .await;
        // A cached "no such user" would keep the new user on the defaults.
        self.invalidate(Invalidation::Limits(name.to_string()))
            .await;
        Ok(c)
    }

    async fn set_user_key(&self, name: &str, creds: &Credentials) -> StoreResult<()> {
        self.inner.set_user_key(name, creds).await?;
        // The user's old uuid is unknown here: drop every cached identity.
        self.caches.generation.fetch_add(1, Ordering::AcqRel);
        self.caches.identities.invalidate_all();
        // The upsert may have created the user.
        self.invalidate(Invalidation::Limits(name.to_string()))
            .await;
        Ok(())
    }

    async fn identity_by_uuid(&self, uuid: &str) -> StoreResult<Option<StoredIdentity>> {
        cached(
            self,
            &self.caches.identities,
            uuid.to_string(),
            self.inner.identity_by_uuid(uuid),
        )
        .await
    }

    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        self.inner.get_user(name).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.inner.list_users().await
    }

    async fn delete_user(&self, name: &str) -> StoreResult<bool> {
        let deleted = self.inner.delete_user(name).await?;
        // Rare: drop everything rather than scan for the namespace's entries.
        self.invalidate(Invalidation::All).await;
        Ok(deleted)
    }

    async fn user_limits(&self, namespace: &str) -> StoreResult<Option<NamespaceLimits>> {
        // Read on every invoke: a hit allocates nothing (no key, no boxed load).
        if let Some(hit) = self.caches.limits.get(namespace).await {
            self.count(true);
            return Ok(hit.map(|l| *l));
        }
        cached(
            self,
            &self.caches.limits,
            namespace.to_string(),
            self.inner.user_limits(namespace),
        )
        .await
    }

    async fn set_user_limits(
        &self,
        name: &str,
        update: &LimitsUpdate,
    ) -> StoreResult<Option<NamespaceLimits>> {
        let res = self.inner.set_user_limits(name, update).await;
        // A user's namespace is its name.
        self.invalidate(Invalidation::Limits(name.to_string()))
            .await;
        res
    }

    async fn put_action(
        &self,
        key: &EntityKey,
        doc: ActionDoc,
        code: Option<Vec<u8>>,
        overwrite: bool,
    ) -> StoreResult<ActionDoc> {
        let res = self.inner.put_action(key, doc, code, overwrite).await;
        self.invalidate(Invalidation::Action(key.clone())).await;
        res
    }

    async fn get_action(&self, key: &EntityKey) -> StoreResult<Option<ActionDoc>> {
        cached(
            self,
            &self.caches.actions,
            key.clone(),
            self.inner.get_action(key),
        )
        .await
    }

    async fn list_actions(
        &self,
        namespace: &str,
        package: Option<&str>,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<ActionDoc>> {
        self.inner
            .list_actions(namespace, package, limit, skip)
            .await
    }

    async fn count_actions(&self, namespace: &str, package: Option<&str>) -> StoreResult<u64> {
        self.inner.count_actions(namespace, package).await
    }

    async fn delete_action(&self, key: &EntityKey) -> StoreResult<Option<ActionDoc>> {
        let res = self.inner.delete_action(key).await;
        self.invalidate(Invalidation::Action(key.clone())).await;
        res
    }

    async fn get_code(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_code(digest).await
    }

    async fn has_code(&self, digest: &Digest) -> StoreResult<bool> {
        self.inner.has_code(digest).await
    }

    async fn count_code(&self) -> StoreResult<u64> {
        self.inner.count_code().await
    }

    async fn put_package(
        &self,
        namespace: &str,
        doc: PackageDoc,
        overwrite: bool,
    ) -> StoreResult<PackageDoc> {
        let change = Invalidation::Package {
            namespace: namespace.to_string(),
            name: doc.name.clone(),
        };
        let res = self.inner.put_package(namespace, doc, overwrite).await;
        self.invalidate(change).await;
        res
    }

    async fn get_package(&self, namespace: &str, name: &str) -> StoreResult<Option<PackageDoc>> {
        let key = (namespace.to_string(), name.to_string());
        cached(
            self,
            &self.caches.packages,
            key,
            self.inner.get_package(namespace, name),
        )
        .await
    }

    async fn list_packages(
        &self,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<PackageDoc>> {
        self.inner.list_packages(namespace, limit, skip).await
    }

    async fn count_packages(&self, namespace: &str) -> StoreResult<u64> {
        self.inner.count_packages(namespace).await
    }

    async fn delete_package(&self, namespace: &str, name: &str) -> StoreResult<Option<PackageDoc>> {
        let res = self.inner.delete_package(namespace, name).await;
        self.invalidate(Invalidation::Package {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
        .await;
        res
    }

    async fn put_trigger(
        &self,
        namespace: &str,
        doc: TriggerDoc,
        overwrite: bool,
    ) -> StoreResult<TriggerDoc> {
        self.inner.put_trigger(namespace, doc, overwrite).await
    }

    async fn get_trigger(&self, namespace: &str, name: &str) -> StoreResult<Option<TriggerDoc>> {
        self.inner.get_trigger(namespace, name).await
    }

    async fn list_triggers(
        &self,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<TriggerDoc>> {
        self.inner.list_triggers(namespace, limit, skip).await
    }

    async fn count_triggers(&self, namespace: &str) -> StoreResult<u64> {
        self.inner.count_triggers(namespace).await
    }

    async fn delete_trigger(&self, namespace: &str, name: &str) -> StoreResult<Option<TriggerDoc>> {
        self.inner.delete_trigger(namespace, name).await
    }

    async fn put_rule(
        &self,
        namespace: &str,
        doc: RuleDoc,
        overwrite: bool,
    ) -> StoreResult<RuleDoc> {
        self.inner.put_rule(namespace, doc, overwrite).await
    }

    async fn get_rule(&self, namespace: &str, name: &str) -> StoreResult<Option<RuleDoc>> {
        self.inner.get_rule(namespace, name).await
    }

    async fn list_rules(
        &self,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<RuleDoc>> {
        self.inner.list_rules(namespace, limit, skip).await
    }

    async fn count_rules(&self, namespace: &str) -> StoreResult<u64> {
        self.inner.count_rules(namespace).await
    }

    async fn rules_for_trigger(
        &self,
        namespace: &str,
        trigger_fqn: &str,
    ) -> StoreResult<Vec<RuleDoc>> {
        self.inner.rules_for_trigger(namespace, trigger_fqn).await
    }

    async fn delete_rule(&self, namespace: &str, name: &str) -> StoreResult<Option<RuleDoc>> {
        self.inner.delete_rule(namespace, name).await
    }

    async fn put_alarm(&self, alarm: &AlarmRow) -> StoreResult<()> {
        self.inner.put_alarm(alarm).await
    }

    async fn get_alarm(&self, namespace: &str, trigger: &str) -> StoreResult<Option<AlarmRow>> {
        self.inner.get_alarm(namespace, trigger).await
    }

    async fn due_alarms(&self, now: u64, limit: u64) -> StoreResult<Vec<AlarmRow>> {
        self.inner.due_alarms(now, limit).await
    }

    async fn claim_alarm(
        &self,
        namespace: &str,
        trigger: &str,
        old_next: u64,
        new_next: Option<u64>,
    ) -> StoreResult<bool> {
        self.inner
            .claim_alarm(namespace, trigger, old_next, new_next)
            .await
    }

    async fn delete_alarm(&self, namespace: &str, trigger: &str) -> StoreResult<bool> {
        self.inner.delete_alarm(namespace, trigger).await
    }

    async fn put_activation(&self, record: ActivationRecord) -> StoreResult<()> {
        self.inner.put_activation(record).await
    }

    async fn accept_activation(&self, owner: &str, fallback: ActivationRecord) -> StoreResult<()> {
        self.inner.accept_activation(owner, fallback).await
    }

    async fn recover_accepted(
        &self,
        instance: &str,
        recovery: super::Recovery,
    ) -> StoreResult<u64> {
        self.inner.recover_accepted(instance, recovery).await
    }

    async fn heartbeat(&self, instance: &str, alive: bool) -> StoreResult<()> {
        self.inner.heartbeat(instance, alive).await
    }

    async fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> StoreResult<Option<ActivationRecord>> {
        self.inner.get_activation(namespace, id).await
    }

    async fn list_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> StoreResult<Vec<ActivationRecord>> {
        self.inner.list_activations(namespace, filter).await
    }

    async fn count_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> StoreResult<u64> {
        self.inner.count_activations(namespace, filter).await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.inner.flush().await
    }

    async fn close(&self) -> StoreResult<()> {
        self.stop_following();
        self.inner.close().await
    }
}
