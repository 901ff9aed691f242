//! `wisp namespace list`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::Ctx;
use crate::client::Client;

#[derive(Debug, Args)]
pub struct NamespaceArgs {
    #[command(subcommand)]
    pub command: NamespaceCommand,
}

#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// List the namespaces your key gives access to.
    #[command(visible_alias = "ls")]
    List,
}

pub async fn run(ctx: &Ctx, args: NamespaceArgs) -> anyhow::Result<()> {
    match args.command {
        NamespaceCommand::List => {
            let client = ctx.client()?;
            let list = namespaces(&client).await?;
            let rows = list.iter().map(|n| vec![n.clone()]).collect();
            ctx.out.table(&["NAMESPACE"], rows, || {
                Value::Array(list.iter().cloned().map(Value::String).collect())
            });
            Ok(())
        }
    }
}

/// `GET /api/v1/namespaces`: OpenWhisk answers an array of names (objects with `name` are
/// accepted too).
pub async fn namespaces(client: &Client) -> anyhow::Result<Vec<String>> {
    let body = client
        .get(&["api", "v1", "namespaces"], &[])
        .await
        .context("cannot list namespaces")?;
    let Some(items) = body.as_array() else {
        bail!("the server's namespace list is not a JSON array: {body}");
    };
    Ok(items
        .iter()
        .filter_map(|n| match n {
            Value::String(s) => Some(s.clone()),
            other => other
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
        .collect())
}

/// The caller's own namespace (the first one listed).
pub async fn own_namespace(client: &Client) -> anyhow::Result<String> {
    namespaces(client)
        .await?
        .into_iter()
        .next()
        .context("the server lists no namespace for this key")
}
