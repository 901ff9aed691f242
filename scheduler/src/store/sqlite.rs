//! The embedded store: one SQLite file `<data-dir>/wisp.db` (WAL; `synchronous=NORMAL` by
//! default, `FULL` with `--store-sync full`, see [`crate::config::StoreSync`]), opened
//! with migrations from `migrations/sqlite/`. Writes go through a one-connection pool (SQLite
//! has one writer at a time; this keeps lock upgrades out of the picture), reads through a small
//! pool that WAL lets run beside the writer. Activation records are group-committed
//! ([`super::batcher`]): `put_activation` returns once its batch is committed.
//!
//! The queries and flows are [`super::common::SqlStore`]'s, shared with PostgreSQL; this file
//! only connects and migrates.
//!
//! Cost: opening runs the migrations and spawns one writer task; each entity write is one
//! transaction (with an fsync under `FULL`); `put_activation` waits for one group commit.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult};

use super::StoreResult;
use super::common::{Backend, SqlStore};

/// The file name of the embedded store inside the data dir.
pub const DB_FILE: &str = "wisp.db";

/// The embedded schema (the `migrations/sqlite/` files, compiled in).
pub fn migrator() -> Migrator {
    // Built by hand rather than with `sqlx::migrate!` so the crate needs no sqlx macros (and no
    // second, host-side build of sqlx and bundled SQLite for the proc macro).
    Migrator {
        migrations: Cow::Owned(vec![
            Migration::new(
                1,
                Cow::Borrowed("init"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0001_init.sql")),
                false,
            ),
            Migration::new(
                2,
                Cow::Borrowed("triggers_rules_alarms"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!(
                    "../../migrations/sqlite/0002_triggers_rules_alarms.sql"
                )),
                false,
            ),
            Migration::new(
                3,
                Cow::Borrowed("namespace_limits"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!(
                    "../../migrations/sqlite/0003_namespace_limits.sql"
                )),
                false,
            ),
        ]),
        ..Migrator::DEFAULT
    }
}

/// Tuning of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub activation_retention: u64,
    pub batch_size: usize,
    pub read_connections: u32,
    /// `synchronous=NORMAL` (survives a process crash) or `FULL` (survives a power loss).
    pub sync: crate::config::StoreSync,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            activation_retention: 10_000,
            batch_size: 512,
            read_connections: 4,
            sync: crate::config::StoreSync::default(),
        }
    }
}

impl SqliteOptions {
    pub fn from_config(c: &crate::config::SchedulerConfig) -> Self {
        SqliteOptions {
            activation_retention: c.activation_retention,
            batch_size: c.activation_batch_size,
            sync: c.store_sync,
            ..SqliteOptions::default()
        }
    }
}

/// The embedded store. Cheap to share behind an `Arc`; lives as long as the scheduler.
pub type SqliteStore = SqlStore<Sqlite>;

impl Backend for Sqlite {
    // One write connection: writers already take turns.
    const LOCK_KEY: Option<&'static str> = None;

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) `<data_dir>/wisp.db` and migrates it.
    pub async fn open(data_dir: &Path, options: SqliteOptions) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir)?;
        let connect = SqliteConnectOptions::new()
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(options.sync.sqlite())
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // A COMMIT that fails on an I/O error (disk full, read-only) is rolled back by
            // SQLite itself; sqlx's own ROLLBACK then fails and the connection stays "in a
            // transaction", so every later write would be a savepoint that never commits
            // (answered Ok, lost). Such a connection is closed; the pool opens a fresh one.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection as _;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(connect.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        migrator().run(&write).await?;
        // Checkpoints off the commit path: SQLite's automatic checkpoint runs inside the commit
        // that crosses 1,000 WAL pages, copying the WAL into the database file (and fsyncing
        // it), which stalls that group commit — and every invoke waiting on it — for
        // milliseconds. The writer never checkpoints; a task does PASSIVE checkpoints (which
        // never block the writer or readers) on a connection of its own.
        spawn_checkpointer(connect.clone(), write.clone()).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(connect)
            .await?;
        Ok(SqlStore::from_pools(
            write,
            read,
            options.activation_retention,
            options.batch_size,
        ))
    }
}

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` every [`CHECKPOINT_EVERY`] on a connection of its own
/// until `write` is closed (the store's `close`). A failed checkpoint is logged and retried at
/// the next tick; the WAL then only grows until one succeeds.
async fn spawn_checkpointer(
    connect: SqliteConnectOptions,
    write: sqlx::SqlitePool,
) -> StoreResult<()> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if write.is_closed() {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
        pool.close().await;
    });
    Ok(())
}
