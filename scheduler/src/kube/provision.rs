//! Per-user namespaces: what `wisp admin user add|delete` do on a cluster.
//!
//! Every object is server-side applied (`PATCH ...?fieldManager=wisp&force=true` with an
//! `application/apply-patch+yaml` body), so adding a user twice, or after a partial failure,
//! converges to the same objects; delete removes the namespace and Kubernetes removes what is in
//! it (a namespace already gone counts as deleted).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceQuota, ResourceQuotaSpec, ResourceRequirements,
    SeccompProfile, Secret, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    DEFAULT_RUNTIME_PORT, FIELD_MANAGER, KubeError, KubeSettings, MANAGED_BY, RUNTIME_LABEL,
    USER_LABEL, user_namespace,
};

/// Name of the ResourceQuota, LimitRange and Secret in a user's namespace.
pub const USER_OBJECT_NAME: &str = "wisp-user";
/// Name of the dedicated runtime Deployment in a user's namespace.
pub const RUNTIME_DEPLOYMENT: &str = "wisp-runtime";
/// Key of the user's `uuid:key` in the Secret.
pub const SECRET_AUTH_KEY: &str = "auth";
/// Key of the runtime token in the Secret (only with dedicated runtimes).
pub const SECRET_RUNTIME_TOKEN_KEY: &str = "WISP_RUNTIME_TOKEN";

/// What the admin API calls on `user add` / `user delete`. Cheap to clone.
#[derive(Clone, Default)]
pub enum Provisioner {
    /// No cluster: every call succeeds doing nothing.
    #[default]
    Off,
    /// Applies and deletes per-user objects on the cluster.
    Kube(KubeProvisioner),
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provisioner::Off => f.write_str("Provisioner::Off"),
            Provisioner::Kube(_) => f.write_str("Provisioner::Kube"),
        }
    }
}

impl Provisioner {
    /// Whether user adds touch a cluster.
    pub fn is_enabled(&self) -> bool {
        matches!(self, Provisioner::Kube(_))
    }

    /// Checks what [`Provisioner::add_user`] would refuse, before the user is stored. Off: only
    /// `dedicated_runtimes == 0` is accepted (there is no cluster to run them on).
    /// On: the name must fit a namespace name and N at most `max_dedicated_runtimes`.
    pub fn check_user(&self, name: &str, dedicated_runtimes: u32) -> Result<(), KubeError> {
        match self {
            Provisioner::Off if dedicated_runtimes > 0 => Err(KubeError::NoCluster),
            Provisioner::Off => Ok(()),
            Provisioner::Kube(k) => k.check_user(name, dedicated_runtimes),
        }
    }

    /// Creates (or converges) the user's namespace and its objects.
    pub async fn add_user(
        &self,
        name: &str,
        auth: &str,
        dedicated_runtimes: u32,
    ) -> Result<(), KubeError> {
        match self {
            Provisioner::Off => self.check_user(name, dedicated_runtimes),
            Provisioner::Kube(k) => k.add_user(name, auth, dedicated_runtimes).await,
        }
    }

    /// Deletes the user's namespace (and so everything in it).
    pub async fn delete_user(&self, name: &str) -> Result<(), KubeError> {
        match self {
            Provisioner::Off => Ok(()),
            Provisioner::Kube(k) => k.delete_user(name).await,
        }
    }
}

/// The cluster side of [`Provisioner`]. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct KubeProvisioner {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    settings: KubeSettings,
}

fn quantities(m: &BTreeMap<String, String>) -> BTreeMap<String, Quantity> {
    m.iter()
        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
        .collect()
}

fn user_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (USER_LABEL.to_string(), name.to_string()),
    ])
}

fn meta(name: &str, namespace: Option<&str>, user: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(user_labels(user)),
        ..ObjectMeta::default()
    }
}

impl KubeProvisioner {
    pub fn new(client: kube::Client, settings: KubeSettings) -> Self {
        KubeProvisioner {
            inner: std::sync::Arc::new(Inner { client, settings }),
        }
    }

    pub fn settings(&self) -> &KubeSettings {
        &self.inner.settings
    }

    fn client(&self) -> kube::Client {
        self.inner.client.clone()
    }

    fn check_user(&self, name: &str, dedicated_runtimes: u32) -> Result<(), KubeError> {
        user_namespace(name)?;
        let max = self.settings().max_dedicated_runtimes;
        if dedicated_runtimes > max {
            return Err(KubeError::TooManyRuntimes {
                asked: dedicated_runtimes,
                max,
            });
        }
        Ok(())
    }

    /// Applies namespace, ResourceQuota, LimitRange, Secret and (N > 0) the runtime Deployment,
    /// in this order. With N = 0 an existing runtime Deployment is left alone.
    pub async fn add_user(
        &self,
        name: &str,
        auth: &str,
        dedicated_runtimes: u32,
    ) -> Result<(), KubeError> {
        self.check_user(name, dedicated_runtimes)?;
        let ns = user_namespace(name)?;
        let namespaces: Api<Namespace> = Api::all(self.client());
        apply(&namespaces, &ns, &self.namespace(name, &ns)).await?;
        self.apply_in(&ns, &self.quota(name, &ns)).await?;
        self.apply_in(&ns, &self.limit_range(name, &ns)).await?;
        self.apply_in(&ns, &self.secret(name, &ns, auth, dedicated_runtimes > 0))
            .await?;
        if dedicated_runtimes > 0 {
            self.apply_in(&ns, &self.runtime_deployment(name, &ns, dedicated_runtimes))
                .await?;
        }
        tracing::info!(user = name, namespace = %ns, dedicated_runtimes, "user namespace applied");
        Ok(())
    }

    /// Deletes namespace `wisp-user-NAME`; one already gone (or a name that cannot have one)
    /// counts as deleted.
    pub async fn delete_user(&self, name: &str) -> Result<(), KubeError> {
        let Ok(ns) = user_namespace(name) else {
            return Ok(());
        };
        let namespaces: Api<Namespace> = Api::all(self.client());
        match namespaces.delete(&ns, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(user = name, namespace = %ns, "user namespace deleted");
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(KubeError::Api {
                action: format!("deleting namespace {ns}"),
                source,
            }),
        }
    }

    async fn apply_in<K>(&self, ns: &str, obj: &K) -> Result<(), KubeError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client(), ns);
        let name = obj.meta().name.clone().unwrap_or_default();
        apply(&api, &name, obj).await
    }

    /// The namespace object.
    pub fn namespace(&self, user: &str, ns: &str) -> Namespace {
        Namespace {
            metadata: meta(ns, None, user),
            ..Namespace::default()
        }
    }

    /// The ResourceQuota `wisp-user`.
    pub fn quota(&self, user: &str, ns: &str) -> ResourceQuota {
        ResourceQuota {
            metadata: meta(USER_OBJECT_NAME, Some(ns), user),
            spec: Some(ResourceQuotaSpec {
                hard: Some(quantities(&self.settings().quota)),
                ..ResourceQuotaSpec::default()
            }),
            ..ResourceQuota::default()
        }
    }

    /// The LimitRange `wisp-user` (container defaults and maximum).
    pub fn limit_range(&self, user: &str, ns: &str) -> LimitRange {
        let s = self.settings();
        LimitRange {
            metadata: meta(USER_OBJECT_NAME, Some(ns), user),
            spec: Some(LimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".to_string(),
                    default: Some(quantities(&s.limit_default)),
                    default_request: Some(quantities(&s.limit_default_request)),
                    max: Some(quantities(&s.limit_max)),
                    ..LimitRangeItem::default()
                }],
            }),
        }
    }

    /// The Secret `wisp-user`: `auth` = `uuid:key`, plus the runtime token for dedicated runtimes.
    pub fn secret(&self, user: &str, ns: &str, auth: &str, with_runtime_token: bool) -> Secret {
        let mut data = BTreeMap::from([(
            SECRET_AUTH_KEY.to_string(),
            ByteString(auth.as_bytes().to_vec()),
        )]);
        if with_runtime_token && let Some(token) = &self.settings().runtime_token {
            data.insert(
                SECRET_RUNTIME_TOKEN_KEY.to_string(),
                ByteString(token.as_bytes().to_vec()),
            );
        }
        Secret {
            metadata: meta(USER_OBJECT_NAME, Some(ns), user),
            type_: Some("Opaque".to_string()),
            data: Some(data),
            ..Secret::default()
        }
    }

    /// The dedicated runtime Deployment: the shared DaemonSet's container (image, port, env,
    /// probes, security), N replicas, pods labelled `wisp.dev/runtime=true` + `wisp.dev/user`.
    pub fn runtime_deployment(&self, user: &str, ns: &str, replicas: u32) -> Deployment {
        let s = self.settings();
        let selector = BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "wisp-runtime".to_string(),
            ),
            (USER_LABEL.to_string(), user.to_string()),
        ]);
        let mut pod_labels = selector.clone();
        pod_labels.insert(
            "app.kubernetes.io/component".to_string(),
            "runtime".to_string(),
        );
        pod_labels.insert(RUNTIME_LABEL.to_string(), "true".to_string());
        pod_labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
        let env_value = |name: &str, value: String| EnvVar {
            name: name.to_string(),
            value: Some(value),
            ..EnvVar::default()
        };
        let mut env = vec![
            env_value("WISP_PORT", DEFAULT_RUNTIME_PORT.to_string()),
            env_value("WISP_BIND", "0.0.0.0".to_string()),
            env_value("WISP_USER_MEMORY", s.runtime_user_memory_mb.to_string()),
            env_value("WISP_CACHE_DIR", "/var/cache/wisp".to_string()),
        ];
        if s.runtime_token.is_some() {
            env.push(EnvVar {
                name: SECRET_RUNTIME_TOKEN_KEY.to_string(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: USER_OBJECT_NAME.to_string(),
                        key: SECRET_RUNTIME_TOKEN_KEY.to_string(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            });
        }
        env.push(env_value("RUST_LOG", "info".to_string()));
        let probe = |path: &str, period: i32, failures: i32| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.to_string()),
                port: IntOrString::String("http".to_string()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(period),
            failure_threshold: Some(failures),
            ..Probe::default()
        };
        let container = Container {
            name: "runtime".to_string(),
            image: Some(s.runtime_image.clone()),
            image_pull_policy: Some("IfNotPresent".to_string()),
            ports: Some(vec![ContainerPort {
                name: Some("http".to_string()),
                container_port: DEFAULT_RUNTIME_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            }]),
            env: Some(env),
            startup_probe: Some(probe("/health", 2, 30)),
            liveness_probe: Some(probe("/health", 10, 3)),
            readiness_probe: Some(probe("/ready", 5, 2)),
            resources: Some(ResourceRequirements {
                requests: Some(quantities(&s.runtime_requests)),
                limits: Some(quantities(&s.runtime_limits)),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                run_as_non_root: Some(true),
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_string()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "cache".to_string(),
                    mount_path: "/var/cache/wisp".to_string(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "tmp".to_string(),
                    mount_path: "/tmp".to_string(),
                    ..VolumeMount::default()
                },
            ]),
            ..Container::default()
        };
        let empty_dir = |name: &str, size: &str| Volume {
            name: name.to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(size.to_string())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        };
        Deployment {
            metadata: meta(RUNTIME_DEPLOYMENT, Some(ns), user),
            spec: DeploymentSpec {
                replicas: Some(replicas as i32),
                selector: LabelSelector {
                    match_labels: Some(selector),
                    ..LabelSelector::default()
                },
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".to_string()),
                    ..DeploymentStrategy::default()
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        automount_service_account_token: Some(false),
                        // SIGTERM drains: the longest action timeout (300 s) plus margin.
                        termination_grace_period_seconds: Some(330),
                        security_context: Some(PodSecurityContext {
                            run_as_non_root: Some(true),
                            run_as_user: Some(65532),
                            run_as_group: Some(65532),
                            fs_group: Some(65532),
                            seccomp_profile: Some(SeccompProfile {
                                type_: "RuntimeDefault".to_string(),
                                ..SeccompProfile::default()
                            }),
                            ..PodSecurityContext::default()
                        }),
                        containers: vec![container],
                        volumes: Some(vec![empty_dir("cache", "1Gi"), empty_dir("tmp", "64Mi")]),
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }
}

/// Server-side apply of `obj` as `name` (field manager `wisp`, conflicts forced).
async fn apply<K>(api: &Api<K>, name: &str, obj: &K) -> Result<(), KubeError>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(obj))
        .await
        .map(|_| ())
        .map_err(|source| KubeError::Api {
            action: format!("applying {} {name}", K::kind(&K::DynamicType::default())),
            source,
        })
}
