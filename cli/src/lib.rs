//! The `wisp` command-line interface, and `wisp up` (the all-in-one local platform).
//!
//! Verbs follow `wsk` and OpenServerless `ops` so their users feel at home: `property`,
//! `action`, `activation`, `package`, `namespace`, `url`, `admin`, the `invoke NAME k=v` shortcut,
//! and `completions`. Each verb group is one file in [`commands`].
//!
//! Costs and lifetimes:
//! - [`Cli`] is parsed once per process by `main.rs`; [`run`] dispatches it.
//! - A remote verb builds one [`client::Client`] (a reqwest pool) from [`config::Settings`]
//!   (flags > `WISP_APIHOST`/`WISP_AUTH` > `~/.wskprops` or `$WSK_CONFIG_FILE`) and drops it on exit.
//! - `wisp up` ([`commands::up`]) is the only long-lived command: it holds N
//!   `wisp_runtime` servers (one wasmtime engine and code cache each) and one
//!   `wisp_scheduler::Scheduler` (embedded store under the data dir) until Ctrl-C or SIGTERM.
//!
//! Errors: every command returns `anyhow::Result`; `main.rs` prints the cause chain on one line
//! (`error: ...`, see [`output::print_error`]) and exits with status 1.

pub mod build;
pub mod client;
pub mod commands;
pub mod config;
pub mod output;

use clap::{Args, Parser, Subcommand};

use crate::client::{Auth, Client};
use crate::config::Settings;
use crate::output::Output;

/// wisp: OpenWhisk-style serverless functions as WebAssembly modules.
#[derive(Debug, Parser)]
#[command(
    name = "wisp",
    version,
    about = "wisp: OpenWhisk-style serverless actions as WebAssembly modules",
    long_about = "wisp: OpenWhisk-style serverless actions as WebAssembly modules.\n\n\
        Start a local platform with `wisp up`, then:\n  \
        wisp action create hello hello.wasm\n  \
        wisp invoke hello name=World\n  \
        wisp activation logs --last",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb accepts (anywhere on the command line).
#[derive(Clone, Debug, Default, Args)]
pub struct GlobalArgs {
    /// API host (e.g. http://127.0.0.1:3233); overrides WISP_APIHOST and APIHOST in the config.
    /// `property get|unset --apihost` take no value.
    #[arg(long, global = true, help_heading = "Global options", value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub apihost: Option<String>,
    /// Credentials UUID:KEY; overrides WISP_AUTH and AUTH in the config. `wisp up --auth` fixes
    /// the guest key. `property get|unset --auth` take no value.
    #[arg(short = 'u', long, global = true, help_heading = "Global options", value_name = "UUID:KEY", num_args = 0..=1, default_missing_value = "")]
    pub auth: Option<String>,
    /// Print JSON for scripts (lists as arrays) instead of tables and messages.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler and N runtimes in this process (the all-in-one local platform).
    Up(commands::up::UpArgs),
    /// Read and write the CLI config (APIHOST, AUTH) in ~/.wskprops or $WSK_CONFIG_FILE.
    Property(commands::property::PropertyArgs),
    /// Create, update, get, list, delete and invoke actions.
    Action(commands::action::ActionArgs),
    /// Invoke an action and print its result: `wisp invoke NAME key=value ...` (like `ops invoke`).
    Invoke(commands::invoke::InvokeArgs),
    /// List activations, read their records, logs and results, and poll for new ones.
    #[command(visible_alias = "activations")]
    Activation(commands::activation::ActivationArgs),
    /// The logs of an activation (shortcut for `activation logs`, like `ops logs`).
    Logs(commands::activation::IdArgs),
    /// The result of an activation (shortcut for `activation result`, like `ops result`).
    Result(commands::activation::IdArgs),
    /// Create, update, get, list, delete and bind packages.
    Package(commands::package::PackageArgs),
    /// Create, update, get, list, delete and fire triggers (`--feed alarm` for periodic ones).
    Trigger(commands::trigger::TriggerArgs),
    /// Create, enable, disable, get, list and delete rules (trigger → action).
    Rule(commands::rule::RuleArgs),
    /// List your namespaces.
    Namespace(commands::namespace::NamespaceArgs),
    /// Print the web URL of an action.
    Url(commands::url::UrlArgs),
    /// Manage users (needs the admin key in WISP_ADMIN_KEY).
    Admin(commands::admin::AdminArgs),
    /// Load test: N clients invoking for T seconds (optionally beside a noisy second tenant);
    /// throughput, latency percentiles, and an audit of the records (pruned vs lost).
    Bench(commands::bench::BenchArgs),
    /// Print a shell completion script: `wisp completions bash > /etc/bash_completion.d/wisp`.
    Completions(commands::completions::CompletionsArgs),
}

/// What a command needs from the process: the global flags and the output style.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub global: GlobalArgs,
    pub out: Output,
}

impl Ctx {
    pub fn new(global: GlobalArgs) -> Ctx {
        let out = Output { json: global.json };
        Ctx { global, out }
    }

    /// The resolved API host and credentials (flags > env > config file).
    pub fn settings(&self) -> anyhow::Result<Settings> {
        Settings::resolve(self.global.apihost.as_deref(), self.global.auth.as_deref())
    }

    /// A client for the namespace API: needs both an API host and a `uuid:key`.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.check_flag_values()?;
        let settings = self.settings()?;
        let apihost = settings.require_apihost()?;
        let auth = Auth::basic(settings.require_auth()?)?;
        Ok(Client::new(apihost, auth)?)
    }

    /// `--apihost`/`--auth` given without a value only make sense for `property get|unset`.
    pub fn check_flag_values(&self) -> anyhow::Result<()> {
        if self.global.apihost.as_deref() == Some("") {
            anyhow::bail!("--apihost needs a value (URL)");
        }
        if self.global.auth.as_deref() == Some("") {
            anyhow::bail!("--auth needs a value (UUID:KEY)");
        }
        Ok(())
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx::new(cli.global);
    use commands::*;
    match cli.command {
        Command::Up(args) => up::run(&ctx, args).await,
        Command::Property(args) => property::run(&ctx, args),
        Command::Action(args) => action::run(&ctx, args).await,
        Command::Invoke(args) => invoke::run(&ctx, args).await,
        Command::Activation(args) => activation::run(&ctx, args).await,
        Command::Logs(args) => activation::logs(&ctx, args).await,
        Command::Result(args) => activation::result(&ctx, args).await,
        Command::Package(args) => package::run(&ctx, args).await,
        Command::Trigger(args) => trigger::run(&ctx, args).await,
        Command::Rule(args) => rule::run(&ctx, args).await,
        Command::Namespace(args) => namespace::run(&ctx, args).await,
        Command::Url(args) => url::run(&ctx, args).await,
        Command::Admin(args) => admin::run(&ctx, args).await,
        Command::Bench(args) => bench::run(&ctx, args).await,
        Command::Completions(args) => completions::run(args),
    }
}

/// The tracing filter `main.rs` installs when `RUST_LOG` is unset: `wisp up` logs its own
/// progress at `info` and the servers' warnings; every other verb only warnings (its output is
/// the answer, not logs). `RUST_LOG=info` shows the servers' logs too.
pub fn default_log_filter(cli: &Cli) -> &'static str {
    match cli.command {
        Command::Up(_) => "warn,wisp_cli=info",
        _ => "warn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn params_come_in_pairs_and_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "wisp", "action", "invoke", "hello", "-p", "name", "World", "--param", "n", "3",
            "--json", "-r",
        ])
        .unwrap();
        assert!(cli.global.json);
        let Command::Action(a) = cli.command else {
            panic!("not an action command")
        };
        let commands::action::ActionCommand::Invoke(inv) = a.command else {
            panic!("not invoke")
        };
        assert_eq!(inv.params.param, ["name", "World", "n", "3"]);
        assert!(inv.result);
        let cli = Cli::try_parse_from(["wisp", "property", "get", "--apihost"]).unwrap();
        assert_eq!(cli.global.apihost.as_deref(), Some(""));
        let cli = Cli::try_parse_from(["wisp", "--apihost", "h:1", "namespace", "list"]).unwrap();
        assert_eq!(cli.global.apihost.as_deref(), Some("h:1"));
    }
}
