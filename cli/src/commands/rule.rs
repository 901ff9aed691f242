//! `wisp rule create|update|enable|disable|get|status|list|delete`, as `wsk rule`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{EntityRef, ListWindow, format_ms, str_field};
use crate::Ctx;

#[derive(Debug, Args)]
pub struct RuleArgs {
    #[command(subcommand)]
    pub command: RuleCommand,
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Create a rule: when TRIGGER fires, run ACTION with its parameters.
    Create(PutArgs),
    /// Change a rule's trigger or action.
    Update(PutArgs),
    /// Enable a rule (its action runs when the trigger fires).
    Enable(NameArg),
    /// Disable a rule (the trigger's fires no longer run its action).
    Disable(NameArg),
    /// Print a rule's document.
    Get(NameArg),
    /// Print whether a rule is active or inactive.
    Status(NameArg),
    /// List rules.
    #[command(visible_alias = "ls")]
    List(ListWindow),
    /// Delete a rule.
    Delete(NameArg),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Rule name.
    pub name: String,
    /// The trigger (`name` or `/ns/name`).
    pub trigger: String,
    /// The action (`name`, `pkg/name`, `/ns/name` or `/ns/pkg/name`).
    pub action: String,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// Rule name.
    pub name: String,
}

pub async fn run(ctx: &Ctx, args: RuleArgs) -> anyhow::Result<()> {
    match args.command {
        RuleCommand::Create(a) => put(ctx, a, false).await,
        RuleCommand::Update(a) => put(ctx, a, true).await,
        RuleCommand::Enable(a) => set_status(ctx, a, "active").await,
        RuleCommand::Disable(a) => set_status(ctx, a, "inactive").await,
        RuleCommand::Get(a) => get(ctx, a, false).await,
        RuleCommand::Status(a) => get(ctx, a, true).await,
        RuleCommand::List(a) => list(ctx, a).await,
        RuleCommand::Delete(a) => delete(ctx, a).await,
    }
}

fn rule_ref(raw: &str) -> anyhow::Result<EntityRef> {
    let entity = EntityRef::parse(raw, "rule")?;
    if entity.qname.package.is_some() {
        bail!("invalid rule name {raw:?}: rules are not in packages (use NAME or /NAMESPACE/NAME)");
    }
    Ok(entity)
}

/// `/ns/path/name` of a rule's `{path, name}` reference.
fn fqn(r: &Value) -> String {
    format!("/{}/{}", str_field(r, "path"), str_field(r, "name"))
}

async fn put(ctx: &Ctx, args: PutArgs, update: bool) -> anyhow::Result<()> {
    let entity = rule_ref(&args.name)?;
    let trigger = EntityRef::parse(&args.trigger, "trigger")?;
    let action = EntityRef::parse(&args.action, "action")?;
    let body = json!({
        "name": entity.qname.name,
        "trigger": trigger.qname.path("_"),
        "action": action.qname.path("_"),
    });
    let verb = if update { "update" } else { "create" };
    let doc = ctx
        .client()?
        .put(
            &entity.segments("rules"),
            &[("overwrite", update.to_string())],
            &body,
        )
        .await
        .with_context(|| format!("cannot {verb} rule {}", entity.display()))?;
    let done = if update { "updated" } else { "created" };
    ctx.out.ok(
        &format!(
            "{done} rule {} ({} → {}, {})",
            entity.display(),
            fqn(&doc["trigger"]),
            fqn(&doc["action"]),
            str_field(&doc, "status")
        ),
        || doc.clone(),
    );
    Ok(())
}

async fn set_status(ctx: &Ctx, args: NameArg, status: &str) -> anyhow::Result<()> {
    let entity = rule_ref(&args.name)?;
    let verb = if status == "active" {
        "enable"
    } else {
        "disable"
    };
    let doc = ctx
        .client()?
        .post(&entity.segments("rules"), &json!({ "status": status }))
        .await
        .with_context(|| format!("cannot {verb} rule {}", entity.display()))?;
    ctx.out
        .ok(&format!("{verb}d rule {}", entity.display()), || {
            doc.clone()
        });
    Ok(())
}

async fn get(ctx: &Ctx, args: NameArg, status_only: bool) -> anyhow::Result<()> {
    let entity = rule_ref(&args.name)?;
    let doc = super::get_entity(ctx, &entity, "rules", "rule").await?;
    if status_only {
        let status = str_field(&doc, "status").to_string();
        ctx.out.ok(
            &format!("rule {} is {status}", entity.display()),
            || json!({"name": doc["name"], "status": status}),
        );
    } else {
        ctx.out.value(&doc);
    }
    Ok(())
}

async fn list(ctx: &Ctx, args: ListWindow) -> anyhow::Result<()> {
    let docs = super::list_collection(ctx, "rules", &args).await?;
    let rows = docs
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                format!("/{}/{}", str_field(r, "namespace"), str_field(r, "name")),
                str_field(r, "status").to_string(),
                fqn(&r["trigger"]),
                fqn(&r["action"]),
                r["updated"]
                    .as_u64()
                    .map(format_ms)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    ctx.out.table(
        &["RULE", "STATUS", "TRIGGER", "ACTION", "UPDATED"],
        rows,
        || docs.clone(),
    );
    Ok(())
}

async fn delete(ctx: &Ctx, args: NameArg) -> anyhow::Result<()> {
    let entity = rule_ref(&args.name)?;
    super::delete_entity(ctx, &entity, "rules", "rule").await
}
