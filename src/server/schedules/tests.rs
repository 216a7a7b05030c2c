//! The scheduler driven by tokio's paused clock over a real SQLite store: days of schedules
//! pass in milliseconds. Runs are started by a launcher that records what it was asked to do
//! and ends a run when the test says so.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::scheduler::{Launcher, RunEnded, Scheduler, SchedulerHandle};
use super::store::{Fire, FireCause, FireState, ScheduleKey, ScheduleSpec, ScheduleStore};
use crate::error::Result;
use crate::schedule::{Catchup, Clock, Overlap, TokioClock};

#[derive(Default)]
struct Recorder {
    /// (scheduled time, cause, run id) of every run started, in order.
    started: Mutex<Vec<(DateTime<Utc>, FireCause, String)>>,
    running: Mutex<HashMap<String, RunEnded>>,
    terminated: Mutex<Vec<String>>,
    /// Fires a previous server had started a run for.
    started_before: Mutex<HashSet<i64>>,
}

#[async_trait]
impl Launcher for Recorder {
    async fn start(&self, _: &ScheduleSpec, fire: &Fire, ended: RunEnded) -> Result<String> {
        let mut started = self.started.lock().unwrap();
        let id = format!("run-{}", started.len());
        let at = fire.scheduled.parse().unwrap();
        started.push((at, fire.cause, id.clone()));
        self.running.lock().unwrap().insert(id.clone(), ended);
        Ok(id)
    }

    async fn terminate(&self, _: &str, run_id: &str) -> Result<()> {
        self.terminated.lock().unwrap().push(run_id.to_string());
        Ok(())
    }

    async fn started_before(&self, fire: &Fire) -> Result<Option<String>> {
        let before = self.started_before.lock().unwrap();
        Ok(before
            .contains(&fire.scheduled_ms)
            .then(|| "run-of-the-previous-server".to_string()))
    }
}

impl Recorder {
    fn started_times(&self) -> Vec<DateTime<Utc>> {
        self.started.lock().unwrap().iter().map(|s| s.0).collect()
    }

    fn end(&self, run_id: &str) {
        let ended = self
            .running
            .lock()
            .unwrap()
            .remove(run_id)
            .expect("a running run");
        ended.report("Succeeded".into());
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn spec(cron: &str, overlap: Overlap, catchup: Catchup) -> ScheduleSpec {
    ScheduleSpec {
        workflow: "main".into(),
        schedule: cron.into(),
        timezone: "UTC".into(),
        overlap,
        catchup,
        catchup_window_s: 24 * 3600,
        concurrency_limit: 1,
        args: Default::default(),
        engine: None,
    }
}

/// A store in a temporary folder, a clock reading `start`, and a recording launcher.
struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<ScheduleStore>,
    clock: Arc<TokioClock>,
    launcher: Arc<Recorder>,
}

impl Setup {
    fn new(start: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ScheduleStore::open(&dir.path().join("schedules.db")).unwrap());
        Setup {
            _dir: dir,
            store,
            clock: Arc::new(TokioClock::starting_at(utc(start))),
            launcher: Arc::new(Recorder::default()),
        }
    }

    async fn put(&self, spec: &ScheduleSpec, decided_until: &str) -> ScheduleKey {
        self.store
            .put("p", "s", spec, utc(decided_until))
            .await
            .unwrap();
        ("p".to_string(), "s".to_string())
    }

    /// Starts a scheduler; it runs until the returned token is cancelled.
    fn start(
        &self,
    ) -> (
        SchedulerHandle,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let (scheduler, handle) = Scheduler::new(
            self.store.clone(),
            self.launcher.clone(),
            self.clock.clone(),
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(scheduler.run(stop.clone()));
        (handle, stop, task)
    }

    /// Lets paused time pass until the clock reads `at`, then lets the scheduler settle.
    async fn until(&self, at: &str) {
        let wait = (utc(at) - self.clock.now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        settle().await;
    }

    async fn states(&self, key: &ScheduleKey) -> Vec<(FireState, Option<String>)> {
        let mut fires = self.store.fires(key, 1000).await.unwrap();
        fires.reverse();
        fires.into_iter().map(|f| (f.state, f.detail)).collect()
    }
}

/// Gives the scheduler's task (and its blocking store calls) time to finish what is due.
async fn settle() {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn skip_overlap_skips_fires_while_a_run_is_going_and_records_why() {
    let s = Setup::new("2026-01-01T09:30:00Z");
    let key = s
        .put(
            &spec("0 * * * *", Overlap::Skip, Catchup::Latest),
            "2026-01-01T09:30:00Z",
        )
        .await;
    let (_handle, stop, task) = s.start();
    s.until("2026-01-01T11:30:00Z").await;
    assert_eq!(
        s.launcher.started_times(),
        vec![utc("2026-01-01T10:00:00Z")]
    );
    let states = s.states(&key).await;
    assert_eq!(states[0].0, FireState::Started);
    assert_eq!(
        states[1],
        (
            FireState::Skipped,
            Some(crate::schedule::CONCURRENCY_SKIP.to_string())
        )
    );
    s.launcher.end("run-0");
    s.until("2026-01-01T12:00:30Z").await;
    assert_eq!(
        s.launcher.started_times().len(),
        2,
        "fires again once the run ended"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn buffer_one_starts_one_waiting_fire_when_the_run_ends() {
    let s = Setup::new("2026-01-01T09:30:00Z");
    let key = s
        .put(
            &spec("0 * * * *", Overlap::BufferOne, Catchup::Latest),
            "2026-01-01T09:30:00Z",
        )
        .await;
    let (_handle, stop, task) = s.start();
    s.until("2026-01-01T12:30:00Z").await;
    let states: Vec<FireState> = s.states(&key).await.into_iter().map(|s| s.0).collect();
    assert_eq!(
        states,
        [FireState::Started, FireState::Buffered, FireState::Skipped]
    );
    s.launcher.end("run-0");
    settle().await;
    assert_eq!(
        s.launcher.started_times(),
        vec![utc("2026-01-01T10:00:00Z"), utc("2026-01-01T11:00:00Z")]
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn allow_all_starts_every_fire() {
    let s = Setup::new("2026-01-01T09:30:00Z");
    s.put(
        &spec("0 * * * *", Overlap::AllowAll, Catchup::Latest),
        "2026-01-01T09:30:00Z",
    )
    .await;
    let (_handle, stop, task) = s.start();
    s.until("2026-01-01T12:30:00Z").await;
    assert_eq!(s.launcher.started_times().len(), 3);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancel_other_terminates_the_running_run_and_starts_after_it_ended() {
    let s = Setup::new("2026-01-01T09:30:00Z");
    s.put(
        &spec("0 * * * *", Overlap::CancelOther, Catchup::Latest),
        "2026-01-01T09:30:00Z",
    )
    .await;
    let (_handle, stop, task) = s.start();
    s.until("2026-01-01T11:00:30Z").await;
    assert_eq!(*s.launcher.terminated.lock().unwrap(), ["run-0"]);
    assert_eq!(
        s.launcher.started_times().len(),
        1,
        "waits for the canceled run"
    );
    s.launcher.end("run-0");
    settle().await;
    assert_eq!(s.launcher.started_times()[1], utc("2026-01-01T11:00:00Z"));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn terminate_other_terminates_the_running_run_and_starts_now() {
    let s = Setup::new("2026-01-01T09:30:00Z");
    s.put(
        &spec("0 * * * *", Overlap::TerminateOther, Catchup::Latest),
        "2026-01-01T09:30:00Z",
    )
    .await;
    let (_handle, stop, task) = s.start();
    s.until("2026-01-01T11:00:30Z").await;
    assert_eq!(*s.launcher.terminated.lock().unwrap(), ["run-0"]);
    assert_eq!(s.launcher.started_times().len(), 2);
    stop.cancel();
    task.await.unwrap();
}

/// A server down from 05:30 to 10:20 comes back: the schedule's catch-up policy decides.
async fn catch_up(catchup: Catchup) -> Vec<DateTime<Utc>> {
    let s = Setup::new("2026-01-01T10:20:00Z");
    let mut spec = spec("0 * * * *", Overlap::AllowAll, catchup);
    spec.catchup_window_s = 3 * 3600;
    s.put(&spec, "2026-01-01T05:30:00Z").await;
    let (_handle, stop, task) = s.start();
    settle().await;
    stop.cancel();
    task.await.unwrap();
    s.launcher.started_times()
}

#[tokio::test(start_paused = true)]
async fn catch_up_policies_after_downtime() {
    assert!(catch_up(Catchup::Skip).await.is_empty(), "skip: MLRun's");
    assert_eq!(
        catch_up(Catchup::Latest).await,
        vec![utc("2026-01-01T10:00:00Z")]
    );
    assert_eq!(
        catch_up(Catchup::All).await,
        vec![
            utc("2026-01-01T08:00:00Z"),
            utc("2026-01-01T09:00:00Z"),
            utc("2026-01-01T10:00:00Z")
        ],
        "all, within the 3 h window"
    );
}

#[tokio::test(start_paused = true)]
async fn fires_follow_the_zone_across_spring_forward_and_fall_back() {
    let s = Setup::new("2026-03-27T12:00:00Z");
    let mut daily = spec("30 2 * * *", Overlap::AllowAll, Catchup::Skip);
    daily.timezone = "Europe/Berlin".into();
    s.put(&daily, "2026-03-27T12:00:00Z").await;
    let (_handle, stop, task) = s.start();
    s.until("2026-03-30T12:00:00Z").await;
    assert_eq!(
        s.launcher.started_times(),
        vec![
            utc("2026-03-28T01:30:00Z"),
            utc("2026-03-29T01:00:00Z"),
            utc("2026-03-30T00:30:00Z")
        ],
        "02:30 does not exist on the 29th: it fires once, at 03:00 CEST"
    );
    s.until("2026-10-26T12:00:00Z").await;
    let october: Vec<_> = s
        .launcher
        .started_times()
        .into_iter()
        .filter(|t| *t >= utc("2026-10-24T00:00:00Z"))
        .collect();
    assert_eq!(
        october,
        vec![
            utc("2026-10-24T00:30:00Z"),
            utc("2026-10-25T00:30:00Z"),
            utc("2026-10-26T01:30:00Z")
        ],
        "02:30 happens twice on the 25th: it fires once"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_paused_schedule_does_not_fire_and_resumes_from_now() {
    let s = Setup::new("2026-01-01T09:30:00Z");
    let key = s
        .put(
            &spec("0 * * * *", Overlap::AllowAll, Catchup::All),
            "2026-01-01T09:30:00Z",
        )
        .await;
    let (handle, stop, task) = s.start();
    s.store
        .set_paused("p", "s", true, Some("maintenance".into()), s.clock.now())
        .await
        .unwrap();
    handle.changed(key.clone());
    s.until("2026-01-01T12:30:00Z").await;
    assert!(s.launcher.started_times().is_empty());
    let paused = s.store.get("p", "s").await.unwrap();
    assert_eq!(paused.note.as_deref(), Some("maintenance"));
    assert_eq!(paused.next_fire, None);
    s.store
        .set_paused("p", "s", false, None, s.clock.now())
        .await
        .unwrap();
    handle.changed(key);
    s.until("2026-01-01T13:00:30Z").await;
    assert_eq!(
        s.launcher.started_times(),
        vec![utc("2026-01-01T13:00:00Z")],
        "nothing of the paused hours is caught up"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn trigger_and_backfill_record_fires_that_start_once() {
    let s = Setup::new("2026-01-01T09:30:00Z");
    let key = s
        .put(
            &spec("0 * * * *", Overlap::AllowAll, Catchup::Skip),
            "2026-01-01T09:30:00Z",
        )
        .await;
    let (handle, stop, task) = s.start();
    let times = vec![utc("2025-12-31T22:00:00Z"), utc("2025-12-31T23:00:00Z")];
    let first = s
        .store
        .record(&key, times.clone(), FireCause::Backfill)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let again = s
        .store
        .record(&key, times, FireCause::Backfill)
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "a time fires once, however often it is backfilled"
    );
    s.store
        .record(&key, vec![s.clock.now()], FireCause::Trigger)
        .await
        .unwrap();
    handle.changed(key);
    settle().await;
    let causes: Vec<FireCause> = s
        .launcher
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.1)
        .collect();
    assert_eq!(
        causes,
        [FireCause::Backfill, FireCause::Backfill, FireCause::Trigger]
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_fire_recorded_before_a_crash_runs_exactly_once_after_restart() {
    let s = Setup::new("2026-01-01T10:00:10Z");
    let key = s
        .put(
            &spec("0 * * * *", Overlap::AllowAll, Catchup::Skip),
            "2026-01-01T09:30:00Z",
        )
        .await;
    // The previous server decided 10:00 and died before starting its run.
    let fires = s.store.decide(&key, s.clock.now()).await.unwrap().fires;
    assert_eq!(fires.len(), 1);
    let (_handle, stop, task) = s.start();
    settle().await;
    assert_eq!(
        s.launcher.started_times(),
        vec![utc("2026-01-01T10:00:00Z")]
    );
    stop.cancel();
    task.await.unwrap();
    // A second restart starts nothing more: the fire is started, and its time decided.
    let (_handle, stop, task) = s.start();
    settle().await;
    assert_eq!(s.launcher.started_times().len(), 1);
    assert_eq!(
        s.states(&key).await[0].1.as_deref(),
        Some(super::scheduler::RESTARTED)
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_fire_whose_run_the_dead_server_started_is_not_started_again() {
    let s = Setup::new("2026-01-01T10:00:10Z");
    let key = s
        .put(
            &spec("0 * * * *", Overlap::AllowAll, Catchup::Skip),
            "2026-01-01T09:30:00Z",
        )
        .await;
    let fires = s.store.decide(&key, s.clock.now()).await.unwrap().fires;
    s.launcher
        .started_before
        .lock()
        .unwrap()
        .insert(fires[0].scheduled_ms);
    let (_handle, stop, task) = s.start();
    settle().await;
    assert!(s.launcher.started_times().is_empty());
    let fire = &s.store.fires(&key, 10).await.unwrap()[0];
    assert_eq!(fire.state, FireState::Ended);
    assert_eq!(fire.run_id.as_deref(), Some("run-of-the-previous-server"));
    stop.cancel();
    task.await.unwrap();
}

#[test]
fn fire_state_words_are_their_serialized_names() {
    use FireState::*;
    for state in [Pending, Buffered, Started, Ended, Skipped, Failed] {
        assert_eq!(serde_json::to_value(state).unwrap(), state.word());
    }
}
