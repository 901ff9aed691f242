//! `wisp bench`: a load test against a running wisp — N concurrent clients doing blocking
//! invokes of one action for T seconds, then an audit that every acknowledged activation has a
//! record.
//!
//! How it works, and what it costs:
//! - One reqwest client (one keep-alive connection per bench client) for the whole run; the
//!   invoke URL, the `Authorization` header and the parameter body are built once, so a call is
//!   one `POST ...?blocking=true&result=true` and reading its status and header.
//! - With `--hostile-mix F --hostile a,b,c`, each call is, with probability F, an invoke of one
//!   of the hostile actions (picked uniformly) instead of `--action`; they get an empty `{}`.
//!   The caller deploys them (with short timeouts, or `loop` holds a client for 60 s).
//! - Accounting: an answer carrying `x-openwhisk-activation-id` (200, 502, 500, 202) is an
//!   *acknowledged* activation; its id is kept. Answers without one (429, 503, ...) are counted
//!   as refused, transport failures as failed. Latencies (µs, one `u32` per call, kept in memory
//!   and sorted once at the end) are reported for `--action` and for the hostile calls apart.
//! - The audit: every acknowledged id is looked up (`GET .../activations/{id}/result`, so a
//!   `flood` record's 10 MB of logs are not downloaded) by up to 16 concurrent workers,
//!   retrying a missing record until `--verify-patience` has passed (it may still be queued).
//!   An id still missing is **lost**; one that could not be checked (errors) is unverified.
//!   Either makes the command fail after printing the summary. A server that prunes old
//!   records (`--activation-retention`, 10,000 per namespace by default) makes longer runs
//!   unverifiable; the failure says so.
//!
//! The progress bar (elapsed / T, invokes done, rate over the last second) is drawn on stderr
//! only when stderr is a terminal. `--json` prints the summary as one JSON document.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Args;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde_json::{Value, json};

use super::EntityRef;
use super::invoke::parse_pairs;
use crate::Ctx;
use crate::client::Auth;

/// The header every answer about an activation carries.
const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

/// At most this many concurrent record lookups during the audit.
const VERIFY_WORKERS: usize = 16;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent clients, each doing one blocking invoke after another.
    #[arg(short = 'c', long, default_value_t = 1, env = "WISP_BENCH_CLIENTS",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: u32,
    /// How long to send invokes: seconds (`10`, `2.5`) or a humantime duration (`1m`, `500ms`).
    #[arg(short = 'd', long, default_value = "10s", env = "WISP_BENCH_DURATION", value_parser = parse_duration)]
    pub duration: Duration,
    /// The action to invoke: NAME, PACKAGE/NAME or /NAMESPACE/[PACKAGE/]NAME.
    #[arg(long, default_value = "hello", env = "WISP_BENCH_ACTION")]
    pub action: String,
    /// Fraction of calls (0..=1) that invoke one of the `--hostile` actions instead.
    #[arg(long, default_value_t = 0.0, env = "WISP_BENCH_HOSTILE_MIX", value_parser = parse_fraction)]
    pub hostile_mix: f64,
    /// Comma-separated hostile actions for the mix (deployed by you, e.g. loop,membomb,trap).
    #[arg(long, value_delimiter = ',', env = "WISP_BENCH_HOSTILE")]
    pub hostile: Vec<String>,
    /// Parameter of `--action` as KEY=VALUE (repeatable); VALUE is JSON when it parses.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// How long the audit retries a missing record before calling it lost.
    #[arg(long, default_value = "30s", env = "WISP_BENCH_VERIFY_PATIENCE", value_parser = parse_duration)]
    pub verify_patience: Duration,
}

/// `10`, `2.5` (seconds) or a humantime duration (`1m30s`, `500ms`).
fn parse_duration(raw: &str) -> Result<Duration, String> {
    if let Ok(secs) = raw.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{raw:?}: {e}"));
    }
    humantime::parse_duration(raw.trim()).map_err(|e| format!("{raw:?}: {e}"))
}

fn parse_fraction(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{raw:?} is not a fraction between 0 and 1")),
    }
}

/// One action the clients call: its invoke URL and request body.
struct Target {
    name: String,
    url: Url,
    body: Vec<u8>,
}

/// Everything the clients share.
struct Plan {
    http: reqwest::Client,
    auth: HeaderValue,
    main: Target,
    hostile: Vec<Target>,
    mix: f64,
    stop: AtomicBool,
    done: AtomicU64,
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    /// Per target (0 = the main action, 1.. = hostile ones).
    per_target: Vec<Counts>,
    main_latency_us: Vec<u32>,
    hostile_latency_us: Vec<u32>,
    ids: Vec<String>,
}

/// Answers by kind, for one action or all.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Calls made.
    pub calls: u64,
    /// 200: success.
    pub ok: u64,
    /// 502: application or action developer error (timeouts, traps, memory cap, bad result).
    pub action_error: u64,
    /// 500 with an activation id: whisk internal error.
    pub internal_error: u64,
    /// 202: acknowledged but not finished within the blocking wait.
    pub accepted: u64,
    /// Any other status carrying an activation id.
    pub other_acknowledged: u64,
    /// Answers without an activation id (429, 503, ...): nothing was accepted.
    pub refused: u64,
    /// No HTTP answer (connection errors).
    pub failed: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.calls += o.calls;
        self.ok += o.ok;
        self.action_error += o.action_error;
        self.internal_error += o.internal_error;
        self.accepted += o.accepted;
        self.other_acknowledged += o.other_acknowledged;
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
    /// Percentiles (nearest rank) of `us` (microseconds; sorted here).
    pub fn of(us: &mut [u32]) -> Latency {
        if us.is_empty() {
            return Latency::default();
        }
        us.sort_unstable();
        let rank = |q: f64| {
            let i = (q * us.len() as f64).ceil() as usize;
            f64::from(us[i.clamp(1, us.len()) - 1]) / 1000.0
        };
        let sum: u64 = us.iter().map(|&v| u64::from(v)).sum();
        Latency {
            samples: us.len() as u64,
            mean: sum as f64 / us.len() as f64 / 1000.0,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p99_9: rank(0.999),
            max: f64::from(us[us.len() - 1]) / 1000.0,
        }
    }
}

/// The audit of acknowledged activations against their records.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Audit {
    pub acknowledged: u64,
    pub found: u64,
    pub lost: u64,
    pub unverified: u64,
    /// Up to 20 of the lost ids.
    pub lost_ids: Vec<String>,
    pub seconds: f64,
}

/// The whole run, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub apihost: String,
    pub action: String,
    pub clients: u32,
    pub duration_s: f64,
    /// From the first call to the last answer (includes the drain after `duration`).
    pub elapsed_s: f64,
    pub hostile_mix: f64,
    pub hostile: Vec<String>,
    /// Acknowledged invokes (answers with an activation id).
    pub invokes: u64,
    /// Acknowledged invokes per second of `elapsed_s`.
    pub throughput: f64,
    pub answers: Counts,
    pub per_action: std::collections::BTreeMap<String, Counts>,
    /// Latency of the calls to `action` that were acknowledged.
    pub latency_ms: Latency,
    /// Latency of the acknowledged hostile calls (none without a mix).
    pub hostile_latency_ms: Option<Latency>,
    pub records: Audit,
    pub lost: u64,
}

pub async fn run(ctx: &Ctx, args: BenchArgs) -> anyhow::Result<()> {
    ctx.check_flag_values()?;
    let settings = ctx.settings()?;
    let apihost = settings.require_apihost()?.to_string();
    let Auth::Basic { user, key } = Auth::basic(settings.require_auth()?)? else {
        unreachable!("Auth::basic builds Basic credentials")
    };
    if args.hostile_mix > 0.0 && args.hostile.is_empty() {
        bail!("--hostile-mix needs the hostile actions: --hostile loop,trap,...");
    }
    let base = Url::parse(&apihost).with_context(|| format!("invalid API host {apihost:?}"))?;
    let auth = HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"))
    ))
    .context("the credentials do not fit in an HTTP header")?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("wisp-bench/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.clients as usize + VERIFY_WORKERS)
        .connect_timeout(Duration::from_secs(10))
        // Longer than the server's 60 s blocking wait: a blocking invoke gets the server's answer.
        .timeout(Duration::from_secs(75))
        .build()
        .context("cannot build the HTTP client")?;

    let params = Value::Object(parse_pairs(&args.params)?);
    let main = target(&base, &args.action, &params)?;
    let hostile = args
        .hostile
        .iter()
        .filter(|h| !h.trim().is_empty())
        .map(|h| target(&base, h.trim(), &json!({})))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Fail early, with the server's message, when an action is missing or the key is wrong.
    for t in std::iter::once(&main).chain(&hostile) {
        preflight(&http, &auth, &base, &t.name).await?;
    }

    let plan = Arc::new(Plan {
        http,
        auth,
        main,
        hostile,
        mix: if args.hostile.is_empty() {
            0.0
        } else {
            args.hostile_mix
        },
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
    });

    let bar = progress_bar(args.duration);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5eed);
    let start = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            let plan = Arc::clone(&plan);
            tokio::spawn(client_loop(
                plan,
                seed ^ (u64::from(c) << 32 | u64::from(c)),
            ))
        })
        .collect();
    // The clock: stops the clients at `duration` and draws the bar meanwhile.
    let mut last = (start, 0u64);
    let mut rate = 0.0;
    while start.elapsed() < args.duration {
        let left = args.duration.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        let now = Instant::now();
        let done = plan.done.load(Ordering::Relaxed);
        if now.duration_since(last.0) >= Duration::from_secs(1) {
            rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, done);
        } else if last.1 == 0 && done > 0 {
            rate = done as f64 / now.duration_since(start).as_secs_f64().max(1e-3);
        }
        if let Some(bar) = &bar {
            bar.set_position(start.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "{:.1}/{:.1} s · {done} invokes · {rate:.0}/s",
                start.elapsed().as_secs_f64(),
                args.duration.as_secs_f64()
            ));
        }
    }
    plan.stop.store(true, Ordering::Relaxed);
    if let Some(bar) = &bar {
        bar.set_message("waiting for the last answers");
    }
    let mut tally = Tally::default();
    for c in clients {
        let t = c.await.context("a client task panicked")?;
        merge(&mut tally, t);
    }
    let elapsed = start.elapsed();

    let mut answers = Counts::default();
    let mut per_action = std::collections::BTreeMap::new();
    for (i, counts) in tally.per_target.iter().enumerate() {
        answers.add(counts);
        let name = if i == 0 {
            &plan.main.name
        } else {
            &plan.hostile[i - 1].name
        };
        per_action.insert(name.clone(), counts.clone());
    }
    if let Some(bar) = &bar {
        bar.set_message(format!(
            "checking the records of {} activations",
            tally.ids.len()
        ));
    }
    let records = audit(
        &plan.http,
        &plan.auth,
        &base,
        tally.ids,
        args.verify_patience,
    )
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let invokes = answers.acknowledged();
    let summary = Summary {
        apihost,
        action: plan.main.name.clone(),
        clients: args.clients,
        duration_s: args.duration.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        hostile_mix: plan.mix,
        hostile: plan.hostile.iter().map(|t| t.name.clone()).collect(),
        invokes,
        throughput: invokes as f64 / elapsed.as_secs_f64().max(1e-9),
        answers,
        per_action,
        latency_ms: Latency::of(&mut tally.main_latency_us),
        hostile_latency_ms: (!plan.hostile.is_empty())
            .then(|| Latency::of(&mut tally.hostile_latency_us)),
        lost: records.lost,
        records,
    };
    if ctx.out.json {
        ctx.out.value(&serde_json::to_value(&summary)?);
    } else {
        print_summary(ctx, &summary);
    }
    let r = &summary.records;
    if r.lost > 0 || r.unverified > 0 {
        bail!(
            "{} of {} acknowledged activations have no record ({} lost, {} could not be checked); \
             a server that prunes old records (--activation-retention, 10,000 per namespace by \
             default) needs a shorter run or a larger retention",
            r.lost + r.unverified,
            r.acknowledged,
            r.lost,
            r.unverified
        );
    }
    if summary.invokes == 0 {
        bail!(
            "no invoke was acknowledged ({} refused, {} failed)",
            summary.answers.refused,
            summary.answers.failed
        );
    }
    Ok(())
}

/// The invoke URL and body of `name`.
fn target(base: &Url, name: &str, params: &Value) -> anyhow::Result<Target> {
    let entity = EntityRef::parse(name, "action")?;
    let mut url = segments_url(base, &entity.segments("actions"));
    url.query_pairs_mut()
        .append_pair("blocking", "true")
        .append_pair("result", "true");
    Ok(Target {
        name: name.to_string(),
        url,
        body: serde_json::to_vec(params)?,
    })
}

/// `{base}/seg/seg...`, each segment percent-encoded (as [`crate::client::Client::url`]).
fn segments_url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// `GET` the action: a clear error before the run when it is missing or the key is refused.
async fn preflight(
    http: &reqwest::Client,
    auth: &HeaderValue,
    base: &Url,
    name: &str,
) -> anyhow::Result<()> {
    let entity = EntityRef::parse(name, "action")?;
    let url = segments_url(base, &entity.segments("actions"));
    let resp = http
        .get(url)
        .header(AUTHORIZATION, auth.clone())
        .send()
        .await
        .with_context(|| format!("cannot reach wisp at {base} — is `wisp up` running?"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let message = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("request failed"));
    bail!(
        "cannot benchmark action {name}: {message} (HTTP {})",
        status.as_u16()
    )
}

/// One client: blocking invokes back to back until told to stop.
async fn client_loop(plan: Arc<Plan>, seed: u64) -> Tally {
    let mut rng = SplitMix64(seed);
    let mut tally = Tally {
        per_target: vec![Counts::default(); 1 + plan.hostile.len()],
        ..Tally::default()
    };
    while !plan.stop.load(Ordering::Relaxed) {
        let index = if plan.mix > 0.0 && rng.fraction() < plan.mix {
            1 + (rng.next() % plan.hostile.len() as u64) as usize
        } else {
            0
        };
        let target = if index == 0 {
            &plan.main
        } else {
            &plan.hostile[index - 1]
        };
        let sent = Instant::now();
        let answer = plan
            .http
            .post(target.url.clone())
            .header(AUTHORIZATION, plan.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(target.body.clone())
            .send()
            .await;
        let counts = &mut tally.per_target[index];
        counts.calls += 1;
        match answer {
            Err(_) => counts.failed += 1,
            Ok(resp) => {
                let status = resp.status();
                let id = resp
                    .headers()
                    .get(ACTIVATION_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // Read the body to the end so the connection is reused.
                let body = resp.bytes().await;
                let latency = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                match id {
                    Some(id) if body.is_ok() => {
                        match status {
                            StatusCode::OK => counts.ok += 1,
                            StatusCode::BAD_GATEWAY => counts.action_error += 1,
                            StatusCode::INTERNAL_SERVER_ERROR => counts.internal_error += 1,
                            StatusCode::ACCEPTED => counts.accepted += 1,
                            _ => counts.other_acknowledged += 1,
                        }
                        tally.ids.push(id);
                        if index == 0 {
                            tally.main_latency_us.push(latency);
                        } else {
                            tally.hostile_latency_us.push(latency);
                        }
                    }
                    // The id arrived but the body broke off: still acknowledged.
                    Some(id) => {
                        counts.other_acknowledged += 1;
                        tally.ids.push(id);
                    }
                    None if body.is_ok() => counts.refused += 1,
                    None => counts.failed += 1,
                }
            }
        }
        plan.done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

fn merge(into: &mut Tally, t: Tally) {
    if into.per_target.len() < t.per_target.len() {
        into.per_target
            .resize(t.per_target.len(), Counts::default());
    }
    for (a, b) in into.per_target.iter_mut().zip(&t.per_target) {
        a.add(b);
    }
    into.main_latency_us.extend(t.main_latency_us);
    into.hostile_latency_us.extend(t.hostile_latency_us);
    into.ids.extend(t.ids);
}

/// Looks up the record of every activation id in `ids` on the server at `apihost` with the
/// `uuid:key` credentials `auth`, retrying missing ones for `patience` (the audit `wisp bench`
/// runs after its clients stop).
pub async fn check_records(
    apihost: &str,
    auth: &str,
    ids: Vec<String>,
    patience: Duration,
) -> anyhow::Result<Audit> {
    let base = Url::parse(apihost).with_context(|| format!("invalid API host {apihost:?}"))?;
    let header = HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(auth)
    ))?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    Ok(audit(&http, &header, &base, ids, patience).await)
}

/// Looks up the record of every id in `ids`; see the module docs.
async fn audit(
    http: &reqwest::Client,
    auth: &HeaderValue,
    base: &Url,
    ids: Vec<String>,
    patience: Duration,
) -> Audit {
    let started = Instant::now();
    let deadline = started + patience;
    let acknowledged = ids.len() as u64;
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..VERIFY_WORKERS.min(ids.len()))
        .map(|_| {
            let (http, auth, ids, next, base) = (
                http.clone(),
                auth.clone(),
                Arc::clone(&ids),
                Arc::clone(&next),
                base.clone(),
            );
            tokio::spawn(async move {
                let mut out = Audit::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    match lookup(&http, &auth, &base, id, deadline).await {
                        Lookup::Found => out.found += 1,
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
        ..Audit::default()
    };
    for w in workers {
        match w.await {
            Ok(a) => {
                audit.found += a.found;
                audit.lost += a.lost;
                audit.unverified += a.unverified;
                audit.lost_ids.extend(a.lost_ids);
            }
            Err(_) => audit.unverified += 1,
        }
    }
    // Whatever a panicked worker did not check is unverified, not found.
    audit.unverified = acknowledged - audit.found - audit.lost;
    audit.lost_ids.sort();
    audit.lost_ids.truncate(20);
    audit.seconds = started.elapsed().as_secs_f64();
    audit
}

enum Lookup {
    Found,
    Missing,
    Unknown,
}

/// One record lookup, retried until `deadline` while the record is missing (404) or the
/// server does not answer properly.
async fn lookup(
    http: &reqwest::Client,
    auth: &HeaderValue,
    base: &Url,
    id: &str,
    deadline: Instant,
) -> Lookup {
    let url = segments_url(
        base,
        &["api", "v1", "namespaces", "_", "activations", id, "result"],
    );
    loop {
        let missing = match http
            .get(url.clone())
            .header(AUTHORIZATION, auth.clone())
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => {
                if resp.bytes().await.is_ok() {
                    return Lookup::Found;
                }
                false
            }
            Ok(resp) => {
                let missing = resp.status() == StatusCode::NOT_FOUND;
                let _ = resp.bytes().await;
                missing
            }
            Err(_) => false,
        };
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

fn progress_bar(duration: Duration) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30.cyan/blue} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn print_summary(ctx: &Ctx, s: &Summary) {
    let out = &ctx.out;
    let mix = if s.hostile.is_empty() {
        String::new()
    } else {
        format!(
            ", {:.0}% hostile ({})",
            s.hostile_mix * 100.0,
            s.hostile.join(",")
        )
    };
    out.line(&format!(
        "bench: {} at {}, {} clients for {:.1} s{mix}",
        s.action, s.apihost, s.clients, s.duration_s
    ));
    out.line(&format!(
        "invokes:    {} acknowledged in {:.2} s = {:.0} invokes/s",
        s.invokes, s.elapsed_s, s.throughput
    ));
    let a = &s.answers;
    out.line(&format!(
        "answers:    {} ok, {} action errors, {} internal errors, {} accepted (202), {} other, \
         {} refused (no activation id), {} failed",
        a.ok,
        a.action_error,
        a.internal_error,
        a.accepted,
        a.other_acknowledged,
        a.refused,
        a.failed
    ));
    let line = |label: &str, l: &Latency| {
        out.line(&format!(
            "{label}p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
            l.p50, l.p90, l.p99, l.p99_9, l.max, l.samples
        ));
    };
    line("latency:    ", &s.latency_ms);
    if let Some(h) = &s.hostile_latency_ms {
        line("hostile:    ", h);
        for (name, counts) in &s.per_action {
            out.line(&format!("  {name}: {}", counts.describe()));
        }
    }
    let r = &s.records;
    out.line(&format!(
        "records:    {} acknowledged, {} found, {} unverified (checked in {:.1} s)",
        r.acknowledged, r.found, r.unverified, r.seconds
    ));
    out.line(&format!("lost: {}", r.lost));
    for id in &r.lost_ids {
        out.line(&format!("  lost {id}"));
    }
}

/// A tiny, seedable PRNG for picking hostile calls (no shared state between clients).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_humantime() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_fraction("0.1").is_ok());
        assert!(parse_fraction("1.5").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        // 1..=1000 µs: p50 = 500 µs, p99 = 990 µs, p99.9 = 999 µs.
        let mut us: Vec<u32> = (1..=1000).rev().collect();
        let l = Latency::of(&mut us);
        assert_eq!(l.samples, 1000);
        assert_eq!(l.p50, 0.5);
        assert_eq!(l.p90, 0.9);
        assert_eq!(l.p99, 0.99);
        assert_eq!(l.p99_9, 0.999);
        assert_eq!(l.max, 1.0);
        assert!((l.mean - 0.5005).abs() < 1e-9);
        assert_eq!(Latency::of(&mut []), Latency::default());
        assert_eq!(Latency::of(&mut [7000]).p50, 7.0);
    }

    #[test]
    fn the_mix_picks_about_its_fraction() {
        let mut rng = SplitMix64(42);
        let hits = (0..100_000).filter(|_| rng.fraction() < 0.1).count();
        assert!((9_000..11_000).contains(&hits), "{hits}");
    }

    #[test]
    fn invoke_urls_are_blocking_and_encoded() {
        let base = Url::parse("http://127.0.0.1:3233").unwrap();
        let t = target(&base, "pkg/hello", &json!({"name": "x"})).unwrap();
        assert_eq!(
            t.url.as_str(),
            "http://127.0.0.1:3233/api/v1/namespaces/_/actions/pkg/hello?blocking=true&result=true"
        );
        assert_eq!(&t.body[..], br#"{"name":"x"}"#);
        assert!(target(&base, "a/b/c", &json!({})).is_err());
    }
}
