//! Scheduled workflow runs: the schedules a server holds, the checks a new one passes, and the
//! scheduler task that fires them.
//!
//! [`Schedules`] is what the routes call (baton's own under `/api/baton/v1/.../schedules` and
//! MLRun's): it checks a schedule (its cron expression and time zone, MLRun's minimum interval,
//! an existing workflow, no local engine), stores it ([`store`]) and tells the [`scheduler`],
//! which fires it through the [`launcher`].

pub mod launcher;
pub mod routes;
pub mod scheduler;
pub mod store;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::schedule::{Clock, CronSchedule};
use crate::server::Projects;
use scheduler::SchedulerHandle;
use store::{Fire, FireCause, ScheduleKey, ScheduleRecord, ScheduleSpec, ScheduleStore};

/// MLRun's default minimum interval between two fires of a schedule
/// (`httpdb.scheduling.min_allowed_interval`).
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(600);

/// How many upcoming fires the minimum-interval check looks at (MLRun looks at 60).
const INTERVAL_SAMPLE: usize = 60;

/// The longest range one backfill may cover.
pub const MAX_BACKFILL_SPAN: Duration = Duration::from_secs(31 * 24 * 3600);

/// The most fires one backfill may start.
pub const MAX_BACKFILL_FIRES: usize = 1000;

/// The server's schedules: see the module docs.
pub struct Schedules {
    store: Arc<ScheduleStore>,
    scheduler: SchedulerHandle,
    clock: Arc<dyn Clock>,
    min_interval: Duration,
}

impl Schedules {
    /// Schedules kept in `store`, fired by the scheduler behind `scheduler`; crons firing more
    /// often than `min_interval` are refused (zero allows any).
    pub fn new(
        store: Arc<ScheduleStore>,
        scheduler: SchedulerHandle,
        clock: Arc<dyn Clock>,
        min_interval: Duration,
    ) -> Schedules {
        Schedules {
            store,
            scheduler,
            clock,
            min_interval,
        }
    }

    /// Checks `spec` as schedule `name` of `project` and stores it (replacing one of that
    /// name); answers the stored schedule and whether it is new.
    pub async fn put(
        &self,
        projects: &Projects,
        project: &str,
        name: &str,
        spec: ScheduleSpec,
    ) -> Result<(ScheduleRecord, bool)> {
        self.check(projects, project, name, &spec)?;
        let created = self
            .store
            .put(project, name, &spec, self.clock.now())
            .await?;
        self.changed(project, name);
        Ok((self.store.get(project, name).await?, created))
    }

    fn check(
        &self,
        projects: &Projects,
        project: &str,
        name: &str,
        spec: &ScheduleSpec,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(Error::invalid("name: a schedule needs a name"));
        }
        if spec.engine.as_deref().is_some_and(|e| e.contains("local")) {
            return Err(Error::invalid(
                "'schedule' argument is not supported for 'local' engine.",
            ));
        }
        let cron = spec.cron()?;
        self.check_interval(&cron)?;
        projects
            .load(project)?
            .workflow(&spec.workflow)
            .map_err(|e| {
                Error::invalid(format!("workflow: {e}")).with_hint(
                    "define it first (`baton set-workflow`, or MLRun's `project.set_workflow`)",
                )
            })?;
        Ok(())
    }

    /// MLRun's frequency check: two of the next 60 fires closer than the minimum interval are
    /// refused with MLRun's message.
    fn check_interval(&self, cron: &CronSchedule) -> Result<()> {
        if self.min_interval.is_zero() {
            return Ok(());
        }
        match cron.shortest_interval(self.clock.now(), INTERVAL_SAMPLE) {
            Some(gap) if gap < self.min_interval => Err(Error::invalid_with_hint(
                format!(
                    "Cron trigger too frequent. no more than one job per {} is allowed",
                    interval_text(self.min_interval)
                ),
                "the server's --schedule-min-interval sets the limit (0 disables it)",
            )),
            _ => Ok(()),
        }
    }

    /// Schedule `name` of `project`.
    pub async fn get(&self, project: &str, name: &str) -> Result<ScheduleRecord> {
        self.store.get(project, name).await
    }

    /// The schedules of `project`, by name.
    pub async fn list(&self, project: &str) -> Result<Vec<ScheduleRecord>> {
        self.store.list(Some(project)).await
    }

    /// The newest fires of schedule `name` of `project`, at most `limit`.
    pub async fn fires(&self, project: &str, name: &str, limit: usize) -> Result<Vec<Fire>> {
        self.store.get(project, name).await?;
        self.store.fires(&key(project, name), limit).await
    }

    /// Deletes schedule `name` of `project` and its fires (runs already started go on).
    pub async fn delete(&self, project: &str, name: &str) -> Result<()> {
        self.store.delete(project, name).await?;
        self.changed(project, name);
        Ok(())
    }

    /// Pauses schedule `name` of `project`, keeping `note` as the reason.
    pub async fn pause(
        &self,
        project: &str,
        name: &str,
        note: Option<String>,
    ) -> Result<ScheduleRecord> {
        let now = self.clock.now();
        self.store
            .set_paused(project, name, true, note, now)
            .await?;
        self.changed(project, name);
        self.store.get(project, name).await
    }

    /// Resumes schedule `name` of `project`: it fires from now on (what came due while it was
    /// paused does not fire).
    pub async fn resume(&self, project: &str, name: &str) -> Result<ScheduleRecord> {
        let now = self.clock.now();
        self.store
            .set_paused(project, name, false, None, now)
            .await?;
        self.changed(project, name);
        self.store.get(project, name).await
    }

    /// Fires schedule `name` of `project` now, whatever its cron says (its overlap policy
    /// still applies); answers the fire.
    pub async fn trigger(&self, project: &str, name: &str) -> Result<Fire> {
        let now = self.clock.now();
        let fires = self
            .store
            .record(&key(project, name), vec![now], FireCause::Trigger)
            .await?;
        self.changed(project, name);
        fires
            .into_iter()
            .next()
            .ok_or_else(|| Error::conflict(format!("Schedule `{name}` already fired at {now}")))
    }

    /// Fires schedule `name` of `project` once for each of its fire times in `[from, to]` that
    /// has not fired yet, oldest first; answers the new fires. `to` may not be in the future,
    /// and the range is bounded ([`MAX_BACKFILL_SPAN`], [`MAX_BACKFILL_FIRES`]).
    pub async fn backfill(
        &self,
        project: &str,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Fire>> {
        let schedule = self.store.get(project, name).await?;
        let now = self.clock.now();
        if to > now {
            return Err(Error::invalid(format!(
                "to: {to} is in the future; a backfill fires times that have passed"
            )));
        }
        if from > to {
            return Err(Error::invalid(format!("from: {from} is after to ({to})")));
        }
        let span = (to - from).to_std().unwrap_or_default();
        if span > MAX_BACKFILL_SPAN {
            return Err(Error::invalid(format!(
                "from: the range {from} to {to} is longer than the {} a backfill may cover",
                interval_text(MAX_BACKFILL_SPAN)
            )));
        }
        let cron = schedule.spec.cron()?;
        let before_from = from - chrono::Duration::seconds(1);
        let times = cron.times_between(before_from, to, MAX_BACKFILL_FIRES + 1);
        if times.len() > MAX_BACKFILL_FIRES {
            return Err(Error::invalid(format!(
                "from: the range {from} to {to} holds more than {MAX_BACKFILL_FIRES} fire times; backfill it in parts"
            )));
        }
        let fires = self
            .store
            .record(&key(project, name), times, FireCause::Backfill)
            .await?;
        self.changed(project, name);
        Ok(fires)
    }

    fn changed(&self, project: &str, name: &str) {
        self.scheduler.changed(key(project, name));
    }
}

fn key(project: &str, name: &str) -> ScheduleKey {
    (project.to_string(), name.to_string())
}

/// A duration as MLRun writes its interval setting: `10 minutes`, `1 hour`, `30 seconds`.
fn interval_text(interval: Duration) -> String {
    let secs = interval.as_secs();
    let (count, unit) = match secs {
        s if s % 86400 == 0 => (s / 86400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}
