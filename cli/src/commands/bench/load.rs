//! The load: clients that invoke back to back until told to stop, each booking every answer in
//! the run's [`Accounts`].
//!
//! Costs: a [`Target`]'s invoke URL and body are built once, so a call is one `POST` through
//! [`Client::send_raw`] (the `Authorization` header is encoded once per client too) and reading
//! the answer to its end. Each client task owns a seeded `StdRng` for the hostile mix; the only
//! shared state is the stop and phase flags and the books.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, Url};
use serde_json::Value;

use super::accounting::{Accounts, Phase, Tenant};
use crate::client::Client;
use crate::commands::EntityRef;

/// One action the clients call: its invoke URL and request body.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub url: Url,
    pub body: Bytes,
}

impl Target {
    /// The invoke of `name` with `params`: `?blocking=true&result=true`, or without a query when
    /// `blocking` is false (OpenWhisk's default, a 202 with the activation id).
    pub fn new(
        client: &Client,
        name: &str,
        params: &Value,
        blocking: bool,
    ) -> anyhow::Result<Target> {
        let entity = EntityRef::parse(name, "action")?;
        let query = if blocking {
            vec![
                ("blocking", "true".to_string()),
                ("result", "true".to_string()),
            ]
        } else {
            Vec::new()
        };
        Ok(Target {
            name: name.to_string(),
            url: client.url(&entity.segments("actions"), &query),
            body: Bytes::from(serde_json::to_vec(params)?),
        })
    }
}

/// What the clients share: when to stop, which phase it is, and the books.
#[derive(Debug)]
pub struct Shared {
    pub stop: AtomicBool,
    /// Set when the noisy neighbour starts: requests sent from then on belong to the flood.
    pub flood: AtomicBool,
    pub accounts: Accounts,
}

impl Shared {
    pub fn new(accounts: Accounts) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            flood: AtomicBool::new(false),
            accounts,
        }
    }

    fn phase(&self) -> Phase {
        if self.flood.load(Ordering::Relaxed) {
            Phase::Flood
        } else {
            Phase::Alone
        }
    }
}

/// One tenant's load: its client (credentials) and targets (0 = its action, 1.. = hostile ones
/// picked with probability `mix`).
#[derive(Debug)]
pub struct Load {
    pub tenant: Tenant,
    pub client: Client,
    pub targets: Vec<Target>,
    pub mix: f64,
    pub shared: Arc<Shared>,
}

/// The target of the next call: a hostile one (1..=hostile, uniformly) with probability `mix`,
/// else 0.
pub fn pick(rng: &mut impl Rng, mix: f64, hostile: usize) -> usize {
    if hostile > 0 && mix > 0.0 && rng.random::<f64>() < mix {
        1 + rng.random_range(0..hostile)
    } else {
        0
    }
}

/// One client: invokes back to back until `shared.stop`.
pub async fn client_loop(load: Arc<Load>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let hostile = load.targets.len().saturating_sub(1);
    while !load.shared.stop.load(Ordering::Relaxed) {
        let index = pick(&mut rng, load.mix, hostile);
        let target = &load.targets[index];
        let phase = load.shared.phase();
        let sent = Instant::now();
        let answer = load
            .client
            .send_raw(Method::POST, &target.url, Some(target.body.clone()))
            .await
            .ok();
        load.shared
            .accounts
            .record(load.tenant, phase, index, answer.as_ref(), sent.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Auth;
    use serde_json::json;

    #[test]
    fn the_mix_picks_about_its_fraction_and_every_hostile_target() {
        let mut rng = StdRng::seed_from_u64(42);
        let mut seen = [0u32; 4];
        for _ in 0..100_000 {
            seen[pick(&mut rng, 0.1, 3)] += 1;
        }
        let hostile: u32 = seen[1..].iter().sum();
        assert!((9_000..11_000).contains(&hostile), "{seen:?}");
        assert!(seen[1..].iter().all(|&n| n > 2_500), "{seen:?}");
        assert_eq!(pick(&mut rng, 1.0, 0), 0, "no hostile target to pick");
        assert_eq!(pick(&mut rng, 0.0, 3), 0);
    }

    #[test]
    fn invoke_urls_are_blocking_or_not_and_encoded() {
        let client = Client::new("http://127.0.0.1:3233", Auth::None).unwrap();
        let t = Target::new(&client, "pkg/hello", &json!({"name": "x"}), true).unwrap();
        assert_eq!(
            t.url.as_str(),
            "http://127.0.0.1:3233/api/v1/namespaces/_/actions/pkg/hello?blocking=true&result=true"
        );
        assert_eq!(&t.body[..], br#"{"name":"x"}"#);
        let t = Target::new(&client, "/other/my act", &json!({}), false).unwrap();
        assert_eq!(
            t.url.as_str(),
            "http://127.0.0.1:3233/api/v1/namespaces/other/actions/my%20act"
        );
        assert!(Target::new(&client, "a/b/c", &json!({}), true).is_err());
    }
}
