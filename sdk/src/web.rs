//! Web actions: the HTTP request as parameters, and the `{statusCode, headers, body}` answer.
//!
//! An action exported with the annotation `web-export: true` is served at
//! `/api/v1/web/{namespace}/{package}/{action}[.ext]`. The platform adds the HTTP context to its
//! parameters (`__ow_method`, `__ow_headers`, `__ow_path`, `__ow_query`, `__ow_body`) next to the
//! query and body parameters, and turns the action's result into the HTTP answer. A body that
//! is base64 is decoded when the content type is binary ([`Response::binary`] does the encoding).
//!
//! ```no_run
//! use wisp_sdk::web::{Request, Response};
//!
//! #[wisp_sdk::action]
//! fn main(req: Request) -> Response {
//!     let name = req.param_str("name").unwrap_or("stranger");
//!     Response::html(format!("<p>Hello, {}!</p>", wisp_sdk::web::escape_html(name)))
//! }
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The web-action view of the parameters: the `__ow_*` HTTP context plus every other parameter
/// in [`Request::params`] (or in your own type `T`, flattened).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Request<T = Map<String, Value>> {
    /// `__ow_method`: the HTTP method, lower case as OpenWhisk sends it (`"get"`, `"post"`...).
    #[serde(rename = "__ow_method", default)]
    pub method: String,
    /// `__ow_headers`: the request headers, names in lower case.
    #[serde(rename = "__ow_headers", default)]
    pub headers: BTreeMap<String, String>,
    /// `__ow_path`: what follows the action's name in the URL path.
    #[serde(rename = "__ow_path", default)]
    pub path: String,
    /// `__ow_query`: the raw query string (without `?`), when the platform passes it.
    #[serde(rename = "__ow_query", default)]
    pub query: String,
    /// `__ow_body`: the raw body, as text or base64, when the platform passes it.
    #[serde(rename = "__ow_body", default)]
    pub body: Option<String>,
    /// All the other parameters: defaults, query and JSON body parameters.
    #[serde(flatten)]
    pub params: T,
}

impl<T> Request<T> {
    /// A request header, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name` in the raw query string, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The raw body decoded from base64 (how binary bodies arrive).
    pub fn body_bytes_base64(&self) -> Option<Result<Vec<u8>, base64::DecodeError>> {
        self.body
            .as_deref()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()))
    }
}

impl Request<Map<String, Value>> {
    /// A parameter (query, body or default parameter).
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params.get(name)
    }

    /// A string parameter.
    pub fn param_str(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    /// A string parameter, or else the value in the raw query string.
    pub fn param_or_query(&self, name: &str) -> Option<String> {
        self.param_str(name)
            .map(str::to_owned)
            .or_else(|| self.query_param(name))
    }
}

/// Splits `a=1&b=x%20y` into decoded pairs (`+` is a space, as in HTML forms).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty())
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
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|c| hex_value(*c)),
                bytes.get(i + 2).and_then(|c| hex_value(*c)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` so text can be put in HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A web action's answer: serializes to `{"statusCode", "headers", "body"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    #[serde(rename = "statusCode")]
    status_code: u16,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
}

impl Default for Response {
    fn default() -> Self {
        Response::new(200)
    }
}

impl Response {
    /// An answer with this status, no headers and no body.
    pub fn new(status: u16) -> Self {
        Response {
            status_code: status,
            headers: BTreeMap::new(),
            body: None,
        }
    }

    /// 200 with `content-type: text/html`.
    pub fn html(body: impl Into<String>) -> Self {
        Response::new(200)
            .header("content-type", "text/html")
            .body(Value::String(body.into()))
    }

    /// 200 with `content-type: text/plain`.
    pub fn text(body: impl Into<String>) -> Self {
        Response::new(200)
            .header("content-type", "text/plain")
            .body(Value::String(body.into()))
    }

    /// 200 with `content-type: application/json` and the value as the body. A value that
    /// cannot be serialized gives a 500 saying why.
    pub fn json(value: impl Serialize) -> Self {
        match serde_json::to_value(value) {
            Ok(v) => Response::new(200)
                .header("content-type", "application/json")
                .body(v),
            Err(e) => Response::new(500)
                .header("content-type", "application/json")
                .body(serde_json::json!({ "error": format!("could not serialize the body: {e}") })),
        }
    }

    /// 200 with the given content type and the bytes base64-encoded (the platform decodes them).
    pub fn binary(content_type: &str, bytes: &[u8]) -> Self {
        Response::new(200)
            .header("content-type", content_type)
            .body(Value::String(
                base64::engine::general_purpose::STANDARD.encode(bytes),
            ))
    }

    /// 302 to `location`.
    pub fn redirect(location: &str) -> Self {
        Response::new(302).header("location", location)
    }

    /// Sets the status code.
    pub fn status(mut self, status: u16) -> Self {
        self.status_code = status;
        self
    }

    /// Sets a header (the name is stored in lower case; a second set replaces the first).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Value>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status_code
    }

    /// The headers, names in lower case.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        &self.headers
    }

    /// The body, if any.
    pub fn body_value(&self) -> Option<&Value> {
        self.body.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_response_serializes_to_the_web_shape() {
        let r = Response::html("<p>hi</p>");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"statusCode": 200, "headers": {"content-type": "text/html"}, "body": "<p>hi</p>"})
        );
    }

    #[test]
    fn builder_sets_status_headers_and_body() {
        let r = Response::text("gone")
            .status(410)
            .header("X-Trace", "abc")
            .header("Content-Type", "text/plain; charset=utf-8");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "statusCode": 410,
                "headers": {"content-type": "text/plain; charset=utf-8", "x-trace": "abc"},
                "body": "gone"
            })
        );
        let empty = serde_json::to_value(Response::new(204)).unwrap();
        assert_eq!(empty, json!({"statusCode": 204, "headers": {}}));
        let redirect = Response::redirect("/elsewhere");
        assert_eq!(redirect.status_code(), 302);
        assert_eq!(redirect.headers()["location"], "/elsewhere");
    }

    #[test]
    fn json_and_binary_bodies() {
        let r = Response::json(json!({"ok": true}));
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.body_value(), Some(&json!({"ok": true})));
        let b = Response::binary("image/png", &[0x89, b'P', b'N', b'G']);
        assert_eq!(b.body_value(), Some(&json!("iVBORw==")));
    }

    #[test]
    fn request_reads_the_http_context_and_keeps_other_params() {
        let params = json!({
            "__ow_method": "post",
            "__ow_headers": {"Content-Type": "application/json", "x-forwarded-for": "10.0.0.1"},
            "__ow_path": "/a/b",
            "__ow_query": "name=J%C3%BCrgen+M&empty=&flag",
            "__ow_body": "aGVsbG8=",
            "name": "Ada",
            "n": 3
        });
        let req: Request = serde_json::from_value(params).unwrap();
        assert_eq!(req.method, "post");
        assert_eq!(req.path, "/a/b");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("X-Forwarded-For"), Some("10.0.0.1"));
        assert_eq!(req.query_param("name").as_deref(), Some("Jürgen M"));
        assert_eq!(req.query_param("empty").as_deref(), Some(""));
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("missing"), None);
        assert_eq!(req.body_bytes_base64().unwrap().unwrap(), b"hello");
        assert_eq!(req.param_str("name"), Some("Ada"));
        assert_eq!(req.param("n"), Some(&json!(3)));
        assert!(!req.params.contains_key("__ow_method"));
        assert_eq!(req.params.len(), 2);
    }

    #[test]
    fn request_without_context_is_empty_not_an_error() {
        let req: Request = serde_json::from_value(json!({"x": 1})).unwrap();
        assert_eq!(req.method, "");
        assert!(req.headers.is_empty());
        assert_eq!(req.body, None);
        assert_eq!(req.param("x"), Some(&json!(1)));
    }

    #[test]
    fn request_flattens_into_a_typed_struct() {
        #[derive(Deserialize, Debug, PartialEq, Default)]
        struct Form {
            name: String,
        }
        let req: Request<Form> =
            serde_json::from_value(json!({"__ow_method": "get", "name": "Bo"})).unwrap();
        assert_eq!(req.params, Form { name: "Bo".into() });
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(
            parse_query("?a=%zz&b=100%&c=%41"),
            vec![
                ("a".to_string(), "%zz".to_string()),
                ("b".to_string(), "100%".to_string()),
                ("c".to_string(), "A".to_string())
            ]
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
    }
}
