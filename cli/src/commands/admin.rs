//! `wisp admin user add|delete|list|limits`: the admin API, guarded by the admin key
//! (`WISP_ADMIN_KEY`, sent as `Authorization: Bearer ...`).
//!
//! `limits NAME` reads a user's namespace limits (`GET /admin/v1/users/{name}/limits`); with
//! `--invocations-per-minute`, `--concurrent-invocations` or `--fires-per-minute` it sets those
//! (`PUT`, only the keys given; `default` sends `null`, which returns a limit to the server's
//! default) and prints the effective values the server answers.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

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
    /// Print a user's namespace limits, or set them with the flags (and print the result).
    Limits(LimitsArgs),
}

/// `wisp admin user limits NAME [--invocations-per-minute N] ...`. The values have no `env`:
/// a variable left in the environment would silently rewrite a user's limits on every read.
#[derive(Debug, Args)]
pub struct LimitsArgs {
    /// User name.
    pub name: String,
    /// Invokes per minute the namespace may start (N ≥ 1, or `default`).
    #[arg(long, value_name = "N|default", allow_negative_numbers = true, value_parser = parse_limit)]
    pub invocations_per_minute: Option<Limit>,
    /// Activations of the namespace that may run at once (N ≥ 1, or `default`).
    #[arg(long, value_name = "N|default", allow_negative_numbers = true, value_parser = parse_limit)]
    pub concurrent_invocations: Option<Limit>,
    /// Trigger fires per minute (N ≥ 1, or `default`).
    #[arg(long, value_name = "N|default", allow_negative_numbers = true, value_parser = parse_limit)]
    pub fires_per_minute: Option<Limit>,
}

/// A limit to set: a number, or back to the server's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Value(u64),
    Default,
}

/// The limits in the order they are printed, with their JSON names.
const LIMIT_KEYS: [&str; 3] = [
    "invocationsPerMinute",
    "concurrentInvocations",
    "firesPerMinute",
];

/// `N` (a whole number ≥ 1) or `default`.
fn parse_limit(raw: &str) -> Result<Limit, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("default") {
        return Ok(Limit::Default);
    }
    match raw.parse::<i128>() {
        Ok(n) if n < 1 => Err("a limit must be at least 1 (or `default`)".into()),
        Ok(n) => u64::try_from(n)
            .map(Limit::Value)
            .map_err(|_| format!("{raw} is too large")),
        Err(_) => Err(format!(
            "{raw:?} is not a limit: give a whole number ≥ 1, or `default`"
        )),
    }
}

impl LimitsArgs {
    /// The `PUT` body of the flags given, or `None` when none was (a read).
    pub fn body(&self) -> Option<Value> {
        let mut body = Map::new();
        for (key, limit) in LIMIT_KEYS.iter().zip([
            self.invocations_per_minute,
            self.concurrent_invocations,
            self.fires_per_minute,
        ]) {
            match limit {
                Some(Limit::Value(n)) => body.insert((*key).into(), json!(n)),
                Some(Limit::Default) => body.insert((*key).into(), Value::Null),
                None => None,
            };
        }
        (!body.is_empty()).then_some(Value::Object(body))
    }
}

/// The rows of the limits table: the three known limits first, then whatever else the server
/// reports, in its order.
fn limit_rows(doc: &Value) -> Vec<Vec<String>> {
    let show = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows: Vec<Vec<String>> = LIMIT_KEYS
        .iter()
        .filter_map(|k| doc.get(*k).map(|v| vec![(*k).to_string(), show(v)]))
        .collect();
    if let Some(map) = doc.as_object() {
        rows.extend(
            map.iter()
                .filter(|(k, _)| !LIMIT_KEYS.contains(&k.as_str()))
                .map(|(k, v)| vec![k.clone(), show(v)]),
        );
    }
    rows
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
        UserCommand::Limits(args) => {
            wisp_core::names::validate(&args.name)
                .with_context(|| format!("invalid user name {:?}", args.name))?;
            let segments = ["admin", "v1", "users", args.name.as_str(), "limits"];
            let doc = match args.body() {
                Some(body) => client
                    .put(&segments, &[], &body)
                    .await
                    .with_context(|| format!("cannot set the limits of user {}", args.name))?,
                None => client
                    .get(&segments, &[])
                    .await
                    .with_context(|| format!("cannot get the limits of user {}", args.name))?,
            };
            ctx.out
                .table(&["LIMIT", "VALUE"], limit_rows(&doc), || doc.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Result<LimitsArgs, clap::Error> {
        let mut full = vec!["wisp", "admin", "user", "limits"];
        full.extend_from_slice(args);
        let cli = crate::Cli::try_parse_from(full)?;
        let crate::Command::Admin(AdminArgs {
            command:
                AdminCommand::User {
                    command: UserCommand::Limits(l),
                },
            ..
        }) = cli.command
        else {
            panic!("not admin user limits")
        };
        Ok(l)
    }

    #[test]
    fn limits_alone_is_a_read_and_flags_are_a_partial_write() {
        let l = parse(&["alice"]).unwrap();
        assert_eq!(l.name, "alice");
        assert_eq!(l.body(), None);
        let l = parse(&["alice", "--invocations-per-minute", "120"]).unwrap();
        assert_eq!(l.body(), Some(json!({"invocationsPerMinute": 120})));
        let l = parse(&[
            "alice",
            "--concurrent-invocations",
            "30",
            "--fires-per-minute",
            "default",
            "--invocations-per-minute",
            "1",
        ])
        .unwrap();
        assert_eq!(
            l.body(),
            Some(json!({
                "invocationsPerMinute": 1,
                "concurrentInvocations": 30,
                "firesPerMinute": null,
            }))
        );
    }

    #[test]
    fn bad_limits_are_refused_by_the_parser() {
        for bad in ["0", "-1", "1.5", "many", ""] {
            let err = parse(&["alice", "--invocations-per-minute", bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--invocations-per-minute"), "{bad:?}: {err}");
        }
        for bad in ["0", "-2"] {
            let err = parse(&["alice", "--concurrent-invocations", bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains("at least 1"), "{bad}: {err}");
        }
        assert!(parse(&[]).is_err(), "the user name is required");
        assert_eq!(parse_limit("DEFAULT"), Ok(Limit::Default));
        assert_eq!(parse_limit(" 7 "), Ok(Limit::Value(7)));
    }

    #[test]
    fn the_table_lists_known_limits_first() {
        let doc = json!({
            "firesPerMinute": 60,
            "activationRetention": 10000,
            "invocationsPerMinute": 600,
            "concurrentInvocations": 100,
        });
        assert_eq!(
            limit_rows(&doc),
            [
                ["invocationsPerMinute", "600"],
                ["concurrentInvocations", "100"],
                ["firesPerMinute", "60"],
                ["activationRetention", "10000"],
            ]
        );
    }
}
