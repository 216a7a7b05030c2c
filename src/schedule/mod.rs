//! The scheduling core, without I/O: cron expressions in IANA time zones ([`CronSchedule`],
//! correct across daylight-saving changes), the overlap and catch-up policies ([`Overlap`],
//! [`Catchup`], [`on_overlap`]), which fire times are due at a given instant ([`due_times`]),
//! and the [`Clock`] the scheduler reads. `baton server`'s scheduler (`server/schedules/`)
//! stores schedules and their fires and starts the runs.

mod clock;
mod cron;
mod plan;
mod policy;

pub use clock::{Clock, SystemClock, TokioClock};
pub use cron::{parse_zone, CronSchedule};
pub use plan::{due_times, MAX_FIRES_AT_ONCE, ON_TIME};
pub use policy::{
    on_overlap, Catchup, Overlap, OverlapAction, CONCURRENCY_SKIP, DEFAULT_CATCHUP_WINDOW,
    DEFAULT_CONCURRENCY_LIMIT,
};
