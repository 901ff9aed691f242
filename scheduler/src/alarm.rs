//! The built-in alarm feed: periodic triggers, run inside the scheduler.
//!
//! OpenWhisk models a periodic trigger as a trigger with a `feed` annotation naming the
//! `/whisk.system/alarms/alarm` feed action, which a separate alarms service then fires. wisp
//! keeps the model (a trigger annotated `feed: /whisk.system/alarms/alarm`, created with
//! `wisp trigger create T --feed alarm -p cron "*/5 * * * *"`) but runs the feed itself:
//!
//! - the schedule ([`AlarmSpec`]: `cron` (5 fields, UTC), `interval` (minutes) or `once` (a date),
//!   plus `startDate`, `stopDate` and `trigger_payload`) is stored with the trigger's next fire
//!   time in the store's `alarms` table, so it survives a scheduler restart;
//! - every scheduler runs a poller ([`spawn_poller`]) that calls [`tick`] once a second: each due
//!   alarm is *claimed* with a conditional update of its `next_fire` (`WHERE next_fire = $old`),
//!   and only the replica whose update took effect fires the trigger, so several replicas sharing
//!   one store fire each tick once;
//! - deleting the trigger deletes its alarm (one transaction in the store).
//!
//! [`tick`] takes the current time as an argument: tests drive it with chosen instants instead
//! of waiting for minutes to pass.
//!
//! Costs: an [`AlarmSpec`] and a [`Cron`] are a few words, parsed from the stored JSON on each
//! tick of their alarm; the poller is one tokio task per scheduler, one indexed query a second.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// The feed annotation value wisp stores on alarm triggers (OpenWhisk's alarm feed name).
pub const ALARM_FEED: &str = "/whisk.system/alarms/alarm";
/// How often each scheduler looks for due alarms.
pub const POLL_PERIOD: Duration = Duration::from_secs(1);
/// Shortest `interval` accepted (a wisp extension: OpenWhisk takes whole minutes; fractions
/// down to one second are allowed here).
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// Latest date an alarm accepts (`startDate`, `stopDate`, `once`): 9999-12-31T23:59:59.999Z,
/// the last instant an ISO 8601 date can name. Keeps the schedule arithmetic far from `u64::MAX`.
pub const MAX_DATE_MS: u64 = 253_402_300_799_999;
/// Longest `interval` accepted: as long as [`MAX_DATE_MS`] (a longer one would never fire).
pub const MAX_INTERVAL_MS: u64 = MAX_DATE_MS;
/// The parameters the alarm feed consumes (they are not kept as trigger parameters).
pub const FEED_PARAMS: &[&str] = &[
    "cron",
    "interval",
    "once",
    "date",
    "startDate",
    "stopDate",
    "trigger_payload",
];

/// Whether a `feed` annotation value names the built-in alarm feed (`alarm`, `alarms/alarm`,
/// `/whisk.system/alarms/alarm`, `.../interval`, `.../once`).
pub fn is_alarm_feed(feed: &str) -> bool {
    let f = feed.trim_start_matches('/');
    matches!(
        f,
        "alarm"
            | "alarms/alarm"
            | "alarms/interval"
            | "alarms/once"
            | "whisk.system/alarms/alarm"
            | "whisk.system/alarms/interval"
            | "whisk.system/alarms/once"
    )
}

/// A bad alarm schedule (the API answers 400 with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AlarmError(pub String);

fn bad(msg: impl Into<String>) -> AlarmError {
    AlarmError(msg.into())
}

/// When an alarm fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Schedule {
    /// A 5-field cron expression, evaluated in UTC.
    Cron(String),
    /// Every this many milliseconds.
    IntervalMs(u64),
    /// Once, at this epoch ms.
    Once(u64),
}

/// An alarm's schedule and payload, as stored in the `alarms` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmSpec {
    pub schedule: Schedule,
    /// No fire before this epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<u64>,
    /// No fire after this epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_date: Option<u64>,
    /// The parameters each fire passes to the trigger.
    #[serde(default)]
    pub trigger_payload: Map<String, Value>,
}

/// Parses a date parameter: an ISO 8601 / RFC 3339 date (`2026-11-23T15:00:00Z`; without a zone
/// it is UTC) or epoch milliseconds, at most [`MAX_DATE_MS`] (the year 9999).
pub fn parse_date(key: &str, v: &Value) -> Result<u64, AlarmError> {
    let ms = parse_date_unbounded(key, v)?;
    if ms > MAX_DATE_MS {
        return Err(bad(format!(
            "{key} is after the year 9999 ({ms} epoch milliseconds)"
        )));
    }
    Ok(ms)
}

fn parse_date_unbounded(key: &str, v: &Value) -> Result<u64, AlarmError> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            bad(format!(
                "{key} must be a date or positive epoch milliseconds"
            ))
        }),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(ms) = s.parse::<u64>() {
                return Ok(ms);
            }
            let t = humantime::parse_rfc3339_weak(s)
                .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s}T00:00:00")))
                .map_err(|e| bad(format!("{key} {s:?} is not an ISO 8601 date: {e}")))?;
            let ms = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| bad(format!("{key} {s:?} is before 1970")))?
                .as_millis();
            Ok(u64::try_from(ms).unwrap_or(u64::MAX))
        }
        _ => Err(bad(format!(
            "{key} must be an ISO 8601 date string or epoch milliseconds"
        ))),
    }
}

impl AlarmSpec {
    /// Reads the feed parameters (`cron` | `interval` | `once`/`date`, `startDate`, `stopDate`,
    /// `trigger_payload`) of a trigger, checking them; `now` is used to refuse dates past.
    pub fn from_params(params: &Map<String, Value>, now: u64) -> Result<AlarmSpec, AlarmError> {
        let once = params.get("once").or_else(|| params.get("date"));
        let given = [
            params.contains_key("cron"),
            params.contains_key("interval"),
            once.is_some(),
        ];
        let schedule = match given {
            [true, false, false] => {
                let expr = params["cron"]
                    .as_str()
                    .ok_or_else(|| bad("cron must be a string such as \"*/5 * * * *\""))?;
                Cron::parse(expr)?;
                Schedule::Cron(expr.trim().to_string())
            }
            [false, true, false] => {
                let v = &params["interval"];
                let minutes = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
                    .ok_or_else(|| bad(format!("interval must be a number of minutes, not {v}")))?;
                let ms = minutes * 60_000.0;
                if !ms.is_finite() || ms < MIN_INTERVAL_MS as f64 {
                    return Err(bad(format!(
                        "interval must be at least 1 second (1/60 of a minute), not {v}"
                    )));
                }
                if ms > MAX_INTERVAL_MS as f64 {
                    return Err(bad(format!(
                        "interval must be at most {} minutes, not {v}",
                        MAX_INTERVAL_MS / 60_000
                    )));
                }
                Schedule::IntervalMs(ms.round() as u64)
            }
            [false, false, true] => {
                let at = parse_date("once", once.unwrap_or(&Value::Null))?;
                if at <= now {
                    return Err(bad("the date of a 'once' alarm must be in the future"));
                }
                Schedule::Once(at)
            }
            [false, false, false] => {
                return Err(bad(
                    "the alarm feed needs one of the parameters cron (5-field, UTC), interval \
                     (minutes) or once (a date)",
                ));
            }
            _ => {
                return Err(bad(
                    "give only one of the alarm parameters cron, interval and once",
                ));
            }
        };
        let date = |key: &str| params.get(key).map(|v| parse_date(key, v)).transpose();
        let start_date = date("startDate")?;
        let stop_date = date("stopDate")?;
        if let (Some(a), Some(b)) = (start_date, stop_date)
            && b <= a
        {
            return Err(bad("stopDate must be after startDate"));
        }
        if stop_date.is_some_and(|s| s <= now) {
            return Err(bad("stopDate must be in the future"));
        }
        let trigger_payload = match params.get("trigger_payload") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                _ => return Err(bad("trigger_payload must be a JSON object")),
            },
            Some(_) => return Err(bad("trigger_payload must be a JSON object")),
        };
        Ok(AlarmSpec {
            schedule,
            start_date,
            stop_date,
            trigger_payload,
        })
    }

    /// The first fire time of an alarm created at `now`; `None` when it would never fire.
    pub fn first_fire(&self, now: u64) -> Option<u64> {
        let from = self.start_date.map_or(now, |s| s.max(now));
        let at = match &self.schedule {
            Schedule::Cron(expr) => Cron::parse(expr).ok()?.next_after(from.saturating_sub(1))?,
            Schedule::IntervalMs(ms) => match self.start_date {
                Some(s) if s > now => s,
                _ => now.checked_add(*ms)?,
            },
            Schedule::Once(at) => (*at).max(from),
        };
        self.within_stop(at)
    }

    /// The fire time after the tick `fired` (claimed at `now`): the next one strictly after
    /// `now` (ticks missed while no scheduler ran are skipped, not replayed); `None` when done.
    pub fn next_after(&self, fired: u64, now: u64) -> Option<u64> {
        let at = match &self.schedule {
            Schedule::Cron(expr) => Cron::parse(expr).ok()?.next_after(now.max(fired))?,
            Schedule::IntervalMs(ms) => {
                let ms = (*ms).max(1);
                let behind = now.saturating_sub(fired) / ms + 1;
                fired.checked_add(behind.checked_mul(ms)?)?
            }
            Schedule::Once(_) => return None,
        };
        self.within_stop(at)
    }

    fn within_stop(&self, at: u64) -> Option<u64> {
        match self.stop_date {
            Some(stop) if at > stop => None,
            _ => Some(at),
        }
    }
}

/// A parsed 5-field cron expression (minute hour day-of-month month day-of-week), in UTC.
/// Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, month and day
/// names (`JAN`, `MON`); day-of-week 0 and 7 are Sunday. When both day fields are restricted a
/// day matching either one matches (as in Vixie cron).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field_value(s: &str, what: &str, names: &[&str], first: u32) -> Result<u32, AlarmError> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + first);
    }
    // Digits only: `str::parse` would also take a sign (`+5`), which cron does not.
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse::<u32>().ok())
        .flatten()
        .ok_or_else(|| bad(format!("cron {what} field: {s:?} is not a number")))
}

/// Parses one field into a bit set over `min..=max`.
fn parse_field(
    field: &str,
    what: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u64, AlarmError> {
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad(format!("cron {what} field: bad step {s:?}")))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                field_value(a, what, names, min)?,
                field_value(b, what, names, min)?,
            )
        } else {
            let v = field_value(range, what, names, min)?;
            // `5/15` means 5, 20, 35, 50 (from 5 to the end).
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(bad(format!(
                "cron {what} field: {part:?} is outside {min}-{max}"
            )));
        }
        // Steps may be as large as u32::MAX: step in u64 so `v + step` cannot wrap.
        let mut v = u64::from(lo);
        while v <= u64::from(hi) {
            bits |= 1 << v;
            v += u64::from(step);
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, AlarmError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(bad(format!(
                "cron expression {expr:?} must have 5 fields (minute hour day-of-month month \
                 day-of-week), found {}",
                fields.len()
            )));
        };
        let mut weekdays = parse_field(dow, "day-of-week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        Ok(Cron {
            minutes: parse_field(m, "minute", 0, 59, &[])?,
            hours: parse_field(h, "hour", 0, 23, &[])?,
            days: parse_field(dom, "day-of-month", 1, 31, &[])?,
            months: parse_field(mon, "month", 1, 12, &MONTHS)?,
            weekdays,
            days_any: dom.starts_with('*'),
            weekdays_any: dow.starts_with('*'),
        })
    }

    fn day_matches(&self, month: u32, day: u32, weekday: u32) -> bool {
        if self.months & (1 << month) == 0 {
            return false;
        }
        let d = self.days & (1 << day) != 0;
        let w = self.weekdays & (1 << weekday) != 0;
        if self.days_any || self.weekdays_any {
            d && w
        } else {
            d || w
        }
    }

    /// The first matching minute strictly after `after_ms` (epoch ms, UTC), within 5 years;
    /// `None` also when that minute is past what epoch ms in a `u64` can hold.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let start = after_ms / 60_000 + 1;
        let first_day = start / 1440;
        for day in first_day..first_day + 366 * 5 {
            let from_minute = if day == first_day {
                (start % 1440) as u32
            } else {
                0
            };
            let (_, month, dom) = civil_from_days(day as i64);
            let weekday = ((day + 4) % 7) as u32; // 1970-01-01 was a Thursday
            if self.day_matches(month, dom, weekday) {
                for minute in from_minute..1440 {
                    if self.hours & (1 << (minute / 60)) != 0
                        && self.minutes & (1 << (minute % 60)) != 0
                    {
                        return day
                            .checked_mul(1440)?
                            .checked_add(u64::from(minute))?
                            .checked_mul(60_000);
                    }
                }
            }
        }
        None
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Fires every alarm due at `now` (epoch ms) that this scheduler claims; returns how many it
/// fired. Alarms whose trigger is gone are dropped.
pub async fn tick(state: &AppState, now: u64) -> Result<usize, crate::store::StoreError> {
    let mut fired = 0;
    for alarm in state.store.due_alarms(now, 256).await? {
        let spec: AlarmSpec = match serde_json::from_value(alarm.spec.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(namespace = %alarm.namespace, trigger = %alarm.trigger, error = %e,
                    "dropping an alarm whose schedule does not parse");
                state
                    .store
                    .delete_alarm(&alarm.namespace, &alarm.trigger)
                    .await?;
                continue;
            }
        };
        let next = spec.next_after(alarm.next_fire, now);
        let claimed = state
            .store
            .claim_alarm(&alarm.namespace, &alarm.trigger, alarm.next_fire, next)
            .await?;
        if !claimed {
            continue; // another replica fired this tick
        }
        let Some(trigger) = state
            .store
            .get_trigger(&alarm.namespace, &alarm.trigger)
            .await?
        else {
            state
                .store
                .delete_alarm(&alarm.namespace, &alarm.trigger)
                .await?;
            continue;
        };
        match crate::api::triggers::fire(state, &trigger, spec.trigger_payload.clone()).await {
            Ok(_) => fired += 1,
            Err(e) => tracing::warn!(namespace = %alarm.namespace, trigger = %alarm.trigger,
                error = %e, "alarm fire failed"),
        }
    }
    Ok(fired)
}

/// Runs [`tick`] every [`POLL_PERIOD`] with the wall clock until `stop` is cancelled.
pub fn spawn_poller(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(POLL_PERIOD);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Err(e) = tick(&state, wisp_core::now_ms()).await {
                tracing::warn!(error = %e, "alarm poll failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Epoch ms of a UTC date-time.
    fn at(s: &str) -> u64 {
        parse_date("t", &json!(s)).unwrap()
    }

    #[test]
    fn civil_dates_round_trip_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(at("2026-11-23T00:00:00Z") / 86_400_000, 20_780);
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
    }

    #[test]
    fn cron_next_times() {
        let every_minute = Cron::parse("* * * * *").unwrap();
        assert_eq!(
            every_minute.next_after(at("2026-11-23T15:04:30Z")),
            Some(at("2026-11-23T15:05:00Z"))
        );
        assert_eq!(
            every_minute.next_after(at("2026-11-23T15:05:00Z")),
            Some(at("2026-11-23T15:06:00Z")),
            "strictly after"
        );
        let every5 = Cron::parse("*/5 * * * *").unwrap();
        assert_eq!(
            every5.next_after(at("2026-11-23T15:04:59Z")),
            Some(at("2026-11-23T15:05:00Z"))
        );
        let daily = Cron::parse("30 2 * * *").unwrap();
        assert_eq!(
            daily.next_after(at("2026-12-31T03:00:00Z")),
            Some(at("2027-01-01T02:30:00Z"))
        );
        // 2026-11-23 is a Monday: next Friday 09:00 is the 27th.
        let fridays = Cron::parse("0 9 * * FRI").unwrap();
        assert_eq!(
            fridays.next_after(at("2026-11-23T10:00:00Z")),
            Some(at("2026-11-27T09:00:00Z"))
        );
        let sunday7 = Cron::parse("0 0 * * 7").unwrap();
        assert_eq!(
            sunday7.next_after(at("2026-11-23T10:00:00Z")),
            Some(at("2026-11-29T00:00:00Z"))
        );
        // Both day fields restricted: the 1st of the month OR a Monday.
        let either = Cron::parse("0 0 1 * MON").unwrap();
        assert_eq!(
            either.next_after(at("2026-11-24T00:00:00Z")),
            Some(at("2026-11-30T00:00:00Z"))
        );
        assert_eq!(
            either.next_after(at("2026-11-30T00:00:00Z")),
            Some(at("2026-12-01T00:00:00Z"))
        );
        let leap = Cron::parse("0 12 29 FEB *").unwrap();
        assert_eq!(
            leap.next_after(at("2026-03-01T00:00:00Z")),
            Some(at("2028-02-29T12:00:00Z"))
        );
        let list = Cron::parse("0,20-30/5 8-9 * JAN-MAR,DEC *").unwrap();
        assert_eq!(
            list.next_after(at("2026-11-23T10:00:00Z")),
            Some(at("2026-12-01T08:00:00Z"))
        );
        assert_eq!(
            list.next_after(at("2026-12-01T08:00:00Z")),
            Some(at("2026-12-01T08:20:00Z"))
        );
        assert_eq!(
            list.next_after(at("2026-12-01T08:30:00Z")),
            Some(at("2026-12-01T09:00:00Z"))
        );
        // Never matches (30 February).
        assert_eq!(Cron::parse("0 0 30 2 *").unwrap().next_after(0), None);
    }

    #[test]
    fn bad_cron_expressions_are_refused_with_a_reason() {
        for (expr, needle) in [
            ("* * * *", "5 fields"),
            ("60 * * * *", "outside 0-59"),
            ("* 24 * * *", "outside 0-23"),
            ("* * 0 * *", "outside 1-31"),
            ("* * * 13 *", "outside 1-12"),
            ("* * * * 8", "outside 0-7"),
            ("*/0 * * * *", "bad step"),
            ("x * * * *", "not a number"),
            ("5-1 * * * *", "outside"),
        ] {
            let e = Cron::parse(expr).unwrap_err();
            assert!(e.0.contains(needle), "{expr}: {e}");
        }
    }

    #[test]
    fn specs_from_feed_parameters() {
        let now = at("2026-11-23T15:00:00Z");
        let p = |v: Value| v.as_object().unwrap().clone();
        let interval =
            AlarmSpec::from_params(&p(json!({"interval": 2, "trigger_payload": {"k": 1}})), now)
                .unwrap();
        assert_eq!(interval.schedule, Schedule::IntervalMs(120_000));
        assert_eq!(interval.trigger_payload, p(json!({"k": 1})));
        assert_eq!(interval.first_fire(now), Some(now + 120_000));
        assert_eq!(
            interval.next_after(now + 120_000, now + 120_010),
            Some(now + 240_000)
        );
        // A scheduler down for 10 minutes skips the missed ticks.
        assert_eq!(
            interval.next_after(now + 120_000, now + 720_000),
            Some(now + 840_000)
        );
        let cron = AlarmSpec::from_params(
            &p(
                json!({"cron": "0 * * * *", "startDate": "2026-11-24T00:00:00Z",
                      "stopDate": "2026-11-24T02:30:00Z"}),
            ),
            now,
        )
        .unwrap();
        assert_eq!(cron.first_fire(now), Some(at("2026-11-24T00:00:00Z")));
        let second = at("2026-11-24T01:00:00Z");
        assert_eq!(
            cron.next_after(at("2026-11-24T00:00:00Z"), at("2026-11-24T00:00:01Z")),
            Some(second)
        );
        assert_eq!(
            cron.next_after(at("2026-11-24T02:00:00Z"), at("2026-11-24T02:00:00Z")),
            None,
            "past stopDate"
        );
        let once =
            AlarmSpec::from_params(&p(json!({"once": "2026-11-23T16:00:00Z"})), now).unwrap();
        assert_eq!(once.first_fire(now), Some(at("2026-11-23T16:00:00Z")));
        assert_eq!(once.next_after(at("2026-11-23T16:00:00Z"), now), None);
        for (bad, needle) in [
            (json!({}), "needs one of"),
            (json!({"cron": "* * * * *", "interval": 1}), "only one"),
            (json!({"interval": 0}), "at least 1 second"),
            (json!({"interval": "soon"}), "number of minutes"),
            (json!({"cron": "* * *"}), "5 fields"),
            (json!({"once": "2020-01-01T00:00:00Z"}), "in the future"),
            (json!({"once": "tomorrow"}), "not an ISO 8601 date"),
            (
                json!({"interval": 1, "trigger_payload": [1]}),
                "JSON object",
            ),
            (
                json!({"interval": 1, "startDate": "2027-01-02T00:00:00Z",
                       "stopDate": "2027-01-01T00:00:00Z"}),
                "after startDate",
            ),
        ] {
            let e = AlarmSpec::from_params(&p(bad.clone()), now).unwrap_err();
            assert!(e.0.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn specs_round_trip_through_json() {
        let spec = AlarmSpec {
            schedule: Schedule::Cron("*/5 * * * *".into()),
            start_date: Some(1),
            stop_date: None,
            trigger_payload: Map::new(),
        };
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(serde_json::from_value::<AlarmSpec>(v).unwrap(), spec);
        assert!(is_alarm_feed("alarm") && is_alarm_feed("/whisk.system/alarms/alarm"));
        assert!(!is_alarm_feed("/whisk.system/messaging/kafkaFeed"));
    }
}
