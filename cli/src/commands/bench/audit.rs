//! The audit after a `wisp bench` run: every acknowledged activation id must have a record.
//!
//! How it decides, per tenant:
//! - Retention: `GET /api/v1/namespaces/_/limits` says how many records the server keeps per
//!   namespace (`activationRetention`); the oldest beyond that are pruned. A server without the
//!   route (or without the field) leaves the retention unknown, and then every id must have a
//!   record.
//! - The ids are in the order their answers arrived. The newest `retention - slack` of them must
//!   have a record; an older one without a record is **pruned**, one of the newest without a
//!   record is **lost**. The slack absorbs the difference between the order the answers arrived
//!   and the order the server stored the records in (it prunes by storage order): answers in
//!   flight together may be stored in either order, so blocking runs use the tenant's client
//!   count; a non-blocking run's records are stored when the activations end, in an order that
//!   may differ by as many activations as ran at once, so it uses a tenth of the retention (at
//!   least the client count). Records the namespace got from elsewhere during the run make the
//!   server prune more than the bench expects; the audit cannot see them.
//! - Lookups: `GET .../activations/{id}/result` (so a `flood` record's 10 MB of logs are not
//!   downloaded) by up to [`WORKERS`] concurrent workers. An id that must have a record is
//!   retried every 100 ms until `patience` has passed since the audit began (a non-blocking
//!   activation's record appears when it ends); an id that may have been pruned is looked up once.
//!   An id that could not be checked (transport errors until the deadline) is unverified.
//!
//! Costs: one request per found or pruned id, up to `patience / 100 ms` per missing one; the ids
//! are shared by the workers, not copied.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde_json::Value;

use crate::client::{Auth, Client, ClientError};

/// At most this many concurrent record lookups.
pub const WORKERS: usize = 16;

/// Keep at most this many lost ids for the report.
const LOST_IDS_SHOWN: usize = 20;

/// The audit of one tenant's acknowledged activations against their records.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Audit {
    pub acknowledged: u64,
    pub found: u64,
    /// Without a record, and older than the newest ids that must have one: pruned by retention.
    pub pruned: u64,
    /// Without a record, among the newest ids that must have one.
    pub lost: u64,
    /// Could not be checked (the server did not answer properly until the deadline).
    pub unverified: u64,
    /// Records the server keeps per namespace (`activationRetention`); `null` when the server
    /// does not say, and then every acknowledged id must have a record.
    pub retention: Option<u64>,
    /// How many of the newest acknowledged ids had to have a record (all of them when the
    /// retention is unknown or was not reached).
    pub must_exist: u64,
    /// Up to 20 of the lost ids.
    pub lost_ids: Vec<String>,
    /// How long a missing record was waited for.
    pub patience_s: f64,
    /// How long the audit took.
    pub seconds: f64,
}

/// The server's `activationRetention` for the caller's namespace; `None` when the route or the
/// field is missing (older servers) or the server does not answer it.
pub async fn retention(client: &Client) -> Option<u64> {
    match client
        .get(&["api", "v1", "namespaces", "_", "limits"], &[])
        .await
    {
        Ok(doc) => doc.get("activationRetention").and_then(Value::as_u64),
        Err(_) => None,
    }
}

/// How many of `n` ids (oldest first) must have a record: the newest `retention - slack`
/// once more than `retention` were acknowledged, else all.
pub fn must_exist(n: usize, retention: Option<u64>, slack: u64) -> usize {
    match retention {
        Some(r) if n as u64 > r => usize::try_from(r.saturating_sub(slack)).unwrap_or(n).min(n),
        _ => n,
    }
}

/// The slack of [`must_exist`] for a tenant with `clients` clients (see the module docs).
pub fn slack(clients: u32, non_blocking: bool, retention: Option<u64>) -> u64 {
    let clients = u64::from(clients);
    if non_blocking {
        clients.max(retention.unwrap_or(0) / 10)
    } else {
        clients
    }
}

/// Audits `ids` (oldest answer first) with `client`'s credentials; see the module docs.
pub async fn audit(
    client: &Client,
    ids: Vec<String>,
    retention: Option<u64>,
    slack: u64,
    patience: Duration,
) -> Audit {
    let started = Instant::now();
    let deadline = started + patience;
    let acknowledged = ids.len() as u64;
    let must = must_exist(ids.len(), retention, slack);
    let prunable = ids.len() - must;
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS.min(ids.len()))
        .map(|_| {
            let (client, ids, next) = (client.clone(), Arc::clone(&ids), Arc::clone(&next));
            tokio::spawn(async move {
                let mut out = Audit::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    let may_be_pruned = i < prunable;
                    match lookup(&client, id, deadline, may_be_pruned).await {
                        Lookup::Found => out.found += 1,
                        Lookup::Missing if may_be_pruned => out.pruned += 1,
                        Lookup::Missing => {
                            out.lost += 1;
                            out.lost_ids.push(id.clone());
                        }
                        Lookup::Unknown => out.unverified += 1,
                    }
                }
                out
            })
        })
        .collect();
    let mut audit = Audit {
        acknowledged,
        retention,
        must_exist: must as u64,
        patience_s: patience.as_secs_f64(),
        ..Audit::default()
    };
    for w in workers {
        if let Ok(a) = w.await {
            audit.found += a.found;
            audit.pruned += a.pruned;
            audit.lost += a.lost;
            audit.lost_ids.extend(a.lost_ids);
        }
    }
    // Whatever a panicked worker did not check is unverified, not found.
    audit.unverified = acknowledged - audit.found - audit.pruned - audit.lost;
    audit.lost_ids.sort();
    audit.lost_ids.truncate(LOST_IDS_SHOWN);
    audit.seconds = started.elapsed().as_secs_f64();
    audit
}

enum Lookup {
    Found,
    Missing,
    Unknown,
}

/// One record lookup. A 404 is retried until `deadline` unless the id may have been pruned
/// (then the first 404 settles it); answers other than 2xx/404 and transport errors are retried
/// until `deadline`.
async fn lookup(client: &Client, id: &str, deadline: Instant, may_be_pruned: bool) -> Lookup {
    let url: Url = client.url(
        &["api", "v1", "namespaces", "_", "activations", id, "result"],
        &[],
    );
    loop {
        let missing = match client.send_raw(Method::GET, &url, None).await {
            Ok(a) if a.status.is_success() && a.complete => return Lookup::Found,
            Ok(a) => a.status == StatusCode::NOT_FOUND,
            Err(_) => false,
        };
        if missing && may_be_pruned {
            return Lookup::Missing;
        }
        if Instant::now() >= deadline {
            return if missing {
                Lookup::Missing
            } else {
                Lookup::Unknown
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Audits the records of `ids` (oldest answer first) on the server at `apihost` with the
/// `uuid:key` credentials `auth`, as `wisp bench` does after its clients stop: with `retention`
/// (`None`: every id must have a record) and `slack` (see [`must_exist`]), retrying a missing
/// record for `patience`.
pub async fn check_records(
    apihost: &str,
    auth: &str,
    ids: Vec<String>,
    retention: Option<u64>,
    slack: u64,
    patience: Duration,
) -> Result<Audit, ClientError> {
    let client = Client::for_load(apihost, Auth::basic(auth)?, WORKERS)?;
    Ok(audit(&client, ids, retention, slack, patience).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_within_retention_must_have_a_record() {
        // Unknown retention or not reached: all of them.
        assert_eq!(must_exist(100, None, 4), 100);
        assert_eq!(must_exist(100, Some(100), 4), 100);
        assert_eq!(must_exist(0, Some(10), 4), 0);
        // Past the retention: the newest retention - slack.
        assert_eq!(must_exist(101, Some(100), 4), 96);
        assert_eq!(must_exist(1_000_000, Some(10_000), 16), 9_984);
        // A slack as large as the retention leaves nothing that must exist.
        assert_eq!(must_exist(50, Some(10), 20), 0);
    }

    #[test]
    fn the_slack_follows_the_mode() {
        assert_eq!(slack(16, false, Some(10_000)), 16);
        assert_eq!(slack(16, true, Some(10_000)), 1_000);
        assert_eq!(slack(16, true, Some(50)), 16);
        assert_eq!(slack(4, true, None), 4);
    }
}
