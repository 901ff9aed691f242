//! Per-user namespaces against the kube crate's mock service: the exact API requests of
//! `user add` (with and without dedicated runtimes), `user delete`, failures, and the admin API
//! wired to them (a real scheduler on 127.0.0.1:0 whose provisioner talks to the mock).

mod kube_mock;

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use kube_mock::{Answer, Seen, echo, mock_api};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wisp_scheduler::kube::{KubeError, KubeProvisioner, KubeSettings, Provisioner};
use wisp_scheduler::{Scheduler, SchedulerConfig};

const ADMIN_KEY: &str = "kube-test-admin-key";

fn settings() -> KubeSettings {
    KubeSettings {
        runtime_token: Some("runtime-token".into()),
        runtime_image: "ghcr.io/wisp-dev/wisp-runtime:0.1.0".into(),
        ..KubeSettings::default()
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn user_labels(user: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": "wisp", "wisp.dev/user": user})
}

fn to_json(m: &BTreeMap<String, String>) -> Value {
    serde_json::to_value(m).unwrap()
}

/// The request is a forced server-side apply by field manager `wisp`.
fn assert_apply(s: &Seen, path: &str, kind: &str, api_version: &str, name: &str) {
    assert_eq!(s.line(), format!("PATCH {path}"), "{s:#?}");
    assert_eq!(
        s.query,
        BTreeMap::from([
            ("fieldManager".to_string(), "wisp".to_string()),
            ("force".to_string(), "true".to_string()),
        ]),
        "{s:#?}"
    );
    assert_eq!(
        s.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(s.body["kind"], kind, "{s:#?}");
    assert_eq!(s.body["apiVersion"], api_version, "{s:#?}");
    assert_eq!(s.body["metadata"]["name"], name, "{s:#?}");
}

/// The four objects every user gets, in order.
fn assert_user_objects(seen: &[Seen], user: &str, auth: &str, runtime_token: Option<&str>) {
    let ns = format!("wisp-user-{user}");
    let s = settings();
    assert_apply(
        &seen[0],
        &format!("/api/v1/namespaces/{ns}"),
        "Namespace",
        "v1",
        &ns,
    );
    assert_eq!(seen[0].body["metadata"]["labels"], user_labels(user));
    assert_eq!(seen[0].body["metadata"].get("namespace"), None);

    assert_apply(
        &seen[1],
        &format!("/api/v1/namespaces/{ns}/resourcequotas/wisp-user"),
        "ResourceQuota",
        "v1",
        "wisp-user",
    );
    assert_eq!(seen[1].body["metadata"]["namespace"], ns);
    assert_eq!(seen[1].body["metadata"]["labels"], user_labels(user));
    assert_eq!(seen[1].body["spec"]["hard"], to_json(&s.quota));
    assert_eq!(seen[1].body["spec"]["hard"]["pods"], "8");

    assert_apply(
        &seen[2],
        &format!("/api/v1/namespaces/{ns}/limitranges/wisp-user"),
        "LimitRange",
        "v1",
        "wisp-user",
    );
    assert_eq!(seen[2].body["metadata"]["labels"], user_labels(user));
    assert_eq!(
        seen[2].body["spec"]["limits"],
        json!([{
            "type": "Container",
            "default": to_json(&s.limit_default),
            "defaultRequest": to_json(&s.limit_default_request),
            "max": to_json(&s.limit_max),
        }])
    );

    assert_apply(
        &seen[3],
        &format!("/api/v1/namespaces/{ns}/secrets/wisp-user"),
        "Secret",
        "v1",
        "wisp-user",
    );
    assert_eq!(seen[3].body["metadata"]["labels"], user_labels(user));
    assert_eq!(seen[3].body["type"], "Opaque");
    let mut data = json!({"auth": b64(auth)});
    if let Some(token) = runtime_token {
        data["WISP_RUNTIME_TOKEN"] = json!(b64(token));
    }
    assert_eq!(seen[3].body["data"], data, "content in data, base64");
    assert_eq!(seen[3].body.get("stringData"), None);
}

#[tokio::test]
async fn user_add_applies_namespace_quota_limit_range_and_secret() -> Result<()> {
    let (client, api) = mock_api(echo);
    let p = Provisioner::Kube(KubeProvisioner::new(client, settings()));
    p.add_user("alice", "1f0e3c54-uuid:the-key", 0).await?;
    drop(p);
    let seen = api.finish().await;
    assert_eq!(
        seen.len(),
        4,
        "{:#?}",
        seen.iter().map(Seen::line).collect::<Vec<_>>()
    );
    // No dedicated runtimes: the runtime token stays out of the user's namespace.
    assert_user_objects(&seen, "alice", "1f0e3c54-uuid:the-key", None);
    Ok(())
}

#[tokio::test]
async fn user_add_is_idempotent() -> Result<()> {
    let (client, api) = mock_api(echo);
    let p = Provisioner::Kube(KubeProvisioner::new(client, settings()));
    p.add_user("alice", "u:k", 0).await?;
    p.add_user("alice", "u:k", 0).await?;
    drop(p);
    let seen = api.finish().await;
    assert_eq!(seen.len(), 8);
    for (a, b) in seen[..4].iter().zip(&seen[4..]) {
        assert_eq!((a.line(), &a.query, &a.body), (b.line(), &b.query, &b.body));
    }
    Ok(())
}

/// The `runtime` container of deploy/base/runtime/daemonset.yaml.
fn daemonset_container() -> Result<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/base/runtime/daemonset.yaml"
    );
    let text = std::fs::read_to_string(path).with_context(|| path.to_string())?;
    let ds: Value = serde_norway::from_str(&text)?;
    Ok(ds["spec"]["template"]["spec"]["containers"][0].clone())
}

#[tokio::test]
async fn user_add_with_dedicated_runtimes_applies_a_runtime_deployment() -> Result<()> {
    let (client, api) = mock_api(echo);
    let p = Provisioner::Kube(KubeProvisioner::new(client, settings()));
    p.add_user("alice", "u:k", 3).await?;
    drop(p);
    let seen = api.finish().await;
    assert_eq!(
        seen.len(),
        5,
        "{:#?}",
        seen.iter().map(Seen::line).collect::<Vec<_>>()
    );
    assert_user_objects(&seen, "alice", "u:k", Some("runtime-token"));

    let d = &seen[4];
    assert_apply(
        d,
        "/apis/apps/v1/namespaces/wisp-user-alice/deployments/wisp-runtime",
        "Deployment",
        "apps/v1",
        "wisp-runtime",
    );
    assert_eq!(d.body["metadata"]["labels"], user_labels("alice"));
    let spec = &d.body["spec"];
    assert_eq!(spec["replicas"], 3);
    let pod_labels = spec["template"]["metadata"]["labels"]
        .as_object()
        .context("pod labels")?;
    assert_eq!(pod_labels["wisp.dev/runtime"], "true");
    assert_eq!(pod_labels["wisp.dev/user"], "alice");
    for (k, v) in spec["selector"]["matchLabels"]
        .as_object()
        .context("selector")?
    {
        assert_eq!(pod_labels.get(k), Some(v), "the selector selects the pods");
    }
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "ghcr.io/wisp-dev/wisp-runtime:0.1.0");
    assert_eq!(
        c["env"],
        json!([
            {"name": "WISP_PORT", "value": "8080"},
            {"name": "WISP_BIND", "value": "0.0.0.0"},
            {"name": "WISP_USER_MEMORY", "value": "768"},
            {"name": "WISP_CACHE_DIR", "value": "/var/cache/wisp"},
            {"name": "WISP_RUNTIME_TOKEN", "valueFrom": {"secretKeyRef": {"name": "wisp-user", "key": "WISP_RUNTIME_TOKEN"}}},
            {"name": "RUST_LOG", "value": "info"},
        ])
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
    );

    // The same container as the shared DaemonSet: env names, port, probes, security, mounts.
    let ds = daemonset_container()?;
    let names = |c: &Value| -> Vec<String> {
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names(c), names(&ds));
    assert_eq!(c["ports"], ds["ports"]);
    assert_eq!(c["securityContext"], ds["securityContext"]);
    assert_eq!(c["volumeMounts"], ds["volumeMounts"]);
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"], ds[probe]["httpGet"], "{probe}");
    }
    assert_eq!(
        ds["image"].as_str().map(|i| i.split(':').next()),
        Some(Some("ghcr.io/wisp-dev/wisp-runtime"))
    );

    // Quota room: N runtimes' requests fit the default quota.
    let quota = &seen[1].body["spec"]["hard"];
    assert!(3 <= quota["pods"].as_str().unwrap().parse::<u32>()?);
    Ok(())
}

#[tokio::test]
async fn user_delete_deletes_the_namespace_and_tolerates_it_gone() -> Result<()> {
    let (client, api) = mock_api(|s, i| match i {
        0 => Answer::json(
            200,
            &json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": s.path.rsplit('/').next().unwrap()},
                "status": {"phase": "Terminating"}}),
        ),
        1 => Answer::status(404, "NotFound", "namespaces \"wisp-user-alice\" not found"),
        _ => Answer::status(403, "Forbidden", "namespaces is forbidden"),
    });
    let p = Provisioner::Kube(KubeProvisioner::new(client, settings()));
    p.delete_user("alice").await?;
    p.delete_user("alice").await?; // already gone: fine
    let err = p.delete_user("alice").await.unwrap_err();
    assert!(
        matches!(&err, KubeError::Api { action, .. } if action == "deleting namespace wisp-user-alice"),
        "{err}"
    );
    // A name that cannot have a namespace has none to delete: no request.
    p.delete_user("Not_A_Label").await?;
    drop(p);
    let seen = api.finish().await;
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.line(), "DELETE /api/v1/namespaces/wisp-user-alice");
        assert!(s.query.is_empty(), "{s:#?}");
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
    }
    Ok(())
}

#[tokio::test]
async fn a_failed_apply_stops_and_says_what_failed() -> Result<()> {
    let (client, api) = mock_api(|s, _| {
        if s.path.contains("/resourcequotas/") {
            Answer::status(403, "Forbidden", "resourcequotas is forbidden")
        } else {
            echo(s, 0)
        }
    });
    let p = Provisioner::Kube(KubeProvisioner::new(client, settings()));
    let err = p.add_user("alice", "u:k", 0).await.unwrap_err();
    assert!(
        matches!(&err, KubeError::Api { action, .. } if action == "applying ResourceQuota wisp-user"),
        "{err}"
    );
    assert!(
        err.to_string().contains("resourcequotas is forbidden"),
        "{err}"
    );
    drop(p);
    assert_eq!(api.finish().await.len(), 2);
    Ok(())
}

#[tokio::test]
async fn bad_names_and_too_many_runtimes_send_nothing() -> Result<()> {
    let (client, api) = mock_api(echo);
    let p = Provisioner::Kube(KubeProvisioner::new(client, settings()));
    for name in ["Alice", "a_b", "a.b", "x-"] {
        let err = p.add_user(name, "u:k", 0).await.unwrap_err();
        assert!(
            matches!(err, KubeError::InvalidName(ref n) if n == name),
            "{err}"
        );
    }
    let err = p.add_user("alice", "u:k", 9).await.unwrap_err();
    assert!(
        matches!(err, KubeError::TooManyRuntimes { asked: 9, max: 8 }),
        "{err}"
    );
    drop(p);
    assert!(api.finish().await.is_empty());
    Ok(())
}

#[tokio::test]
async fn off_does_nothing_and_refuses_dedicated_runtimes() -> Result<()> {
    let p = Provisioner::Off;
    assert!(!p.is_enabled());
    p.add_user("Any_Name", "u:k", 0).await?;
    p.delete_user("Any_Name").await?;
    assert!(matches!(
        p.add_user("alice", "u:k", 1).await,
        Err(KubeError::NoCluster)
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The admin API with Kubernetes on
// ---------------------------------------------------------------------------------------------

struct Served {
    url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
    _dir: tempfile::TempDir,
}

async fn serve(provisioner: Option<Provisioner>) -> Result<Served> {
    let dir = tempfile::tempdir()?;
    let config = SchedulerConfig {
        data_dir: dir.path().to_path_buf(),
        admin_key: Some(ADMIN_KEY.into()),
        ..SchedulerConfig::default()
    };
    let mut scheduler = Scheduler::open(config).await?;
    if let Some(p) = provisioner {
        scheduler = scheduler.with_provisioner(p);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(scheduler.serve(listener, shutdown.clone()));
    Ok(Served {
        url,
        shutdown,
        task,
        _dir: dir,
    })
}

impl Served {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }
}

#[tokio::test]
async fn admin_api_provisions_and_removes_user_namespaces() -> Result<()> {
    let (client, api) = mock_api(|s, _| {
        if s.path.ends_with("/wisp-user-carol") && s.method == "PATCH" {
            Answer::status(403, "Forbidden", "namespaces is forbidden")
        } else if s.method == "DELETE" {
            Answer::json(
                200,
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "wisp-user-alice"}}),
            )
        } else {
            echo(s, 0)
        }
    });
    let server = serve(Some(Provisioner::Kube(KubeProvisioner::new(
        client,
        settings(),
    ))))
    .await?;
    use reqwest::Method;

    let (status, body) = server
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(json!({"name": "alice", "dedicatedRuntimes": 2})),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["dedicatedRuntimes"], 2);
    let auth = body["auth"].as_str().context("auth")?.to_string();

    // Names Kubernetes cannot use and too many runtimes are 400s that reach neither store nor API.
    let (status, body) = server
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(json!({"name": "Bob_1"})),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Kubernetes namespace"),
        "{body}"
    );
    let (status, body) = server
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(json!({"name": "bob", "dedicatedRuntimes": 99})),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    let (status, _) = server
        .call(Method::GET, "/admin/v1/users/bob", None)
        .await?;
    assert_eq!(status, 404);

    // The cluster refuses: 500, and the user is not left half-created.
    let (status, body) = server
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(json!({"name": "carol"})),
        )
        .await?;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("namespaces is forbidden"),
        "{body}"
    );
    let (status, _) = server
        .call(Method::GET, "/admin/v1/users/carol", None)
        .await?;
    assert_eq!(status, 404, "rolled back");

    let (status, body) = server
        .call(Method::DELETE, "/admin/v1/users/alice", None)
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server
        .call(Method::DELETE, "/admin/v1/users/alice", None)
        .await?;
    assert_eq!(
        status, 404,
        "no second namespace delete for a user that is gone"
    );

    server.stop().await?;
    let seen = api.finish().await;
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        [
            "PATCH /api/v1/namespaces/wisp-user-alice",
            "PATCH /api/v1/namespaces/wisp-user-alice/resourcequotas/wisp-user",
            "PATCH /api/v1/namespaces/wisp-user-alice/limitranges/wisp-user",
            "PATCH /api/v1/namespaces/wisp-user-alice/secrets/wisp-user",
            "PATCH /apis/apps/v1/namespaces/wisp-user-alice/deployments/wisp-runtime",
            "PATCH /api/v1/namespaces/wisp-user-carol",
            "DELETE /api/v1/namespaces/wisp-user-alice",
        ]
    );
    assert_user_objects(&seen, "alice", &auth, Some("runtime-token"));
    assert_eq!(seen[4].body["spec"]["replicas"], 2);
    Ok(())
}

#[tokio::test]
async fn admin_api_without_kubernetes_refuses_dedicated_runtimes_only() -> Result<()> {
    let server = serve(None).await?;
    use reqwest::Method;
    let (status, body) = server
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(json!({"name": "dave", "dedicatedRuntimes": 1})),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("Kubernetes"),
        "{body}"
    );
    // Without a cluster any valid OpenWhisk name works, as before.
    let (status, body) = server
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(json!({"name": "Dave_1"})),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["dedicatedRuntimes"], 0);
    let (status, _) = server
        .call(Method::DELETE, "/admin/v1/users/Dave_1", None)
        .await?;
    assert_eq!(status, 200);
    server.stop().await
}

/// `--initial-user` (`Scheduler::ensure_user`) provisions the namespace when it creates or
/// re-keys the user, exactly as `admin user add` does, and sends nothing when the user exists.
#[tokio::test]
async fn the_initial_user_gets_its_namespace() -> Result<()> {
    let (client, api) = mock_api(echo);
    let dir = tempfile::tempdir()?;
    let config = SchedulerConfig {
        data_dir: dir.path().to_path_buf(),
        ..SchedulerConfig::default()
    };
    let scheduler = Scheduler::open(config)
        .await?
        .with_provisioner(Provisioner::Kube(KubeProvisioner::new(client, settings())));
    let auth = scheduler
        .ensure_user("guest", None)
        .await?
        .context("a new user has a key")?;
    assert_eq!(
        scheduler.ensure_user("guest", None).await?,
        None,
        "existing user"
    );
    let given = "6a1d2a3b-0000-4000-8000-000000000000:given-key";
    assert_eq!(
        scheduler
            .ensure_user("guest", Some(given))
            .await?
            .as_deref(),
        Some(given)
    );
    scheduler.shutdown().await?;
    drop(scheduler);
    let seen = api.finish().await;
    assert_eq!(
        seen.len(),
        8,
        "{:#?}",
        seen.iter().map(Seen::line).collect::<Vec<_>>()
    );
    assert_user_objects(&seen[..4], "guest", &auth, None);
    assert_user_objects(&seen[4..], "guest", given, None);
    Ok(())
}
