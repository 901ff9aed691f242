//! `wisp package create|update|get|list|delete|bind`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::{AnnotationArgs, EntityRef, ListWindow, ParamArgs, format_ms, key_values, str_field};
use crate::Ctx;

#[derive(Debug, Args)]
pub struct PackageArgs {
    #[command(subcommand)]
    pub command: PackageCommand,
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Create a package (default parameters shared by its actions).
    Create(PutArgs),
    /// Update a package's parameters, annotations or sharing.
    Update(PutArgs),
    /// Print a package's document.
    Get(NameArg),
    /// List packages.
    #[command(visible_alias = "ls")]
    List(ListWindow),
    /// Delete a package (it must hold no actions).
    Delete(NameArg),
    /// Bind a package (yours, or another namespace's shared one) under a new name with
    /// parameters of your own: package < binding < action < invocation.
    Bind(BindArgs),
}

#[derive(Debug, Args)]
pub struct BindArgs {
    /// The package to bind (`name` or `/namespace/name`).
    pub package: String,
    /// The binding's name (in your namespace).
    pub name: String,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub annotations: AnnotationArgs,
}

/// `--shared yes|no`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shared {
    #[value(alias = "true")]
    Yes,
    #[value(alias = "false")]
    No,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Package name.
    pub name: String,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub annotations: AnnotationArgs,
    /// Share the package read-only with every namespace (yes) or keep it private (no).
    #[arg(long, value_enum)]
    pub shared: Option<Shared>,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// Package name.
    pub name: String,
}

pub async fn run(ctx: &Ctx, args: PackageArgs) -> anyhow::Result<()> {
    match args.command {
        PackageCommand::Create(a) => put(ctx, a, false).await,
        PackageCommand::Update(a) => put(ctx, a, true).await,
        PackageCommand::Get(a) => get(ctx, a).await,
        PackageCommand::List(a) => list(ctx, a).await,
        PackageCommand::Delete(a) => delete(ctx, a).await,
        PackageCommand::Bind(a) => bind(ctx, a).await,
    }
}

async fn bind(ctx: &Ctx, args: BindArgs) -> anyhow::Result<()> {
    let target = package_ref(&args.package)?;
    let binding = package_ref(&args.name)?;
    let body = json!({
        "name": binding.qname.name,
        "binding": {"namespace": target.namespace(), "name": target.qname.name},
        "parameters": key_values(&args.params.to_map()?),
        "annotations": key_values(&args.annotations.to_map()?),
    });
    let doc = ctx
        .client()?
        .put(
            &binding.segments("packages"),
            &[("overwrite", "false".to_string())],
            &body,
        )
        .await
        .with_context(|| {
            format!(
                "cannot bind package {} as {}",
                target.display(),
                binding.display()
            )
        })?;
    ctx.out.ok(
        &format!(
            "created binding {} to package {}",
            binding.display(),
            target.display()
        ),
        || doc.clone(),
    );
    Ok(())
}

/// A package name: `name` or `/ns/name` (packages do not nest).
fn package_ref(raw: &str) -> anyhow::Result<EntityRef> {
    let entity = EntityRef::parse(raw, "package")?;
    if entity.qname.package.is_some() {
        bail!("invalid package name {raw:?}: packages do not nest (use NAME or /NAMESPACE/NAME)");
    }
    Ok(entity)
}

async fn put(ctx: &Ctx, args: PutArgs, update: bool) -> anyhow::Result<()> {
    let entity = package_ref(&args.name)?;
    let mut body = Map::new();
    body.insert("name".into(), json!(entity.qname.name));
    if !args.params.is_empty() || !update {
        body.insert("parameters".into(), key_values(&args.params.to_map()?));
    }
    if !args.annotations.is_empty() || !update {
        body.insert(
            "annotations".into(),
            key_values(&args.annotations.to_map()?),
        );
    }
    if let Some(shared) = args.shared {
        body.insert("publish".into(), json!(shared == Shared::Yes));
    } else if !update {
        body.insert("publish".into(), json!(false));
    }
    let client = ctx.client()?;
    let verb = if update { "update" } else { "create" };
    let doc = client
        .put(
            &entity.segments("packages"),
            &[("overwrite", update.to_string())],
            &Value::Object(body),
        )
        .await
        .with_context(|| format!("cannot {verb} package {}", entity.display()))?;
    let done = if update { "updated" } else { "created" };
    ctx.out
        .ok(&format!("{done} package {}", entity.display()), || {
            doc.clone()
        });
    Ok(())
}

async fn get(ctx: &Ctx, args: NameArg) -> anyhow::Result<()> {
    let entity = package_ref(&args.name)?;
    let doc = super::get_entity(ctx, &entity, "packages", "package").await?;
    ctx.out.value(&doc);
    Ok(())
}

async fn list(ctx: &Ctx, args: ListWindow) -> anyhow::Result<()> {
    let docs = super::list_collection(ctx, "packages", &args).await?;
    let rows = docs
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let binding = p
                .get("binding")
                .filter(|b| b.is_object() && b.get("name").is_some())
                .map(|b| format!("/{}/{}", str_field(b, "namespace"), str_field(b, "name")))
                .unwrap_or_else(|| "-".into());
            vec![
                format!("/{}/{}", str_field(p, "namespace"), str_field(p, "name")),
                if p["publish"].as_bool() == Some(true) {
                    "shared"
                } else {
                    "private"
                }
                .into(),
                binding,
                str_field(p, "version").to_string(),
                p["updated"]
                    .as_u64()
                    .map(format_ms)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    ctx.out.table(
        &["PACKAGE", "ACCESS", "BINDING", "VERSION", "UPDATED"],
        rows,
        || docs.clone(),
    );
    Ok(())
}

async fn delete(ctx: &Ctx, args: NameArg) -> anyhow::Result<()> {
    let entity = package_ref(&args.name)?;
    super::delete_entity(ctx, &entity, "packages", "package").await
}
