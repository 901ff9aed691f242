//! `wisp bench`: a load test against a running wisp — N concurrent clients invoking one action
//! for T seconds, then an audit that every acknowledged activation has a record.
//!
//! The parts, one file each:
//! - [`load`]: the clients. Each does one invoke after another through the CLI's own
//!   [`Client`] (`POST ...?blocking=true&result=true`, or with `--non-blocking` a plain `POST`
//!   answered 202). With `--hostile-mix F --hostile a,b,c` a call is, with probability F, an
//!   invoke of one of the hostile actions (picked uniformly, with `{}`); the caller deploys them
//!   with short timeouts (or `loop` holds a client for 60 s).
//! - [`accounting`]: an answer carrying `x-openwhisk-activation-id` (200, 502, 500, 202) is an
//!   *acknowledged* activation and its id is kept; a 429 without one is *throttled*, other
//!   answers without one are *refused*, transport failures *failed*. Latencies go into
//!   histograms (bounded memory), for `--action` and for the hostile calls apart.
//! - The noisy neighbour (`--noisy-auth UUID:KEY`): the main tenant runs alone for
//!   `--alone-share` of the duration, then `--noisy-clients` clients of the second tenant invoke
//!   `--noisy-action` (blocking, or with `--noisy-non-blocking` as fast as they are accepted)
//!   until the end. Both tenants' throughput and latency are reported per phase (a request
//!   belongs to the phase it was sent in); the noisy tenant's 429s are throttling, any failure
//!   of the main tenant's action is an error and fails the command.
//! - [`audit`]: every acknowledged id is looked up, with the server's retention in mind: an old
//!   id without a record was pruned, a recent one without a record is lost. Lost or unverified
//!   ids fail the command after the summary; pruned ones do not.
//! - [`print`]: the human summary (`--json` prints [`Summary`] instead).
//!
//! The progress bar (elapsed / T, invokes done, rate over the last second) is drawn on stderr
//! only when stderr is a terminal.

mod accounting;
mod audit;
mod load;
mod print;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

pub use accounting::{Counts, Latency};
pub use audit::{Audit, check_records, must_exist};

use self::accounting::{Accounts, Books, Phase, Series, Tenant};
use self::load::{Load, Shared, Target, client_loop};
use super::EntityRef;
use super::invoke::parse_pairs;
use crate::Ctx;
use crate::client::{Auth, Client};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent clients, each doing one invoke after another.
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
    /// Invoke without waiting (no `blocking=true`): throughput counts the 202 acceptances, and
    /// the audit then waits (up to --verify-patience) for every accepted activation's record.
    #[arg(long, env = "WISP_BENCH_NON_BLOCKING")]
    pub non_blocking: bool,
    /// How long the audit waits for a missing record before calling it lost.
    #[arg(long, default_value = "30s", env = "WISP_BENCH_VERIFY_PATIENCE", value_parser = parse_duration)]
    pub verify_patience: Duration,
    /// A second tenant's credentials UUID:KEY: after --alone-share of the duration it floods
    /// the platform with --noisy-action, and both tenants are measured alone and under the flood.
    #[arg(
        long,
        value_name = "UUID:KEY",
        env = "WISP_BENCH_NOISY_AUTH",
        hide_env_values = true
    )]
    pub noisy_auth: Option<String>,
    /// The noisy tenant's action (in its own namespace; deployed by you).
    #[arg(
        long,
        default_value = "loop",
        env = "WISP_BENCH_NOISY_ACTION",
        requires = "noisy_auth"
    )]
    pub noisy_action: String,
    /// Concurrent clients of the noisy tenant.
    #[arg(long, default_value_t = 8, env = "WISP_BENCH_NOISY_CLIENTS", requires = "noisy_auth",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub noisy_clients: u32,
    /// The noisy tenant invokes without waiting (202s, as fast as the platform accepts them).
    #[arg(long, env = "WISP_BENCH_NOISY_NON_BLOCKING", requires = "noisy_auth")]
    pub noisy_non_blocking: bool,
    /// Share of the duration (strictly between 0 and 1) the main tenant runs alone before the
    /// noisy tenant starts.
    #[arg(long, default_value_t = 0.5, env = "WISP_BENCH_ALONE_SHARE", requires = "noisy_auth",
          value_parser = parse_share)]
    pub alone_share: f64,
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

/// A fraction strictly between 0 and 1: both phases must exist.
fn parse_share(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
        _ => Err(format!("{raw:?} is not a share strictly between 0 and 1")),
    }
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
    /// Whether the invokes were non-blocking (acknowledged = accepted with a 202).
    pub non_blocking: bool,
    pub hostile_mix: f64,
    pub hostile: Vec<String>,
    /// Acknowledged invokes of the main tenant (answers with an activation id).
    pub invokes: u64,
    /// Acknowledged invokes per second of `elapsed_s`.
    pub throughput: f64,
    /// The main tenant's answers, all its actions together.
    pub answers: Counts,
    pub per_action: BTreeMap<String, Counts>,
    /// Latency of the calls to `action` that were acknowledged (whole run).
    pub latency_ms: Latency,
    /// Latency of the acknowledged hostile calls (none without a mix).
    pub hostile_latency_ms: Option<Latency>,
    /// The audit of the main tenant's acknowledged activations.
    pub records: Audit,
    /// The noisy-neighbour phases (`null` without `--noisy-auth`).
    pub noisy: Option<Noisy>,
    /// Acknowledged ids without a record that had to have one (both tenants).
    pub lost: u64,
    /// Acknowledged ids without a record that retention may have pruned (both tenants).
    pub pruned: u64,
}

/// A run with a noisy neighbour.
#[derive(Clone, Debug, Serialize)]
pub struct Noisy {
    pub action: String,
    pub clients: u32,
    pub non_blocking: bool,
    pub alone_share: f64,
    /// The main tenant alone.
    pub alone: PhaseReport,
    /// The main tenant while the noisy one floods (to the last answer).
    pub flood: PhaseReport,
    /// The audit of the noisy tenant's acknowledged activations.
    pub records: Audit,
}

/// One phase of a noisy-neighbour run.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub duration_s: f64,
    pub main: TenantStats,
    /// The noisy tenant (`null` in the `alone` phase).
    pub noisy: Option<TenantStats>,
}

/// One tenant's calls of its action in one phase.
#[derive(Clone, Debug, Serialize)]
pub struct TenantStats {
    pub action: String,
    /// Acknowledged calls.
    pub invokes: u64,
    /// Acknowledged calls per second of the phase.
    pub throughput: f64,
    /// The main tenant: every call that did not end in a 200 or 202 (a 429 included). The noisy
    /// tenant: calls refused other than by a 429, or without an answer (its action's own
    /// failures, such as `loop`'s timeouts, are what it is for).
    pub errors: u64,
    /// 429 answers (the namespace's limits at work).
    pub throttled: u64,
    pub answers: Counts,
    /// Latency of the acknowledged calls.
    pub latency_ms: Latency,
}

impl TenantStats {
    fn of(series: &Series, action: &str, tenant: Tenant, seconds: f64) -> TenantStats {
        let answers = series.main();
        let invokes = answers.acknowledged();
        TenantStats {
            action: action.to_string(),
            invokes,
            throughput: invokes as f64 / seconds.max(1e-9),
            errors: match tenant {
                Tenant::Main => answers.errors(),
                Tenant::Noisy => answers.refused + answers.failed,
            },
            throttled: answers.throttled,
            latency_ms: Latency::of(&series.main_us),
            answers,
        }
    }
}

/// The noisy tenant's client, target and settings.
struct Neighbour {
    load: Arc<Load>,
    clients: u32,
    non_blocking: bool,
}

pub async fn run(ctx: &Ctx, args: BenchArgs) -> anyhow::Result<()> {
    ctx.check_flag_values()?;
    let settings = ctx.settings()?;
    let apihost = settings.require_apihost()?.to_string();
    let auth_text = settings.require_auth()?.to_string();
    let auth = Auth::basic(&auth_text)?;
    if args.hostile_mix > 0.0 && args.hostile.is_empty() {
        bail!("--hostile-mix needs the hostile actions: --hostile loop,trap,...");
    }
    let noisy_auth = match &args.noisy_auth {
        Some(a) if a.trim() == auth_text.trim() => bail!(
            "--noisy-auth is the main tenant's own key: the noisy neighbour must be another \
             tenant (`wisp admin user add NAME` makes one)"
        ),
        Some(a) => Some(Auth::basic(a).context("--noisy-auth")?),
        None => None,
    };
    let blocking = !args.non_blocking;
    let client = Client::for_load(&apihost, auth, args.clients as usize + audit::WORKERS)?;
    let params = Value::Object(parse_pairs(&args.params)?);
    let mut targets = vec![Target::new(&client, &args.action, &params, blocking)?];
    for h in args
        .hostile
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
    {
        targets.push(Target::new(&client, h, &json!({}), blocking)?);
    }
    // Fail early, with the server's message, when an action is missing or a key is wrong.
    for t in &targets {
        preflight(&client, &t.name).await?;
    }
    let mix = if targets.len() > 1 {
        args.hostile_mix
    } else {
        0.0
    };
    let shared = Arc::new(Shared::new(Accounts::new(targets.len(), 1)));
    let neighbour = match noisy_auth {
        Some(a) => {
            let c = Client::for_load(&apihost, a, args.noisy_clients as usize + audit::WORKERS)?;
            let t = Target::new(&c, &args.noisy_action, &json!({}), !args.noisy_non_blocking)?;
            preflight(&c, &t.name)
                .await
                .context("the noisy neighbour (--noisy-auth)")?;
            Some(Neighbour {
                load: Arc::new(Load {
                    tenant: Tenant::Noisy,
                    client: c,
                    targets: vec![t],
                    mix: 0.0,
                    shared: Arc::clone(&shared),
                }),
                clients: args.noisy_clients,
                non_blocking: args.noisy_non_blocking,
            })
        }
        None => None,
    };
    let main = Arc::new(Load {
        tenant: Tenant::Main,
        client: client.clone(),
        targets,
        mix,
        shared: Arc::clone(&shared),
    });

    let bar = progress_bar(args.duration);
    let seed: u64 = rand::random();
    let start = Instant::now();
    let mut tasks: Vec<_> = (0..args.clients)
        .map(|c| tokio::spawn(client_loop(Arc::clone(&main), seed ^ u64::from(c))))
        .collect();
    let split = neighbour
        .as_ref()
        .map(|_| args.duration.mul_f64(args.alone_share));
    let mut flood_at: Option<Duration> = None;
    // The clock: starts the neighbour at the split, stops the clients at `duration`, and
    // draws the bar meanwhile.
    let mut last = (start, 0u64);
    let mut rate = 0.0;
    while start.elapsed() < args.duration {
        if let (Some(split), Some(n), None) = (split, &neighbour, flood_at)
            && start.elapsed() >= split
        {
            shared.flood.store(true, Ordering::Relaxed);
            flood_at = Some(start.elapsed());
            tasks.extend(
                (0..n.clients)
                    .map(|c| tokio::spawn(client_loop(Arc::clone(&n.load), !seed ^ u64::from(c)))),
            );
        }
        let mut wait = args.duration.saturating_sub(start.elapsed());
        if let (Some(split), None) = (split, flood_at) {
            wait = wait.min(split.saturating_sub(start.elapsed()));
        }
        tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
        let now = Instant::now();
        let done = shared.accounts.done.load(Ordering::Relaxed);
        if now.duration_since(last.0) >= Duration::from_secs(1) {
            rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, done);
        } else if last.1 == 0 && done > 0 {
            rate = done as f64 / now.duration_since(start).as_secs_f64().max(1e-3);
        }
        if let Some(bar) = &bar {
            bar.set_position(start.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "{:.1}/{:.1} s · {done} invokes · {rate:.0}/s{}",
                start.elapsed().as_secs_f64(),
                args.duration.as_secs_f64(),
                if flood_at.is_some() {
                    " · noisy neighbour flooding"
                } else {
                    ""
                }
            ));
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(bar) = &bar {
        bar.set_message("waiting for the last answers");
    }
    for t in tasks {
        t.await.context("a client task panicked")?;
    }
    let elapsed = start.elapsed();
    let main_names: Vec<String> = main.targets.iter().map(|t| t.name.clone()).collect();
    let noisy_client = neighbour.as_ref().map(|n| n.load.client.clone());
    let noisy_settings = neighbour.as_ref().map(|n| (n.clients, n.non_blocking));
    drop((main, neighbour));
    let shared = Arc::into_inner(shared).context("the client tasks still hold the books")?;
    let mut books = shared.accounts.into_books();

    if let Some(bar) = &bar {
        bar.set_message(format!(
            "checking the records of {} activations",
            books.acks[0].len() + books.acks[1].len()
        ));
    }
    let main_ids = std::mem::take(&mut books.acks[Tenant::Main as usize]);
    let noisy_ids = std::mem::take(&mut books.acks[Tenant::Noisy as usize]);
    let patience = args.verify_patience;
    let main_audit = async {
        let retention = audit::retention(&client).await;
        let slack = audit::slack(args.clients, args.non_blocking, retention);
        audit::audit(&client, main_ids, retention, slack, patience).await
    };
    let noisy_audit = async {
        match (&noisy_client, noisy_settings) {
            (Some(c), Some((clients, non_blocking))) => {
                let retention = audit::retention(c).await;
                let slack = audit::slack(clients, non_blocking, retention);
                Some(audit::audit(c, noisy_ids, retention, slack, patience).await)
            }
            _ => None,
        }
    };
    let (records, noisy_records) = tokio::join!(main_audit, noisy_audit);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let noisy = match (noisy_records, noisy_settings, flood_at) {
        (Some(records), Some((clients, non_blocking)), Some(at)) => {
            let flood_s = (elapsed - at).as_secs_f64();
            let stats = |tenant, phase, action: &str, seconds| {
                TenantStats::of(books.series(tenant, phase), action, tenant, seconds)
            };
            Some(Noisy {
                action: args.noisy_action.clone(),
                clients,
                non_blocking,
                alone_share: args.alone_share,
                alone: PhaseReport {
                    duration_s: at.as_secs_f64(),
                    main: stats(Tenant::Main, Phase::Alone, &args.action, at.as_secs_f64()),
                    noisy: None,
                },
                flood: PhaseReport {
                    duration_s: flood_s,
                    main: stats(Tenant::Main, Phase::Flood, &args.action, flood_s),
                    noisy: Some(stats(
                        Tenant::Noisy,
                        Phase::Flood,
                        &args.noisy_action,
                        flood_s,
                    )),
                },
                records,
            })
        }
        _ => None,
    };
    let summary = summarize(&args, apihost, &main_names, &books, elapsed, records, noisy);
    if ctx.out.json {
        ctx.out.value(&serde_json::to_value(&summary)?);
    } else {
        print::summary(&ctx.out, &summary);
    }
    verdict(&summary)
}

/// The summary of a finished run.
fn summarize(
    args: &BenchArgs,
    apihost: String,
    names: &[String],
    books: &Books,
    elapsed: Duration,
    records: Audit,
    noisy: Option<Noisy>,
) -> Summary {
    let total = books.total(Tenant::Main);
    let answers = total.answers();
    let per_action = names
        .iter()
        .cloned()
        .zip(total.per_target.iter().cloned())
        .collect();
    let invokes = answers.acknowledged();
    let noisy_records = noisy.as_ref().map(|n| &n.records);
    Summary {
        apihost,
        action: args.action.clone(),
        clients: args.clients,
        duration_s: args.duration.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        non_blocking: args.non_blocking,
        hostile_mix: if names.len() > 1 {
            args.hostile_mix
        } else {
            0.0
        },
        hostile: names[1..].to_vec(),
        invokes,
        throughput: invokes as f64 / elapsed.as_secs_f64().max(1e-9),
        answers,
        per_action,
        latency_ms: Latency::of(&total.main_us),
        hostile_latency_ms: (names.len() > 1).then(|| Latency::of(&total.hostile_us)),
        lost: records.lost + noisy_records.map_or(0, |r| r.lost),
        pruned: records.pruned + noisy_records.map_or(0, |r| r.pruned),
        records,
        noisy,
    }
}

/// The exit status of a run: lost or unverified records fail it (pruned ones do not), as do a
/// run without one acknowledged invoke and, with a noisy neighbour, any error of the main
/// tenant's action.
fn verdict(s: &Summary) -> anyhow::Result<()> {
    let audits = std::iter::once(&s.records).chain(s.noisy.as_ref().map(|n| &n.records));
    let (mut acknowledged, mut unverified, mut unknown_retention) = (0, 0, false);
    for a in audits {
        acknowledged += a.acknowledged;
        unverified += a.unverified;
        unknown_retention |= a.retention.is_none();
    }
    if s.lost > 0 || unverified > 0 {
        let hint = if unknown_retention {
            "; the server does not report its retention, so records it pruned (`wisp up \
             --activation-retention`) count as lost: use a shorter run or a larger retention"
        } else {
            ""
        };
        bail!(
            "{} of {acknowledged} acknowledged activations have no record ({} lost, {unverified} \
             could not be checked){hint}",
            s.lost + unverified,
            s.lost,
        );
    }
    if s.invokes == 0 {
        bail!(
            "no invoke was acknowledged ({} throttled, {} refused, {} failed)",
            s.answers.throttled,
            s.answers.refused,
            s.answers.failed
        );
    }
    if let Some(n) = &s.noisy {
        let errors = n.alone.main.errors + n.flood.main.errors;
        if errors > 0 {
            bail!(
                "{errors} calls of {} by the main tenant failed (alone: {}; with the noisy \
                 neighbour: {})",
                s.action,
                n.alone.main.answers.describe(),
                n.flood.main.answers.describe()
            );
        }
    }
    Ok(())
}

/// `GET` the action: a clear error before the run when it is missing or the key is refused.
async fn preflight(client: &Client, name: &str) -> anyhow::Result<()> {
    let entity = EntityRef::parse(name, "action")?;
    client
        .get(&entity.segments("actions"), &[])
        .await
        .with_context(|| format!("cannot benchmark action {name}"))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

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
        assert!(parse_share("0.5").is_ok());
        assert!(parse_share("0").is_err());
        assert!(parse_share("1").is_err());
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut full = vec!["wisp", "bench"];
        full.extend_from_slice(args);
        match crate::Cli::try_parse_from(full)?.command {
            crate::Command::Bench(b) => Ok(b),
            other => panic!("not bench: {other:?}"),
        }
    }

    #[test]
    fn noisy_flags_need_the_noisy_key() {
        let b = parse(&["--non-blocking"]).unwrap();
        assert!(b.non_blocking && b.noisy_auth.is_none());
        assert_eq!((b.noisy_action.as_str(), b.noisy_clients), ("loop", 8));
        for flags in [
            &["--noisy-clients", "4"][..],
            &["--noisy-action", "spin"],
            &["--noisy-non-blocking"],
            &["--alone-share", "0.3"],
        ] {
            let err = parse(flags).unwrap_err().to_string();
            assert!(err.contains("--noisy-auth"), "{flags:?}: {err}");
        }
        let b = parse(&[
            "--noisy-auth",
            "u2:k2",
            "--noisy-clients",
            "32",
            "--noisy-non-blocking",
            "--alone-share",
            "0.25",
        ])
        .unwrap();
        assert_eq!(b.noisy_auth.as_deref(), Some("u2:k2"));
        assert!(b.noisy_non_blocking);
        assert_eq!((b.noisy_clients, b.alone_share), (32, 0.25));
        assert!(parse(&["--noisy-auth", "u:k", "--noisy-clients", "0"]).is_err());
        assert!(parse(&["--noisy-auth", "u:k", "--alone-share", "1"]).is_err());
    }

    fn summary(lost: u64, unverified: u64, main_errors: bool) -> Summary {
        let records = Audit {
            acknowledged: 10,
            found: 10 - lost - unverified,
            lost,
            unverified,
            retention: Some(100),
            ..Audit::default()
        };
        let answers = Counts {
            calls: 10,
            ok: 10,
            ..Counts::default()
        };
        let mut flood = TenantStats {
            action: "hello".into(),
            invokes: 10,
            throughput: 1.0,
            errors: 0,
            throttled: 0,
            answers: answers.clone(),
            latency_ms: Latency::default(),
        };
        if main_errors {
            flood.errors = 1;
        }
        let alone = TenantStats {
            errors: 0,
            ..flood.clone()
        };
        Summary {
            apihost: "http://h".into(),
            action: "hello".into(),
            clients: 1,
            duration_s: 1.0,
            elapsed_s: 1.0,
            non_blocking: false,
            hostile_mix: 0.0,
            hostile: vec![],
            invokes: 10,
            throughput: 10.0,
            answers,
            per_action: BTreeMap::new(),
            latency_ms: Latency::default(),
            hostile_latency_ms: None,
            records: records.clone(),
            noisy: Some(Noisy {
                action: "loop".into(),
                clients: 1,
                non_blocking: false,
                alone_share: 0.5,
                alone: PhaseReport {
                    duration_s: 0.5,
                    main: alone,
                    noisy: None,
                },
                flood: PhaseReport {
                    duration_s: 0.5,
                    main: flood,
                    noisy: None,
                },
                records: Audit {
                    lost: 0,
                    unverified: 0,
                    found: 10,
                    ..records
                },
            }),
            lost,
            pruned: 0,
        }
    }

    #[test]
    fn lost_unverified_and_main_tenant_errors_fail_the_run() {
        assert!(verdict(&summary(0, 0, false)).is_ok());
        let err = verdict(&summary(1, 0, false)).unwrap_err().to_string();
        assert!(err.contains("(1 lost, 0 could not be checked)"), "{err}");
        assert!(!err.contains("retention"), "{err}");
        let err = verdict(&summary(0, 2, false)).unwrap_err().to_string();
        assert!(err.contains("2 could not be checked"), "{err}");
        let err = verdict(&summary(0, 0, true)).unwrap_err().to_string();
        assert!(
            err.contains("calls of hello by the main tenant failed"),
            "{err}"
        );
        let mut s = summary(1, 0, false);
        s.records.retention = None;
        let err = verdict(&s).unwrap_err().to_string();
        assert!(err.contains("does not report its retention"), "{err}");
    }
}
