//! Entity names and fully qualified names (`/namespace/package/name`).

use std::fmt;

/// Longest entity name OpenWhisk accepts.
pub const MAX_NAME_LEN: usize = 256;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("name {0:?} contains '..'")]
    DotDot(String),
    #[error(
        "name {0:?} has characters OpenWhisk does not allow (letters, digits, '_', '@', '.', '-', and inner spaces)"
    )]
    BadChars(String),
    #[error("fully qualified name {0:?} has too many parts")]
    TooManyParts(String),
}

/// Checks one path segment against OpenWhisk's entity-name rule:
/// `\A([\w]|[\w][\w@ .-]*[\w@.-]+)\z` (Java's ASCII-only `\w`: `[A-Za-z0-9_]`), at most 256
/// characters, and no `..`.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if name.contains("..") {
        return Err(NameError::DotDot(name.to_string()));
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = name.chars();
    let first = chars.next().unwrap();
    let last = name.chars().last().unwrap();
    let inner_ok = name
        .chars()
        .all(|c| word(c) || matches!(c, '@' | ' ' | '.' | '-'));
    if !word(first) || !inner_ok || last == ' ' {
        return Err(NameError::BadChars(name.to_string()));
    }
    Ok(())
}

/// A parsed entity reference: `name`, `pkg/name`, `/ns/name` or `/ns/pkg/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    /// `None` when the reference was relative (the caller's namespace).
    pub namespace: Option<String>,
    pub package: Option<String>,
    pub name: String,
}

impl QualifiedName {
    /// Parses and validates every segment. `_` as namespace means the caller's.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (absolute, rest) = match s.strip_prefix('/') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (namespace, package, name) = match (absolute, parts.as_slice()) {
            (false, [n]) => (None, None, *n),
            (false, [p, n]) => (None, Some(*p), *n),
            (true, [ns, n]) => (Some(*ns), None, *n),
            (true, [ns, p, n]) => (Some(*ns), Some(*p), *n),
            (_, []) => return Err(NameError::Empty),
            _ => return Err(NameError::TooManyParts(s.to_string())),
        };
        for seg in namespace.iter().chain(package.iter()).chain([&name]) {
            validate(seg)?;
        }
        Ok(QualifiedName {
            namespace: namespace.filter(|ns| *ns != "_").map(str::to_string),
            package: package.map(str::to_string),
            name: name.to_string(),
        })
    }

    /// The `/ns/pkg/name` path with `ns` filled in for relative references.
    pub fn path(&self, default_namespace: &str) -> String {
        let ns = self.namespace.as_deref().unwrap_or(default_namespace);
        match &self.package {
            Some(p) => format!("/{ns}/{p}/{}", self.name),
            None => format!("/{ns}/{}", self.name),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path(self.namespace.as_deref().unwrap_or("_")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_openwhisk_names() {
        for ok in [
            "hello",
            "a",
            "my-action_1",
            "x.y",
            "user@example.com",
            "a b",
        ] {
            validate(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert!(matches!(validate("a..b"), Err(NameError::DotDot(_))));
        assert!(matches!(validate(".."), Err(NameError::DotDot(_))));
        assert!(matches!(validate("-x"), Err(NameError::BadChars(_))));
        assert!(matches!(validate("a/b"), Err(NameError::BadChars(_))));
        assert!(matches!(validate("a "), Err(NameError::BadChars(_))));
        // Java's `\w` (OpenWhisk's regex) is ASCII-only.
        assert!(matches!(validate("héllo"), Err(NameError::BadChars(_))));
        assert!(matches!(validate("名前"), Err(NameError::BadChars(_))));
        assert_eq!(validate(&"x".repeat(257)), Err(NameError::TooLong));
        validate(&"x".repeat(256)).unwrap();
    }

    #[test]
    fn parses_qualified_names() {
        let q = QualifiedName::parse("/guest/pkg/hello").unwrap();
        assert_eq!(q.namespace.as_deref(), Some("guest"));
        assert_eq!(q.package.as_deref(), Some("pkg"));
        assert_eq!(q.path("x"), "/guest/pkg/hello");
        let q = QualifiedName::parse("pkg/hello").unwrap();
        assert_eq!(q.path("me"), "/me/pkg/hello");
        let q = QualifiedName::parse("/_/hello").unwrap();
        assert_eq!(q.namespace, None);
        assert!(QualifiedName::parse("/a/b/c/d").is_err());
        assert!(QualifiedName::parse("a/b/c").is_err());
    }
}
