//! Activation ids, statuses and records, in OpenWhisk's JSON shape.

use crate::entity::KeyValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// An activation id: 32 lowercase hex characters, as OpenWhisk prints them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActivationId(String);

impl ActivationId {
    /// A fresh random id (128 bits).
    pub fn generate() -> Self {
        ActivationId(hex::encode(rand::random::<[u8; 16]>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string that is not 32 lowercase hex characters.
#[derive(Debug, thiserror::Error)]
#[error("not an activation id: {0:?}")]
pub struct BadActivationId(pub String);

impl TryFrom<String> for ActivationId {
    type Error = BadActivationId;
    fn try_from(s: String) -> Result<Self, BadActivationId> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(ActivationId(s))
        } else {
            Err(BadActivationId(s))
        }
    }
}

impl std::str::FromStr for ActivationId {
    type Err = BadActivationId;
    fn from_str(s: &str) -> Result<Self, BadActivationId> {
        ActivationId::try_from(s.to_string())
    }
}

impl From<ActivationId> for String {
    fn from(a: ActivationId) -> String {
        a.0
    }
}

impl fmt::Display for ActivationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActivationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActivationId({})", self.0)
    }
}

/// How an activation ended. Serialized as OpenWhisk's status strings; [`Status::code`] is
/// OpenWhisk's `statusCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// 0: the action returned a JSON object without an `error` field.
    #[serde(rename = "success")]
    Success,
    /// 1: the action returned `{"error": ...}`.
    #[serde(rename = "application error")]
    ApplicationError,
    /// 2: the action misbehaved: trap, timeout, memory cap, non-zero exit, no JSON result.
    #[serde(rename = "action developer error")]
    DeveloperError,
    /// 3: the platform failed (runtime died, code could not be fetched...).
    #[serde(rename = "whisk internal error")]
    InternalError,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Success,
        Status::ApplicationError,
        Status::DeveloperError,
        Status::InternalError,
    ];

    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::ApplicationError => 1,
            Status::DeveloperError => 2,
            Status::InternalError => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::ApplicationError => "application error",
            Status::DeveloperError => "action developer error",
            Status::InternalError => "whisk internal error",
        }
    }

    /// A short label for metrics (`wisp_activations_total{status=...}`).
    pub fn label(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::ApplicationError => "application_error",
            Status::DeveloperError => "developer_error",
            Status::InternalError => "internal_error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `response` part of an activation record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationResponse {
    pub status: Status,
    pub status_code: u8,
    pub success: bool,
    pub result: Value,
}

impl ActivationResponse {
    pub fn new(status: Status, result: Value) -> Self {
        ActivationResponse {
            status,
            status_code: status.code(),
            success: status == Status::Success,
            result,
        }
    }

    /// An error response with OpenWhisk's `{"error": message}` result.
    pub fn error(status: Status, message: impl Into<String>) -> Self {
        Self::new(status, serde_json::json!({ "error": message.into() }))
    }
}

/// An activation record, as `GET /activations/{id}` returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationRecord {
    pub activation_id: ActivationId,
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub subject: String,
    /// Epoch ms.
    pub start: u64,
    /// Epoch ms.
    pub end: u64,
    /// ms.
    pub duration: u64,
    pub status_code: u8,
    pub response: ActivationResponse,
    pub logs: Vec<String>,
    pub annotations: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ActivationId>,
    pub publish: bool,
}

impl ActivationRecord {
    /// The value of annotation `key`, if present.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        crate::entity::lookup(&self.annotations, key)
    }
}

/// Which stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Formats a log line as OpenWhisk does: `2026-11-23T14:11:00.123456789Z stdout: text`.
pub fn log_line(at: std::time::SystemTime, stream: Stream, text: &str) -> String {
    format!(
        "{} {}: {}",
        humantime::format_rfc3339_nanos(at),
        stream.as_str(),
        text
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_strings_are_openwhisks() {
        for s in Status::ALL {
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, Value::String(s.as_str().into()));
            let back: Status = serde_json::from_value(json).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(Status::DeveloperError.code(), 2);
    }

    #[test]
    fn ids_are_32_hex() {
        let id = ActivationId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().parse::<ActivationId>().is_ok());
        assert!("../etc".parse::<ActivationId>().is_err());
    }

    #[test]
    fn log_line_shape() {
        let line = log_line(std::time::UNIX_EPOCH, Stream::Stderr, "boom");
        assert_eq!(line, "1970-01-01T00:00:00.000000000Z stderr: boom");
    }
}
