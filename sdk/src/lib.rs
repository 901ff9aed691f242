//! Write wisp actions as plain Rust functions over serde types.
//!
//! An action is a WASI preview-1 command module (`wasm32-wasip1`): it gets its parameters as one
//! JSON object on stdin and prints its result as the **last line of stdout**; every other stdout
//! line and all of stderr are logs. This crate hides that ABI behind one attribute:
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Params { name: Option<String> }
//!
//! #[derive(Serialize)]
//! struct Greeting { greeting: String }
//!
//! #[wisp_sdk::action]
//! fn main(p: Params) -> Result<Greeting, wisp_sdk::Error> {
//!     let name = p.name.unwrap_or_else(|| "stranger".into());
//!     wisp_sdk::log!("greeting {name}");
//!     Ok(Greeting { greeting: format!("Hello, {name}!") })
//! }
//! ```
//!
//! - [`action`]: turns the function into the program's `fn main()`. It reads stdin once (empty
//!   stdin = `{}`), deserializes the parameters (failure → `{"error": "invalid parameters: ..."}`),
//!   calls the function, and prints the result as one line of JSON. `Err(e)` prints
//!   `{"error": ...}` — an OpenWhisk *application error* — and the program still exits 0. The
//!   function may take the parameters as any `DeserializeOwned` type (including
//!   `serde_json::Value`) or take nothing, and may return `Result<T, E>` (`E: Into<Error>`) or a
//!   plain `T: Serialize`.
//! - [`Error`]: an application error, built from any `std::error::Error` (so `?` works) or with
//!   [`Error::msg`] / [`bail!`]; [`Error::json`] carries a structured payload. One small
//!   allocation; lives until it is printed.
//! - [`log()`] / [`log!`]: one log line on stderr (unbuffered; a syscall per line).
//! - [`env()`]: the `__OW_*` activation environment, read from the process env on each call.
//! - [`web`]: the web-action view of the parameters ([`web::Request`]) and the
//!   `{statusCode, headers, body}` answer ([`web::Response`]).
//!
//! Everything except the stdin/stdout plumbing is pure and unit-tested on the host.

use std::fmt;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use serde;
pub use serde_json;
pub use wisp_sdk_macros::action;

pub mod web;

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An application error: printed as `{"error": <payload>}`, which OpenWhisk reports with status
/// `application error`.
///
/// Like `anyhow::Error`, it converts from every `std::error::Error` (keeping the chain of
/// sources in the message) and therefore does not implement `std::error::Error` itself.
pub struct Error {
    payload: Value,
}

impl Error {
    /// An error whose payload is the given message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error {
            payload: Value::String(message.to_string()),
        }
    }

    /// An error with a structured payload: the result is `{"error": payload}`.
    pub fn json(payload: impl Into<Value>) -> Self {
        Error {
            payload: payload.into(),
        }
    }

    /// What goes under the `"error"` key of the result.
    pub fn payload(&self) -> &Value {
        &self.payload
    }

    /// The result object for this error: `{"error": payload}`.
    pub fn to_result(&self) -> Value {
        let mut map = serde_json::Map::with_capacity(1);
        map.insert("error".to_owned(), self.payload.clone());
        Value::Object(map)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.payload {
            Value::String(s) => f.write_str(s),
            other => write!(f, "{other}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({})", self.payload)
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error {
            payload: Value::String(message),
        }
    }
}

/// Returns early with an [`Error`] built from a format string:
/// `bail!("n must be positive, got {n}")`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::core::result::Result::Err($crate::Error::msg(::std::format!($($arg)*)))
    };
}

/// Writes one log line (to stderr). Multi-line messages become several log lines.
pub fn log(message: impl fmt::Display) {
    let mut err = std::io::stderr().lock();
    // A failed log write must not fail the action.
    let _ = writeln!(err, "{message}");
}

/// Writes one log line built from a format string: `log!("got {} readings", n)`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log(::std::format_args!($($arg)*))
    };
}

/// The activation environment the runtime passes in `__OW_*` variables.
/// Missing variables are empty strings (or `None` for the deadline), e.g. in a local run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Env {
    /// `__OW_ACTIVATION_ID`: 32 hex digits.
    pub activation_id: String,
    /// `__OW_ACTION_NAME`: the fully qualified name, `/namespace/package/name`.
    pub action_name: String,
    /// `__OW_NAMESPACE`.
    pub namespace: String,
    /// `__OW_DEADLINE`: when the activation is killed, in ms since the Unix epoch.
    pub deadline: Option<u64>,
    /// `__OW_API_HOST`: where the platform's REST API is.
    pub api_host: String,
    /// `__OW_ACTION_VERSION`.
    pub action_version: String,
}

impl Env {
    /// Reads the environment through `lookup` (the process env in [`env()`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| lookup(k).unwrap_or_default();
        Env {
            activation_id: get("__OW_ACTIVATION_ID"),
            action_name: get("__OW_ACTION_NAME"),
            namespace: get("__OW_NAMESPACE"),
            deadline: lookup("__OW_DEADLINE").and_then(|d| d.trim().parse().ok()),
            api_host: get("__OW_API_HOST"),
            action_version: get("__OW_ACTION_VERSION"),
        }
    }

    /// Time left before the deadline at `now`; `None` without a deadline, zero once it passed.
    pub fn remaining_at(&self, now: SystemTime) -> Option<Duration> {
        let deadline = UNIX_EPOCH + Duration::from_millis(self.deadline?);
        Some(deadline.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// Time left before the runtime ends this activation; `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.remaining_at(SystemTime::now())
    }
}

/// The `__OW_*` environment of the current activation.
pub fn env() -> Env {
    Env::from_lookup(|k| std::env::var(k).ok())
}

/// What the [`action`] attribute expands to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use serde::de::IgnoredAny;

    /// The error of a user's `Result` as a wisp [`Error`] (a function, so that the expansion
    /// trips no `useless_conversion` lint when it already is one).
    pub fn into_error<E: Into<Error>>(error: E) -> Error {
        error.into()
    }

    /// A plain return value as a successful outcome.
    pub fn ok<T>(value: T) -> Result<T, Error> {
        Ok(value)
    }

    /// Reads stdin, runs `f`, prints the result line, flushes. Exits 1 only when stdout is gone.
    pub fn run<P, T, F>(f: F)
    where
        P: DeserializeOwned,
        T: Serialize,
        F: FnOnce(P) -> Result<T, Error>,
    {
        let mut input = Vec::new();
        let line = match std::io::stdin().read_to_end(&mut input) {
            Ok(_) => respond(&input, f),
            Err(e) => error_line(&format!("could not read the parameters from stdin: {e}")),
        };
        let mut out = std::io::stdout().lock();
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(1);
        }
    }

    /// The result line for `input` (without the newline): the pure heart of [`run`].
    pub fn respond<P, T, F>(input: &[u8], f: F) -> String
    where
        P: DeserializeOwned,
        T: Serialize,
        F: FnOnce(P) -> Result<T, Error>,
    {
        let input = trim_ascii(input);
        let parsed = if input.is_empty() {
            serde_json::from_slice::<P>(b"{}")
        } else {
            serde_json::from_slice::<P>(input)
        };
        let params = match parsed {
            Ok(p) => p,
            Err(e) => return error_line(&format!("invalid parameters: {e}")),
        };
        match f(params) {
            Ok(out) => result_line(&out),
            Err(e) => serde_json::to_string(&e.to_result())
                .unwrap_or_else(|e| error_line(&format!("could not print the error: {e}"))),
        }
    }

    fn result_line<T: Serialize>(out: &T) -> String {
        match serde_json::to_value(out) {
            Ok(Value::Object(map)) => serde_json::to_string(&map)
                .unwrap_or_else(|e| error_line(&format!("could not serialize the result: {e}"))),
            // `()` and `None` mean "nothing to say": OpenWhisk's empty result.
            Ok(Value::Null) => "{}".to_owned(),
            Ok(other) => error_line(&format!(
                "the action's result must be a JSON object, not {}",
                kind(&other)
            )),
            Err(e) => error_line(&format!("could not serialize the result: {e}")),
        }
    }

    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    pub fn error_line(message: &str) -> String {
        serde_json::json!({ "error": message }).to_string()
    }

    fn trim_ascii(mut b: &[u8]) -> &[u8] {
        while let [first, rest @ ..] = b {
            if first.is_ascii_whitespace() {
                b = rest;
            } else {
                break;
            }
        }
        while let [rest @ .., last] = b {
            if last.is_ascii_whitespace() {
                b = rest;
            } else {
                break;
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::__private::respond;
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    struct Params {
        name: Option<String>,
        #[serde(default)]
        times: u32,
    }

    #[derive(Serialize)]
    struct Out {
        greeting: String,
    }

    fn greet(p: Params) -> Result<Out> {
        if p.times > 3 {
            bail!("times must be at most 3, got {}", p.times);
        }
        let name = p.name.unwrap_or_else(|| "stranger".into());
        Ok(Out {
            greeting: format!("Hello, {name}!").repeat(p.times.max(1) as usize),
        })
    }

    fn parse(line: &str) -> Value {
        assert!(!line.contains('\n'), "result must be one line: {line:?}");
        serde_json::from_str(line).expect("result line is JSON")
    }

    #[test]
    fn ok_result_is_one_json_line() {
        let line = respond(br#"{"name":"Ada"}"#, greet);
        assert_eq!(parse(&line), json!({"greeting": "Hello, Ada!"}));
    }

    #[test]
    fn empty_or_blank_stdin_means_no_params() {
        assert_eq!(
            parse(&respond(b"", greet)),
            json!({"greeting": "Hello, stranger!"})
        );
        assert_eq!(
            parse(&respond(b" \n\t", greet)),
            json!({"greeting": "Hello, stranger!"})
        );
    }

    #[test]
    fn err_becomes_application_error() {
        let line = respond(br#"{"times": 9}"#, greet);
        assert_eq!(
            parse(&line),
            json!({"error": "times must be at most 3, got 9"})
        );
    }

    #[test]
    fn params_that_do_not_deserialize_are_reported() {
        let v = parse(&respond(br#"{"times": "many"}"#, greet));
        let msg = v["error"].as_str().unwrap();
        assert!(msg.starts_with("invalid parameters: "), "{msg}");
        assert!(msg.contains("invalid type"), "{msg}");

        let v = parse(&respond(b"{not json", greet));
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid parameters: ")
        );
    }

    #[test]
    fn value_params_round_trip() {
        let input = json!({"a": [1, 2, {"b": null}], "s": "line1\nline2"});
        let line = respond(input.to_string().as_bytes(), |v: Value| Ok(v));
        assert_eq!(parse(&line), input);
    }

    #[test]
    fn non_object_results_are_errors_and_unit_is_empty() {
        let v = parse(&respond(b"{}", |_: Value| Ok(42)));
        assert_eq!(
            v,
            json!({"error": "the action's result must be a JSON object, not a number"})
        );
        assert_eq!(parse(&respond(b"{}", |_: Value| Ok(()))), json!({}));
    }

    #[test]
    fn results_that_cannot_serialize_are_errors() {
        let mut bad = std::collections::HashMap::new();
        bad.insert((1, 2), "tuple keys are not JSON");
        let v = parse(&respond(b"{}", move |_: Value| Ok(bad)));
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("could not serialize the result"),
            "{v}"
        );
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading config")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn errors_convert_with_their_source_chain() {
        fn fails() -> Result<()> {
            Err(Outer(std::io::Error::other("disk on fire")))?;
            Ok(())
        }
        let e = fails().unwrap_err();
        assert_eq!(e.to_string(), "loading config: disk on fire");
        let parsed: Result<u8> = "300".parse::<u8>().map_err(Error::from);
        assert!(parsed.unwrap_err().to_string().contains("too large"));
    }

    #[test]
    fn structured_errors_keep_their_payload() {
        let e = Error::json(json!({"code": 7, "why": "nope"}));
        assert_eq!(e.to_result(), json!({"error": {"code": 7, "why": "nope"}}));
        let line = respond(b"{}", |_: Value| -> Result<Value> { Err(e) });
        assert_eq!(parse(&line), json!({"error": {"code": 7, "why": "nope"}}));
        assert_eq!(Error::msg("plain").payload(), &json!("plain"));
    }

    #[test]
    fn env_reads_every_ow_variable() {
        let vars = [
            ("__OW_ACTIVATION_ID", "0123456789abcdef0123456789abcdef"),
            ("__OW_ACTION_NAME", "/guest/pkg/hello"),
            ("__OW_NAMESPACE", "guest"),
            ("__OW_DEADLINE", "1700000060000"),
            ("__OW_API_HOST", "http://127.0.0.1:3233"),
            ("__OW_ACTION_VERSION", "0.0.2"),
        ];
        let env = Env::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(env.activation_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(env.action_name, "/guest/pkg/hello");
        assert_eq!(env.namespace, "guest");
        assert_eq!(env.deadline, Some(1_700_000_060_000));
        assert_eq!(env.api_host, "http://127.0.0.1:3233");
        assert_eq!(env.action_version, "0.0.2");

        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        assert_eq!(env.remaining_at(now), Some(Duration::from_secs(60)));
        let later = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        assert_eq!(env.remaining_at(later), Some(Duration::ZERO));
    }

    #[test]
    fn env_tolerates_missing_or_bad_values() {
        let env = Env::from_lookup(|k| (k == "__OW_DEADLINE").then(|| "soon".to_string()));
        assert_eq!(env, Env::default());
        assert_eq!(env.remaining(), None);
    }
}
