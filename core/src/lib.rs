//! Types every wisp process agrees on, and nothing that costs anything to hold.
//!
//! This crate is deliberately small and dependency-light so that the scheduler, the CLI and the
//! runtime can share the wire formats without the scheduler ever linking wasmtime
//! (**Architecture Invariant**: only `wisp-runtime` depends on wasmtime).
//!
//! - [`limits::Limits`]: an action's OpenWhisk limits (`timeout`, `memory`, `logs`,
//!   `concurrency`) with their defaults and allowed ranges.
//! - [`activation`]: activation ids, the four OpenWhisk statuses, the activation record and the
//!   log-line format (`ISO-timestamp stdout|stderr: text`).
//! - [`run`]: the scheduler ↔ runtime protocol (`POST /run`, `POST /prepare`, `DELETE /code/{digest}`; code pushed inline).
//! - [`entity`]: the documents of the REST API (actions, packages, key/value lists).
//! - [`names`]: entity-name validation shared by the API and the CLI.
//! - [`digest`]: the sha256 content digest code blobs are stored and cached under.

pub mod activation;
pub mod digest;
pub mod entity;
pub mod limits;
pub mod names;
pub mod run;

pub use activation::{ActivationId, ActivationRecord, ActivationResponse, Status};
pub use digest::Digest;
pub use entity::{ActionDoc, Exec, KeyValue, PackageDoc};
pub use limits::Limits;
pub use run::{RunRequest, RunResponse};

/// Milliseconds since the Unix epoch, the unit of every timestamp in OpenWhisk documents.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
