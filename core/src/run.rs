//! The scheduler ↔ runtime protocol.
//!
//! - `POST /run` ([`RUN_PATH`]) with a [`RunRequest`] runs one activation and answers a
//!   [`RunResponse`] (HTTP 200 whatever the activation's status; non-200 answers are
//!   [`ErrorBody`]s and mean the activation did not run).
//! - `POST /prepare` ([`PREPARE_PATH`]) with a [`PrepareRequest`] compiles and caches code ahead
//!   of the first invoke (the scheduler calls it on action create/update); it answers
//!   [`PrepareResponse`], or 422 with an [`ErrorBody`] when the module is not a valid action.
//! - Code reaches a runtime one way: pushed by the scheduler, inline as base64 (`code` of a
//!   `/prepare`, or of a `/run` resent after a 409). A runtime never dials a URL a request
//!   names. When the digest is unknown and no code is given, `/run` answers 409 with code
//!   [`CODE_UNKNOWN`]: send it again with the code inline.
//! - `DELETE /code/{digest}` ([`CODE_PATH`]) drops a digest from the runtime's memory and disk
//!   caches (the scheduler calls it when the last action using that code is deleted or
//!   overwritten); 204 whether or not it was cached.
//!
//! Every request carries `Authorization: Bearer <WISP_RUNTIME_TOKEN>` (the scheme matched
//! case-insensitively, the token compared in constant time).

use crate::{ActivationId, ActivationResponse, Digest, Limits};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const RUN_PATH: &str = "/run";
pub const PREPARE_PATH: &str = "/prepare";
/// The runtime's route for one cached digest: `DELETE /code/{digest}`.
pub const CODE_PATH: &str = "/code/{digest}";
/// `code` of the 409 a runtime answers when it lacks the code and was given no way to get it.
pub const CODE_UNKNOWN: &str = "code_unknown";
/// Largest request body (params included) the REST API and `/run` accept: OpenWhisk's 1 MB.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Largest action code (the decoded module) an action PUT accepts: OpenWhisk's 48 MB. The rest
/// of an action document is still held to [`MAX_PAYLOAD_BYTES`].
pub const MAX_CODE_BYTES: usize = 48 * 1024 * 1024;
/// Largest body of an action PUT: the base64 of [`MAX_CODE_BYTES`] plus the 1 MB document.
pub const MAX_ACTION_PUT_BYTES: usize = MAX_CODE_BYTES / 3 * 4 + 4 + MAX_PAYLOAD_BYTES;

/// One activation for a runtime to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub activation_id: ActivationId,
    /// The namespace the action runs for (`__OW_NAMESPACE`).
    pub namespace: String,
    /// `/ns/pkg/name` (`__OW_ACTION_NAME`).
    pub action: String,
    /// `__OW_ACTION_VERSION`.
    pub version: String,
    /// sha256 of the code.
    pub digest: Digest,
    /// The code itself, base64, for when the runtime asked for it (see [`CODE_UNKNOWN`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    /// The merged parameters: the action's stdin.
    pub params: Map<String, Value>,
    /// `__OW_API_HOST`.
    #[serde(default)]
    pub api_host: String,
}

/// How one activation ended, as the runtime saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResponse {
    pub activation_id: ActivationId,
    pub response: ActivationResponse,
    /// Formatted log lines (`ISO-timestamp stdout|stderr: text`), truncated at the log limit.
    pub logs: Vec<String>,
    /// Epoch ms when the guest started.
    pub start: u64,
    /// Epoch ms when the guest ended.
    pub end: u64,
    /// µs from the request's arrival until the guest started, code loading excluded.
    pub wait_time_us: u64,
    /// µs spent compiling or loading the code; 0 when it was already prewarmed.
    pub init_time_us: u64,
    /// µs the guest ran.
    pub duration_us: u64,
}

/// Compile-ahead request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepareRequest {
    pub digest: Digest,
    /// The code, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Compile-ahead answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepareResponse {
    pub digest: Digest,
    /// µs spent compiling or loading; 0 when already cached.
    pub init_time_us: u64,
}

/// The JSON error body every wisp server answers with: `{error, code}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, error: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
            code: code.into(),
        }
    }
}
