//! Fuzz target 1 of issue 7, the wire types: the action document (`ActionDoc`, `Exec`,
//! `KeyValue`, `Limits`), entity names and qualified names, and version bumps.
//! (`scheduler/tests/fuzz_action_put.rs` drives the same documents through the real PUT route.)
//!
//! Properties:
//! - parsing arbitrary bytes and arbitrary JSON as any of the documents never panics;
//! - a valid document round-trips: parse → serialise → parse gives the same document, and a
//!   document with one field corrupted (wrong type, huge number, unknown kind) is refused;
//! - `Limits::validate` accepts exactly the documented ranges;
//! - `names::validate` agrees with OpenWhisk's rule `\A([\w]|[\w][\w@ .-]*[\w@.-]+)\z`, at most
//!   256 characters and no `..` (written here as a separate matcher), and qualified names
//!   round-trip through `path`;
//! - `bump_version` always moves forward.
//!
//! Cases per property: the defaults below (a few seconds in release); `PROPTEST_CASES=N` runs N.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use wisp_core::entity::{PackageDoc, bump_version};
use wisp_core::names::{MAX_NAME_LEN, QualifiedName, validate};
use wisp_core::{ActionDoc, Digest, Exec, KeyValue, Limits, RunRequest};

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    Config::with_cases(cases)
}

/// Floats whose decimal form serde_json parses back exactly (at most 15 significant digits,
/// small exponents). serde_json without its `float_roundtrip` feature may move a long
/// float like `-8.285331087802204e299` by one ulp on parsing: a known limit, not ours to test.
fn exact_float() -> impl Strategy<Value = f64> {
    (-999_999_999_999_999i64..=999_999_999_999_999, 0i32..=10)
        .prop_map(|(m, k)| m as f64 / 10f64.powi(k))
}

/// Arbitrary JSON, with hostile leaves.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| n.into()),
        any::<u64>().prop_map(|n| n.into()),
        exact_float().prop_map(|f| f.into()),
        any::<String>().prop_map(Value::String),
        Just(json!("wasm")),
        Just(json!("sequence")),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z]{0,8}",
                    prop::sample::select(vec![
                        "kind",
                        "code",
                        "binary",
                        "digest",
                        "components",
                        "namespace",
                        "name",
                        "version",
                        "exec",
                        "parameters",
                        "annotations",
                        "limits",
                        "publish",
                        "updated",
                        "timeout",
                        "memory",
                        "logs",
                        "concurrency",
                        "key",
                        "value",
                    ])
                    .prop_map(str::to_string),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key_values() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (
            "\\PC{1,12}",
            prop_oneof![
                json_value(),
                any::<String>().prop_map(Value::String),
                Just(Value::Null)
            ],
        )
            .prop_map(|(k, v)| KeyValue::new(k, v)),
        0..5,
    )
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        Limits::MIN_TIMEOUT_MS..=Limits::MAX_TIMEOUT_MS,
        Limits::MIN_MEMORY_MB..=Limits::MAX_MEMORY_MB,
        0..=Limits::MAX_LOGS_MB,
        1..=Limits::MAX_CONCURRENCY,
    )
        .prop_map(|(timeout, memory, logs, concurrency)| Limits {
            timeout,
            memory,
            logs,
            concurrency,
        })
}

fn exec() -> impl Strategy<Value = Exec> {
    prop_oneof![
        (
            prop::option::of("[A-Za-z0-9+/]{0,40}={0,2}"),
            any::<bool>(),
            prop::option::of(any::<[u8; 8]>().prop_map(|b| Digest::of(&b).to_string())),
        )
            .prop_map(|(code, binary, digest)| Exec::Wasm {
                code,
                binary,
                digest
            }),
        prop::collection::vec("/[a-z]{1,5}(/[a-z]{1,5}){1,2}", 0..4)
            .prop_map(|components| Exec::Sequence { components }),
    ]
}

/// A valid action document.
fn action_doc() -> impl Strategy<Value = ActionDoc> {
    (
        "[a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9]{0,5})?",
        "\\w[\\w@.-]{0,10}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        exec(),
        key_values(),
        key_values(),
        limits(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                namespace,
                name,
                version,
                exec,
                parameters,
                annotations,
                limits,
                publish,
                updated,
            )| {
                ActionDoc {
                    namespace,
                    name,
                    version,
                    exec,
                    parameters,
                    annotations,
                    limits,
                    publish,
                    updated,
                }
            },
        )
}

/// Replaces the value at a random path of `doc` by `with`.
fn corrupt(doc: &mut Value, path: &[&str], with: Value) {
    let mut at = doc;
    for key in &path[..path.len() - 1] {
        at = at.get_mut(*key).expect("path exists");
    }
    at[path[path.len() - 1]] = with;
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn documents_parse_arbitrary_input_without_panicking(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            any::<f64>().prop_map(|f| format!("{{\"parameters\": [{{\"key\": \"f\", \"value\": {f:e}}}]}}").into_bytes()),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            (0usize..400).prop_map(|d| format!("{{\"exec\": {}}}", "[".repeat(d)).into_bytes()),
        ],
    ) {
        let _ = serde_json::from_slice::<ActionDoc>(&bytes);
        let _ = serde_json::from_slice::<Exec>(&bytes);
        let _ = serde_json::from_slice::<Limits>(&bytes);
        let _ = serde_json::from_slice::<Vec<KeyValue>>(&bytes);
        let _ = serde_json::from_slice::<PackageDoc>(&bytes);
        let _ = serde_json::from_slice::<RunRequest>(&bytes);
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let _ = serde_json::from_value::<ActionDoc>(v.clone());
            let _ = serde_json::from_value::<Exec>(v);
        }
    }

    #[test]
    fn valid_documents_round_trip(doc in action_doc()) {
        let text = serde_json::to_string(&doc).unwrap();
        let back: ActionDoc = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &doc);
        let value = serde_json::to_value(&doc).unwrap();
        prop_assert_eq!(serde_json::from_value::<ActionDoc>(value.clone()).unwrap(), doc.clone());
        // The wire shape OpenWhisk clients read.
        prop_assert_eq!(&value["exec"]["kind"], &json!(doc.exec.kind()));
        prop_assert!(value["limits"]["timeout"].is_u64());
        prop_assert!(doc.limits.validate().is_ok());
    }

    #[test]
    fn corrupted_documents_are_refused(
        doc in action_doc(),
        which in 0usize..9,
        junk in prop_oneof![
            Just(json!(-1)),
            Just(json!(1e300)),
            Just(json!(18446744073709551616.0)),
            Just(json!("12")),
            Just(json!([])),
            Just(json!({"kind": "nodejs:20"})),
            Just(json!(true)),
        ],
    ) {
        let mut value = serde_json::to_value(&doc).unwrap();
        let paths: [&[&str]; 9] = [
            &["namespace"], &["name"], &["exec"], &["exec", "kind"], &["parameters"],
            &["limits", "timeout"], &["limits", "concurrency"], &["publish"], &["updated"],
        ];
        let path = paths[which];
        // Skip the few (path, junk) pairs that are still valid documents.
        let still_valid = (matches!(path, ["namespace"] | ["name"]) && junk.is_string())
            || (path == ["parameters"] && junk == json!([]))
            || (path == ["publish"] && junk.is_boolean());
        corrupt(&mut value, path, junk.clone());
        let parsed = serde_json::from_value::<ActionDoc>(value);
        if !still_valid {
            prop_assert!(parsed.is_err(), "{:?} = {} was accepted: {:?}", path, junk, parsed);
        }
    }

    #[test]
    fn limits_validate_exactly_the_documented_ranges(
        timeout in prop_oneof![any::<u64>(), 0u64..400_000],
        memory in prop_oneof![any::<u64>(), 0u64..3000],
        logs in prop_oneof![any::<u64>(), 0u64..20],
        concurrency in prop_oneof![any::<u32>(), 0u32..600],
    ) {
        let l = Limits { timeout, memory, logs, concurrency };
        let ok = (100..=300_000).contains(&timeout)
            && (1..=2048).contains(&memory)
            && logs <= 10
            && (1..=500).contains(&concurrency);
        prop_assert_eq!(l.validate().is_ok(), ok, "{:?}", l);
        if ok {
            prop_assert_eq!(l.memory_bytes() as u64, memory * 1024 * 1024);
            prop_assert_eq!(l.logs_bytes() as u64, logs * 1024 * 1024);
        }
        // Partial JSON fills the defaults.
        let back: Limits = serde_json::from_value(json!({"timeout": timeout})).unwrap();
        prop_assert_eq!(back, Limits { timeout, ..Limits::default() });
    }
}

/// OpenWhisk's `\A([\w]|[\w][\w@ .-]*[\w@.-]+)\z`, with `\w` = ASCII alphanumeric or `_` (Java's), as an
/// explicit matcher.
fn openwhisk_name_rule(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = name.chars().collect();
    let shape = match chars.as_slice() {
        [] => false,
        [c] => word(*c),
        [first, middle @ .., last] => {
            word(*first)
                && middle
                    .iter()
                    .all(|&c| word(c) || matches!(c, '@' | ' ' | '.' | '-'))
                && (word(*last) || matches!(*last, '@' | '.' | '-'))
        }
    };
    shape && chars.len() <= MAX_NAME_LEN && !name.contains("..")
}

fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_@ .\\-/]{0,12}",
        "\\w[\\w@ .-]{0,10}",
        "[\\w@ .-]{250,260}",
        Just("é".repeat(256)),
        Just("é".repeat(257)),
        Just("_".to_string()),
        Just("a\u{0}".to_string()),
        Just("a\u{200b}b".to_string()),
    ]
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn names_follow_the_openwhisk_rule(name in name_like()) {
        prop_assert_eq!(validate(&name).is_ok(), openwhisk_name_rule(&name), "{:?}", name);
    }

    #[test]
    fn qualified_names_round_trip(
        parts in prop::collection::vec(name_like(), 1..5),
        absolute in any::<bool>(),
    ) {
        let s = format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"));
        if let Ok(q) = QualifiedName::parse(&s) {
            let path = q.path("me");
            let again = QualifiedName::parse(&path).unwrap();
            prop_assert_eq!(again.namespace.as_deref(), Some(q.namespace.as_deref().unwrap_or("me")));
            prop_assert_eq!(&again.package, &q.package);
            prop_assert_eq!(&again.name, &q.name);
            let shown = QualifiedName::parse(&q.to_string()).unwrap();
            prop_assert_eq!(shown, q);
        }
    }

    #[test]
    fn versions_only_move_forward(
        parts in prop::array::uniform3(prop_oneof![any::<u64>(), 0u64..10, Just(u64::MAX)]),
        junk in prop::option::of(any::<String>()),
    ) {
        let v = junk.unwrap_or_else(|| format!("{}.{}.{}", parts[0], parts[1], parts[2]));
        let next = bump_version(&v);
        let parse = |s: &str| -> Option<(u64, u64, u64)> {
            let p: Vec<u64> = s.split('.').map(|x| x.parse().ok()).collect::<Option<_>>()?;
            (p.len() == 3).then(|| (p[0], p[1], p[2]))
        };
        let n = parse(&next);
        prop_assert!(n.is_some(), "{:?} bumped to {:?}", v, next);
        if let Some(old) = parse(&v)
            && old != (u64::MAX, u64::MAX, u64::MAX)
        {
            prop_assert!(n.unwrap() > old, "{:?} bumped to {:?}", v, next);
        }
    }
}

/// `x.y.18446744073709551615` wrapped its patch number to 0 (a version going backwards).
#[test]
fn regression_version_bump_does_not_wrap() {
    assert_eq!(bump_version("1.2.18446744073709551615"), "1.3.0");
    assert_eq!(
        bump_version("1.18446744073709551615.18446744073709551615"),
        "2.0.0"
    );
}
