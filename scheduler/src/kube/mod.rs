//! Kubernetes: per-user namespaces and runtime discovery. **Off unless the scheduler runs in a
//! cluster**: `wisp up`, CI and tests never need an API server, and nothing here fails then.
//!
//! - [`Provisioner`]: what the admin API calls on `user add` / `user delete`. [`Provisioner::Off`]
//!   does nothing; [`Provisioner::Kube`] server-side-applies (field manager `wisp`, forced) the
//!   namespace `wisp-user-NAME` with its ResourceQuota, LimitRange, a Secret holding the user's
//!   `uuid:key`, and with `dedicatedRuntimes: N` a runtime Deployment of N replicas; `delete`
//!   removes the namespace (Kubernetes deletes its contents). Every call is idempotent. One per
//!   scheduler, cheap to clone (a `kube::Client` is a handle on one connection pool).
//! - [`discovery`]: a reflector over pods labelled `wisp.dev/runtime=true` (cluster-wide) that
//!   adds Ready pods to the balancer and drops them when they turn not-ready or go away;
//!   dedicated runtimes (label `wisp.dev/user`, in `wisp-user-NAME`) go to that user's own
//!   balancer in [`discovery::RuntimePools`]. Runs as one task for the scheduler's lifetime.
//!
//! [`KubeMode`] (`--kubernetes auto|on|off`, `WISP_KUBERNETES`) decides: `auto` (the default)
//! enables it when `KUBERNETES_SERVICE_HOST` is set (the kubelet sets it in every pod).

pub mod discovery;
pub mod provision;

use std::collections::BTreeMap;

pub use discovery::{RuntimePools, spawn_discovery};
pub use provision::{KubeProvisioner, Provisioner};

/// The label every object wisp creates carries (`app.kubernetes.io/managed-by=wisp`).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "wisp");
/// The label naming the user a per-user object (and a dedicated runtime pod) belongs to.
pub const USER_LABEL: &str = "wisp.dev/user";
/// The label runtime pods carry; the discovery reflector selects on `wisp.dev/runtime=true`.
pub const RUNTIME_LABEL: &str = "wisp.dev/runtime";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "wisp";
/// Prefix of the per-user namespaces.
pub const NAMESPACE_PREFIX: &str = "wisp-user-";
/// Port of a runtime pod when it names none `http`.
pub const DEFAULT_RUNTIME_PORT: i32 = 8080;

/// Whether the scheduler talks to Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KubeMode {
    /// On when `KUBERNETES_SERVICE_HOST` is set (running in a pod), off otherwise.
    #[default]
    Auto,
    /// Always on: starting fails without a reachable cluster configuration.
    On,
    /// Never: no namespaces, no discovery.
    Off,
}

impl KubeMode {
    /// Whether this mode is enabled, given the value of `KUBERNETES_SERVICE_HOST`.
    pub fn enabled(self, service_host: Option<&str>) -> bool {
        match self {
            KubeMode::On => true,
            KubeMode::Off => false,
            KubeMode::Auto => service_host.is_some_and(|h| !h.trim().is_empty()),
        }
    }
}

/// Errors of the Kubernetes code.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The user name cannot be part of a Kubernetes namespace name (a DNS label).
    #[error(
        "the user name {0:?} cannot name a Kubernetes namespace: use at most {max} lowercase \
         letters, digits and '-', starting and ending with a letter or digit",
        max = 63 - NAMESPACE_PREFIX.len()
    )]
    InvalidName(String),
    /// Dedicated runtimes asked of a scheduler that does not run on Kubernetes.
    #[error("dedicatedRuntimes needs a scheduler running on Kubernetes (--kubernetes)")]
    NoCluster,
    /// More dedicated runtimes than allowed.
    #[error("dedicatedRuntimes must be between 0 and {max}, not {asked}")]
    TooManyRuntimes { asked: u32, max: u32 },
    /// No cluster configuration (in-cluster service account or kubeconfig).
    #[error("no Kubernetes configuration: {0}")]
    Config(String),
    /// A request to the API server failed.
    #[error("Kubernetes API: {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
}

/// The namespace of user `name`: `wisp-user-NAME`, checked to be a valid DNS label.
pub fn user_namespace(name: &str) -> Result<String, KubeError> {
    let ns = format!("{NAMESPACE_PREFIX}{name}");
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && ns.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-';
    if valid {
        Ok(ns)
    } else {
        Err(KubeError::InvalidName(name.to_string()))
    }
}

/// What the per-user objects look like. [`Default`] gives sensible sizes; the quota can be
/// overridden with `--user-quota` (`WISP_USER_QUOTA`).
#[derive(Debug, Clone, PartialEq)]
pub struct KubeSettings {
    /// `spec.hard` of each user's ResourceQuota (resource name → quantity).
    pub quota: BTreeMap<String, String>,
    /// LimitRange for containers: `default` (limits) when a container sets none.
    pub limit_default: BTreeMap<String, String>,
    /// LimitRange for containers: `defaultRequest`.
    pub limit_default_request: BTreeMap<String, String>,
    /// LimitRange for containers: `max`.
    pub limit_max: BTreeMap<String, String>,
    /// Image of dedicated runtimes (the shared DaemonSet's image).
    pub runtime_image: String,
    /// Capacity a dedicated runtime announces (`WISP_USER_MEMORY`, MB).
    pub runtime_user_memory_mb: u64,
    /// Requests (= limits for memory) of a dedicated runtime container.
    pub runtime_requests: BTreeMap<String, String>,
    /// Limits of a dedicated runtime container.
    pub runtime_limits: BTreeMap<String, String>,
    /// Most dedicated runtimes one user may get.
    pub max_dedicated_runtimes: u32,
    /// Token dedicated runtimes require on `/run` (the scheduler's `WISP_RUNTIME_TOKEN`); stored in
    /// the user's Secret only when the user has dedicated runtimes.
    pub runtime_token: Option<String>,
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            // Room for max_dedicated_runtimes runtimes of 1 CPU / 1 GiB each, nothing more.
            quota: map(&[
                ("pods", "8"),
                ("requests.cpu", "4"),
                ("requests.memory", "8Gi"),
                ("limits.cpu", "8"),
                ("limits.memory", "8Gi"),
                ("secrets", "10"),
                ("configmaps", "10"),
                ("services", "0"),
                ("persistentvolumeclaims", "0"),
            ]),
            limit_default: map(&[("cpu", "1"), ("memory", "1Gi")]),
            limit_default_request: map(&[("cpu", "250m"), ("memory", "256Mi")]),
            limit_max: map(&[("cpu", "2"), ("memory", "4Gi")]),
            runtime_image: "ghcr.io/wisp-dev/wisp-runtime".to_string(),
            runtime_user_memory_mb: 768,
            runtime_requests: map(&[("cpu", "500m"), ("memory", "1Gi")]),
            runtime_limits: map(&[("cpu", "1"), ("memory", "1Gi")]),
            max_dedicated_runtimes: 8,
            runtime_token: None,
        }
    }
}

impl KubeSettings {
    /// Overrides quota entries from `key=value` items (e.g. `pods=4`, `limits.memory=4Gi`).
    pub fn with_quota_overrides(mut self, items: &[String]) -> Result<Self, String> {
        for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(format!("--user-quota {item:?}: expected RESOURCE=QUANTITY"));
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(format!("--user-quota {item:?}: expected RESOURCE=QUANTITY"));
            }
            self.quota.insert(k.to_string(), v.to_string());
        }
        Ok(self)
    }
}

/// A client for the cluster the scheduler runs in (service account in a pod, else kubeconfig).
pub async fn connect() -> Result<kube::Client, KubeError> {
    kube::Client::try_default()
        .await
        .map_err(|e| KubeError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert!(!KubeMode::Auto.enabled(None));
        assert!(!KubeMode::Auto.enabled(Some(" ")));
        assert!(KubeMode::Auto.enabled(Some("10.96.0.1")));
        assert!(KubeMode::On.enabled(None));
        assert!(!KubeMode::Off.enabled(Some("10.96.0.1")));
    }

    #[test]
    fn namespaces_are_dns_labels() {
        assert_eq!(user_namespace("alice").unwrap(), "wisp-user-alice");
        assert_eq!(user_namespace("team-7").unwrap(), "wisp-user-team-7");
        for bad in ["", "Alice", "a_b", "a.b", "a@b", "end-", &"x".repeat(54)] {
            let err = user_namespace(bad).unwrap_err();
            assert!(
                matches!(err, KubeError::InvalidName(ref n) if n == bad),
                "{bad:?}"
            );
        }
        assert!(user_namespace(&"x".repeat(53)).is_ok());
    }

    #[test]
    fn quota_overrides() {
        let s = KubeSettings::default()
            .with_quota_overrides(&["pods=2".into(), " limits.memory = 2Gi ".into()])
            .unwrap();
        assert_eq!(s.quota["pods"], "2");
        assert_eq!(s.quota["limits.memory"], "2Gi");
        assert_eq!(s.quota["requests.cpu"], "4");
        let err = KubeSettings::default()
            .with_quota_overrides(&["pods".into()])
            .unwrap_err();
        assert!(err.contains("RESOURCE=QUANTITY"), "{err}");
    }
}
