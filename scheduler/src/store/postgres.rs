//! The scale-out store: PostgreSQL, shared by every scheduler replica (`--store postgres://...`).
//! The queries and flows are [`super::common::SqlStore`]'s, shared with the embedded store; this
//! file connects, migrates (`migrations/postgres/`), and follows other replicas' writes.
//!
//! - Migrations run at open on a connection of their own; sqlx holds a PostgreSQL advisory lock
//!   while it migrates, so replicas starting together migrate once and the others wait.
//! - Entity writes take a transaction-scoped advisory lock on the entity (and on the code
//!   digests they touch), so two replicas writing one action take turns as SQLite's single
//!   writer does: `overwrite=false` conflicts and version bumps stay exact.
//! - Activation records go through the same [`super::batcher::ActivationBatcher`] (multi-row
//!   inserts). A replica's queued records are visible to that replica at once and to the others
//!   once written (group commits: at once).
//! - [`entity_changes`]: the schema's triggers `NOTIFY wisp_entities` on every write of an
//!   action, package or user row (`identity:<uuid>` and `limits:<namespace>`), in the writing
//!   transaction; one `LISTEN` connection per
//!   scheduler turns them into [`Invalidation`]s for the entity cache.
//!
//! Cost: one pool of `max_connections` (default 16) plus the listener's connection per replica;
//! an entity write is one transaction (a few round trips); `put_activation` is a map insert and
//! a channel send.
//!
//! Known caveats: notifications are not delivered while the listener is disconnected; on
//! reconnecting it invalidates the whole cache, but entries loaded during the outage may be stale
//! until then (at most `entity_cache_ttl`).

use std::borrow::Cow;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{
    PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgQueryResult, Postgres,
};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::sync::mpsc;

use super::cache::Invalidation;
use super::common::{Backend, SqlStore};
use super::{EntityKey, StoreResult};

/// The channel the schema's triggers notify (`migrations/postgres/0003_entity_notify.sql`).
pub const CHANNEL: &str = "wisp_entities";

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The PostgreSQL schema (the `migrations/postgres/` files, compiled in).
pub fn migrator() -> Migrator {
    let migration = |version, name, sql| {
        Migration::new(
            version,
            Cow::Borrowed(name),
            MigrationType::Simple,
            Cow::Borrowed(sql),
            false,
        )
    };
    Migrator {
        migrations: Cow::Owned(vec![
            migration(
                1,
                "init",
                include_str!("../../migrations/postgres/0001_init.sql"),
            ),
            migration(
                2,
                "triggers_rules_alarms",
                include_str!("../../migrations/postgres/0002_triggers_rules_alarms.sql"),
            ),
            migration(
                3,
                "entity_notify",
                include_str!("../../migrations/postgres/0003_entity_notify.sql"),
            ),
            migration(
                4,
                "namespace_limits",
                include_str!("../../migrations/postgres/0004_namespace_limits.sql"),
            ),
            migration(
                5,
                "accepted",
                include_str!("../../migrations/postgres/0005_accepted.sql"),
            ),
        ]),
        ..Migrator::DEFAULT
    }
}

/// Tuning of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub activation_retention: u64,
    pub batch_size: usize,
    /// Connections of this replica's pool (the change listener has one more of its own).
    pub max_connections: u32,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            activation_retention: 10_000,
            batch_size: 512,
            max_connections: 16,
        }
    }
}

impl PostgresOptions {
    pub fn from_config(c: &crate::config::SchedulerConfig) -> Self {
        PostgresOptions {
            activation_retention: c.activation_retention,
            batch_size: c.activation_batch_size,
            ..PostgresOptions::default()
        }
    }
}

/// The PostgreSQL store. Cheap to share behind an `Arc`; lives as long as the scheduler.
pub type PostgresStore = SqlStore<Postgres>;

impl Backend for Postgres {
    // hashtextextended: the key's 64-bit hash, the space of transaction-level advisory locks.
    const LOCK_KEY: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    let options: PgConnectOptions = url.parse()?;
    Ok(options.application_name("wisp-scheduler"))
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates it.
    pub async fn open(url: &str, options: PostgresOptions) -> StoreResult<Self> {
        let connect = connect_options(url)?;
        // Migrate on a connection of our own: sqlx's migration lock is a session lock, which
        // must not outlive a failed migration on a pooled connection.
        let mut conn = connect.connect().await?;
        let migrated = migrator().run(&mut conn).await;
        conn.close().await?;
        migrated?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .connect_with(connect)
            .await?;
        Ok(SqlStore::from_pools(
            pool.clone(),
            pool,
            options.activation_retention,
            options.batch_size,
        ))
    }
}

/// What a notification payload says changed; [`Invalidation::All`] when it does not parse.
pub fn invalidation_of(payload: &str) -> Invalidation {
    let parsed = match payload.split_once(':') {
        Some(("action", path)) => {
            let mut parts = path.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(ns), Some(pkg), Some(name)) => {
                    let package = Some(pkg).filter(|p| !p.is_empty());
                    Some(Invalidation::Action(EntityKey::new(ns, package, name)))
                }
                _ => None,
            }
        }
        Some(("package", path)) => path
            .split_once('/')
            .map(|(ns, name)| Invalidation::Package {
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
        Some(("identity", uuid)) => Some(Invalidation::Identity(uuid.to_string())),
        Some(("limits", namespace)) => Some(Invalidation::Limits(namespace.to_string())),
        _ => None,
    };
    parsed.unwrap_or(Invalidation::All)
}

/// Listens for entity writes of every process on the database at `url` (this one's included)
/// and sends what they invalidate, until the receiver is dropped. Listening has started when
/// this returns. After a lost connection it reconnects and sends [`Invalidation::All`].
pub async fn entity_changes(url: &str) -> StoreResult<mpsc::UnboundedReceiver<Invalidation>> {
    // A pool of one for the listener alone (PgListener reconnects through it), with no idle or
    // lifetime limit: the connection is meant to live as long as the scheduler.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(connect_options(url)?)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(follow(listener, pool, tx));
    Ok(rx)
}

async fn follow(mut listener: PgListener, pool: PgPool, tx: mpsc::UnboundedSender<Invalidation>) {
    loop {
        let next = tokio::select! {
            _ = tx.closed() => break,
            next = listener.try_recv() => next,
        };
        let change = match next {
            Ok(Some(n)) => invalidation_of(n.payload()),
            // The connection dropped and PgListener re-established it: writes in between
            // were not heard.
            Ok(None) => {
                tracing::warn!("entity change listener reconnected; dropping the entity cache");
                Invalidation::All
            }
            Err(e) => {
                tracing::warn!(error = %e, "entity change listener lost PostgreSQL; reconnecting");
                loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    // Reconnects (listening again to every channel) if the connection is gone.
                    if listener.listen(CHANNEL).await.is_ok() {
                        break;
                    }
                }
                Invalidation::All
            }
        };
        if tx.send(change).is_err() {
            break;
        }
    }
    drop(listener);
    pool.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_what_changed() {
        assert_eq!(
            invalidation_of("action:guest//hello"),
            Invalidation::Action(EntityKey::new("guest", None, "hello"))
        );
        assert_eq!(
            invalidation_of("action:guest/utils/fmt"),
            Invalidation::Action(EntityKey::new("guest", Some("utils"), "fmt"))
        );
        assert_eq!(
            invalidation_of("package:guest/utils"),
            Invalidation::Package {
                namespace: "guest".into(),
                name: "utils".into()
            }
        );
        assert_eq!(
            invalidation_of("identity:0b1e-uuid"),
            Invalidation::Identity("0b1e-uuid".into())
        );
        assert_eq!(
            invalidation_of("limits:guest"),
            Invalidation::Limits("guest".into())
        );
        assert_eq!(invalidation_of("action:broken"), Invalidation::All);
        assert_eq!(invalidation_of("something else"), Invalidation::All);
    }

    #[test]
    fn only_postgres_urls_are_postgres() {
        assert!(is_postgres_url("postgres://u:p@127.0.0.1:5432/db"));
        assert!(is_postgres_url("postgresql://127.0.0.1/db"));
        assert!(!is_postgres_url("mysql://127.0.0.1/db"));
        assert!(!is_postgres_url("sqlite://wisp.db"));
    }
}
