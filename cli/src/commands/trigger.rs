//! `wisp trigger create|update|get|list|delete|fire`, as `wsk trigger`.
//!
//! `--feed alarm` makes a periodic trigger run by the scheduler's built-in alarm feed: give
//! `-p cron "*/5 * * * *"` (5 fields, UTC), `-p interval MINUTES` or `-p once DATE`, and optionally
//! `-p startDate DATE`, `-p stopDate DATE`, `-p trigger_payload '{"k": "v"}'`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::{AnnotationArgs, EntityRef, ListWindow, ParamArgs, format_ms, key_values, str_field};
use crate::Ctx;

#[derive(Debug, Args)]
pub struct TriggerArgs {
    #[command(subcommand)]
    pub command: TriggerCommand,
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger (with default parameters, or fed by `--feed alarm`).
    Create(PutArgs),
    /// Update a trigger's parameters or annotations.
    Update(PutArgs),
    /// Print a trigger's document (with its rules and alarm schedule).
    Get(NameArg),
    /// List triggers.
    #[command(visible_alias = "ls")]
    List(ListWindow),
    /// Delete a trigger (and its alarm).
    Delete(NameArg),
    /// Fire a trigger with parameters: runs the action of each of its active rules.
    Fire(FireArgs),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Trigger name.
    pub name: String,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub annotations: AnnotationArgs,
    /// A feed: `alarm` (or `/whisk.system/alarms/alarm`), the scheduler's periodic feed.
    #[arg(short = 'f', long)]
    pub feed: Option<String>,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// Trigger name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct FireArgs {
    /// Trigger name.
    pub name: String,
    #[command(flatten)]
    pub params: ParamArgs,
}

pub async fn run(ctx: &Ctx, args: TriggerArgs) -> anyhow::Result<()> {
    match args.command {
        TriggerCommand::Create(a) => put(ctx, a, false).await,
        TriggerCommand::Update(a) => put(ctx, a, true).await,
        TriggerCommand::Get(a) => get(ctx, a).await,
        TriggerCommand::List(a) => list(ctx, a).await,
        TriggerCommand::Delete(a) => delete(ctx, a).await,
        TriggerCommand::Fire(a) => fire(ctx, a).await,
    }
}

/// A trigger name: `name` or `/ns/name` (triggers are not in packages).
fn trigger_ref(raw: &str) -> anyhow::Result<EntityRef> {
    let entity = EntityRef::parse(raw, "trigger")?;
    if entity.qname.package.is_some() {
        bail!(
            "invalid trigger name {raw:?}: triggers are not in packages (use NAME or /NAMESPACE/NAME)"
        );
    }
    Ok(entity)
}

async fn put(ctx: &Ctx, args: PutArgs, update: bool) -> anyhow::Result<()> {
    let entity = trigger_ref(&args.name)?;
    let mut body = Map::new();
    body.insert("name".into(), json!(entity.qname.name));
    if !args.params.is_empty() || !update {
        body.insert("parameters".into(), key_values(&args.params.to_map()?));
    }
    let mut annotations = args.annotations.to_map()?;
    if let Some(feed) = &args.feed {
        annotations.insert("feed".into(), json!(feed));
    }
    if !annotations.is_empty() || !update {
        body.insert("annotations".into(), key_values(&annotations));
    }
    let client = ctx.client()?;
    let verb = if update { "update" } else { "create" };
    let doc = client
        .put(
            &entity.segments("triggers"),
            &[("overwrite", update.to_string())],
            &Value::Object(body),
        )
        .await
        .with_context(|| format!("cannot {verb} trigger {}", entity.display()))?;
    let done = if update { "updated" } else { "created" };
    let mut message = format!("{done} trigger {}", entity.display());
    if let Some(next) = doc["alarm"]["nextFire"].as_u64() {
        message.push_str(&format!(" (alarm: first fire at {} UTC)", format_ms(next)));
    }
    ctx.out.ok(&message, || doc.clone());
    Ok(())
}

async fn get(ctx: &Ctx, args: NameArg) -> anyhow::Result<()> {
    let entity = trigger_ref(&args.name)?;
    let doc = super::get_entity(ctx, &entity, "triggers", "trigger").await?;
    ctx.out.value(&doc);
    Ok(())
}

async fn list(ctx: &Ctx, args: ListWindow) -> anyhow::Result<()> {
    let docs = super::list_collection(ctx, "triggers", &args).await?;
    let rows = docs
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let feed = super::annotation(t, "feed")
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string();
            vec![
                format!("/{}/{}", str_field(t, "namespace"), str_field(t, "name")),
                feed,
                str_field(t, "version").to_string(),
                t["updated"]
                    .as_u64()
                    .map(format_ms)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    ctx.out
        .table(&["TRIGGER", "FEED", "VERSION", "UPDATED"], rows, || {
            docs.clone()
        });
    Ok(())
}

async fn delete(ctx: &Ctx, args: NameArg) -> anyhow::Result<()> {
    let entity = trigger_ref(&args.name)?;
    super::delete_entity(ctx, &entity, "triggers", "trigger").await
}

async fn fire(ctx: &Ctx, args: FireArgs) -> anyhow::Result<()> {
    let entity = trigger_ref(&args.name)?;
    let params = Value::Object(args.params.to_map()?);
    let answer = ctx
        .client()?
        .post(&entity.segments("triggers"), &params)
        .await
        .with_context(|| format!("cannot fire trigger {}", entity.display()))?;
    match answer["activationId"].as_str() {
        Some(id) => ctx.out.ok(
            &format!("triggered {} with id {id}", entity.display()),
            || answer.clone(),
        ),
        None => ctx.out.ok(
            &format!(
                "trigger {} has no active rule: nothing ran",
                entity.display()
            ),
            || json!({"activationId": null}),
        ),
    }
    Ok(())
}
