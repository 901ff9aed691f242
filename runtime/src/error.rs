//! Errors at the library boundary. Each [`RunError`] variant maps to one HTTP status in
//! [`server`](crate::server) (by type, never by parsing messages).

use wisp_core::Digest;

/// `Runtime::new` failed: the engine could not be configured or the cache dir is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    #[error("cannot use cache dir {path}: {source}")]
    CacheDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why an activation (or a prepare) did not run. An activation that ran and failed is not an
/// error: it is a [`RunResponse`](wisp_core::RunResponse) with a non-success status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The params exceed OpenWhisk's 1 MB payload limit (413).
    #[error("the parameters are {size} bytes, more than the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    /// The runtime lacks the code and was not given it in `code` (409).
    #[error("code {0} is unknown to this runtime: send it inline in `code`")]
    CodeUnknown(Digest),
    /// The code is not a runnable action module (422).
    #[error("invalid action module: {0}")]
    InvalidModule(String),
    /// The code given does not hash to the digest (400).
    #[error("code does not match digest {expected}: its sha256 is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The engine failed in a way that is not the action's fault (500, or `whisk internal
    /// error` in /run).
    #[error("internal error: {0}")]
    Internal(String),
    /// The runtime is shutting down (503).
    #[error("the runtime is draining and accepts no new activations")]
    Draining,
}

impl RunError {
    /// The `code` field of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::BadRequest(_) => "bad_request",
            RunError::PayloadTooLarge { .. } => "payload_too_large",
            RunError::CodeUnknown(_) => wisp_core::run::CODE_UNKNOWN,
            RunError::InvalidModule(_) => "invalid_module",
            RunError::DigestMismatch { .. } => "digest_mismatch",
            RunError::Internal(_) => "internal_error",
            RunError::Draining => "draining",
        }
    }
}
