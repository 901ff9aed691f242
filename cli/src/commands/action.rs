//! `wisp action create|update|get|list|delete|invoke`, with `wsk`'s flags.
//!
//! `create NAME FILE.wasm` uploads the module (base64, kind `wasm`); `create NAME DIR` builds a
//! Cargo project for `wasm32-wasip1` first (with a spinner while cargo runs). A file that is not a
//! WebAssembly module (no `\0asm` magic) is refused before any request.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{
    AnnotationArgs, EntityRef, ParamArgs, annotation, collection_segments, format_ms, key_values,
    split_namespace, str_field,
};
use crate::Ctx;
use crate::client::{Answer, Client, api_error};

/// The wasm target actions are built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

#[derive(Debug, Args)]
pub struct ActionArgs {
    #[command(subcommand)]
    pub command: ActionCommand,
}

#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// Create an action from a .wasm module or a Cargo project directory.
    Create(PutArgs),
    /// Update an action (its code when FILE is given; parameters, annotations, limits).
    Update(PutArgs),
    /// Print an action's document (or its web URL with --url).
    Get(GetArgs),
    /// List actions.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Delete an action.
    Delete(NameArg),
    /// Invoke an action (non-blocking unless --blocking or --result).
    Invoke(InvokeArgs),
}

/// `--web true|false|raw` (also `yes|no`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Web {
    #[value(alias = "yes")]
    True,
    #[value(alias = "no")]
    False,
    Raw,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Action name: NAME, PACKAGE/NAME or /NAMESPACE/[PACKAGE/]NAME.
    pub name: String,
    /// The .wasm module, or a directory holding a Cargo project to build for wasm32-wasip1.
    pub artifact: Option<PathBuf>,
    /// Make the action a sequence of these actions (comma-separated).
    #[arg(long, value_name = "ACTION,ACTION,...", conflicts_with = "artifact")]
    pub sequence: Option<String>,
    /// Action kind; only `wasm` (the default) is accepted for a module.
    #[arg(long)]
    pub kind: Option<String>,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub annotations: AnnotationArgs,
    /// Timeout in milliseconds (100..=300000; default 60000).
    #[arg(short = 't', long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Memory limit in MB: the cap on the module's linear memory (1..=2048; default 256).
    #[arg(short = 'm', long, value_name = "MB")]
    pub memory: Option<u64>,
    /// Log size limit in MB (0..=10; default 10).
    #[arg(short = 'l', long, value_name = "MB")]
    pub logsize: Option<u64>,
    /// Activations that may share one capacity slot (default 1).
    #[arg(short = 'c', long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// Expose the action at /api/v1/web/...: true, false or raw.
    #[arg(long, value_enum)]
    pub web: Option<Web>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Action name.
    pub name: String,
    /// Print only the action's web URL.
    #[arg(long)]
    pub url: bool,
    /// Include the base64 code in the document.
    #[arg(long)]
    pub code: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the actions of this package.
    pub package: Option<String>,
    /// At most this many actions (default 30, max 200).
    #[arg(short = 'l', long, default_value_t = 30)]
    pub limit: u32,
    /// Skip this many actions.
    #[arg(short = 's', long, default_value_t = 0)]
    pub skip: u32,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// Entity name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Action name.
    pub name: String,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Wait for the activation to finish and print its record.
    #[arg(short = 'b', long)]
    pub blocking: bool,
    /// Wait and print only the result (implies --blocking).
    #[arg(short = 'r', long)]
    pub result: bool,
}

pub async fn run(ctx: &Ctx, args: ActionArgs) -> anyhow::Result<()> {
    match args.command {
        ActionCommand::Create(a) => put(ctx, a, false).await,
        ActionCommand::Update(a) => put(ctx, a, true).await,
        ActionCommand::Get(a) => get(ctx, a).await,
        ActionCommand::List(a) => list(ctx, a).await,
        ActionCommand::Delete(a) => delete(ctx, a).await,
        ActionCommand::Invoke(a) => {
            let name = a.name.clone();
            let params = a.params.to_map()?;
            invoke(ctx, &name, params, a.blocking || a.result, a.result).await
        }
    }
}

async fn put(ctx: &Ctx, args: PutArgs, update: bool) -> anyhow::Result<()> {
    let entity = EntityRef::parse(&args.name, "action")?;
    if let Some(kind) = &args.kind
        && kind != "wasm"
        && !(kind == "sequence" && args.sequence.is_some())
    {
        bail!("kind {kind:?} is not supported: wisp actions are WebAssembly modules (kind wasm)");
    }
    // Local checks first: a missing or non-wasm file fails before any request.
    let mut module_len = None;
    let exec = match (&args.artifact, &args.sequence) {
        (Some(path), _) => {
            let module = load_module(path)?;
            module_len = Some(module.len());
            Some(json!({
                "kind": "wasm",
                "code": base64::engine::general_purpose::STANDARD.encode(&module),
                "binary": true,
            }))
        }
        (None, Some(seq)) => Some(sequence_exec(ctx, seq).await?),
        (None, None) if update => None,
        (None, None) => bail!(
            "`action create` needs a .wasm file or a Cargo project directory \
             (or --sequence a,b,c)"
        ),
    };
    let mut body = Map::new();
    body.insert("name".into(), json!(entity.qname.name));
    if let Some(exec) = exec {
        body.insert("exec".into(), exec);
    }
    if !args.params.is_empty() || !update {
        body.insert("parameters".into(), key_values(&args.params.to_map()?));
    }
    let mut annotations = args.annotations.to_map()?;
    if let Some(web) = args.web {
        let (export, raw) = match web {
            Web::True => (true, false),
            Web::Raw => (true, true),
            Web::False => (false, false),
        };
        annotations.insert("web-export".into(), json!(export));
        annotations.insert("raw-http".into(), json!(raw));
        annotations.insert("final".into(), json!(export));
    }
    if !annotations.is_empty() || !update {
        body.insert("annotations".into(), key_values(&annotations));
    }
    let mut limits = Map::new();
    for (key, value) in [
        ("timeout", args.timeout),
        ("memory", args.memory),
        ("logs", args.logsize),
        ("concurrency", args.concurrency.map(u64::from)),
    ] {
        if let Some(v) = value {
            limits.insert(key.into(), json!(v));
        }
    }
    if !limits.is_empty() {
        body.insert("limits".into(), Value::Object(limits));
    }
    let client = ctx.client()?;
    let verb = if update { "update" } else { "create" };
    let doc = client
        .put(
            &entity.segments("actions"),
            &[("overwrite", update.to_string())],
            &Value::Object(body),
        )
        .await
        .map_err(|e| {
            let too_large = e.status() == Some(413);
            let err = anyhow::Error::new(e);
            match module_len {
                Some(n) if too_large => err.context(format!(
                    "the module is {} KB ({} KB as base64 in the request)",
                    n / 1024,
                    n.div_ceil(3) * 4 / 1024
                )),
                _ => err,
            }
        })
        .with_context(|| format!("cannot {verb} action {}", entity.display()))?;
    let done = if update { "updated" } else { "created" };
    ctx.out
        .ok(&format!("{done} action {}", entity.display()), || {
            doc.clone()
        });
    Ok(())
}

/// `exec` of a sequence: components as fully qualified names in the caller's namespace.
async fn sequence_exec(ctx: &Ctx, seq: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = seq
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        bail!("--sequence needs at least one action name");
    }
    let refs = parts
        .iter()
        .map(|p| EntityRef::parse(p, "sequence component"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let namespace = if refs.iter().all(|r| r.qname.namespace.is_some()) {
        String::new()
    } else {
        let client = ctx.client()?;
        super::namespace::own_namespace(&client).await?
    };
    let components: Vec<String> = refs.iter().map(|r| r.qname.path(&namespace)).collect();
    Ok(json!({"kind": "sequence", "components": components}))
}

/// The bytes of a module: a `.wasm` file, or a Cargo project directory built first.
pub fn load_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = if meta.is_dir() {
        if !path.join("Cargo.toml").is_file() {
            bail!(
                "{} is a directory without a Cargo.toml: give a .wasm file or a Cargo project",
                path.display()
            );
        }
        build_project(path)?
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    if !bytes.starts_with(b"\0asm") {
        bail!(
            "{} is not a WebAssembly module (it does not start with \\0asm): build your action \
             for {WASM_TARGET}, e.g. `cargo build --release --target {WASM_TARGET}`",
            file.display()
        );
    }
    Ok(bytes)
}

/// Runs `cargo build --release --target wasm32-wasip1` in `dir` with a spinner, and returns the
/// path of the binary's `.wasm` (found through `cargo metadata`).
fn build_project(dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    spinner.set_message(format!(
        "building {} for {WASM_TARGET} (cargo build --release)",
        dir.display()
    ));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let output = std::process::Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--message-format",
            "short",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output();
    spinner.finish_and_clear();
    let output = output.with_context(|| {
        format!(
            "cannot run {} to build {}",
            Path::new(&cargo).display(),
            dir.display()
        )
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The compiler's messages are the useful part: show them, then the one-line error.
        eprint!("{stderr}");
        let hint = if stderr.contains("may not be installed") {
            format!(" (run `rustup target add {WASM_TARGET}`)")
        } else {
            String::new()
        };
        bail!(
            "cargo build --release --target {WASM_TARGET} failed in {} ({}){hint}",
            dir.display(),
            output.status
        );
    }
    find_built_wasm(&cargo, dir)
}

/// Finds `<target_directory>/wasm32-wasip1/release/<bin>.wasm` of the package in `dir`.
fn find_built_wasm(cargo: &std::ffi::OsStr, dir: &Path) -> anyhow::Result<PathBuf> {
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let meta: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")?;
    let target_dir = PathBuf::from(str_field(&meta, "target_directory"));
    let release = target_dir.join(WASM_TARGET).join("release");
    let manifest =
        std::fs::canonicalize(dir.join("Cargo.toml")).unwrap_or_else(|_| dir.join("Cargo.toml"));
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let package = packages
        .iter()
        .find(|p| {
            let m = PathBuf::from(str_field(p, "manifest_path"));
            std::fs::canonicalize(&m).unwrap_or(m) == manifest
        })
        .or_else(|| packages.first())
        .with_context(|| format!("cargo metadata lists no package in {}", dir.display()))?;
    let mut candidates: Vec<String> = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .map(|t| str_field(t, "name").to_string())
        .collect();
    candidates.push(str_field(package, "name").replace('-', "_"));
    candidates.push(str_field(package, "name").to_string());
    candidates
        .iter()
        .map(|name| release.join(format!("{name}.wasm")))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "the build succeeded but no .wasm was found in {} (looked for {})",
                release.display(),
                candidates.join(".wasm, ") + ".wasm"
            )
        })
}

async fn get(ctx: &Ctx, args: GetArgs) -> anyhow::Result<()> {
    let entity = EntityRef::parse(&args.name, "action")?;
    let client = ctx.client()?;
    let query = if args.code {
        vec![("code", "true".to_string())]
    } else {
        vec![]
    };
    let doc = client
        .get(&entity.segments("actions"), &query)
        .await
        .with_context(|| format!("cannot get action {}", entity.display()))?;
    if args.url {
        let url = web_url(client.apihost(), &doc);
        if ctx.out.json {
            ctx.out.value(&json!({ "url": url }));
        } else {
            ctx.out.line(&url);
        }
    } else {
        ctx.out.value(&doc);
    }
    Ok(())
}

/// `{apihost}/api/v1/web/{ns}/{pkg|default}/{name}` of an action document.
pub fn web_url(apihost: &str, doc: &Value) -> String {
    let (ns, pkg) = split_namespace(str_field(doc, "namespace"));
    format!(
        "{apihost}/api/v1/web/{ns}/{}/{}",
        pkg.unwrap_or("default"),
        str_field(doc, "name")
    )
}

/// Whether an action document is web-exported.
pub fn is_web(doc: &Value) -> bool {
    matches!(annotation(doc, "web-export"), Some(Value::Bool(true)))
        || matches!(annotation(doc, "web-export"), Some(Value::String(s)) if s == "true")
}

async fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let query = [
        ("limit", args.limit.to_string()),
        ("skip", args.skip.to_string()),
    ];
    let docs = match &args.package {
        Some(pkg) => {
            let p = EntityRef::parse(pkg, "package")?;
            let segs = vec![
                "api",
                "v1",
                "namespaces",
                p.namespace(),
                "actions",
                &p.qname.name,
                "",
            ];
            client.get(&segs, &query).await
        }
        None => client.get(&collection_segments("actions"), &query).await,
    }
    .context("cannot list actions")?;
    let items = docs.as_array().cloned().unwrap_or_default();
    let rows = items
        .iter()
        .map(|a| {
            let kind = a
                .pointer("/exec/kind")
                .and_then(Value::as_str)
                .or_else(|| annotation(a, "exec").and_then(Value::as_str))
                .unwrap_or("-");
            vec![
                format!("/{}/{}", str_field(a, "namespace"), str_field(a, "name")),
                kind.to_string(),
                str_field(a, "version").to_string(),
                if a["publish"].as_bool() == Some(true) {
                    "shared"
                } else {
                    "private"
                }
                .into(),
                if is_web(a) { "yes" } else { "-" }.into(),
                a["updated"]
                    .as_u64()
                    .map(format_ms)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    ctx.out.table(
        &["ACTION", "KIND", "VERSION", "ACCESS", "WEB", "UPDATED"],
        rows,
        || docs.clone(),
    );
    Ok(())
}

async fn delete(ctx: &Ctx, args: NameArg) -> anyhow::Result<()> {
    let entity = EntityRef::parse(&args.name, "action")?;
    super::delete_entity(ctx, &entity, "actions", "action").await
}

/// Invokes `name` with `params`; prints the result (`result`), the activation (`blocking`) or
/// the activation id. A failed activation prints what the server sent and returns an error.
pub async fn invoke(
    ctx: &Ctx,
    name: &str,
    params: Map<String, Value>,
    blocking: bool,
    result: bool,
) -> anyhow::Result<()> {
    let entity = EntityRef::parse(name, "action")?;
    let client = ctx.client()?;
    let answer = send_invoke(&client, &entity, params, blocking, result).await?;
    let shown = entity.display();
    let id = answer
        .activation_id
        .clone()
        .or_else(|| {
            answer
                .body
                .get("activationId")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    match answer.status {
        StatusCode::ACCEPTED => {
            let msg = if blocking {
                format!(
                    "invoked {shown} with id {id}; it is still running \
                     (see `wisp activation get {id}`)"
                )
            } else {
                format!("invoked {shown} with id {id}")
            };
            ctx.out.ok(&msg, || json!({ "activationId": id }));
            Ok(())
        }
        s if s.is_success() => {
            if !result && !ctx.out.json {
                ctx.out
                    .ok(&format!("invoked {shown} with id {id}"), || Value::Null);
            }
            ctx.out.value(&answer.body);
            Ok(())
        }
        StatusCode::BAD_GATEWAY | StatusCode::INTERNAL_SERVER_ERROR
            if is_activation(&answer.body)
                || (result && answer.status == StatusCode::BAD_GATEWAY) =>
        {
            // The action ran and failed: show what it produced, then fail the command.
            ctx.out.value(&answer.body);
            match answer
                .body
                .pointer("/response/status")
                .and_then(Value::as_str)
            {
                Some(status) => bail!("activation {id} of {shown} ended with status '{status}'"),
                None => {
                    let why = match answer.body.get("error") {
                        Some(Value::String(s)) => format!(": {s}"),
                        Some(other) => format!(": {other}"),
                        None => String::new(),
                    };
                    bail!(
                        "activation {id} of {shown} failed (HTTP {}){why}",
                        answer.status.as_u16()
                    )
                }
            }
        }
        _ => Err(api_error(&answer)).with_context(|| format!("cannot invoke action {shown}")),
    }
}

async fn send_invoke(
    client: &Client,
    entity: &EntityRef,
    params: Map<String, Value>,
    blocking: bool,
    result: bool,
) -> anyhow::Result<Answer> {
    let query = [
        ("blocking", blocking.to_string()),
        ("result", result.to_string()),
    ];
    client
        .send(
            Method::POST,
            &entity.segments("actions"),
            &query,
            Some(&Value::Object(params)),
        )
        .await
        .with_context(|| format!("cannot invoke action {}", entity.display()))
}

fn is_activation(body: &Value) -> bool {
    body.get("activationId").is_some() && body.get("response").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_files_that_are_not_wasm() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.wasm");
        std::fs::write(&f, b"#!/bin/sh\necho hi\n").unwrap();
        let err = load_module(&f).unwrap_err().to_string();
        assert!(err.contains("is not a WebAssembly module"), "{err}");
        std::fs::write(&f, b"\0asm\x01\0\0\0").unwrap();
        assert_eq!(load_module(&f).unwrap(), b"\0asm\x01\0\0\0");
        let err = format!(
            "{:#}",
            load_module(&dir.path().join("missing.wasm")).unwrap_err()
        );
        assert!(
            err.contains("cannot read") && err.contains("No such file"),
            "{err}"
        );
        let err = load_module(dir.path()).unwrap_err().to_string();
        assert!(err.contains("without a Cargo.toml"), "{err}");
    }

    #[test]
    fn web_urls_use_default_package() {
        let doc = json!({"namespace": "guest", "name": "hello"});
        assert_eq!(
            web_url("http://h:1", &doc),
            "http://h:1/api/v1/web/guest/default/hello"
        );
        let doc = json!({"namespace": "guest/demo", "name": "hello"});
        assert_eq!(
            web_url("http://h:1", &doc),
            "http://h:1/api/v1/web/guest/demo/hello"
        );
    }
}
