//! Web actions: `ANY /api/v1/web/{namespace}/{package}/{action}[.ext][/rest]`, OpenWhisk's
//! `WebActions.scala` rules.
//!
//! - Only actions annotated `web-export: true` are served (any other action, missing or not,
//!   is 404, so nothing leaks). Package `default` means no package.
//! - `require-whisk-auth`: a string or number must equal the `X-Require-Whisk-Auth` header;
//!   `true` needs a valid `uuid:key` (HTTP Basic) of any user, whose namespace becomes
//!   `__ow_user`; otherwise 401. The `authorization` header is then removed from
//!   `__ow_headers`: the action never sees the caller's key.
//! - Params: package < action < query < body (a JSON object or form data), plus `__ow_method`
//!   (lowercase), `__ow_headers` (lowercase names), `__ow_path` (what follows the action), and
//!   `__ow_body` when the body is not a JSON object or form (base64 when binary). Actions with
//!   `raw-http: true` get the query unparsed in `__ow_query` and the body always in `__ow_body`.
//!   A request may not set `__ow_*` parameters, nor (annotation `final: true`) the action's own.
//! - Extensions: `.http` (default; the result is `{statusCode, headers, body}`, a body whose
//!   content type is binary is base64-decoded), `.json` (the result as JSON), `.html`, `.svg`,
//!   `.text` (the result's `body`, or the field named like the extension).
//! - An application error answers the `error` field through the same extension; a developer or
//!   internal error answers 400. The activation runs as the action's owner, blocking.
//!
//! Costs: one store lookup (cached) and one blocking invoke per request; nothing is kept.

use axum::{
    Json,
    extract::{
        Path, State,
        rejection::{BytesRejection, PathRejection},
    },
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde_json::{Map, Value};
use wisp_core::{ActivationId, Status, entity, run::ErrorBody};

use crate::api::ApiError;
use crate::invoke::{ACTIVATION_ID_HEADER, InvokeOutcome, InvokeRequest, ResolveError};
use crate::state::AppState;

/// The response extensions OpenWhisk knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    Http,
    Json,
    Html,
    Svg,
    Text,
}

impl Extension {
    const ALL: [(&'static str, Extension); 5] = [
        (".http", Extension::Http),
        (".json", Extension::Json),
        (".html", Extension::Html),
        (".svg", Extension::Svg),
        (".text", Extension::Text),
    ];

    /// Splits `name.ext` into the action name and its extension (`.http` when none is known).
    pub fn split(name: &str) -> (&str, Extension) {
        for (suffix, ext) in Self::ALL {
            if let Some(base) = name.strip_suffix(suffix) {
                return (base, ext);
            }
        }
        (name, Extension::Http)
    }
}

const RESERVED: [&str; 6] = [
    "__ow_method",
    "__ow_headers",
    "__ow_path",
    "__ow_user",
    "__ow_query",
    "__ow_body",
];

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "The requested resource does not exist.",
    )
}

/// Whether a media type (`type/subtype`, lowercase, no parameters) carries binary data, as
/// Spray/akka-http classify them: text, JSON, XML, JavaScript and forms are not binary.
pub fn is_binary(media_type: &str) -> bool {
    let mt = media_type.trim();
    !(mt.starts_with("text/")
        || is_json_family(mt)
        || mt == "application/xml"
        || mt.ends_with("+xml")
        || mt == "application/javascript"
        || mt == "application/ecmascript"
        || mt == "application/x-www-form-urlencoded"
        || mt == "application/graphql")
}

fn is_json_family(mt: &str) -> bool {
    mt == "application/json" || mt.ends_with("+json")
}

/// The lowercase `type/subtype` of a Content-Type value.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `ANY /api/v1/web/{*path}`.
///
/// The path and body extractors' rejections (a path that is not UTF-8 once percent-decoded, a
/// body over the 1 MB limit) are answered here as JSON `{error, code}` like every other error:
/// web routes sit outside the API's JSON error layer.
pub async fn web_route(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<bytes::Bytes, BytesRejection>,
) -> Response {
    let path = match path {
        Ok(Path(path)) => path,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("The request path is not valid: {}", e.body_text()),
            );
        }
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            let status = e.status();
            let code = crate::api::code_for_status(status);
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: state.config.max_body_bytes,
                }
                .to_string()
            } else {
                e.body_text()
            };
            return error(status, code, message);
        }
    };
    let path = path.trim_start_matches('/');
    let mut segments = path.splitn(4, '/');
    let (Some(ns), Some(pkg), Some(name_ext)) = (segments.next(), segments.next(), segments.next())
    else {
        return not_found();
    };
    let rest = segments.next().map(|r| format!("/{r}")).unwrap_or_default();
    let (name, extension) = Extension::split(name_ext);
    let valid = |s: &str| wisp_core::names::validate(s).is_ok();
    if !valid(ns) || !valid(pkg) || !valid(name) {
        return not_found();
    }
    let pkg = (pkg != "default").then_some(pkg);

    let resolved = match crate::invoke::resolve(&*state.store, ns, ns, pkg, name).await {
        Ok(r) => r,
        Err(ResolveError::NotFound | ResolveError::Forbidden) => return not_found(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let annotations = &resolved.action.annotations;
    if !entity::is_true(annotations, "web-export") {
        return not_found();
    }
    let custom_options = entity::is_true(annotations, "web-custom-options");
    let cors = !custom_options;
    if method == Method::OPTIONS && cors {
        return with_cors(StatusCode::OK.into_response(), &headers);
    }
    let user = match authorize(&state, annotations, &headers).await {
        Ok(user) => user,
        Err(_) if method == Method::OPTIONS => None,
        Err(e) => return maybe_cors(e.into_response(), cors, &headers),
    };
    let raw = entity::is_true(annotations, "raw-http");

    let params = match build_params(
        &method,
        &headers,
        &rest,
        uri.query().unwrap_or(""),
        &body,
        raw,
        user.as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => return maybe_cors(e.into_response(), cors, &headers),
    };
    // The request may not override reserved or (annotation `final`) the action's parameters.
    let finals = entity::is_true(annotations, "final");
    if !raw
        && params.request.keys().any(|k| {
            RESERVED.contains(&k.as_str()) || (finals && resolved.defaults.contains_key(k))
        })
    {
        return maybe_cors(
            error(
                StatusCode::BAD_REQUEST,
                "parameters_not_allowed",
                "Request defines parameters that are not allowed (e.g., reserved properties).",
            ),
            cors,
            &headers,
        );
    }
    let mut merged = resolved.defaults;
    merged.extend(params.request);
    merged.extend(params.context);

    let request = InvokeRequest {
        subject: ns.to_string(),
        action: resolved.action,
        path: resolved.path,
        params: merged,
        blocking: true,
        cause: None,
    };
    let response = match state.invoker.invoke(request).await {
        Ok(InvokeOutcome::Completed(record)) => {
            let id = record.activation_id.clone();
            let response = match record.response.status {
                Status::Success => transcode(extension, record.response.result),
                Status::ApplicationError => match record.response.result {
                    Value::Object(mut m) => match m.remove("error") {
                        Some(e) => transcode(extension, e),
                        None => error(
                            StatusCode::NOT_FOUND,
                            "not_found",
                            "The requested property does not exist.",
                        ),
                    },
                    _ => error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "The requested property does not exist.",
                    ),
                },
                Status::DeveloperError | Status::InternalError => error(
                    StatusCode::BAD_REQUEST,
                    "activation_failed",
                    "There was an error processing your request.",
                ),
            };
            with_id(response, &id)
        }
        Ok(InvokeOutcome::Accepted(id)) => with_id(
            error(StatusCode::ACCEPTED, "not_ready", "Response not yet ready."),
            &id,
        ),
        Err(e) => e.into_response(),
    };
    maybe_cors(response, cors, &headers)
}

/// Checks `require-whisk-auth`. `Ok(Some(namespace))` when a whisk user authenticated.
async fn authorize(
    state: &AppState,
    annotations: &[wisp_core::KeyValue],
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let expect_header = |expected: String| {
        let presented = headers
            .get("x-require-whisk-auth")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        use subtle::ConstantTimeEq as _;
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(None)
        } else {
            Err(ApiError::Unauthorized)
        }
    };
    match entity::lookup(annotations, "require-whisk-auth") {
        None | Some(Value::Bool(false)) | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => expect_header(s.clone()),
        Some(Value::Number(n)) => expect_header(n.to_string()),
        Some(Value::Bool(true)) => crate::auth::authenticate(&*state.store, headers)
            .await
            .map(|identity| Some(identity.namespace)),
        Some(_) => Err(ApiError::Unauthorized),
    }
}

/// A web request's parameters: what the caller chose (query, body) and the HTTP context.
#[derive(Debug, Clone, PartialEq)]
pub struct WebParams {
    /// The query's and body's parameters (a request may not set reserved names through them).
    pub request: Map<String, Value>,
    /// `__ow_method`, `__ow_headers`, `__ow_path`, and `__ow_user`, `__ow_query`, `__ow_body`
    /// when they apply.
    pub context: Map<String, Value>,
}

/// Maps a web request to action parameters (OpenWhisk's rules, see the module docs): `rest` is
/// the path after the action, `query` the raw query string, `raw` the `raw-http` annotation and
/// `user` the namespace of an authenticated caller. Fails (400) only on a JSON body that does
/// not parse. Public for the fuzz tests (`scheduler/tests/fuzz_web.rs`).
pub fn build_params(
    method: &Method,
    headers: &HeaderMap,
    rest: &str,
    query: &str,
    body: &[u8],
    raw: bool,
    user: Option<&str>,
) -> Result<WebParams, ApiError> {
    let mut context = Map::new();
    context.insert(
        "__ow_method".into(),
        Value::String(method.as_str().to_ascii_lowercase()),
    );
    let mut hs = Map::new();
    for (name, value) in headers {
        // The caller's whisk credentials were checked here and must not reach the action (it
        // is another tenant's code): it gets `__ow_user` instead.
        if user.is_some() && name == header::AUTHORIZATION {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match hs.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                hs.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    context.insert("__ow_headers".into(), Value::Object(hs));
    context.insert("__ow_path".into(), Value::String(rest.to_string()));
    if let Some(user) = user {
        context.insert("__ow_user".into(), Value::String(user.to_string()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type)
        .unwrap_or_else(|| "application/octet-stream".to_string());
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    let text_or_b64 = |b: &[u8]| {
        if is_binary(&content_type) || is_json_family(&content_type) {
            b64(b)
        } else {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
    };

    let mut request = Map::new();
    if raw {
        context.insert("__ow_query".into(), Value::String(query.to_string()));
        let body_value = if body.is_empty() {
            Value::String(String::new())
        } else {
            text_or_b64(body)
        };
        context.insert("__ow_body".into(), body_value);
        return Ok(WebParams { request, context });
    }
    for (k, v) in form_urlencoded_pairs(query) {
        request.insert(k, Value::String(v));
    }
    if body.is_empty() {
        return Ok(WebParams { request, context });
    }
    if is_json_family(&content_type) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => request.extend(fields),
            Ok(other) => {
                context.insert("__ow_body".into(), other);
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "The request content was malformed: {e}"
                )));
            }
        }
    } else if content_type == "application/x-www-form-urlencoded" {
        let text = String::from_utf8_lossy(body);
        for (k, v) in form_urlencoded_pairs(&text) {
            request.insert(k, Value::String(v));
        }
    } else {
        context.insert("__ow_body".into(), text_or_b64(body));
    }
    Ok(WebParams { request, context })
}

/// Decodes `a=1&b=x%20y` (later keys win).
fn form_urlencoded_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn with_id(mut response: Response, id: &ActivationId) -> Response {
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(ACTIVATION_ID_HEADER), v);
    }
    response
}

fn maybe_cors(response: Response, cors: bool, request_headers: &HeaderMap) -> Response {
    if cors {
        with_cors(response, request_headers)
    } else {
        response
    }
}

/// OpenWhisk's default CORS answer for web actions.
fn with_cors(mut response: Response, request_headers: &HeaderMap) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH"),
    );
    let allow = request_headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_static(
                "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
            )
        });
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
    response
}

fn invalid_media(media: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_media",
        format!("Resource representation is only available with these types:\n{media}"),
    )
}

/// Turns an action's result into the HTTP answer its extension asks for.
pub fn transcode(extension: Extension, result: Value) -> Response {
    match extension {
        Extension::Json => match result {
            v @ (Value::Object(_) | Value::Array(_)) => (StatusCode::OK, Json(v)).into_response(),
            _ => invalid_media("application/json"),
        },
        Extension::Html => match field_or(result, "html") {
            Some(Value::String(html)) => {
                ([(header::CONTENT_TYPE, "text/html; charset=UTF-8")], html).into_response()
            }
            _ => invalid_media("text/html"),
        },
        Extension::Svg => match field_or(result, "svg") {
            Some(Value::String(svg)) => {
                ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
            }
            _ => invalid_media("image/svg+xml"),
        },
        Extension::Text => {
            let text = match field_or(result, "text") {
                Some(Value::String(s)) => s,
                Some(v @ (Value::Object(_) | Value::Array(_))) => {
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                }
                Some(v) => v.to_string(),
                None => {
                    return error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "The requested property does not exist.",
                    );
                }
            };
            ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], text).into_response()
        }
        Extension::Http => http_response(result).unwrap_or_else(|message| {
            error(StatusCode::BAD_REQUEST, "invalid_http_response", message)
        }),
    }
}

/// `body` of an object result, else `fallback`; a non-object result is itself the value.
fn field_or(result: Value, fallback: &str) -> Option<Value> {
    match result {
        Value::Object(mut m) => m.remove("body").or_else(|| m.remove(fallback)),
        other => Some(other),
    }
}

/// `{statusCode, headers, body}` → HTTP response (`.http`).
fn http_response(result: Value) -> Result<Response, String> {
    let invalid = "Resource representation is only available with these types:\nmessage/http";
    let Value::Object(mut fields) = result else {
        return Err(invalid.into());
    };
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    match fields.remove("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(hs)) => {
            for (k, v) in hs {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("invalid header name {k:?}"))?;
                let values = match v {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for item in values {
                    let text = match item {
                        Value::String(s) => s,
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => return Err(format!("invalid value of header {k:?}")),
                    };
                    let value = HeaderValue::from_str(&text)
                        .map_err(|_| format!("invalid value of header {k:?}"))?;
                    headers.push((name.clone(), value));
                }
            }
        }
        Some(_) => return Err("invalid headers: must be an object".into()),
    }
    let code = match fields.remove("statusCode") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .and_then(final_status)
                .ok_or_else(|| format!("illegal status code {n}"))?,
        ),
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<u16>()
                .ok()
                .and_then(final_status)
                .ok_or_else(|| format!("illegal status code {s:?}"))?,
        ),
        Some(other) => return Err(format!("illegal status code {other}")),
    };
    let content_type = headers
        .iter()
        .find(|(n, _)| *n == header::CONTENT_TYPE)
        .and_then(|(_, v)| v.to_str().ok())
        .map(str::to_string);
    let others = headers
        .into_iter()
        .filter(|(n, _)| *n != header::CONTENT_TYPE);
    let build = |status: StatusCode, ct: Option<String>, body: axum::body::Body| {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let h = response.headers_mut();
        for (n, v) in others {
            h.append(n, v);
        }
        if let Some(ct) = ct.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::CONTENT_TYPE, ct);
        }
        response
    };
    match fields.remove("body") {
        None | Some(Value::Null) => Ok(build(
            code.unwrap_or(StatusCode::NO_CONTENT),
            None,
            axum::body::Body::empty(),
        )),
        Some(Value::String(s)) if s.is_empty() => Ok(build(
            code.unwrap_or(StatusCode::NO_CONTENT),
            None,
            axum::body::Body::empty(),
        )),
        Some(Value::String(s)) => {
            let ct = content_type.unwrap_or_else(|| "text/html; charset=UTF-8".to_string());
            let mt = media_type(&ct);
            let decoded = if is_binary(&mt) {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|_| {
                        "the response body is not valid base64 for a binary content type"
                            .to_string()
                    })?
            } else if is_json_family(&mt) && looks_base64(&s) {
                // Legacy: JSON bodies returned base64-encoded.
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .unwrap_or_else(|_| s.into_bytes())
            } else {
                s.into_bytes()
            };
            Ok(build(
                code.unwrap_or(StatusCode::OK),
                Some(ct),
                axum::body::Body::from(decoded),
            ))
        }
        Some(js) => {
            let ct = content_type.unwrap_or_else(|| "application/json".to_string());
            if !is_json_family(&media_type(&ct)) {
                return Err(
                    "the content type of a JSON body must be application/json or +json".into(),
                );
            }
            let bytes = serde_json::to_vec(&js).map_err(|e| e.to_string())?;
            Ok(build(
                code.unwrap_or(StatusCode::OK),
                Some(ct),
                axum::body::Body::from(bytes),
            ))
        }
    }
}

/// A status a final HTTP response may carry: 200-599. (hyper turns a 1xx final answer into a
/// 500, so an action's `statusCode: 101` would look like a platform failure.)
fn final_status(code: u16) -> Option<StatusCode> {
    (200..=599)
        .contains(&code)
        .then(|| StatusCode::from_u16(code).ok())
        .flatten()
}

/// Whether `s` is plausibly base64 (and not, say, a JSON text).
fn looks_base64(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.len().is_multiple_of(4)
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extensions_split() {
        assert_eq!(Extension::split("hello.json"), ("hello", Extension::Json));
        assert_eq!(Extension::split("hello"), ("hello", Extension::Http));
        assert_eq!(Extension::split("hello.text"), ("hello", Extension::Text));
        assert_eq!(Extension::split("a.b"), ("a.b", Extension::Http));
    }

    #[test]
    fn binary_media_types() {
        assert!(is_binary("image/png"));
        assert!(is_binary("application/octet-stream"));
        assert!(!is_binary("text/html"));
        assert!(!is_binary("application/json"));
        assert!(!is_binary("application/vnd.api+json"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(
            form_urlencoded_pairs("name=Jane&x=&y"),
            vec![
                ("name".into(), "Jane".into()),
                ("x".into(), "".into()),
                ("y".into(), "".into())
            ]
        );
    }

    #[tokio::test]
    async fn http_result_decodes_binary_bodies() {
        let r = transcode(
            Extension::Http,
            json!({"statusCode": 201, "headers": {"content-type": "image/png", "x-a": ["1", "2"]}, "body": "AAEC"}),
        );
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        let bytes = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], &[0u8, 1, 2]);

        let r = transcode(Extension::Http, json!({"body": "<p>hi</p>"}));
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );

        let r = transcode(
            Extension::Http,
            json!({"statusCode": 302, "headers": {"location": "/x"}}),
        );
        assert_eq!(r.status(), StatusCode::FOUND);

        let r = transcode(Extension::Http, json!({"statusCode": "nope"}));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        let r = transcode(Extension::Http, json!({"body": {"a": 1}}));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = transcode(
            Extension::Http,
            json!({"headers": {"content-type": "image/png"}, "body": "!!"}),
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn other_extensions() {
        assert_eq!(
            transcode(Extension::Json, json!({"a": 1})).status(),
            StatusCode::OK
        );
        assert_eq!(
            transcode(Extension::Json, json!(3)).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            transcode(Extension::Html, json!({"html": "<p/>"})).status(),
            StatusCode::OK
        );
        assert_eq!(
            transcode(Extension::Html, json!({"x": 1})).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            transcode(Extension::Text, json!({"y": 1})).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            transcode(Extension::Text, json!({"text": 5})).status(),
            StatusCode::OK
        );
    }
}
