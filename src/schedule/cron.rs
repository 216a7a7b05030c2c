//! A cron expression in an IANA time zone, and the fire times it gives.
//!
//! Times are matched on the zone's wall clock and returned as instants (UTC), with croner's
//! daylight-saving rules (the Open Cron Pattern Specification): a fixed-time fire that falls in
//! a spring-forward gap runs at the first instant after the gap; in a fall-back overlap a
//! fixed-time fire runs once (at the first occurrence), while an interval fire (`*/15 * * * *`)
//! runs in both hours. So a daily 02:30 in `Europe/Berlin` fires exactly once every day.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::error::{Error, Result};

/// A parsed schedule: a 5-field crontab (or an `@hourly`-style macro) in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    zone: Tz,
    cron: Cron,
}

/// The macros croner takes in place of the five fields.
const MACROS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

impl CronSchedule {
    /// Parses `expression` in the IANA zone `timezone` (`UTC` when `None`). Errors name the
    /// field to fix: `schedule` (with the crontab field that is out of range) or `timezone`.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<CronSchedule> {
        let expression = expression.trim();
        let zone = parse_zone(timezone)?;
        let is_macro = MACROS.iter().any(|m| m.eq_ignore_ascii_case(expression));
        if !is_macro {
            crate::project::check_schedule(expression)
                .map_err(|e| Error::invalid(format!("schedule: {}", e.chain())))?;
        }
        // `@midnight` is croner's `@daily` under another name.
        let pattern = if expression.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            expression
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| Error::invalid(format!("schedule: invalid `{expression}`: {e}")))?;
        Ok(CronSchedule {
            expression: expression.to_string(),
            zone,
            cron,
        })
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone the expression is read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire time strictly after `after`; `None` when the pattern never matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last fire time at or before `at`; `None` when there is none.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.zone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Every fire time in `(after, until]`, oldest first, at most `limit` of them.
    pub fn times_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut times = Vec::new();
        let mut cursor = after;
        while times.len() < limit {
            match self.next_after(cursor) {
                Some(next) if next <= until => {
                    times.push(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        times
    }

    /// The shortest gap between consecutive fires among the next `count` after `from`, as
    /// MLRun checks a cron's frequency (it looks at the next 60).
    pub fn shortest_interval(&self, from: DateTime<Utc>, count: usize) -> Option<Duration> {
        let times = self.times_between(from, DateTime::<Utc>::MAX_UTC, count);
        times
            .windows(2)
            .filter_map(|pair| (pair[1] - pair[0]).to_std().ok())
            .min()
    }
}

/// An IANA zone by name; `None` or empty is UTC.
pub fn parse_zone(timezone: Option<&str>) -> Result<Tz> {
    match timezone.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(Tz::UTC),
        Some(name) => name.parse::<Tz>().map_err(|_| {
            Error::invalid_with_hint(
                format!("timezone: unknown time zone `{name}`"),
                "give an IANA zone name such as `UTC`, `Europe/Berlin` or `America/New_York`",
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn next_times_are_strictly_after() {
        let cron = CronSchedule::parse("*/15 * * * *", None).unwrap();
        assert_eq!(
            cron.next_after(utc("2026-01-01T10:00:00Z")),
            Some(utc("2026-01-01T10:15:00Z"))
        );
        assert_eq!(
            cron.next_after(utc("2026-01-01T10:14:59Z")),
            Some(utc("2026-01-01T10:15:00Z"))
        );
    }

    #[test]
    fn macros_are_taken() {
        let cron = CronSchedule::parse("@hourly", None).unwrap();
        assert_eq!(
            cron.next_after(utc("2026-01-01T10:20:00Z")),
            Some(utc("2026-01-01T11:00:00Z"))
        );
        assert!(CronSchedule::parse("@midnight", Some("UTC")).is_ok());
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = CronSchedule::parse("61 * * * *", None).unwrap_err();
        assert!(err.to_string().starts_with("schedule:"), "{err}");
        assert!(err.to_string().contains("minute"), "{err}");
        let err = CronSchedule::parse("* * *", None).unwrap_err();
        assert!(err.to_string().contains("expected 5"), "{err}");
        let err = CronSchedule::parse("0 * * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(err.to_string().starts_with("timezone:"), "{err}");
    }

    #[test]
    fn spring_forward_gap_fires_once_after_the_gap() {
        // Berlin skips 02:00-03:00 on 2026-03-29: a 02:30 job runs at 03:00 local (01:00 UTC).
        let cron = CronSchedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let times =
            cron.times_between(utc("2026-03-27T12:00:00Z"), utc("2026-03-30T12:00:00Z"), 10);
        assert_eq!(
            times,
            vec![
                utc("2026-03-28T01:30:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-30T00:30:00Z"),
            ]
        );
    }

    #[test]
    fn fall_back_overlap_fires_a_fixed_time_once() {
        // Berlin repeats 02:00-03:00 on 2026-10-25: a 02:30 job runs once, at the first 02:30.
        let cron = CronSchedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let times =
            cron.times_between(utc("2026-10-24T12:00:00Z"), utc("2026-10-26T12:00:00Z"), 10);
        assert_eq!(
            times,
            vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
        );
    }

    #[test]
    fn fall_back_overlap_fires_an_interval_in_both_hours() {
        let cron = CronSchedule::parse("0,30 * * * *", Some("Europe/Berlin")).unwrap();
        let times =
            cron.times_between(utc("2026-10-24T23:59:00Z"), utc("2026-10-25T02:00:00Z"), 10);
        // 02:00 and 02:30 local happen twice: 00:00, 00:30 UTC (CEST) and 01:00, 01:30 (CET).
        assert_eq!(
            times,
            vec![
                utc("2026-10-25T00:00:00Z"),
                utc("2026-10-25T00:30:00Z"),
                utc("2026-10-25T01:00:00Z"),
                utc("2026-10-25T01:30:00Z"),
                utc("2026-10-25T02:00:00Z"),
            ]
        );
    }

    #[test]
    fn shortest_interval_sees_the_tightest_gap() {
        let cron = CronSchedule::parse("0,5 * * * *", None).unwrap();
        assert_eq!(
            cron.shortest_interval(utc("2026-01-01T00:00:00Z"), 60),
            Some(Duration::from_secs(300))
        );
    }
}
