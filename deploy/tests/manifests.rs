//! The Kubernetes manifests of `deploy/`, rendered and checked.
//!
//! Each test renders `deploy/base` and every overlay under `deploy/overlays/` with
//! `kubectl kustomize` (offline, no cluster), parses every document into its typed `k8s-openapi`
//! struct by `apiVersion`/`kind` (an unknown kind fails unless allow-listed, and a field the
//! typed struct does not know — a typo such as `readinessProbes` — fails too, since Kubernetes
//! would silently drop it), then asserts the invariants operators and the wisp binaries rely on.
//! Every check collects all violations of all renders, so one run shows everything that is wrong.
//!
//! `checks_catch_broken_manifests` breaks a correct render in known ways and asserts each break is
//! reported, so the checks themselves are shown to be able to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodTemplateSpec, Probe, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::Value;

/// The namespace every namespaced object of wisp's own lives in.
const NAMESPACE: &str = "wisp-system";
const SCHEDULER: &str = "wisp-scheduler";
const RUNTIME: &str = "wisp-runtime";
/// Ports pinned by DESIGN.md ("Processes and their flags").
const SCHEDULER_PORT: i32 = 3233;
const RUNTIME_PORT: i32 = 8080;
/// Image repositories of the two wisp binaries.
const SCHEDULER_IMAGE: &str = "ghcr.io/wisp-dev/wisp-scheduler";
const RUNTIME_IMAGE: &str = "ghcr.io/wisp-dev/wisp-runtime";
/// The Secret the workloads read credentials from (created by the operator, never committed).
const SECRET: &str = "wisp-secrets";
/// The longest action timeout (DESIGN.md, limits: `timeout` max 300000 ms): a draining runtime
/// must be given at least this long to finish its in-flight activations.
const MAX_ACTION_TIMEOUT_S: i64 = 300;

/// The `WISP_*` variables DESIGN.md pins per binary (flags and env table; "both" rows included).
const PINNED_SCHEDULER_ENV: &[&str] = &[
    "WISP_PORT",
    "WISP_BIND",
    "WISP_RUNTIMES",
    "WISP_DATA_DIR",
    "WISP_STORE",
    "WISP_RUNTIME_TOKEN",
    "WISP_ADMIN_KEY",
];
const PINNED_RUNTIME_ENV: &[&str] = &[
    "WISP_PORT",
    "WISP_BIND",
    "WISP_USER_MEMORY",
    "WISP_CACHE_DIR",
    "WISP_RUNTIME_TOKEN",
    "WISP_ADMIN_KEY",
];
/// Of those, what a deployment must set: the port, the credentials from the Secret, the store.
const REQUIRED_SCHEDULER_ENV: &[&str] = &[
    "WISP_PORT",
    "WISP_BIND",
    "WISP_STORE",
    "WISP_RUNTIME_TOKEN",
    "WISP_ADMIN_KEY",
];
const REQUIRED_RUNTIME_ENV: &[&str] = &[
    "WISP_PORT",
    "WISP_BIND",
    "WISP_USER_MEMORY",
    "WISP_CACHE_DIR",
    "WISP_RUNTIME_TOKEN",
];
/// Variables that hold credentials: they must come from the Secret, never a literal value.
const SECRET_ENV: &[&str] = &[
    "WISP_STORE",
    "WISP_ADMIN_KEY",
    "WISP_RUNTIME_TOKEN",
    "POSTGRES_PASSWORD",
];

/// Kinds that have no type in k8s-openapi (CRDs) but may appear in a render.
const ALLOWED_CUSTOM_KINDS: &[(&str, &str)] = &[("monitoring.coreos.com/v1", "ServiceMonitor")];

// ---------------------------------------------------------------------------------------------
// Rendering and parsing
// ---------------------------------------------------------------------------------------------

/// One document of a render, parsed into its typed struct.
#[derive(Debug, Clone)]
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Deployment(Deployment),
    DaemonSet(DaemonSet),
    StatefulSet(StatefulSet),
    Service(Service),
    PodDisruptionBudget(PodDisruptionBudget),
    Secret(Secret),
    ConfigMap(ConfigMap),
    /// An allow-listed custom resource, kept as JSON.
    Custom {
        api_version: String,
        kind: String,
        value: Value,
    },
}

impl Object {
    fn kind(&self) -> &str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::ClusterRole(_) => "ClusterRole",
            Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Object::Deployment(_) => "Deployment",
            Object::DaemonSet(_) => "DaemonSet",
            Object::StatefulSet(_) => "StatefulSet",
            Object::Service(_) => "Service",
            Object::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Object::Secret(_) => "Secret",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Custom { kind, .. } => kind,
        }
    }

    /// `(namespace, name)` of the object.
    fn meta(&self) -> (Option<&str>, &str) {
        fn of(
            m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        ) -> (Option<&str>, &str) {
            (m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
        }
        match self {
            Object::Namespace(o) => of(&o.metadata),
            Object::ServiceAccount(o) => of(&o.metadata),
            Object::ClusterRole(o) => of(&o.metadata),
            Object::ClusterRoleBinding(o) => of(&o.metadata),
            Object::Deployment(o) => of(&o.metadata),
            Object::DaemonSet(o) => of(&o.metadata),
            Object::StatefulSet(o) => of(&o.metadata),
            Object::Service(o) => of(&o.metadata),
            Object::PodDisruptionBudget(o) => of(&o.metadata),
            Object::Secret(o) => of(&o.metadata),
            Object::ConfigMap(o) => of(&o.metadata),
            Object::Custom { value, .. } => (
                value["metadata"]["namespace"].as_str(),
                value["metadata"]["name"].as_str().unwrap_or(""),
            ),
        }
    }

    fn is_cluster_scoped(&self) -> bool {
        matches!(
            self,
            Object::Namespace(_) | Object::ClusterRole(_) | Object::ClusterRoleBinding(_)
        )
    }
}

/// A rendered kustomization: `base`, or `overlays/NAME`.
#[derive(Debug, Clone)]
struct Render {
    name: String,
    objects: Vec<Object>,
}

impl Render {
    /// Production renders (`overlays/prod*`) get the strictest checks: pinned release tags,
    /// several schedulers spread over nodes, a disruption budget.
    fn is_prod(&self) -> bool {
        self.name.starts_with("overlays/prod")
    }

    fn deployment(&self, name: &str) -> Option<&Deployment> {
        self.objects.iter().find_map(|o| match o {
            Object::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
            _ => None,
        })
    }

    fn daemonset(&self, name: &str) -> Option<&DaemonSet> {
        self.objects.iter().find_map(|o| match o {
            Object::DaemonSet(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
            _ => None,
        })
    }

    fn services(&self) -> impl Iterator<Item = &Service> {
        self.objects.iter().filter_map(|o| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
    }

    /// Every pod template of the render, as `(workload kind/name, template)`.
    fn pod_templates(&self) -> Vec<(String, &PodTemplateSpec)> {
        self.objects
            .iter()
            .filter_map(|o| {
                let template = match o {
                    Object::Deployment(d) => &d.spec.template,
                    Object::DaemonSet(d) => &d.spec.template,
                    Object::StatefulSet(d) => &d.spec.template,
                    _ => return None,
                };
                Some((format!("{}/{}", o.kind(), o.meta().1), template))
            })
            .collect()
    }
}

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `base` and `overlays/NAME` for every overlay directory with a kustomization.
fn kustomizations() -> Result<Vec<String>> {
    let mut names = vec!["base".to_string()];
    let overlays = deploy_dir().join("overlays");
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(&overlays).with_context(|| format!("reading {}", overlays.display()))?
    {
        let path = entry?.path();
        if path.join("kustomization.yaml").is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .context("overlay name")?;
            found.push(format!("overlays/{name}"));
        }
    }
    found.sort();
    names.extend(found);
    Ok(names)
}

/// `kubectl kustomize deploy/NAME`.
fn kustomize(name: &str) -> Result<String> {
    let dir = deploy_dir().join(name);
    let output = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "kubectl is not installed, and this test renders deploy/ with `kubectl kustomize` \
             (offline, no cluster needed). Install it (https://kubernetes.io/docs/tasks/tools/, \
             or the `kubectl` package of the Kubernetes apt repository) and put it on the PATH; \
             CI machines have it, so this test fails rather than skips."
        ),
        Err(e) => return Err(e).context("running kubectl"),
    };
    if !output.status.success() {
        bail!(
            "`kubectl kustomize {}` failed ({}):\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("kubectl printed non-UTF-8")
}

/// Splits a multi-document YAML stream into JSON values (empty documents dropped).
fn split_documents(yaml: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let value = Value::deserialize(doc).with_context(|| format!("YAML document {i}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Parses one document into `T` and checks that nothing was dropped on the way: k8s-openapi,
/// like the API server, ignores fields it does not know, which hides typos.
fn typed<T>(value: Value) -> Result<T>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let parsed: T = serde_json::from_value(value.clone())?;
    let back = serde_json::to_value(&parsed)?;
    let mut lost = Vec::new();
    lost_fields(&value, &back, String::new(), &mut lost);
    if !lost.is_empty() {
        bail!(
            "fields unknown to the typed struct (typos?): {}",
            lost.join(", ")
        );
    }
    Ok(parsed)
}

/// Paths present in `original` but missing or different in `round_trip`.
fn lost_fields(original: &Value, round_trip: &Value, path: String, lost: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let sub = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => lost_fields(value, other, sub, lost),
                    // An empty object or list the struct leaves out carries nothing.
                    None if is_empty(value) => {}
                    None => lost.push(sub),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost_fields(x, y, format!("{path}[{i}]"), lost);
            }
        }
        (a, b) if a == b => {}
        _ => lost.push(path),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Parses every document by `apiVersion` and `kind`; an unknown kind is an error.
fn parse_objects(docs: Vec<Value>) -> Result<Vec<Object>> {
    docs.into_iter()
        .map(|doc| {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let object = match (api_version.as_str(), kind.as_str()) {
                ("v1", "Namespace") => typed(doc).map(Object::Namespace),
                ("v1", "ServiceAccount") => typed(doc).map(Object::ServiceAccount),
                ("v1", "Service") => typed(doc).map(Object::Service),
                ("v1", "Secret") => typed(doc).map(Object::Secret),
                ("v1", "ConfigMap") => typed(doc).map(Object::ConfigMap),
                ("apps/v1", "Deployment") => typed(doc).map(Object::Deployment),
                ("apps/v1", "DaemonSet") => typed(doc).map(Object::DaemonSet),
                ("apps/v1", "StatefulSet") => typed(doc).map(Object::StatefulSet),
                ("policy/v1", "PodDisruptionBudget") => typed(doc).map(Object::PodDisruptionBudget),
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                    typed(doc).map(Object::ClusterRole)
                }
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    typed(doc).map(Object::ClusterRoleBinding)
                }
                (a, k) if ALLOWED_CUSTOM_KINDS.contains(&(a, k)) => Ok(Object::Custom {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    value: doc,
                }),
                (a, k) => bail!(
                    "unexpected kind {a}/{k} (named {name:?}): add a typed parse for it to \
                     tests/manifests.rs, or allow-list it in ALLOWED_CUSTOM_KINDS if it is a CRD"
                ),
            };
            object.with_context(|| format!("{api_version}/{kind} {name:?}"))
        })
        .collect()
}

fn render(name: &str) -> Result<Render> {
    let yaml = kustomize(name)?;
    let objects =
        parse_objects(split_documents(&yaml)?).with_context(|| format!("deploy/{name}"))?;
    Ok(Render {
        name: name.to_string(),
        objects,
    })
}

/// Every kustomization, rendered once for all tests.
fn renders() -> &'static [Render] {
    static RENDERS: OnceLock<Vec<Render>> = OnceLock::new();
    RENDERS.get_or_init(|| {
        let renders: Vec<Render> = kustomizations()
            .and_then(|names| names.iter().map(|n| render(n)).collect())
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            renders.iter().any(|r| r.name == "overlays/dev")
                && renders.iter().any(|r| r.name == "overlays/prod"),
            "deploy/overlays must hold at least `dev` and `prod`"
        );
        renders
    })
}

/// Runs `check` on every render and fails with every violation found.
fn assert_all(check: fn(&Render) -> Vec<String>) {
    let violations: Vec<String> = renders()
        .iter()
        .flat_map(|r| {
            check(r)
                .into_iter()
                .map(move |v| format!("deploy/{}: {v}", r.name))
        })
        .collect();
    assert!(
        violations.is_empty(),
        "{} violation(s):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// A Kubernetes quantity (`250m`, `2`, `512Mi`, `1Gi`, `1e3`...) as a number of base units.
fn quantity(q: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let q = q.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok()
}

/// `(repository, tag, digest)` of an image reference.
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    // A tag follows the last ':' after the last '/' (a registry may carry a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(&rest[last_slash + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

fn env_names(container: &Container) -> Vec<&str> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect()
}

/// The container port a probe or a Service's `targetPort` designates, by name or number.
fn resolve_port(port: &IntOrString, container: &Container) -> Option<i32> {
    let ports = container.ports.iter().flatten();
    match port {
        IntOrString::Int(n) => ports.map(|p| p.container_port).find(|p| p == n),
        IntOrString::String(name) => ports
            .filter(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .next(),
    }
}

/// Does `selector` (matchLabels) select pods labelled `labels`?
fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Every `"WISP_*"` string literal in the Rust sources under `dir`: the variables a binary reads.
fn wisp_env_literals(dir: &Path) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                for (start, _) in text.match_indices("\"WISP_") {
                    let rest = &text[start + 1..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                        .unwrap_or(rest.len());
                    if rest[end..].starts_with('"') {
                        found.insert(rest[..end].to_string());
                    }
                }
            }
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------------------
// The checks (each returns the violations of one render)
// ---------------------------------------------------------------------------------------------

/// Namespaces, kinds, and no credentials committed.
fn check_objects(r: &Render) -> Vec<String> {
    let mut v = Vec::new();
    let mut seen = BTreeSet::new();
    for o in &r.objects {
        let (namespace, name) = o.meta();
        if !seen.insert((
            o.kind().to_string(),
            namespace.map(str::to_string),
            name.to_string(),
        )) {
            v.push(format!("{} {name} appears twice", o.kind()));
        }
        if !o.is_cluster_scoped() && namespace != Some(NAMESPACE) {
            v.push(format!(
                "{} {name} is in namespace {namespace:?}, not {NAMESPACE}",
                o.kind()
            ));
        }
        if let Object::Secret(_) = o {
            v.push(format!(
                "Secret {name} is committed: credentials are created by the operator (deploy/README.md)"
            ));
        }
        if let Object::Custom {
            api_version,
            kind,
            value,
        } = o
            && (value["metadata"]["name"].as_str().is_none() || value["spec"].is_null())
        {
            v.push(format!("{api_version}/{kind} without a name or a spec"));
        }
    }
    match r.objects.iter().find_map(|o| match o {
        Object::Namespace(n) if n.metadata.name.as_deref() == Some(NAMESPACE) => Some(n),
        _ => None,
    }) {
        None => v.push(format!("no Namespace {NAMESPACE}")),
        Some(ns) => {
            let enforce = ns
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-security.kubernetes.io/enforce"));
            if enforce.map(String::as_str) != Some("restricted") {
                v.push(format!(
                    "Namespace {NAMESPACE} does not enforce the `restricted` Pod Security Standard"
                ));
            }
        }
    }
    v
}

/// Every container: probes, resources, non-root and read-only, images, env references, volumes.
fn check_containers(r: &Render) -> Vec<String> {
    let mut v = Vec::new();
    let version = env!("CARGO_PKG_VERSION");
    for (workload, template) in r.pod_templates() {
        let Some(spec) = template.spec.as_ref() else {
            v.push(format!("{workload}: pod template without a spec"));
            continue;
        };
        let pod_sc = spec.security_context.as_ref();
        if pod_sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| p.type_.as_str())
            != Some("RuntimeDefault")
        {
            v.push(format!(
                "{workload}: pod seccompProfile is not RuntimeDefault"
            ));
        }
        let volumes: BTreeSet<&str> = spec
            .volumes
            .iter()
            .flatten()
            .map(|vol| vol.name.as_str())
            .collect();
        let claims: BTreeSet<String> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::StatefulSet(s) if format!("StatefulSet/{}", o.meta().1) == workload => {
                    Some(&s.spec)
                }
                _ => None,
            })
            .flat_map(|s| s.volume_claim_templates.iter().flatten())
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        // Init containers that run to completion cannot have probes (Kubernetes refuses them);
        // sidecars (`restartPolicy: Always`) and regular containers must.
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| (c, c.restart_policy.as_deref() == Some("Always")))
            .chain(spec.containers.iter().map(|c| (c, true)));
        for (c, long_running) in containers {
            let at = format!("{workload} container {}", c.name);
            let image = c.image.as_deref().unwrap_or("");
            let (repo, tag, digest) = split_image(image);
            let is_wisp = repo == SCHEDULER_IMAGE || repo == RUNTIME_IMAGE;

            // Probes: liveness and readiness everywhere; for wisp's own servers, on the pinned
            // endpoints and on a port the container declares.
            for (kind, probe, path) in [
                ("liveness", c.liveness_probe.as_ref(), "/health"),
                ("readiness", c.readiness_probe.as_ref(), "/ready"),
                ("startup", c.startup_probe.as_ref(), "/health"),
            ] {
                match probe {
                    _ if !long_running => {}
                    None if kind == "startup" && !is_wisp => {}
                    None => v.push(format!("{at}: no {kind} probe")),
                    Some(p) if is_wisp => check_http_probe(&mut v, &at, kind, p, path, c),
                    Some(p) => {
                        if p.exec.is_none()
                            && p.http_get.is_none()
                            && p.tcp_socket.is_none()
                            && p.grpc.is_none()
                        {
                            v.push(format!("{at}: {kind} probe has no handler"));
                        }
                    }
                }
            }

            // Resources: cpu and memory requested and limited, requests within limits.
            let res = c.resources.as_ref();
            for resource in ["cpu", "memory"] {
                let request = res
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|m| m.get(resource));
                let limit = res
                    .and_then(|r| r.limits.as_ref())
                    .and_then(|m| m.get(resource));
                match (request, limit) {
                    (Some(req), Some(lim)) => match (quantity(&req.0), quantity(&lim.0)) {
                        (Some(a), Some(b)) if a <= b => {}
                        (Some(_), Some(_)) => v.push(format!(
                            "{at}: {resource} request {} exceeds its limit {}",
                            req.0, lim.0
                        )),
                        _ => v.push(format!(
                            "{at}: {resource} quantity {} / {} does not parse",
                            req.0, lim.0
                        )),
                    },
                    _ => v.push(format!("{at}: {resource} needs both a request and a limit")),
                }
            }

            // Security: the restricted Pod Security Standard, plus a read-only root.
            let sc = c.security_context.as_ref();
            let non_root = sc
                .and_then(|s| s.run_as_non_root)
                .or(pod_sc.and_then(|s| s.run_as_non_root));
            if non_root != Some(true) {
                v.push(format!("{at}: runAsNonRoot is not true"));
            }
            let uid = sc
                .and_then(|s| s.run_as_user)
                .or(pod_sc.and_then(|s| s.run_as_user));
            if uid == Some(0) {
                v.push(format!("{at}: runAsUser 0"));
            }
            if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
                v.push(format!("{at}: allowPrivilegeEscalation is not false"));
            }
            if sc.and_then(|s| s.read_only_root_filesystem) != Some(true) {
                v.push(format!("{at}: readOnlyRootFilesystem is not true"));
            }
            let drops_all = sc
                .and_then(|s| s.capabilities.as_ref())
                .and_then(|cap| cap.drop.as_ref())
                .is_some_and(|d| d.iter().any(|c| c == "ALL"));
            if !drops_all {
                v.push(format!("{at}: capabilities do not drop ALL"));
            }
            if sc.and_then(|s| s.privileged) == Some(true) {
                v.push(format!("{at}: privileged"));
            }

            // Images: always a tag or a digest, never `latest`; prod runs the release.
            match (tag, digest) {
                (None, None) => v.push(format!("{at}: image {image:?} has no tag (= latest)")),
                (Some("latest"), _) => v.push(format!("{at}: image {image:?} uses `latest`")),
                _ => {}
            }
            if r.is_prod() && is_wisp && digest.is_none() && tag != Some(version) {
                v.push(format!(
                    "{at}: prod image {image:?} is not pinned to the release {version} (the workspace version)"
                ));
            }
            if c.image_pull_policy.as_deref() == Some("Always") && r.is_prod() {
                v.push(format!(
                    "{at}: imagePullPolicy Always with a pinned tag only adds a registry dependency"
                ));
            }

            // Env: `$(VAR)` only refers to a variable defined before it (Kubernetes leaves an
            // unknown reference as literal text), secrets come from the Secret.
            let mut defined = BTreeSet::new();
            for e in c.env.iter().flatten() {
                if let Some(value) = &e.value {
                    for (i, _) in value.match_indices("$(") {
                        let name = value[i + 2..].split(')').next().unwrap_or("");
                        if !defined.contains(name) {
                            v.push(format!(
                                "{at}: env {} refers to $({name}) before it is defined",
                                e.name
                            ));
                        }
                    }
                }
                if SECRET_ENV.contains(&e.name.as_str()) {
                    let key_ref = e
                        .value_from
                        .as_ref()
                        .and_then(|f| f.secret_key_ref.as_ref());
                    match key_ref {
                        Some(k)
                            if k.name == SECRET && k.key == e.name && k.optional != Some(true) => {}
                        _ => v.push(format!(
                            "{at}: {} must come from secretKeyRef {SECRET}/{} (required)",
                            e.name, e.name
                        )),
                    }
                }
                defined.insert(e.name.as_str());
            }

            // Volumes: every mount names a volume of the pod (or a claim template); a read-only
            // root needs a writable /tmp.
            for m in c.volume_mounts.iter().flatten() {
                if !volumes.contains(m.name.as_str()) && !claims.contains(&m.name) {
                    v.push(format!(
                        "{at}: mounts {} which is not a volume of the pod",
                        m.name
                    ));
                }
            }
            if !c
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/tmp")
            {
                v.push(format!("{at}: read-only root without a writable /tmp"));
            }
        }
    }
    v
}

fn check_http_probe(
    v: &mut Vec<String>,
    at: &str,
    kind: &str,
    probe: &Probe,
    path: &str,
    c: &Container,
) {
    match probe.http_get.as_ref() {
        None => v.push(format!("{at}: {kind} probe is not an HTTP GET of {path}")),
        Some(get) => {
            if get.path.as_deref() != Some(path) {
                v.push(format!(
                    "{at}: {kind} probe path {:?}, expected {path}",
                    get.path
                ));
            }
            if resolve_port(&get.port, c).is_none() {
                v.push(format!(
                    "{at}: {kind} probe port {:?} is not a port of the container",
                    get.port
                ));
            }
        }
    }
}

/// The scheduler Deployment: replicas, rollout, port, env, sharding, placement.
fn check_scheduler(r: &Render) -> Vec<String> {
    let mut v = Vec::new();
    let Some(d) = r.deployment(SCHEDULER) else {
        return vec![format!("no Deployment {SCHEDULER}")];
    };
    let spec = &d.spec;
    let replicas = spec.replicas.unwrap_or(1);
    let min_replicas = if r.name == "overlays/dev" { 1 } else { 2 };
    if replicas < min_replicas {
        v.push(format!(
            "{SCHEDULER} has {replicas} replica(s), at least {min_replicas} expected"
        ));
    }
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    if rolling.and_then(|u| u.max_unavailable.as_ref()) != Some(&IntOrString::Int(0)) {
        v.push(format!(
            "{SCHEDULER} rolling update must keep maxUnavailable 0"
        ));
    }
    let Some(pod) = spec.template.spec.as_ref() else {
        return v;
    };
    if pod.service_account_name.as_deref() != Some(SCHEDULER) {
        v.push(format!(
            "{SCHEDULER} does not run as ServiceAccount {SCHEDULER}"
        ));
    }
    let Some(c) = pod.containers.iter().find(|c| {
        c.image
            .as_deref()
            .is_some_and(|i| i.starts_with(SCHEDULER_IMAGE))
    }) else {
        v.push(format!("{SCHEDULER} has no {SCHEDULER_IMAGE} container"));
        return v;
    };
    check_port(&mut v, SCHEDULER, c, SCHEDULER_PORT);
    check_env_names(
        &mut v,
        SCHEDULER,
        c,
        PINNED_SCHEDULER_ENV,
        REQUIRED_SCHEDULER_ENV,
        "scheduler",
    );
    if env_value(c, "WISP_PORT") != Some(&SCHEDULER_PORT.to_string()) {
        v.push(format!("{SCHEDULER}: WISP_PORT is not {SCHEDULER_PORT}"));
    }
    match env_value(c, "WISP_CLUSTER_SIZE").map(str::parse::<i32>) {
        Some(Ok(n)) if n == replicas => {}
        other => v.push(format!(
            "{SCHEDULER}: WISP_CLUSTER_SIZE {other:?} must equal replicas ({replicas}), or replicas \
             overcommit (or waste) the runtimes' capacity"
        )),
    }
    if r.is_prod() {
        let spread = pod
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .is_some_and(|anti| {
                let preferred = anti
                    .preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                    .map(|w| &w.pod_affinity_term);
                let required = anti
                    .required_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten();
                preferred.chain(required).any(|t| {
                    t.topology_key == "kubernetes.io/hostname"
                        && t.label_selector
                            .as_ref()
                            .and_then(|s| s.match_labels.as_ref())
                            .is_some_and(|l| {
                                selects(
                                    l,
                                    spec.template
                                        .metadata
                                        .as_ref()
                                        .and_then(|m| m.labels.as_ref()),
                                )
                            })
                })
            });
        if !spread {
            v.push(format!(
                "{SCHEDULER}: prod needs pod anti-affinity across nodes (kubernetes.io/hostname)"
            ));
        }
    }
    v
}

fn check_port(v: &mut Vec<String>, who: &str, c: &Container, port: i32) {
    let http = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("http"));
    if http.map(|p| p.container_port) != Some(port) {
        v.push(format!("{who}: container port `http` must be {port}"));
    }
}

/// A wisp container may be given the `WISP_*` variables DESIGN.md pins for its binary or that
/// the binary's source reads (so a misspelt or dropped variable fails); the required ones must be
/// set, and read by the source.
fn check_env_names(
    v: &mut Vec<String>,
    who: &str,
    c: &Container,
    pinned: &[&str],
    required: &[&str],
    crate_dir: &str,
) {
    let src = deploy_dir().join("..").join(crate_dir).join("src");
    let read = wisp_env_literals(&src).unwrap_or_else(|e| panic!("{e:#}"));
    let names = env_names(c);
    for name in &names {
        if name.starts_with("WISP_") && !read.contains(*name) && !pinned.contains(name) {
            v.push(format!(
                "{who}: env {name} is neither pinned in DESIGN.md nor read by {crate_dir}/src"
            ));
        }
    }
    for name in required {
        if !names.contains(name) {
            v.push(format!("{who}: env {name} is not set"));
        }
        // What the deployment depends on must be what the binary reads, or it is silently ignored.
        if !read.contains(*name) {
            v.push(format!(
                "{who}: env {name} is set but {crate_dir}/src never reads it"
            ));
        }
    }
}

/// The runtime DaemonSet: placement, discovery labels, port, capacity, drain, no API token.
fn check_runtime(r: &Render) -> Vec<String> {
    let mut v = Vec::new();
    let Some(ds) = r.daemonset(RUNTIME) else {
        return vec![format!("no DaemonSet {RUNTIME}")];
    };
    let spec = &ds.spec;
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    for (k, val) in [
        ("app.kubernetes.io/name", RUNTIME),
        ("wisp.dev/runtime", "true"),
    ] {
        if labels.and_then(|l| l.get(k)).map(String::as_str) != Some(val) {
            v.push(format!(
                "{RUNTIME}: pods must be labelled {k}={val} (the scheduler discovers them by it)"
            ));
        }
    }
    let Some(pod) = spec.template.spec.as_ref() else {
        return v;
    };
    let by_selector = pod
        .node_selector
        .as_ref()
        .and_then(|s| s.get("wisp.dev/role"))
        .is_some_and(|r| r == "runtime");
    let by_affinity = pod
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some_and(|req| {
            !req.node_selector_terms.is_empty()
                && req.node_selector_terms.iter().all(|t| {
                    t.match_expressions.iter().flatten().any(|e| {
                        e.key == "wisp.dev/role"
                            && e.operator == "In"
                            && e.values.as_deref() == Some(&["runtime".to_string()][..])
                    })
                })
        });
    if !by_selector && !by_affinity {
        v.push(format!(
            "{RUNTIME}: not confined to nodes labelled wisp.dev/role=runtime"
        ));
    }
    if pod.automount_service_account_token != Some(false) {
        v.push(format!(
            "{RUNTIME}: mounts a ServiceAccount token it never uses"
        ));
    }
    let pre_stop = pod
        .containers
        .iter()
        .filter_map(|c| c.lifecycle.as_ref()?.pre_stop.as_ref()?.sleep.as_ref())
        .map(|s| s.seconds)
        .max()
        .unwrap_or(0);
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    if grace < MAX_ACTION_TIMEOUT_S + pre_stop {
        v.push(format!(
            "{RUNTIME}: terminationGracePeriodSeconds {grace} cannot drain an activation of the \
             longest timeout ({MAX_ACTION_TIMEOUT_S} s, after a {pre_stop} s preStop)"
        ));
    }
    let Some(c) = pod.containers.iter().find(|c| {
        c.image
            .as_deref()
            .is_some_and(|i| i.starts_with(RUNTIME_IMAGE))
    }) else {
        v.push(format!("{RUNTIME} has no {RUNTIME_IMAGE} container"));
        return v;
    };
    check_port(&mut v, RUNTIME, c, RUNTIME_PORT);
    check_env_names(
        &mut v,
        RUNTIME,
        c,
        PINNED_RUNTIME_ENV,
        REQUIRED_RUNTIME_ENV,
        "runtime",
    );
    if env_value(c, "WISP_PORT") != Some(&RUNTIME_PORT.to_string()) {
        v.push(format!("{RUNTIME}: WISP_PORT is not {RUNTIME_PORT}"));
    }
    let limit_mib = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| quantity(&q.0))
        .map(|b| b / (1024.0 * 1024.0));
    match (
        env_value(c, "WISP_USER_MEMORY").map(str::parse::<f64>),
        limit_mib,
    ) {
        (Some(Ok(user)), Some(limit)) if user > 0.0 && user < limit => {}
        (user, limit) => v.push(format!(
            "{RUNTIME}: WISP_USER_MEMORY {user:?} MB must be positive and below the memory limit \
             ({limit:?} MiB): the engine and caches need room besides activations"
        )),
    }
    match env_value(c, "WISP_CACHE_DIR") {
        Some(dir)
            if c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == dir) => {}
        dir => v.push(format!(
            "{RUNTIME}: WISP_CACHE_DIR {dir:?} is not a mounted volume (the root is read-only)"
        )),
    }
    v
}

/// Services: selectors match pods, target ports exist, the pinned ports and the metrics ports.
fn check_services(r: &Render) -> Vec<String> {
    let mut v = Vec::new();
    let templates = r.pod_templates();
    for s in r.services() {
        let name = s.metadata.name.as_deref().unwrap_or("");
        let Some(spec) = s.spec.as_ref() else {
            v.push(format!("Service {name} without a spec"));
            continue;
        };
        let selector = spec.selector.clone().unwrap_or_default();
        let matched: Vec<_> = templates
            .iter()
            .filter(|(_, t)| {
                selects(
                    &selector,
                    t.metadata.as_ref().and_then(|m| m.labels.as_ref()),
                )
            })
            .collect();
        if matched.is_empty() {
            v.push(format!("Service {name} selects no pod of the render"));
        }
        for p in spec.ports.iter().flatten() {
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
            for (workload, t) in &matched {
                let containers = t.spec.iter().flat_map(|s| &s.containers);
                if !containers
                    .clone()
                    .any(|c| resolve_port(&target, c).is_some())
                {
                    v.push(format!(
                        "Service {name} port {:?}: {target:?} is not a port of {workload}",
                        p.name
                    ));
                }
            }
        }
    }
    for (service, port, headless) in [
        (SCHEDULER, SCHEDULER_PORT, false),
        (RUNTIME, RUNTIME_PORT, true),
    ] {
        let Some(spec) = r
            .services()
            .find(|s| s.metadata.name.as_deref() == Some(service))
            .and_then(|s| s.spec.as_ref())
        else {
            v.push(format!("no Service {service}"));
            continue;
        };
        let ports: Vec<_> = spec.ports.iter().flatten().collect();
        if !ports
            .iter()
            .any(|p| p.name.as_deref() == Some("http") && p.port == port)
        {
            v.push(format!("Service {service} has no port `http` {port}"));
        }
        if !ports.iter().any(|p| p.name.as_deref() == Some("metrics")) {
            v.push(format!(
                "Service {service} has no `metrics` port for scraping"
            ));
        }
        if headless != (spec.cluster_ip.as_deref() == Some("None")) {
            v.push(format!("Service {service} headless should be {headless}"));
        }
    }
    v
}

/// Disruption budgets select replicas that can satisfy them.
fn check_disruption(r: &Render) -> Vec<String> {
    let mut v = Vec::new();
    let pdbs: Vec<_> = r
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::PodDisruptionBudget(p) => Some(p),
            _ => None,
        })
        .collect();
    if r.is_prod() && pdbs.is_empty() {
        v.push("prod has no PodDisruptionBudget".to_string());
    }
    for pdb in pdbs {
        let name = pdb.metadata.name.as_deref().unwrap_or("");
        let spec = pdb.spec.clone().unwrap_or_default();
        let selector = spec
            .selector
            .and_then(|s| s.match_labels)
            .unwrap_or_default();
        let targets: Vec<i32> = r
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Deployment(d) => {
                    let spec = &d.spec;
                    selects(&selector, spec.template.metadata.as_ref()?.labels.as_ref())
                        .then(|| spec.replicas.unwrap_or(1))
                }
                _ => None,
            })
            .collect();
        match (targets.as_slice(), spec.min_available) {
            ([replicas], Some(IntOrString::Int(min))) if min >= 1 && min < *replicas => {}
            ([replicas], min) => v.push(format!(
                "PodDisruptionBudget {name}: minAvailable {min:?} with {replicas} replica(s) either \
                 protects nothing or blocks every node drain"
            )),
            (other, _) => v.push(format!("PodDisruptionBudget {name} selects {} Deployments, not 1", other.len())),
        }
    }
    v
}

/// The ClusterRole grants exactly what the scheduler needs, bound to its ServiceAccount only.
fn check_rbac(r: &Render) -> Vec<String> {
    const WRITE: &[&str] = &["create", "delete", "get", "list", "patch", "update"];
    let expected: BTreeMap<(&str, &str), &[&str]> = BTreeMap::from([
        (("", "namespaces"), WRITE),
        (("", "resourcequotas"), WRITE),
        (("", "limitranges"), WRITE),
        (("", "secrets"), WRITE),
        (("", "pods"), &["get", "list", "watch"][..]),
        (
            ("apps", "deployments"),
            &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ][..],
        ),
    ]);
    let mut v = Vec::new();
    let roles: Vec<_> = r
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::ClusterRole(c) => Some(c),
            _ => None,
        })
        .collect();
    if roles.len() != 1 || roles[0].metadata.name.as_deref() != Some(SCHEDULER) {
        v.push(format!("expected exactly one ClusterRole, {SCHEDULER}"));
    }
    let mut granted: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in roles.iter().flat_map(|c| c.rules.iter().flatten()) {
        if rule.resource_names.is_some() || rule.non_resource_urls.is_some() {
            v.push(format!(
                "unexpected resourceNames/nonResourceURLs in {rule:?}"
            ));
        }
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                granted
                    .entry((group.clone(), resource.clone()))
                    .or_default()
                    .extend(rule.verbs.iter().cloned());
            }
        }
    }
    let expected: BTreeMap<(String, String), BTreeSet<String>> = expected
        .into_iter()
        .map(|((g, res), verbs)| {
            (
                (g.to_string(), res.to_string()),
                verbs.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect();
    for (key, verbs) in &granted {
        match expected.get(key) {
            Some(want) if want == verbs => {}
            Some(want) => v.push(format!(
                "ClusterRole grants {verbs:?} on {key:?}; exactly {want:?} expected"
            )),
            None => v.push(format!(
                "ClusterRole grants {verbs:?} on {key:?}, which the scheduler does not need"
            )),
        }
    }
    for key in expected.keys() {
        if !granted.contains_key(key) {
            v.push(format!("ClusterRole grants nothing on {key:?}"));
        }
    }
    let bindings: Vec<_> = r
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::ClusterRoleBinding(b) => Some(b),
            _ => None,
        })
        .collect();
    let bound = bindings.len() == 1 && {
        let b = bindings[0];
        let subjects = b.subjects.as_deref().unwrap_or_default();
        b.role_ref.kind == "ClusterRole"
            && b.role_ref.name == SCHEDULER
            && subjects.len() == 1
            && subjects[0].kind == "ServiceAccount"
            && subjects[0].name == SCHEDULER
            && subjects[0].namespace.as_deref() == Some(NAMESPACE)
    };
    if !bound {
        v.push(format!(
            "expected one ClusterRoleBinding of ClusterRole {SCHEDULER} to ServiceAccount {NAMESPACE}/{SCHEDULER} only"
        ));
    }
    let account = r.objects.iter().any(
        |o| matches!(o, Object::ServiceAccount(s) if s.metadata.name.as_deref() == Some(SCHEDULER)),
    );
    if !account {
        v.push(format!("no ServiceAccount {SCHEDULER}"));
    }
    v
}

/// ServiceMonitors (where present) scrape a named port of a Service they select.
fn check_monitors(r: &Render) -> Vec<String> {
    let mut v = Vec::new();
    for o in &r.objects {
        let Object::Custom { kind, value, .. } = o else {
            continue;
        };
        if kind != "ServiceMonitor" {
            continue;
        }
        let name = o.meta().1;
        let selector: BTreeMap<String, String> =
            serde_json::from_value(value["spec"]["selector"]["matchLabels"].clone())
                .unwrap_or_default();
        let services: Vec<_> = r
            .services()
            .filter(|s| s.metadata.namespace.as_deref() == o.meta().0)
            .filter(|s| selects(&selector, s.metadata.labels.as_ref()))
            .collect();
        if services.is_empty() {
            v.push(format!("ServiceMonitor {name} selects no Service"));
        }
        let endpoints = value["spec"]["endpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if endpoints.is_empty() {
            v.push(format!("ServiceMonitor {name} has no endpoints"));
        }
        for e in endpoints {
            let port = e["port"].as_str().unwrap_or("");
            let found = services.iter().all(|s| {
                s.spec
                    .iter()
                    .flat_map(|s| s.ports.iter().flatten())
                    .any(|p| p.name.as_deref() == Some(port))
            });
            if !found {
                v.push(format!(
                    "ServiceMonitor {name}: port {port:?} is not a named port of its Services"
                ));
            }
            if e["path"].as_str() != Some("/metrics") {
                v.push(format!("ServiceMonitor {name}: path is not /metrics"));
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_kustomization_renders_into_known_typed_objects() {
    let renders = renders();
    let names: Vec<_> = renders.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"base"), "{names:?}");
    for r in renders {
        assert!(!r.objects.is_empty(), "deploy/{} rendered nothing", r.name);
    }
    assert_all(check_objects);
}

#[test]
fn every_container_has_probes_resources_and_runs_non_root() {
    assert_all(check_containers);
}

#[test]
fn scheduler_deployment_matches_the_pinned_process_contract() {
    assert_all(check_scheduler);
}

#[test]
fn runtime_daemonset_is_placed_on_runtime_nodes_and_drains() {
    assert_all(check_runtime);
}

#[test]
fn services_select_pods_and_expose_pinned_and_metrics_ports() {
    assert_all(check_services);
}

#[test]
fn disruption_budgets_can_be_satisfied() {
    assert_all(check_disruption);
}

#[test]
fn cluster_role_grants_exactly_the_needed_verbs() {
    assert_all(check_rbac);
}

#[test]
fn service_monitors_point_at_named_metrics_ports() {
    assert_all(check_monitors);
    assert!(
        renders()
            .iter()
            .any(|r| r.objects.iter().any(|o| o.kind() == "ServiceMonitor")),
        "some overlay should render the monitoring component, or its ServiceMonitors go unchecked"
    );
}

/// The dev overlay carries its own PostgreSQL; the others expect one outside.
#[test]
fn only_dev_deploys_postgresql() {
    for r in renders() {
        let has_db = r.objects.iter().any(|o| matches!(o, Object::StatefulSet(s) if s.metadata.name.as_deref() == Some("wisp-postgres")));
        assert_eq!(
            has_db,
            r.name == "overlays/dev",
            "deploy/{}: PostgreSQL StatefulSet present = {has_db}",
            r.name
        );
    }
}

/// deploy/kind-config.yaml labels a worker so the runtime DaemonSet has somewhere to run.
#[test]
fn kind_config_labels_a_runtime_worker() {
    let path = deploy_dir().join("kind-config.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = split_documents(&text).unwrap();
    assert_eq!(docs.len(), 1, "one kind Cluster");
    let config = &docs[0];
    assert_eq!(config["kind"], "Cluster");
    let nodes = config["nodes"].as_array().expect("nodes");
    assert!(
        nodes
            .iter()
            .any(|n| n["role"] == "worker" && n["labels"]["wisp.dev/role"] == "runtime"),
        "no worker labelled wisp.dev/role=runtime in {}",
        path.display()
    );
}

/// Every key the manifests read from the Secret is created by deploy/README.md's command.
#[test]
fn readme_creates_every_secret_key_the_manifests_read() {
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).expect("deploy/README.md");
    let created: BTreeSet<&str> = readme
        .match_indices("--from-literal=")
        .filter_map(|(i, m)| readme[i + m.len()..].split('=').next())
        .collect();
    let mut read = BTreeSet::new();
    for r in renders() {
        for (_, t) in r.pod_templates() {
            for c in t.spec.iter().flat_map(|s| &s.containers) {
                for e in c.env.iter().flatten() {
                    if let Some(k) = e
                        .value_from
                        .as_ref()
                        .and_then(|f| f.secret_key_ref.as_ref())
                    {
                        assert_eq!(
                            k.name, SECRET,
                            "deploy/{}: {} reads another Secret",
                            r.name, e.name
                        );
                        read.insert(k.key.clone());
                    }
                }
            }
        }
    }
    let missing: Vec<_> = read
        .iter()
        .filter(|k| !created.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README's `kubectl create secret` lacks {missing:?} (it creates {created:?})"
    );
}

/// Replaces the value at a JSON pointer that must exist (a mutation that silently missed would
/// make its case prove nothing).
fn set(doc: &mut Value, pointer: &str, value: Value) {
    *doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the document")) = value;
}

/// The checks fail on manifests broken in known ways (so a green run means something).
#[test]
fn checks_catch_broken_manifests() {
    let yaml = kustomize("overlays/prod").unwrap();
    let good = split_documents(&yaml).unwrap();
    let run = |docs: Vec<Value>| -> Vec<String> {
        let r = Render {
            name: "overlays/prod".into(),
            objects: parse_objects(docs).unwrap(),
        };
        let checks: [fn(&Render) -> Vec<String>; 8] = [
            check_objects,
            check_containers,
            check_scheduler,
            check_runtime,
            check_services,
            check_disruption,
            check_rbac,
            check_monitors,
        ];
        checks.iter().flat_map(|c| c(&r)).collect()
    };
    assert_eq!(
        run(good.clone()),
        Vec::<String>::new(),
        "the prod render itself is clean"
    );

    let mutate = |kind: &str, f: &dyn Fn(&mut Value)| -> Vec<Value> {
        let mut docs = good.clone();
        let doc = docs.iter_mut().find(|d| d["kind"] == kind).unwrap();
        f(doc);
        docs
    };
    let scheduler_container = "/spec/template/spec/containers/0";
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        (
            "runtime without node placement",
            mutate("DaemonSet", &|d| {
                d["spec"]["template"]["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("nodeSelector");
            }),
            "wisp.dev/role=runtime",
        ),
        (
            "latest tag",
            mutate("Deployment", &|d| {
                set(
                    d,
                    &format!("{scheduler_container}/image"),
                    "ghcr.io/wisp-dev/wisp-scheduler:latest".into(),
                );
            }),
            "uses `latest`",
        ),
        (
            "untagged image",
            mutate("DaemonSet", &|d| {
                set(
                    d,
                    "/spec/template/spec/containers/0/image",
                    "ghcr.io/wisp-dev/wisp-runtime".into(),
                );
            }),
            "has no tag",
        ),
        (
            "missing readiness probe",
            mutate("Deployment", &|d| {
                d.pointer_mut(scheduler_container)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("readinessProbe");
            }),
            "no readiness probe",
        ),
        (
            "liveness on the wrong path",
            mutate("DaemonSet", &|d| {
                set(
                    d,
                    "/spec/template/spec/containers/0/livenessProbe/httpGet/path",
                    "/ready".into(),
                );
            }),
            "liveness probe path",
        ),
        (
            "no memory limit",
            mutate("Deployment", &|d| {
                d.pointer_mut(&format!("{scheduler_container}/resources/limits"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("memory");
            }),
            "memory needs both",
        ),
        (
            "root user",
            mutate("Deployment", &|d| {
                // The container's setting wins over the pod's: break the one that counts.
                set(
                    d,
                    &format!("{scheduler_container}/securityContext/runAsNonRoot"),
                    false.into(),
                );
            }),
            "runAsNonRoot",
        ),
        (
            "one scheduler in prod",
            mutate("Deployment", &|d| d["spec"]["replicas"] = 1.into()),
            "at least 2 expected",
        ),
        (
            "extra verb on secrets",
            mutate("ClusterRole", &|d| {
                for rule in d["rules"].as_array_mut().unwrap() {
                    if rule["resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r == "secrets")
                    {
                        rule["verbs"].as_array_mut().unwrap().push("watch".into());
                    }
                }
            }),
            "exactly",
        ),
        (
            "misspelt env var",
            mutate("DaemonSet", &|d| {
                for e in d
                    .pointer_mut("/spec/template/spec/containers/0/env")
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                {
                    if e["name"] == "WISP_USER_MEMORY" {
                        e["name"] = "WISP_USERMEMORY".into();
                    }
                }
            }),
            "WISP_USERMEMORY is neither pinned",
        ),
        (
            "wrong scheduler port",
            mutate("Deployment", &|d| {
                set(
                    d,
                    &format!("{scheduler_container}/ports/0/containerPort"),
                    8080.into(),
                );
            }),
            "must be 3233",
        ),
        (
            "credential as a literal",
            mutate("Deployment", &|d| {
                for e in d
                    .pointer_mut(&format!("{scheduler_container}/env"))
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                {
                    if e["name"] == "WISP_ADMIN_KEY" {
                        *e = serde_json::json!({"name": "WISP_ADMIN_KEY", "value": "hunter2"});
                    }
                }
            }),
            "must come from secretKeyRef",
        ),
        (
            "short drain",
            mutate("DaemonSet", &|d| {
                d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30.into()
            }),
            "cannot drain",
        ),
        (
            "cluster size out of step with replicas",
            mutate("Deployment", &|d| d["spec"]["replicas"] = 5.into()),
            "WISP_CLUSTER_SIZE",
        ),
        (
            "service selecting nothing",
            mutate("Service", &|d| {
                d["spec"]["selector"]["app.kubernetes.io/name"] = "nobody".into()
            }),
            "selects no pod",
        ),
    ];
    for (what, docs, expected) in cases {
        let found = run(docs);
        assert!(
            found.iter().any(|v| v.contains(expected)),
            "{what}: expected a violation mentioning {expected:?}, got {found:#?}"
        );
    }

    // A typo in a field name is caught by the round trip through the typed struct.
    let typo = mutate("Deployment", &|d| {
        let c = d
            .pointer_mut(scheduler_container)
            .unwrap()
            .as_object_mut()
            .unwrap();
        let probe = c.remove("readinessProbe").unwrap();
        c.insert("readinessProbes".into(), probe);
    });
    let err = parse_objects(typo).unwrap_err();
    assert!(format!("{err:#}").contains("readinessProbes"), "{err:#}");

    // An unknown kind is refused.
    let mut unknown = good.clone();
    unknown.push(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}));
    let err = parse_objects(unknown).unwrap_err();
    assert!(
        format!("{err:#}").contains("unexpected kind v1/Pod"),
        "{err:#}"
    );
}

#[test]
fn quantities_and_image_references_parse() {
    assert_eq!(quantity("250m"), Some(0.25));
    assert_eq!(quantity("2"), Some(2.0));
    assert_eq!(quantity("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
    assert_eq!(quantity("512Mi"), Some(512.0 * 1024.0 * 1024.0));
    assert_eq!(quantity("1k"), Some(1000.0));
    assert_eq!(quantity("lots"), None);
    assert_eq!(
        split_image("ghcr.io/a/b:1.2.3"),
        ("ghcr.io/a/b", Some("1.2.3"), None)
    );
    assert_eq!(
        split_image("localhost:5000/b"),
        ("localhost:5000/b", None, None)
    );
    assert_eq!(
        split_image("localhost:5000/b:dev"),
        ("localhost:5000/b", Some("dev"), None)
    );
    assert_eq!(split_image("b@sha256:abc"), ("b", None, Some("sha256:abc")));
}
