//! `aggregate`: seed 001's `compute_daily_aggregates` action. Takes sensor readings and
//! returns, per sensor and per UTC day, the min, mean, max and count of the values, plus the
//! same aggregates as InfluxDB line-protocol lines (what the original action sent to InfluxDB).
//!
//! Input: `{"readings": [{"sensor": "s1", "timestamp": "2026-11-23T10:00:00Z", "value": 1.5}]}`
//! where `timestamp` is an RFC 3339 string (`Z` or `±HH:MM` offset, optional fraction) or epoch
//! milliseconds. Output: `{"aggregates": [{"sensor", "day", "min", "mean", "max", "count"}],
//! "readings": N, "influx": ["daily_aggregates,sensor=s1 min=...,mean=...,max=...,count=3i <ns>"]}`,
//! sorted by sensor then day.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wisp_sdk::{Error, bail};

const MS_PER_DAY: i64 = 86_400_000;

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    readings: Vec<Reading>,
}

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    timestamp: Timestamp,
    value: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    EpochMs(i64),
    Rfc3339(String),
}

#[derive(Serialize)]
struct Output {
    aggregates: Vec<Aggregate>,
    readings: usize,
    influx: Vec<String>,
}

#[derive(Serialize)]
struct Aggregate {
    sensor: String,
    day: String,
    min: f64,
    mean: f64,
    max: f64,
    count: u64,
}

struct Acc {
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
}

#[wisp_sdk::action]
fn main(p: Params) -> wisp_sdk::Result<Output> {
    let mut days: BTreeMap<(String, i64), Acc> = BTreeMap::new();
    for (i, r) in p.readings.iter().enumerate() {
        if r.sensor.is_empty() {
            bail!("reading {i}: sensor must not be empty");
        }
        let ms = match &r.timestamp {
            Timestamp::EpochMs(ms) => *ms,
            Timestamp::Rfc3339(s) => {
                parse_rfc3339_ms(s).map_err(|e| Error::msg(format!("reading {i}: {e}")))?
            }
        };
        let day = ms.div_euclid(MS_PER_DAY);
        let acc = days.entry((r.sensor.clone(), day)).or_insert(Acc {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            count: 0,
        });
        acc.min = acc.min.min(r.value);
        acc.max = acc.max.max(r.value);
        acc.sum += r.value;
        acc.count += 1;
    }
    let mut aggregates = Vec::with_capacity(days.len());
    let mut influx = Vec::with_capacity(days.len());
    for ((sensor, day), acc) in days {
        let mean = acc.sum / acc.count as f64;
        influx.push(format!(
            "daily_aggregates,sensor={} min={},mean={},max={},count={}i {}",
            escape_tag(&sensor),
            acc.min,
            mean,
            acc.max,
            acc.count,
            day as i128 * MS_PER_DAY as i128 * 1_000_000
        ));
        aggregates.push(Aggregate {
            sensor,
            day: format_day(day),
            min: acc.min,
            mean,
            max: acc.max,
            count: acc.count,
        });
    }
    wisp_sdk::log!(
        "aggregate: {} readings into {} daily aggregates",
        p.readings.len(),
        aggregates.len()
    );
    Ok(Output {
        aggregates,
        readings: p.readings.len(),
        influx,
    })
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a space or lower-case `t`/`z` accepted)
/// into milliseconds since the Unix epoch.
fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("timestamp {s:?} is not RFC 3339 (e.g. 2026-11-23T10:00:00Z)");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &s[range];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse::<i64>().map_err(|_| bad())?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let (oh, om) = (
                num_at(rest, 1..3).ok_or_else(bad)?,
                num_at(rest, 4..6).ok_or_else(bad)?,
            );
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            sign * (oh * 60 + om)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

fn num_at(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(range)?;
    part.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| part.parse().ok())
        .flatten()
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (inverse of [`days_from_civil`]).
fn format_day(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}")
}

/// Escapes commas, equals signs and spaces in an InfluxDB tag value.
fn escape_tag(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, ',' | '=' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_offsets_and_fractions() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T10:00:00Z"),
            Ok(1_795_428_000_000)
        );
        assert!(parse_rfc3339_ms("2026-02-30T10:00:00Z").is_err());
        assert!(parse_rfc3339_ms("yesterday").is_err());
        assert!(parse_rfc3339_ms("2026-11-23T10:00:00").is_err());
    }

    #[test]
    fn days_round_trip() {
        for day in [-1, 0, 1, 11_016, 20_415, 100_000] {
            let s = format_day(day);
            let (y, m, d) = (
                s[0..4].parse().unwrap(),
                s[5..7].parse().unwrap(),
                s[8..10].parse().unwrap(),
            );
            assert_eq!(days_from_civil(y, m, d), day, "{s}");
        }
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(format_day(-1), "1969-12-31");
    }
}
