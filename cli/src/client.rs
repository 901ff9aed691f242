//! The REST client every remote verb goes through.
//!
//! One [`Client`] per command (a reqwest connection pool, cheap for a CLI). It builds URLs from
//! path segments (each percent-encoded, so names with spaces or `@` are safe), sends HTTP Basic
//! `uuid:key` (or the admin bearer key), and maps failures to [`ClientError`] by *type*: the
//! connection error kind, the HTTP status and the server's `{error, code}` body.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// The header every answer about an activation carries.
pub const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// HTTP Basic with a `uuid:key` pair (the namespace API).
    Basic { user: String, key: String },
    /// `Authorization: Bearer <WISP_ADMIN_KEY>` (the admin API).
    Bearer(String),
    /// No credentials (health checks, web actions).
    None,
}

impl Auth {
    /// Parses `uuid:key`.
    pub fn basic(auth: &str) -> Result<Auth, ClientError> {
        match auth.split_once(':') {
            Some((user, key)) if !user.is_empty() && !key.is_empty() => Ok(Auth::Basic {
                user: user.to_string(),
                key: key.to_string(),
            }),
            _ => Err(ClientError::BadAuth),
        }
    }
}

/// Why a request failed. Each variant prints as one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach wisp at {url}: {reason} — is `wisp up` running?")]
    Unreachable { url: String, reason: String },
    #[error("wisp at {url} did not answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("the credentials were refused (HTTP 401: {message}) — {hint}")]
    Unauthorized { message: String, hint: &'static str },
    #[error("{message} (HTTP {status}{})", code.as_deref().map(|c| format!(", code {c}")).unwrap_or_default())]
    Api {
        status: u16,
        message: String,
        code: Option<String>,
    },
    #[error("wisp at {url} answered HTTP {status} with a body that is not JSON: {snippet:?}")]
    NotJson {
        url: String,
        status: u16,
        snippet: String,
    },
    #[error("the auth key must look like UUID:KEY")]
    BadAuth,
    #[error("request to {url} failed: {reason}")]
    Http { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::NotJson { status, .. } => Some(*status),
            ClientError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

/// A server answer: status, the activation-id header (invokes), and the JSON body (`Null` when
/// the body was empty).
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub activation_id: Option<String>,
    pub body: Value,
}

/// A REST client bound to one API host and one set of credentials.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    /// The `Authorization` value of `auth`, encoded once.
    auth_header: Option<HeaderValue>,
}

/// An answer read to its end but not parsed (see [`Client::send_raw`]).
#[derive(Clone, Debug)]
pub struct RawAnswer {
    pub status: StatusCode,
    pub activation_id: Option<String>,
    /// Whether the body arrived whole (a body that broke off still has its status and id).
    pub complete: bool,
}

/// Longer than the server's 60 s blocking-invoke wait, so a blocking invoke always gets the
/// server's own answer (a result or a 202).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(75);

impl Client {
    /// A client for `apihost` (already normalised, see [`crate::config::normalize_apihost`]).
    pub fn new(apihost: &str, auth: Auth) -> Result<Client, ClientError> {
        Self::build(apihost, auth, reqwest::Client::builder())
    }

    /// A client for a load generator (`wisp bench`): no proxy, `TCP_NODELAY`, and up to
    /// `connections` idle keep-alive connections kept, one per concurrent caller.
    pub fn for_load(apihost: &str, auth: Auth, connections: usize) -> Result<Client, ClientError> {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(connections);
        Self::build(apihost, auth, builder)
    }

    fn build(
        apihost: &str,
        auth: Auth,
        builder: reqwest::ClientBuilder,
    ) -> Result<Client, ClientError> {
        let base = Url::parse(apihost).map_err(|e| ClientError::Http {
            url: apihost.to_string(),
            reason: e.to_string(),
        })?;
        let http = builder
            .user_agent(concat!("wisp-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Http {
                url: apihost.to_string(),
                reason: error_chain(&e),
            })?;
        let auth_header = match &auth {
            Auth::Basic { user, key } => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"));
                Some(
                    HeaderValue::from_str(&format!("Basic {encoded}"))
                        .map_err(|_| ClientError::BadAuth)?,
                )
            }
            Auth::Bearer(token) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ClientError::BadAuth)?,
            ),
            Auth::None => None,
        };
        Ok(Client {
            http,
            base,
            auth,
            auth_header,
        })
    }

    /// The API host this client talks to.
    pub fn apihost(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `{apihost}/seg/seg...?query`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("http(s) URLs always have a path");
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// Sends a request and returns the answer whatever its status; only transport failures,
    /// 401 and non-JSON bodies are errors.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let url = self.url(segments, query);
        let mut req = self
            .http
            .request(method, url.clone())
            .header(ACCEPT, "application/json");
        if let Some(auth) = &self.auth_header {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let activation_id = resp
            .headers()
            .get(ACTIVATION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) => {
                    let text = String::from_utf8_lossy(&bytes);
                    return Err(ClientError::NotJson {
                        url: url.to_string(),
                        status: status.as_u16(),
                        snippet: text.chars().take(200).collect(),
                    });
                }
            }
        };
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                message: error_message(&body).unwrap_or_else(|| "unauthorized".into()),
                hint: match self.auth {
                    Auth::Bearer(_) => "check WISP_ADMIN_KEY",
                    Auth::Basic { .. } => {
                        "check AUTH (`wisp property get --auth`, WISP_AUTH or --auth)"
                    }
                    Auth::None => "this request needs credentials",
                },
            });
        }
        Ok(Answer {
            status,
            activation_id,
            body,
        })
    }

    /// Sends `body` (JSON bytes, when given) to a prepared `url` and reads the answer to its end
    /// without parsing it: the hot path of a load generator, which builds its URLs and bodies
    /// once. Only a failure before the status arrived is an error.
    pub async fn send_raw(
        &self,
        method: Method,
        url: &Url,
        body: Option<bytes::Bytes>,
    ) -> Result<RawAnswer, ClientError> {
        let mut req = self.http.request(method, url.clone());
        if let Some(auth) = &self.auth_header {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let activation_id = resp
            .headers()
            .get(ACTIVATION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Reading the body to its end lets the connection be reused.
        let complete = resp.bytes().await.is_ok();
        Ok(RawAnswer {
            status,
            activation_id,
            complete,
        })
    }

    /// Sends a request and returns the JSON body of a 2xx answer; any other status becomes
    /// [`ClientError::Api`] with the server's `{error, code}`.
    pub async fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let answer = self.send(method, segments, query, body).await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(api_error(&answer))
        }
    }

    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.request(Method::GET, segments, query, None).await
    }

    pub async fn put(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value, ClientError> {
        self.request(Method::PUT, segments, query, Some(body)).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        self.request(Method::POST, segments, &[], Some(body)).await
    }

    pub async fn delete(&self, segments: &[&str]) -> Result<Value, ClientError> {
        self.request(Method::DELETE, segments, &[], None).await
    }

    fn transport_error(&self, e: &reqwest::Error) -> ClientError {
        let url = self.apihost().to_string();
        if e.is_timeout() {
            return ClientError::Timeout {
                url,
                secs: REQUEST_TIMEOUT.as_secs(),
            };
        }
        if e.is_connect() {
            return ClientError::Unreachable {
                url,
                reason: connect_reason(e),
            };
        }
        ClientError::Http {
            url,
            reason: error_chain(e),
        }
    }
}

/// The server's `{error, code}` (or an OpenWhisk-style failure body) as an error.
pub fn api_error(answer: &Answer) -> ClientError {
    ClientError::Api {
        status: answer.status.as_u16(),
        message: error_message(&answer.body).unwrap_or_else(|| {
            answer
                .status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        }),
        code: answer.body.get("code").and_then(|c| match c {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }),
    }
}

/// `body.error` as a string (OpenWhisk puts a message there; some results put an object).
fn error_message(body: &Value) -> Option<String> {
    match body.get("error")? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// "connection refused", "no route to host", "dns error: ..." — the innermost cause that says
/// why the connection failed.
fn connect_reason(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "connection timed out".to_string(),
                _ => io.to_string(),
            };
        }
        last = err.to_string();
        source = err.source();
    }
    last
}

/// An error and its causes on one line, `a: b: c`, without repeats.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        let c = Client::new("http://127.0.0.1:3233", Auth::None).unwrap();
        let url = c.url(
            &["api", "v1", "namespaces", "_", "actions", "my pkg", "a@b"],
            &[("blocking", "true".into())],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:3233/api/v1/namespaces/_/actions/my%20pkg/a@b?blocking=true"
        );
    }

    #[test]
    fn basic_auth_needs_both_halves() {
        assert!(Auth::basic("u:k").is_ok());
        assert!(matches!(Auth::basic("nokey"), Err(ClientError::BadAuth)));
        assert!(matches!(Auth::basic(":k"), Err(ClientError::BadAuth)));
    }

    #[tokio::test]
    async fn refused_connection_is_one_clear_line() {
        // Bind then drop: nothing listens on this port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Client::new(&format!("http://127.0.0.1:{port}"), Auth::None).unwrap();
        let err = c.get(&["health"], &[]).await.unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot reach wisp at http://127.0.0.1:{port}: connection refused — is `wisp up` running?"
            )
        );
    }
}
