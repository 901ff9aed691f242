//! OpenWhisk action limits, with the defaults and maxima DESIGN.md pins.

use serde::{Deserialize, Serialize};

/// The limits of one action. Field names and units are OpenWhisk's: `timeout` in ms, `memory`
/// in MB (for wasm: the cap on linear memory), `logs` in MB, `concurrency` activations per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub timeout: u64,
    pub memory: u64,
    pub logs: u64,
    pub concurrency: u32,
}

impl Limits {
    pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
    pub const MIN_TIMEOUT_MS: u64 = 100;
    pub const MAX_TIMEOUT_MS: u64 = 300_000;
    pub const DEFAULT_MEMORY_MB: u64 = 256;
    /// Smaller than OpenWhisk's 128 MB: a wasm action's memory is its linear memory only.
    pub const MIN_MEMORY_MB: u64 = 1;
    pub const MAX_MEMORY_MB: u64 = 2048;
    pub const DEFAULT_LOGS_MB: u64 = 10;
    pub const MAX_LOGS_MB: u64 = 10;
    pub const DEFAULT_CONCURRENCY: u32 = 1;
    pub const MAX_CONCURRENCY: u32 = 500;

    /// Checks every limit against its range; the message names the field, like OpenWhisk's.
    pub fn validate(&self) -> Result<(), LimitError> {
        let check = |name: &'static str, v: u64, min: u64, max: u64| {
            if v < min || v > max {
                Err(LimitError {
                    name,
                    value: v,
                    min,
                    max,
                })
            } else {
                Ok(())
            }
        };
        check(
            "timeout",
            self.timeout,
            Self::MIN_TIMEOUT_MS,
            Self::MAX_TIMEOUT_MS,
        )?;
        check(
            "memory",
            self.memory,
            Self::MIN_MEMORY_MB,
            Self::MAX_MEMORY_MB,
        )?;
        check("logs", self.logs, 0, Self::MAX_LOGS_MB)?;
        check(
            "concurrency",
            self.concurrency as u64,
            1,
            Self::MAX_CONCURRENCY as u64,
        )
    }

    /// Linear-memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        (self.memory as usize) << 20
    }

    /// Log cap in bytes.
    pub fn logs_bytes(&self) -> usize {
        (self.logs as usize) << 20
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Self::DEFAULT_TIMEOUT_MS,
            memory: Self::DEFAULT_MEMORY_MB,
            logs: Self::DEFAULT_LOGS_MB,
            concurrency: Self::DEFAULT_CONCURRENCY,
        }
    }
}

/// A limit outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit '{name}' is {value}, allowed range is {min}..={max}")]
pub struct LimitError {
    pub name: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_partial_json_fills_defaults() {
        Limits::default().validate().unwrap();
        let l: Limits = serde_json::from_str(r#"{"timeout": 1000}"#).unwrap();
        assert_eq!(l.timeout, 1000);
        assert_eq!(l.memory, 256);
        let bad = Limits {
            memory: 4096,
            ..Limits::default()
        };
        assert_eq!(bad.validate().unwrap_err().name, "memory");
        let bad = Limits {
            timeout: 10,
            ..Limits::default()
        };
        assert_eq!(bad.validate().unwrap_err().name, "timeout");
    }
}
