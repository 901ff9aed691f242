//! `wisp action create|update|get|list|delete|invoke`, with `wsk`'s flags.
//!
//! The kind of `create NAME FILE` follows the file, as with `wsk`: `.js` is `nodejs:default`,
//! `.py` is `python:3` (both sent as source text in `exec.code`, with `exec.main` from `--main`),
//! anything else is a WebAssembly module (kind `wasm`, base64, refused before any request when it
//! lacks the `\0asm` magic); `create NAME DIR` builds a Cargo project for `wasm32-wasip1` first
//! ([`crate::build`]). `--kind K` overrides the inference: `wasm`, or any source kind the server
//! supports (the server, not the CLI, decides which).

use std::path::{Path, PathBuf};

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
use crate::build::{WASM_TARGET, build_project};
use crate::client::{Answer, Client, api_error};

#[derive(Debug, Args)]
pub struct ActionArgs {
    #[command(subcommand)]
    pub command: ActionCommand,
}

#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// Create an action from a .wasm module, a Cargo project directory, or a .js/.py source file.
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
    /// The .wasm module, a directory holding a Cargo project to build for wasm32-wasip1, or a
    /// source file (.js: kind nodejs:default, .py: kind python:3).
    pub artifact: Option<PathBuf>,
    /// Make the action a sequence of these actions (comma-separated).
    #[arg(long, value_name = "ACTION,ACTION,...", conflicts_with = "artifact")]
    pub sequence: Option<String>,
    /// Action kind (`wasm`, `nodejs:20`, `python:3`, ...); inferred from FILE when not given.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// The entry point of a source action (default `main`).
    #[arg(long, value_name = "NAME")]
    pub main: Option<String>,
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
    if let Some(kind) = &args.kind {
        match (kind.as_str(), &args.artifact, &args.sequence) {
            ("sequence", _, Some(_)) => {}
            ("sequence", _, None) => bail!("--kind sequence needs --sequence a,b,c"),
            (_, _, Some(_)) => bail!("--sequence makes a sequence: --kind {kind} does not apply"),
            (_, None, None) => bail!("--kind {kind} needs the action's FILE"),
            _ => validate_kind(kind)?,
        }
    }
    // Local checks first: a missing or non-wasm file fails before any request.
    let mut module_len = None;
    let exec = match (&args.artifact, &args.sequence) {
        (Some(path), _) => {
            let artifact = load_artifact(path, args.kind.as_deref())?;
            module_len = matches!(artifact, Artifact::Module(_)).then(|| artifact.len());
            Some(artifact.exec(args.main.as_deref())?)
        }
        (None, Some(seq)) => Some(sequence_exec(ctx, seq).await?),
        (None, None) if update => None,
        (None, None) => bail!(
            "`action create` needs a .wasm file, a Cargo project directory or a .js/.py file \
             (or --sequence a,b,c)"
        ),
    };
    if args.main.is_some() && exec.is_none() {
        bail!("--main names the entry point of the action's FILE: give the FILE too");
    }
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

/// An action's code as read from its FILE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Artifact {
    /// A WebAssembly module (kind `wasm`).
    Module(Vec<u8>),
    /// Source text of an interpreted kind (`nodejs:default`, `python:3`, ...).
    Source { kind: String, code: String },
}

impl Artifact {
    /// Size of the code in bytes.
    pub fn len(&self) -> usize {
        match self {
            Artifact::Module(m) => m.len(),
            Artifact::Source { code, .. } => code.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `exec` of the action document, as `wsk` sends it.
    pub fn exec(&self, main: Option<&str>) -> anyhow::Result<Value> {
        match self {
            Artifact::Module(_) if main.is_some() => bail!(
                "--main names the entry point of a source action (.js, .py); a wasm module's \
                 entry point is its `_start`"
            ),
            Artifact::Module(module) => Ok(json!({
                "kind": "wasm",
                "code": base64::engine::general_purpose::STANDARD.encode(module),
                "binary": true,
            })),
            Artifact::Source { kind, code } => {
                let mut exec = json!({ "kind": kind, "code": code });
                if let Some(main) = main {
                    if main.trim().is_empty() {
                        bail!("--main needs a function name");
                    }
                    exec["main"] = json!(main);
                }
                Ok(exec)
            }
        }
    }
}

/// The kind `wsk` infers from a file name: `.js` → `nodejs:default`, `.py` → `python:3`,
/// `.wasm` → `wasm`; `None` for any other extension.
pub fn kind_of_file(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "js" | "mjs" | "cjs" => Some("nodejs:default"),
        "py" => Some("python:3"),
        "wasm" => Some("wasm"),
        _ => None,
    }
}

/// A kind is a runtime name with an optional version (`nodejs:20`, `python:3.12`, `wasm`):
/// letters, digits, `.`, `-`, `_`, at most one `:`. Which kinds exist is the server's answer.
fn validate_kind(kind: &str) -> anyhow::Result<()> {
    let well_formed = !kind.is_empty()
        && kind.len() <= 64
        && kind.matches(':').count() <= 1
        && !kind.starts_with(':')
        && !kind.ends_with(':')
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_'));
    if !well_formed {
        bail!("invalid kind {kind:?}: expected e.g. wasm, nodejs:20 or python:3");
    }
    Ok(())
}

/// The code of an action from `path`: a Cargo project directory (built), a `.wasm` module, or a
/// source file, with `kind` (from `--kind`) overriding the kind the file name implies.
pub fn load_artifact(path: &Path, kind: Option<&str>) -> anyhow::Result<Artifact> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let kind = match kind {
        Some(k) => Some(k),
        None if meta.is_dir() => Some("wasm"),
        None => kind_of_file(path),
    };
    match kind {
        // A module, or (no kind, unknown extension) whatever the magic says it is.
        Some("wasm") | None => Ok(Artifact::Module(load_module(path)?)),
        Some(kind) => {
            if meta.is_dir() {
                bail!(
                    "{} is a directory: a {kind} action is one source file (zip actions are \
                     not supported)",
                    path.display()
                );
            }
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if bytes.starts_with(b"\0asm") {
                bail!(
                    "{} is a WebAssembly module, not the source of a {kind} action: use --kind \
                     wasm (or no --kind)",
                    path.display()
                );
            }
            let code = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not UTF-8 text, so it cannot be the source of a {kind} action",
                    path.display()
                )
            })?;
            Ok(Artifact::Source {
                kind: kind.to_string(),
                code,
            })
        }
    }
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
             for {WASM_TARGET}, e.g. `cargo build --release --target {WASM_TARGET}`, or give \
             --kind for a source file",
            file.display()
        );
    }
    Ok(bytes)
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
    fn the_kind_follows_the_file_and_kind_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let js = dir.path().join("hello.js");
        std::fs::write(&js, "function main(p) { return {ok: true}; }\n").unwrap();
        let py = dir.path().join("hello.py");
        std::fs::write(&py, "def main(args):\n    return {'ok': True}\n").unwrap();
        let wasm = dir.path().join("hello.wasm");
        std::fs::write(&wasm, b"\0asm\x01\0\0\0").unwrap();

        assert_eq!(kind_of_file(&js), Some("nodejs:default"));
        assert_eq!(kind_of_file(&py), Some("python:3"));
        assert_eq!(kind_of_file(&wasm), Some("wasm"));
        assert_eq!(kind_of_file(Path::new("x.WASM")), Some("wasm"));
        assert_eq!(kind_of_file(Path::new("x.txt")), None);
        assert_eq!(kind_of_file(Path::new("noext")), None);

        let a = load_artifact(&js, None).unwrap();
        assert_eq!(
            a.exec(None).unwrap(),
            json!({"kind": "nodejs:default", "code": "function main(p) { return {ok: true}; }\n"})
        );
        assert_eq!(
            load_artifact(&js, Some("nodejs:20"))
                .unwrap()
                .exec(Some("handler"))
                .unwrap(),
            json!({"kind": "nodejs:20", "code": "function main(p) { return {ok: true}; }\n",
                   "main": "handler"})
        );
        let p = load_artifact(&py, None).unwrap().exec(None).unwrap();
        assert_eq!(p["kind"], "python:3");
        assert_eq!(p["code"], "def main(args):\n    return {'ok': True}\n");
        assert!(p.get("main").is_none());

        let m = load_artifact(&wasm, None).unwrap();
        assert_eq!(m, Artifact::Module(b"\0asm\x01\0\0\0".to_vec()));
        assert_eq!(
            m.exec(None).unwrap(),
            json!({"kind": "wasm", "code": "AGFzbQEAAAA=", "binary": true})
        );
        let err = m.exec(Some("handler")).unwrap_err().to_string();
        assert!(err.contains("entry point of a source action"), "{err}");

        // --kind overrides the extension both ways.
        let as_js = load_artifact(&py, Some("nodejs:default")).unwrap();
        assert!(matches!(as_js, Artifact::Source { ref kind, .. } if kind == "nodejs:default"));
        let err = load_artifact(&js, Some("wasm")).unwrap_err().to_string();
        assert!(err.contains("is not a WebAssembly module"), "{err}");
        let err = load_artifact(&wasm, Some("python:3"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is a WebAssembly module, not the source"),
            "{err}"
        );
        let binary = dir.path().join("blob.py");
        std::fs::write(&binary, [0xff, 0xfe, 0, 0x80]).unwrap();
        let err = load_artifact(&binary, None).unwrap_err().to_string();
        assert!(err.contains("is not UTF-8 text"), "{err}");
        let err = load_artifact(dir.path(), Some("nodejs:20"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a directory"), "{err}");
        // A file of another extension is a module when it is one, without --kind.
        let other = dir.path().join("action.bin");
        std::fs::write(&other, b"\0asm\x01\0\0\0").unwrap();
        assert!(matches!(
            load_artifact(&other, None).unwrap(),
            Artifact::Module(_)
        ));
        let err = load_artifact(&dir.path().join("nope.js"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
        let err = load_artifact(&js, None)
            .unwrap()
            .exec(Some(" "))
            .unwrap_err();
        assert!(err.to_string().contains("--main needs"), "{err}");
    }

    #[test]
    fn kinds_are_checked_for_shape_only() {
        for ok in [
            "wasm",
            "nodejs:20",
            "nodejs:default",
            "python:3.12",
            "my-kind_1",
        ] {
            validate_kind(ok).unwrap();
        }
        for bad in [
            "",
            ":20",
            "nodejs:",
            "a:b:c",
            "node js",
            "x/y",
            &"k".repeat(65),
        ] {
            assert!(validate_kind(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_and_update_parse_kind_and_main() {
        use clap::Parser as _;
        let cli = crate::Cli::try_parse_from([
            "wisp",
            "action",
            "create",
            "h",
            "h.js",
            "--kind",
            "nodejs:20",
            "--main",
            "run",
        ])
        .unwrap();
        let crate::Command::Action(ActionArgs {
            command: ActionCommand::Create(put),
        }) = cli.command
        else {
            panic!("not action create")
        };
        assert_eq!(put.kind.as_deref(), Some("nodejs:20"));
        assert_eq!(put.main.as_deref(), Some("run"));
        assert_eq!(put.artifact.as_deref(), Some(Path::new("h.js")));
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
