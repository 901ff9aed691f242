//! `wisp activation list|get|logs|result|poll` (and the `wisp logs` / `wisp result` shortcuts).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{EntityRef, annotation, collection_segments, format_ms, str_field};
use crate::Ctx;
use crate::client::Client;

#[derive(Debug, Args)]
pub struct ActivationArgs {
    #[command(subcommand)]
    pub command: ActivationCommand,
}

#[derive(Debug, Subcommand)]
pub enum ActivationCommand {
    /// List activations, newest first.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Print an activation record.
    Get(IdArgs),
    /// Print an activation's logs.
    Logs(IdArgs),
    /// Print an activation's result.
    Result(IdArgs),
    /// Print new activations and their logs as they happen, until Ctrl-C.
    Poll(PollArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the activations of this action.
    pub name: Option<String>,
    /// At most this many activations (default 30, max 200).
    #[arg(short = 'l', long, default_value_t = 30)]
    pub limit: u32,
    /// Skip this many activations.
    #[arg(short = 's', long, default_value_t = 0)]
    pub skip: u32,
    /// Only activations started at or after this epoch-ms time.
    #[arg(long, value_name = "EPOCH_MS")]
    pub since: Option<u64>,
    /// Only activations started at or before this epoch-ms time.
    #[arg(long, value_name = "EPOCH_MS")]
    pub upto: Option<u64>,
    /// Include full records (logs, results) in the JSON.
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Activation id (32 hex characters).
    #[arg(required_unless_present = "last")]
    pub id: Option<String>,
    /// Use the most recent activation.
    #[arg(short = 'l', long)]
    pub last: bool,
    /// Strip timestamps and stream names from log lines (logs only).
    #[arg(short = 'r', long)]
    pub strip: bool,
}

#[derive(Debug, Args)]
pub struct PollArgs {
    /// Only the activations of this action.
    pub name: Option<String>,
    /// Stop after this many seconds (for scripts and tests).
    #[arg(long, value_name = "SECONDS")]
    pub exit: Option<u64>,
    /// Seconds between polls.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}

pub async fn run(ctx: &Ctx, args: ActivationArgs) -> anyhow::Result<()> {
    match args.command {
        ActivationCommand::List(a) => list(ctx, a).await,
        ActivationCommand::Get(a) => get(ctx, a).await,
        ActivationCommand::Logs(a) => logs(ctx, a).await,
        ActivationCommand::Result(a) => result(ctx, a).await,
        ActivationCommand::Poll(a) => poll(ctx, a).await,
    }
}

/// The id to act on: the one given, or the newest activation's with `--last`.
async fn resolve_id(client: &Client, args: &IdArgs) -> anyhow::Result<String> {
    if let (Some(id), false) = (&args.id, args.last) {
        if id.parse::<wisp_core::ActivationId>().is_err() {
            bail!("{id:?} is not an activation id (32 hexadecimal characters)");
        }
        return Ok(id.clone());
    }
    let items = client
        .get(
            &collection_segments("activations"),
            &[("limit", "1".to_string())],
        )
        .await
        .context("cannot find the last activation")?;
    match items.as_array().and_then(|a| a.first()) {
        Some(a) => Ok(str_field(a, "activationId").to_string()),
        None => bail!("there are no activations yet"),
    }
}

fn id_segments(id: &str) -> Vec<&str> {
    let mut s = collection_segments("activations").to_vec();
    s.push(id);
    s
}

async fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let mut query = vec![
        ("limit", args.limit.to_string()),
        ("skip", args.skip.to_string()),
        ("docs", args.full.to_string()),
    ];
    if let Some(name) = &args.name {
        EntityRef::parse(name, "action")?;
        query.push(("name", name.clone()));
    }
    if let Some(since) = args.since {
        query.push(("since", since.to_string()));
    }
    if let Some(upto) = args.upto {
        query.push(("upto", upto.to_string()));
    }
    let items = client
        .get(&collection_segments("activations"), &query)
        .await
        .context("cannot list activations")?;
    let rows = items
        .as_array()
        .into_iter()
        .flatten()
        .map(summary_row)
        .collect();
    ctx.out.table(
        &[
            "DATETIME",
            "ACTIVATION ID",
            "KIND",
            "START",
            "DURATION",
            "STATUS",
            "ENTITY",
        ],
        rows,
        || items.clone(),
    );
    Ok(())
}

/// One row of `activation list`: works on full records and on OpenWhisk's summaries.
fn summary_row(a: &Value) -> Vec<String> {
    let kind = annotation(a, "kind").and_then(Value::as_str).unwrap_or("-");
    let start = match annotation(a, "initTime").and_then(Value::as_u64) {
        Some(t) if t > 0 => "cold",
        Some(_) => "warm",
        None => "-",
    };
    vec![
        a["start"]
            .as_u64()
            .map(format_ms)
            .unwrap_or_else(|| "-".into()),
        str_field(a, "activationId").to_string(),
        kind.to_string(),
        start.to_string(),
        a["duration"]
            .as_u64()
            .map(|d| format!("{d}ms"))
            .unwrap_or_else(|| "-".into()),
        status_of(a),
        format!(
            "{}/{}:{}",
            str_field(a, "namespace"),
            str_field(a, "name"),
            str_field(a, "version")
        ),
    ]
}

/// The status string of a record or summary (`response.status`, else from `statusCode`).
pub fn status_of(a: &Value) -> String {
    if let Some(s) = a.pointer("/response/status").and_then(Value::as_str) {
        return s.to_string();
    }
    let code = a
        .get("statusCode")
        .or_else(|| a.pointer("/response/statusCode"))
        .and_then(Value::as_u64);
    match code {
        Some(0) => "success",
        Some(1) => "application error",
        Some(2) => "action developer error",
        Some(3) => "whisk internal error",
        _ => "-",
    }
    .to_string()
}

async fn get(ctx: &Ctx, args: IdArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let id = resolve_id(&client, &args).await?;
    let record = client
        .get(&id_segments(&id), &[])
        .await
        .with_context(|| format!("cannot get activation {id}"))?;
    ctx.out.value(&record);
    Ok(())
}

/// `activation logs` (also `wisp logs`).
pub async fn logs(ctx: &Ctx, args: IdArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let id = resolve_id(&client, &args).await?;
    let mut segs = id_segments(&id);
    segs.push("logs");
    let body = client
        .get(&segs, &[])
        .await
        .with_context(|| format!("cannot get the logs of activation {id}"))?;
    let lines: Vec<String> = body
        .get("logs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|l| {
            l.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| l.to_string())
        })
        .collect();
    if ctx.out.json {
        ctx.out.value(&json!({ "activationId": id, "logs": lines }));
    } else {
        for line in &lines {
            ctx.out
                .line(if args.strip { strip_log(line) } else { line });
        }
    }
    Ok(())
}

/// `2026-11-23T14:11:00.123Z stdout: text` → `text`.
pub fn strip_log(line: &str) -> &str {
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some("stdout:" | "stderr:"), Some(text)) => text,
        (Some(_), Some("stdout:" | "stderr:"), None) => "",
        _ => line,
    }
}

/// `activation result` (also `wisp result`).
pub async fn result(ctx: &Ctx, args: IdArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let id = resolve_id(&client, &args).await?;
    let mut segs = id_segments(&id);
    segs.push("result");
    let body = client
        .get(&segs, &[])
        .await
        .with_context(|| format!("cannot get the result of activation {id}"))?;
    // OpenWhisk answers `{result, status, success}`; print the result itself.
    ctx.out.value(body.get("result").unwrap_or(&body));
    Ok(())
}

async fn poll(ctx: &Ctx, args: PollArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    if let Some(name) = &args.name {
        EntityRef::parse(name, "action")?;
    }
    let deadline = args.exit.map(|s| Instant::now() + Duration::from_secs(s));
    let interval = Duration::from_secs_f64(args.interval.clamp(0.05, 60.0));
    let mut query = vec![("limit", "200".to_string()), ("docs", "true".to_string())];
    if let Some(name) = &args.name {
        query.push(("name", name.clone()));
    }
    let fetch = || async {
        client
            .get(&collection_segments("activations"), &query)
            .await
            .context("cannot poll activations")
            .map(|v| v.as_array().cloned().unwrap_or_default())
    };
    // Everything that exists now is old news: remember it without printing it.
    let mut seen: HashSet<String> = fetch()
        .await?
        .iter()
        .map(|a| str_field(a, "activationId").to_string())
        .collect();
    crate::output::note(&format!(
        "polling for new activations of {} (Ctrl-C to stop)",
        args.name.as_deref().unwrap_or("all actions")
    ));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let sleep = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(());
                }
                interval.min(d - now)
            }
            None => interval,
        };
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(sleep) => {}
        }
        let mut fresh: Vec<Value> = fetch()
            .await?
            .into_iter()
            .filter(|a| !seen.contains(str_field(a, "activationId")))
            .collect();
        // Oldest first, as they happened.
        fresh.sort_by_key(|a| a["start"].as_u64().unwrap_or(0));
        for a in fresh {
            let id = str_field(&a, "activationId").to_string();
            if ctx.out.json {
                ctx.out.line(&a.to_string());
            } else {
                ctx.out.line(&format!(
                    "Activation: '{}' ({id}) {}",
                    str_field(&a, "name"),
                    status_of(&a)
                ));
                for line in a["logs"].as_array().into_iter().flatten() {
                    ctx.out
                        .line(&format!("  {}", line.as_str().unwrap_or_default()));
                }
            }
            seen.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_strip_to_their_text() {
        assert_eq!(
            strip_log("2026-11-23T14:11:00.123456789Z stdout: hello world"),
            "hello world"
        );
        assert_eq!(strip_log("2026-11-23T14:11:00Z stderr: "), "");
        assert_eq!(strip_log("not a log line"), "not a log line");
    }

    #[test]
    fn status_from_summary_or_record() {
        assert_eq!(
            status_of(&json!({"statusCode": 2})),
            "action developer error"
        );
        assert_eq!(
            status_of(&json!({"response": {"status": "success", "statusCode": 0}})),
            "success"
        );
        assert_eq!(status_of(&json!({})), "-");
    }

    #[test]
    fn rows_mark_cold_and_warm_starts() {
        let a = json!({
            "activationId": "0123456789abcdef0123456789abcdef", "namespace": "guest",
            "name": "hello", "version": "0.0.1", "start": 0, "duration": 3,
            "annotations": [{"key": "kind", "value": "wasm"}, {"key": "initTime", "value": 5}],
            "response": {"status": "success"}
        });
        let row = summary_row(&a);
        assert_eq!(
            row[2..],
            ["wasm", "cold", "3ms", "success", "guest/hello:0.0.1"]
        );
    }
}
