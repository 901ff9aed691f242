//! `wisp property set|get|unset`: the `APIHOST` and `AUTH` lines of `~/.wskprops`
//! (or `$WSK_CONFIG_FILE`), other lines untouched.
//!
//! As in `wsk`, the values come from the global flags: `wisp property set --apihost URL
//! --auth UUID:KEY`; `get` and `unset` take `--apihost` / `--auth` without a value.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::Ctx;
use crate::config::{self, Props, Source};

#[derive(Debug, Args)]
pub struct PropertyArgs {
    #[command(subcommand)]
    pub command: PropertyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PropertyCommand {
    /// Save --apihost URL and/or --auth UUID:KEY in the config file.
    Set,
    /// Print the settings in effect (all, or only --apihost / --auth).
    Get,
    /// Remove --apihost and/or --auth from the config file.
    Unset,
}

pub fn run(ctx: &Ctx, args: PropertyArgs) -> anyhow::Result<()> {
    let apihost = ctx.global.apihost.as_deref();
    let auth = ctx.global.auth.as_deref();
    match args.command {
        PropertyCommand::Set => {
            if apihost.is_none() && auth.is_none() {
                bail!("nothing to set: give --apihost URL and/or --auth UUID:KEY");
            }
            ctx.check_flag_values()?;
            let mut props = Props::load(&config::config_path())?;
            if let Some(h) = apihost {
                config::normalize_apihost(h)?;
                props.set(config::APIHOST, h);
            }
            if let Some(a) = auth {
                crate::client::Auth::basic(a)?;
                props.set(config::AUTH, a);
            }
            props.save()?;
            if ctx.out.json {
                ctx.out.value(&json!({
                    "apihost": apihost,
                    "auth": auth.map(|_| "set"),
                    "config": props.path(),
                }));
                return Ok(());
            }
            if let Some(h) = apihost {
                ctx.out.ok(&format!("API host set to {h}"), || json!(null));
            }
            if auth.is_some() {
                ctx.out
                    .ok("auth key set; `wisp property get --auth` shows it", || {
                        json!(null)
                    });
            }
            Ok(())
        }
        PropertyCommand::Get => {
            let settings = ctx_settings_without_flags()?;
            let all = apihost.is_none() && auth.is_none();
            let host = settings.apihost.as_ref().map(|(h, s)| (h.clone(), *s));
            let key = settings.auth.as_ref().map(|(a, s)| (a.clone(), *s));
            if ctx.out.json {
                let mut obj = serde_json::Map::new();
                if all || apihost.is_some() {
                    obj.insert("apihost".into(), json!(host.as_ref().map(|h| &h.0)));
                }
                if all || auth.is_some() {
                    obj.insert("auth".into(), json!(key.as_ref().map(|k| &k.0)));
                }
                if all {
                    obj.insert("config".into(), json!(settings.config_file));
                }
                ctx.out.value(&serde_json::Value::Object(obj));
                return Ok(());
            }
            let show = |label: &str, v: &Option<(String, Source)>| {
                let text = match v {
                    Some((value, Source::File)) => value.clone(),
                    Some((value, Source::Env)) => format!("{value}  (from the environment)"),
                    Some((value, Source::Flag)) => value.clone(),
                    None => "(not set)".to_string(),
                };
                ctx.out.line(&format!("{label:<16}{text}"));
            };
            if all || apihost.is_some() {
                show("whisk API host", &host);
            }
            if all || auth.is_some() {
                show("whisk auth", &key);
            }
            if all {
                ctx.out.line(&format!(
                    "{:<16}{}",
                    "config file",
                    settings.config_file.display()
                ));
                ctx.out
                    .line(&format!("{:<16}{}", "wisp CLI", env!("CARGO_PKG_VERSION")));
            }
            Ok(())
        }
        PropertyCommand::Unset => {
            if apihost.is_none() && auth.is_none() {
                bail!("nothing to unset: give --apihost and/or --auth");
            }
            let mut props = Props::load(&config::config_path())?;
            if apihost.is_some() {
                props.unset(config::APIHOST);
            }
            if auth.is_some() {
                props.unset(config::AUTH);
            }
            props.save()?;
            if ctx.out.json {
                let unset: Vec<&str> = [apihost.map(|_| "apihost"), auth.map(|_| "auth")]
                    .into_iter()
                    .flatten()
                    .collect();
                ctx.out.value(&json!({ "unset": unset }));
                return Ok(());
            }
            if apihost.is_some() {
                ctx.out.ok("API host unset", || json!(null));
            }
            if auth.is_some() {
                ctx.out.ok("auth key unset", || json!(null));
            }
            Ok(())
        }
    }
}

/// `get` shows what other commands would use, minus the flags (which select what to show).
fn ctx_settings_without_flags() -> anyhow::Result<config::Settings> {
    config::Settings::resolve(None, None)
}
