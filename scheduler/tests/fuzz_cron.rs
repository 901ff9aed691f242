//! Fuzz target 4 of issue 7: the alarm feed's cron parser and schedule arithmetic
//! (`wisp_scheduler::alarm`), and trigger PUTs carrying feed parameters through the real router.
//!
//! Properties:
//! - `Cron::parse` never panics on arbitrary text or on cron-shaped token soup; whatever it
//!   accepts has a next fire time strictly after `now` (or none), at a whole minute.
//! - For random *valid* specs (built with the set of values each field means, computed here
//!   independently of the parser), `next_after(now)` matches every field and equals the first
//!   matching minute found by a brute-force minute-by-minute search over the next 400 days
//!   (dates from `humantime`, weekdays from Sakamoto's formula: nothing shared with `alarm.rs`).
//! - `AlarmSpec::from_params` never panics; an accepted spec fires at or after `now` (and its
//!   `startDate`), never after its `stopDate`, and each next tick is strictly after the claim.
//! - A trigger PUT with `feed: alarm` and arbitrary feed parameters answers 200 or a 4xx JSON
//!   `{error, code}`, never a 5xx.
//!
//! Cases per property: the defaults below (about 15 s in release on 2 cores for the file);
//! `PROPTEST_CASES=N` runs N of each instead. Bugs found keep a `regression_*` test.

mod fuzz_common;

use std::collections::BTreeSet;

use fuzz_common::{cases, config};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use wisp_scheduler::alarm::{AlarmSpec, Cron, Schedule, parse_date};

const MINUTE: u64 = 60_000;
const DAY: u64 = 1440 * MINUTE;
/// 2200-01-01T00:00:00Z: the upper end of the "ordinary" instants we search from.
const Y2200: u64 = 7_258_118_400_000;

// ---- an independent model of a cron spec ----

/// One field's item: what it renders to and the values it means.
#[derive(Clone, Debug)]
struct Field {
    text: String,
    values: BTreeSet<u32>,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Renders `v` as a number or (for months and weekdays) a name in random case.
fn render(
    v: u32,
    names: Option<(&'static [&'static str], u32)>,
    name: bool,
    upper: bool,
) -> String {
    match names {
        Some((list, first)) if name && ((v - first) as usize) < list.len() => {
            let n = list[(v - first) as usize];
            if upper {
                n.to_uppercase()
            } else {
                n.to_string()
            }
        }
        _ => v.to_string(),
    }
}

/// One comma-separated item of a field over `min..=max`.
fn item(
    min: u32,
    max: u32,
    names: Option<(&'static [&'static str], u32)>,
) -> impl Strategy<Value = Field> {
    // Steps are mostly small, sometimes huge (overflow territory).
    let step =
        prop_oneof![4 => 1u32..=20, 1 => 21u32..=100, 1 => any::<u32>().prop_map(|s| s.max(1))];
    (
        0u8..5,
        min..=max,
        min..=max,
        step,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(kind, a, b, step, name, upper)| {
            let (lo, hi) = (a.min(b), a.max(b));
            let r = |v| render(v, names, name, upper);
            let stepped = |lo: u32, hi: u32| -> BTreeSet<u32> {
                (lo..=hi)
                    .filter(|v| (v - lo).is_multiple_of(step))
                    .collect()
            };
            match kind {
                0 => Field {
                    text: "*".into(),
                    values: (min..=max).collect(),
                },
                1 => Field {
                    text: format!("*/{step}"),
                    values: stepped(min, max),
                },
                2 => Field {
                    text: r(a),
                    values: [a].into(),
                },
                3 => Field {
                    text: format!("{}-{}", r(lo), r(hi)),
                    values: (lo..=hi).collect(),
                },
                _ if a % 2 == 0 => Field {
                    text: format!("{}-{}/{step}", r(lo), r(hi)),
                    values: stepped(lo, hi),
                },
                _ => Field {
                    text: format!("{}/{step}", r(a)),
                    values: stepped(a, max),
                },
            }
        })
}

fn field(
    min: u32,
    max: u32,
    names: Option<(&'static [&'static str], u32)>,
) -> impl Strategy<Value = Field> {
    prop::collection::vec(item(min, max, names), 1..=3).prop_map(|items| Field {
        text: items
            .iter()
            .map(|i| i.text.as_str())
            .collect::<Vec<_>>()
            .join(","),
        values: items.into_iter().flat_map(|i| i.values).collect(),
    })
}

#[derive(Clone, Debug)]
struct Spec {
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

impl Spec {
    fn expr(&self) -> String {
        [&self.minute, &self.hour, &self.dom, &self.month, &self.dow]
            .map(|f| f.text.as_str())
            .join(" ")
    }

    /// Vixie cron's rule: when both day fields are restricted (neither starts with `*`), a day
    /// matching either matches; otherwise both must. Weekday 7 is Sunday.
    fn matches(&self, t: &Civil) -> bool {
        let dows: BTreeSet<u32> = self.dow.values.iter().map(|d| d % 7).collect();
        let d = self.dom.values.contains(&t.day);
        let w = dows.contains(&t.weekday);
        let day_ok = if self.dom.text.starts_with('*') || self.dow.text.starts_with('*') {
            d && w
        } else {
            d || w
        };
        day_ok
            && self.month.values.contains(&t.month)
            && self.hour.values.contains(&t.hour)
            && self.minute.values.contains(&t.minute)
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        field(0, 59, None),
        field(0, 23, None),
        field(1, 31, None),
        field(1, 12, Some((&MONTHS, 1))),
        field(0, 7, Some((&DAYS, 0))),
    )
        .prop_map(|(minute, hour, dom, month, dow)| Spec {
            minute,
            hour,
            dom,
            month,
            dow,
        })
}

/// A UTC calendar minute, computed with `humantime` (not `alarm.rs`).
#[derive(Debug)]
struct Civil {
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    weekday: u32,
}

/// (year, month, day) of the UTC day containing `ms`.
fn ymd(ms: u64) -> (u32, u32, u32) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let s = humantime::format_rfc3339_seconds(t).to_string(); // 2026-11-23T15:04:00Z
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap();
    (n(0..4), n(5..7), n(8..10))
}

/// Day of week, 0 = Sunday (Tomohiko Sakamoto's algorithm).
fn weekday(y: u32, m: u32, d: u32) -> u32 {
    const T: [u32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if m < 3 { y - 1 } else { y };
    (y + y / 4 - y / 100 + y / 400 + T[m as usize - 1] + d) % 7
}

fn civil(ms: u64) -> Civil {
    let (y, m, d) = ymd(ms);
    let in_day = (ms % DAY) / MINUTE;
    Civil {
        month: m,
        day: d,
        hour: (in_day / 60) as u32,
        minute: (in_day % 60) as u32,
        weekday: weekday(y, m, d),
    }
}

/// The first minute strictly after `now` matching `spec` within `days` days, minute by minute.
fn brute_force(spec: &Spec, now: u64, days: u64) -> Option<u64> {
    let first = (now / MINUTE + 1) * MINUTE;
    let mut cached: Option<(u64, (u32, u32, u32))> = None;
    let mut t = first;
    while t < first + days * DAY {
        let day = t / DAY;
        let (y, m, d) = match cached {
            Some((cd, ymd)) if cd == day => ymd,
            _ => {
                let v = ymd(t);
                cached = Some((day, v));
                v
            }
        };
        let in_day = (t % DAY) / MINUTE;
        let c = Civil {
            month: m,
            day: d,
            hour: (in_day / 60) as u32,
            minute: (in_day % 60) as u32,
            weekday: weekday(y, m, d),
        };
        if spec.matches(&c) {
            return Some(t);
        }
        t += MINUTE;
    }
    None
}

/// Instants to search from: mostly ordinary dates, sometimes the edges of `u64`.
fn now() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0..Y2200,
        1 => Just(0u64),
        1 => (u64::MAX - 10 * 366 * DAY)..=u64::MAX,
    ]
}

/// Cron-shaped token soup: the parser's alphabet plus near-misses.
fn cron_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("*".to_string()),
        Just("/".to_string()),
        Just("-".to_string()),
        Just(",".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("+5".to_string()),
        Just("MON".to_string()),
        Just("dec".to_string()),
        Just("٣".to_string()),
        Just("\u{a0}".to_string()),
        (0u64..100).prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[a-zA-Z]{1,4}",
    ];
    let soup = prop::collection::vec(token, 0..24).prop_map(|t| t.concat());
    // Five fields of 1-3 tokens each: shaped enough to reach the per-field parsing.
    let fields =
        prop::collection::vec(prop::collection::vec(token_again(), 1..4), 5).prop_map(|f| {
            f.into_iter()
                .map(|t| t.concat())
                .collect::<Vec<_>>()
                .join(" ")
        });
    prop_oneof![soup, fields]
}

fn token_again() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        Just("/".to_string()),
        Just("-".to_string()),
        Just(",".to_string()),
        Just("+".to_string()),
        Just("MON".to_string()),
        Just("٣".to_string()),
        (0u64..100).prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
    ]
}

fn assert_sane_next(cron: &Cron, now: u64) -> Result<(), TestCaseError> {
    if let Some(next) = cron.next_after(now) {
        prop_assert!(next > now, "next {} is not after now {}", next, now);
        prop_assert_eq!(next % MINUTE, 0, "next {} is not a whole minute", next);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(cases(20_000)))]

    /// Arbitrary text and token soup: no panic; accepted expressions use only cron's alphabet
    /// and have a sane next fire time.
    #[test]
    fn cron_parse_never_panics(
        text in prop_oneof![any::<String>(), cron_soup(), "[ *0-9,/A-Za-z-]{0,40}"],
        now in now(),
    ) {
        if let Ok(cron) = Cron::parse(&text) {
            prop_assert!(
                text.chars().all(|c| c.is_ascii_alphanumeric() || " \t\n\r\x0b\x0c*,/-".contains(c)),
                "accepted {:?}", text
            );
            prop_assert_eq!(Cron::parse(&text).ok(), Some(cron.clone()));
            assert_sane_next(&cron, now)?;
        }
    }
}

proptest! {
    #![proptest_config(config(cases(1_500)))]

    /// Valid specs: accepted; the next fire time matches every field and is the first match a
    /// minute-by-minute search finds.
    #[test]
    fn cron_next_matches_brute_force(spec in spec(), now in now()) {
        let expr = spec.expr();
        let cron = Cron::parse(&expr)
            .map_err(|e| TestCaseError::fail(format!("{expr:?} refused: {e}")))?;
        assert_sane_next(&cron, now)?;
        let next = cron.next_after(now);
        if now > Y2200 {
            // Near the end of epoch ms (far past the year 9999 dates are capped at): no answer
            // is fine, one before `now` is not (checked above).
            return Ok(());
        }
        if let Some(n) = next {
            prop_assert!(spec.matches(&civil(n)), "{} at {:?} does not match", expr, civil(n));
        }
        let days = 400;
        match brute_force(&spec, now, days) {
            Some(expected) => prop_assert_eq!(next, Some(expected), "{} from {}", expr, now),
            None => prop_assert!(
                next.is_none_or(|n| n >= (now / MINUTE + 1) * MINUTE + days * DAY),
                "{} from {}: parser says {:?}, brute force finds nothing in {} days", expr, now, next, days
            ),
        }
    }
}

/// A feed parameter value: structured, corrupted or hostile.
fn feed_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        spec().prop_map(|s| json!(s.expr())),
        cron_soup().prop_map(Value::String),
        any::<f64>().prop_map(|f| json!(f)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        (0.0f64..1e6).prop_map(|f| json!(f)),
        Just(json!(1e300)),
        Just(json!("1e300")),
        Just(json!(-1)),
        Just(json!("2999-01-01T00:00:00Z")),
        Just(json!("9999-12-31")),
        Just(json!("18446744073709551615")),
        (0..Y2200).prop_map(|n| json!(n)),
        (0..Y2200).prop_map(|n| json!(n.to_string())),
        any::<String>().prop_map(Value::String),
        Just(json!({"a": 1})),
        Just(json!("{\"k\": [1, 2]}")),
        Just(Value::Null),
        Just(json!([1])),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn feed_params() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop::sample::select(vec![
        "cron",
        "interval",
        "once",
        "date",
        "startDate",
        "stopDate",
        "trigger_payload",
    ]);
    prop::collection::vec((key, feed_value()), 0..5)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

proptest! {
    #![proptest_config(config(cases(20_000)))]

    /// Feed parameters: no panic; an accepted schedule fires in order, within its dates.
    #[test]
    fn alarm_specs_fire_in_order(params in feed_params(), now in 0..Y2200, later in 0..(400 * DAY)) {
        let Ok(spec) = AlarmSpec::from_params(&params, now) else { return Ok(()) };
        let back: AlarmSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        prop_assert_eq!(&back, &spec);
        let Some(first) = spec.first_fire(now) else { return Ok(()) };
        prop_assert!(first >= now, "first fire {} before now {}", first, now);
        if let Some(start) = spec.start_date {
            prop_assert!(first >= start, "first fire {} before startDate {}", first, start);
        }
        if let Some(stop) = spec.stop_date {
            prop_assert!(first <= stop, "first fire {} after stopDate {}", first, stop);
        }
        let claimed = first.saturating_add(later);
        if let Some(next) = spec.next_after(first, claimed) {
            prop_assert!(next > claimed, "next {} not after the claim at {}", next, claimed);
            prop_assert!(spec.stop_date.is_none_or(|s| next <= s));
            if let Schedule::IntervalMs(ms) = spec.schedule {
                prop_assert_eq!((next - first) % ms, 0, "off the interval grid");
            }
        }
    }
}

// ---- trigger PUTs through the real router ----

#[test]
fn alarm_trigger_puts_never_fail_with_5xx() {
    let app = fuzz_common::TestApp::start(false);
    let input = (feed_params(), "[a-z][a-z0-9]{0,6}");
    fuzz_common::check("alarm trigger PUT", cases(400), input, |(params, name)| {
        let parameters: Vec<Value> = params
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let body = json!({
            "annotations": [{"key": "feed", "value": "alarm"}],
            "parameters": parameters,
        });
        let uri = format!("/api/v1/namespaces/_/triggers/{name}?overwrite=true");
        let r = app.call("PUT", &uri, &[], body.to_string().into_bytes());
        if r.status != 200 {
            r.assert_clean_error()?;
        }
        Ok(())
    });
}

// ---- regressions: one per bug these targets found ----

fn at(s: &str) -> u64 {
    parse_date("t", &json!(s)).unwrap()
}

/// `1/4294967295`: the step overflowed `u32` and wrapped around to minute 0.
#[test]
fn regression_huge_step_does_not_wrap() {
    let cron = Cron::parse("1/4294967295 * * * *").unwrap();
    assert_eq!(
        cron.next_after(at("2026-11-23T15:00:00Z")),
        Some(at("2026-11-23T15:01:00Z"))
    );
    assert_eq!(
        cron.next_after(at("2026-11-23T15:01:00Z")),
        Some(at("2026-11-23T16:01:00Z")),
        "minute 0 must not match"
    );
}

/// `+5` is not a cron number (Rust's integer parser takes the sign).
#[test]
fn regression_signed_numbers_are_refused() {
    assert!(Cron::parse("+5 * * * *").is_err());
    assert!(Cron::parse("* * * * 1-+3").is_err());
}

/// Near the end of `u64`, the next minute overflowed and wrapped to a time before `now`.
#[test]
fn regression_next_after_near_u64_max_does_not_wrap() {
    let cron = Cron::parse("* * * * *").unwrap();
    for now in [u64::MAX, u64::MAX - 1, u64::MAX - 59_999, u64::MAX - DAY] {
        assert!(cron.next_after(now).is_none_or(|n| n > now), "{now}");
    }
}

/// A huge `interval` saturated to `u64::MAX` ms and `now + interval` wrapped around.
#[test]
fn regression_huge_interval_is_refused() {
    let now = at("2026-11-23T15:00:00Z");
    let p = |v: Value| v.as_object().unwrap().clone();
    for v in [json!(1e300), json!("1e300"), json!(1e15)] {
        let e = AlarmSpec::from_params(&p(json!({ "interval": v })), now).unwrap_err();
        assert!(e.0.contains("at most"), "{v}: {e}");
    }
}

/// Dates past year 9999 (epoch ms near `u64::MAX`) overflowed the schedule arithmetic.
#[test]
fn regression_dates_past_9999_are_refused() {
    let now = at("2026-11-23T15:00:00Z");
    let p = |v: Value| v.as_object().unwrap().clone();
    for params in [
        json!({"cron": "* * * * *", "startDate": u64::MAX}),
        json!({"once": "18446744073709551615"}),
        json!({"interval": 1, "stopDate": 300_000_000_000_000u64}),
    ] {
        let e = AlarmSpec::from_params(&p(params.clone()), now).unwrap_err();
        assert!(e.0.contains("9999"), "{params}: {e}");
    }
    // The last representable date is still fine.
    let ok = AlarmSpec::from_params(
        &p(json!({"cron": "0 0 * * *", "startDate": "9999-12-30T00:00:00Z"})),
        now,
    )
    .unwrap();
    assert_eq!(ok.first_fire(now), Some(at("9999-12-30T00:00:00Z")));
}
