//! Which fire times come due when the scheduler looks at a schedule.
//!
//! A schedule remembers the instant up to which its fires were decided (its cursor). When the
//! scheduler looks at it at `now`, every fire time in `(cursor, now]` is due; those later than
//! [`ON_TIME`] are missed, and the catch-up policy says which of them still fire. The cursor then
//! moves to `now`, in the same transaction that records the fires.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cron::CronSchedule;
use super::policy::Catchup;

/// How late a fire may start and still be on time rather than missed: the scheduler wakes at
/// the due time, so only a server that was down (or starved) is later than this.
pub const ON_TIME: Duration = Duration::from_secs(60);

/// The most fires one look at a schedule decides (a long outage of a per-minute schedule under
/// [`Catchup::All`] fires at most this many).
pub const MAX_FIRES_AT_ONCE: usize = 1000;

/// The fire times of `cron` due at `now`, given its fires were decided up to `cursor`, oldest
/// first: on-time ones always, missed ones as `catchup` says (`window` bounds [`Catchup::All`]).
pub fn due_times(
    cron: &CronSchedule,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
    catchup: Catchup,
    window: Duration,
) -> Vec<DateTime<Utc>> {
    let since = |span: Duration| {
        let floor = now - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
        floor.max(cursor)
    };
    match catchup {
        Catchup::Skip => cron.times_between(since(ON_TIME), now, MAX_FIRES_AT_ONCE),
        Catchup::All => cron.times_between(since(window), now, MAX_FIRES_AT_ONCE),
        Catchup::Latest => cron
            .last_at_or_before(now)
            .filter(|last| *last > cursor)
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn hourly() -> CronSchedule {
        CronSchedule::parse("0 * * * *", None).unwrap()
    }

    #[test]
    fn an_on_time_fire_is_due_under_every_policy() {
        for catchup in [Catchup::Skip, Catchup::Latest, Catchup::All] {
            let due = due_times(
                &hourly(),
                utc("2026-01-01T09:30:00Z"),
                utc("2026-01-01T10:00:02Z"),
                catchup,
                Duration::from_secs(3600 * 24),
            );
            assert_eq!(due, vec![utc("2026-01-01T10:00:00Z")], "{catchup}");
        }
    }

    #[test]
    fn missed_fires_follow_the_catchup_policy() {
        let cursor = utc("2026-01-01T05:30:00Z");
        let now = utc("2026-01-01T10:20:00Z");
        let day = Duration::from_secs(3600 * 24);
        assert!(due_times(&hourly(), cursor, now, Catchup::Skip, day).is_empty());
        assert_eq!(
            due_times(&hourly(), cursor, now, Catchup::Latest, day),
            vec![utc("2026-01-01T10:00:00Z")]
        );
        assert_eq!(
            due_times(&hourly(), cursor, now, Catchup::All, day).len(),
            5,
            "06:00 to 10:00"
        );
        let two_hours = Duration::from_secs(7200);
        assert_eq!(
            due_times(&hourly(), cursor, now, Catchup::All, two_hours),
            vec![utc("2026-01-01T09:00:00Z"), utc("2026-01-01T10:00:00Z")]
        );
    }

    #[test]
    fn nothing_is_due_twice() {
        let now = utc("2026-01-01T10:00:00Z");
        for catchup in [Catchup::Skip, Catchup::Latest, Catchup::All] {
            let due = due_times(&hourly(), now, now, catchup, Duration::from_secs(86400));
            assert!(due.is_empty(), "{catchup}");
        }
    }
}
