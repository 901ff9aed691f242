//! What `wisp bench` counts: every answer is classified once ([`Class`]) and booked, with its
//! latency, in the [`Series`] of its tenant and phase; acknowledged activation ids are kept per
//! tenant in the order their answers arrived (the audit needs that order to tell pruned from lost).
//!
//! Costs: one [`Accounts`] per run, shared by all clients behind one mutex taken once per answer
//! (a few counter increments and a histogram record, well under a microsecond, against an HTTP
//! round trip of hundreds). Latencies go into `hdrhistogram` histograms (3 significant digits,
//! 1 µs to 10 min, about 160 KB each, eight per run), so memory does not grow with the run; the
//! ids do (one `String` each, ~60 bytes, the audit's input).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde::Serialize;

use crate::client::RawAnswer;

/// Whose request: the benchmarked tenant or the noisy neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tenant {
    Main = 0,
    Noisy = 1,
}

/// When a request was sent: before the noisy neighbour started (or in a run without one), or
/// while it floods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Alone = 0,
    Flood = 1,
}

/// The highest latency a histogram holds (longer ones are booked as this): 10 minutes, far past
/// the client's 75 s request timeout.
const MAX_LATENCY_US: u64 = 600_000_000;

/// An empty latency histogram (µs).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("1..10 min at 3 digits is valid")
}

/// Answers by kind, for one action or all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Calls made.
    pub calls: u64,
    /// 200: success.
    pub ok: u64,
    /// 502: application or action developer error (timeouts, traps, memory cap, bad result).
    pub action_error: u64,
    /// 500 with an activation id: whisk internal error.
    pub internal_error: u64,
    /// 202: accepted (non-blocking), or not finished within the blocking wait.
    pub accepted: u64,
    /// Any other status carrying an activation id.
    pub other_acknowledged: u64,
    /// 429 without an activation id: over a namespace limit, nothing was accepted.
    pub throttled: u64,
    /// Other answers without an activation id (503, 4xx, ...): nothing was accepted.
    pub refused: u64,
    /// No HTTP answer (connection errors).
    pub failed: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.calls += o.calls;
        self.ok += o.ok;
        self.action_error += o.action_error;
        self.internal_error += o.internal_error;
        self.accepted += o.accepted;
        self.other_acknowledged += o.other_acknowledged;
        self.throttled += o.throttled;
        self.refused += o.refused;
        self.failed += o.failed;
    }

    /// `N calls, N ok, N action errors, ...` without the zeros.
    pub fn describe(&self) -> String {
        let fields = [
            (self.calls, "calls"),
            (self.ok, "ok"),
            (self.action_error, "action errors"),
            (self.internal_error, "internal errors"),
            (self.accepted, "accepted (202)"),
            (self.other_acknowledged, "other"),
            (self.throttled, "throttled (429)"),
            (self.refused, "refused"),
            (self.failed, "failed"),
        ];
        fields
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Answers that carried an activation id.
    pub fn acknowledged(&self) -> u64 {
        self.ok + self.action_error + self.internal_error + self.accepted + self.other_acknowledged
    }

    /// Calls that did not end in a success or an acceptance: for a tenant that should be served
    /// whatever its neighbour does, every one of them is an error (a 429 included).
    pub fn errors(&self) -> u64 {
        self.calls - self.ok - self.accepted
    }
}

/// How one call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Ok,
    ActionError,
    InternalError,
    Accepted,
    /// Another status with an activation id, or an id whose body broke off.
    OtherAcknowledged,
    Throttled,
    Refused,
    Failed,
}

impl Class {
    /// The class of an answer (`None`: no HTTP answer at all).
    pub fn of(answer: Option<&RawAnswer>) -> Class {
        let Some(a) = answer else {
            return Class::Failed;
        };
        match (a.activation_id.is_some(), a.complete) {
            (true, true) => match a.status {
                StatusCode::OK => Class::Ok,
                StatusCode::BAD_GATEWAY => Class::ActionError,
                StatusCode::INTERNAL_SERVER_ERROR => Class::InternalError,
                StatusCode::ACCEPTED => Class::Accepted,
                _ => Class::OtherAcknowledged,
            },
            // The id arrived but the body broke off: still acknowledged.
            (true, false) => Class::OtherAcknowledged,
            (false, true) if a.status == StatusCode::TOO_MANY_REQUESTS => Class::Throttled,
            (false, true) => Class::Refused,
            (false, false) => Class::Failed,
        }
    }

    /// Whether the server acknowledged an activation (its id must then have a record).
    pub fn acknowledged(self) -> bool {
        matches!(
            self,
            Class::Ok
                | Class::ActionError
                | Class::InternalError
                | Class::Accepted
                | Class::OtherAcknowledged
        )
    }

    fn count(self, c: &mut Counts) {
        c.calls += 1;
        *match self {
            Class::Ok => &mut c.ok,
            Class::ActionError => &mut c.action_error,
            Class::InternalError => &mut c.internal_error,
            Class::Accepted => &mut c.accepted,
            Class::OtherAcknowledged => &mut c.other_acknowledged,
            Class::Throttled => &mut c.throttled,
            Class::Refused => &mut c.refused,
            Class::Failed => &mut c.failed,
        } += 1;
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds (hdrhistogram's: the highest value
    /// equivalent to the sample at that rank, so within 0.1 % of it).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            samples: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The calls of one tenant in one phase.
#[derive(Clone, Debug)]
pub struct Series {
    /// Per target: 0 is the tenant's action, 1.. the hostile ones.
    pub per_target: Vec<Counts>,
    /// Latency (µs) of the acknowledged calls of target 0.
    pub main_us: Histogram<u64>,
    /// Latency (µs) of the acknowledged calls of the hostile targets.
    pub hostile_us: Histogram<u64>,
}

impl Series {
    fn new(targets: usize) -> Series {
        Series {
            per_target: vec![Counts::default(); targets],
            main_us: histogram(),
            hostile_us: histogram(),
        }
    }

    /// All targets' answers together.
    pub fn answers(&self) -> Counts {
        let mut all = Counts::default();
        for c in &self.per_target {
            all.add(c);
        }
        all
    }

    /// The answers of target 0 (the tenant's own action).
    pub fn main(&self) -> Counts {
        self.per_target.first().cloned().unwrap_or_default()
    }

    /// This series and `other` together.
    pub fn merged(&self, other: &Series) -> Series {
        let mut out = self.clone();
        for (a, b) in out.per_target.iter_mut().zip(&other.per_target) {
            a.add(b);
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = out.main_us.add(&other.main_us);
        let _ = out.hostile_us.add(&other.hostile_us);
        out
    }
}

/// Everything booked, per tenant (`[Tenant as usize]`) and phase (`[Phase as usize]`).
#[derive(Debug)]
pub struct Books {
    pub series: [[Series; 2]; 2],
    /// Acknowledged ids per tenant, oldest answer first.
    pub acks: [Vec<String>; 2],
}

impl Books {
    /// Both phases of `tenant` together.
    pub fn total(&self, tenant: Tenant) -> Series {
        let [alone, flood] = &self.series[tenant as usize];
        alone.merged(flood)
    }

    pub fn series(&self, tenant: Tenant, phase: Phase) -> &Series {
        &self.series[tenant as usize][phase as usize]
    }
}

/// The books of a run, shared by its clients.
#[derive(Debug)]
pub struct Accounts {
    books: Mutex<Books>,
    /// Calls answered so far (for the progress bar).
    pub done: AtomicU64,
}

impl Accounts {
    /// Books for a main tenant with `main_targets` targets and a noisy one with
    /// `noisy_targets`.
    pub fn new(main_targets: usize, noisy_targets: usize) -> Accounts {
        let pair = |n| [Series::new(n), Series::new(n)];
        Accounts {
            books: Mutex::new(Books {
                series: [pair(main_targets), pair(noisy_targets)],
                acks: [Vec::new(), Vec::new()],
            }),
            done: AtomicU64::new(0),
        }
    }

    /// Books one call of `target` by `tenant`, sent in `phase`, answered by `answer` (`None`: no
    /// HTTP answer) after `latency`.
    pub fn record(
        &self,
        tenant: Tenant,
        phase: Phase,
        target: usize,
        answer: Option<&RawAnswer>,
        latency: Duration,
    ) {
        let class = Class::of(answer);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        {
            let mut books = self.books.lock().unwrap_or_else(|e| e.into_inner());
            let series = &mut books.series[tenant as usize][phase as usize];
            if let Some(counts) = series.per_target.get_mut(target) {
                class.count(counts);
            }
            // A body that broke off has no meaningful latency.
            let whole = answer.is_some_and(|a| a.complete);
            if class.acknowledged() && whole {
                let h = if target == 0 {
                    &mut series.main_us
                } else {
                    &mut series.hostile_us
                };
                h.saturating_record(us.max(1));
            }
            if class.acknowledged()
                && let Some(id) = answer.and_then(|a| a.activation_id.clone())
            {
                books.acks[tenant as usize].push(id);
            }
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The books, once every client has stopped.
    pub fn into_books(self) -> Books {
        self.books.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, id: Option<&str>, complete: bool) -> RawAnswer {
        RawAnswer {
            status: StatusCode::from_u16(status).unwrap(),
            activation_id: id.map(str::to_string),
            complete,
        }
    }

    #[test]
    fn answers_are_classified_by_status_and_id() {
        let id = Some("a1");
        for (status, class) in [
            (200, Class::Ok),
            (502, Class::ActionError),
            (500, Class::InternalError),
            (202, Class::Accepted),
            (404, Class::OtherAcknowledged),
        ] {
            assert_eq!(Class::of(Some(&answer(status, id, true))), class);
        }
        assert_eq!(
            Class::of(Some(&answer(200, id, false))),
            Class::OtherAcknowledged
        );
        assert_eq!(Class::of(Some(&answer(429, None, true))), Class::Throttled);
        assert_eq!(Class::of(Some(&answer(503, None, true))), Class::Refused);
        assert_eq!(Class::of(Some(&answer(500, None, true))), Class::Refused);
        assert_eq!(Class::of(Some(&answer(200, None, false))), Class::Failed);
        assert_eq!(Class::of(None), Class::Failed);
        assert!(Class::Accepted.acknowledged());
        assert!(!Class::Throttled.acknowledged());
    }

    #[test]
    fn percentiles_keep_their_rank() {
        // 1..=1000 µs: exact in the histogram (below 2048 at 3 digits).
        let mut h = histogram();
        for us in (1..=1000).rev() {
            h.record(us).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.samples, 1000);
        assert_eq!(l.p50, 0.5);
        assert_eq!(l.p90, 0.9);
        assert_eq!(l.p99, 0.99);
        assert_eq!(l.p99_9, 0.999);
        assert_eq!(l.max, 1.0);
        assert!((l.mean - 0.5005).abs() < 1e-3, "{}", l.mean);
        assert_eq!(Latency::of(&histogram()), Latency::default());
        // Larger values within 0.1 %.
        let mut h = histogram();
        h.record(7_000).unwrap();
        h.saturating_record(u64::MAX);
        let l = Latency::of(&h);
        assert!((l.p50 - 7.0).abs() <= 0.007, "{l:?}");
        assert!((l.max - 600_000.0).abs() <= 600.0, "{l:?}");
    }

    #[test]
    fn books_split_tenants_and_phases_and_keep_the_answer_order() {
        let accounts = Accounts::new(2, 1);
        let t = Duration::from_millis(3);
        accounts.record(
            Tenant::Main,
            Phase::Alone,
            0,
            Some(&answer(200, Some("m1"), true)),
            t,
        );
        accounts.record(
            Tenant::Main,
            Phase::Flood,
            1,
            Some(&answer(502, Some("m2"), true)),
            t,
        );
        accounts.record(
            Tenant::Main,
            Phase::Flood,
            0,
            Some(&answer(429, None, true)),
            t,
        );
        accounts.record(
            Tenant::Noisy,
            Phase::Flood,
            0,
            Some(&answer(202, Some("n1"), true)),
            t,
        );
        accounts.record(
            Tenant::Noisy,
            Phase::Flood,
            0,
            Some(&answer(429, None, true)),
            t,
        );
        accounts.record(
            Tenant::Main,
            Phase::Flood,
            0,
            Some(&answer(200, Some("m3"), false)),
            t,
        );
        assert_eq!(accounts.done.load(Ordering::Relaxed), 6);
        let books = accounts.into_books();
        assert_eq!(books.acks[0], ["m1", "m2", "m3"]);
        assert_eq!(books.acks[1], ["n1"]);
        let main = books.total(Tenant::Main);
        assert_eq!(main.answers().calls, 4);
        assert_eq!(main.main().ok, 1);
        assert_eq!(main.main().throttled, 1);
        assert_eq!(main.main().other_acknowledged, 1);
        assert_eq!(main.main().errors(), 2);
        assert_eq!(main.per_target[1].action_error, 1);
        assert_eq!(main.main_us.len(), 1, "the broken-off body has no latency");
        assert_eq!(main.hostile_us.len(), 1);
        let noisy = books.series(Tenant::Noisy, Phase::Flood).main();
        assert_eq!((noisy.accepted, noisy.throttled, noisy.errors()), (1, 1, 1));
        assert_eq!(books.series(Tenant::Main, Phase::Alone).main().calls, 1);
    }
}
