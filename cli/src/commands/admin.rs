//! `wisp admin user add|delete|list`: the admin API, guarded by the admin key
//! (`WISP_ADMIN_KEY`, sent as `Authorization: Bearer ...`).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::str_field;
use crate::Ctx;
use crate::client::{Auth, Client};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin API key.
    #[arg(
        long = "admin-key",
        env = "WISP_ADMIN_KEY",
        hide_env_values = true,
        global = true
    )]
    pub admin_key: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage users (each user is one namespace with one `uuid:key`).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and its namespace; prints the new UUID:KEY on its own line.
    Add {
        /// User (and namespace) name.
        name: String,
        /// On Kubernetes: run N runtime pods in the user's namespace that only serve this user.
        #[arg(long = "dedicated-runtimes", value_name = "N", default_value_t = 0)]
        dedicated_runtimes: u32,
    },
    /// Delete a user, with its namespace's entities and activations.
    Delete {
        /// User name.
        name: String,
    },
    /// List users.
    #[command(visible_alias = "ls")]
    List,
}

pub async fn run(ctx: &Ctx, args: AdminArgs) -> anyhow::Result<()> {
    ctx.check_flag_values()?;
    let Some(key) = args.admin_key.filter(|k| !k.is_empty()) else {
        bail!("the admin commands need the admin key: set WISP_ADMIN_KEY (or pass --admin-key)");
    };
    let settings = ctx.settings()?;
    let client = Client::new(settings.require_apihost()?, Auth::Bearer(key))?;
    let AdminCommand::User { command } = args.command;
    match command {
        UserCommand::Add {
            name,
            dedicated_runtimes,
        } => {
            wisp_core::names::validate(&name)
                .with_context(|| format!("invalid user name {name:?}"))?;
            let body = client
                .post(
                    &["admin", "v1", "users"],
                    &json!({ "name": name, "dedicatedRuntimes": dedicated_runtimes }),
                )
                .await
                .with_context(|| format!("cannot add user {name}"))?;
            let auth = str_field(&body, "auth");
            if ctx.out.json {
                ctx.out.value(&body);
            } else {
                crate::output::note(&format!(
                    "created user {name} (namespace {}); its key follows",
                    str_field(&body, "namespace")
                ));
                ctx.out.line(auth);
            }
        }
        UserCommand::Delete { name } => {
            let body = client
                .delete(&["admin", "v1", "users", &name])
                .await
                .with_context(|| format!("cannot delete user {name}"))?;
            ctx.out.ok(&format!("deleted user {name}"), || body.clone());
        }
        UserCommand::List => {
            let body = client
                .get(&["admin", "v1", "users"], &[])
                .await
                .context("cannot list users")?;
            let rows = body
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| {
                    vec![
                        str_field(u, "name").to_string(),
                        str_field(u, "namespace").to_string(),
                        str_field(u, "uuid").to_string(),
                    ]
                })
                .collect();
            ctx.out
                .table(&["USER", "NAMESPACE", "UUID"], rows, || body.clone());
        }
    }
    Ok(())
}
