//! The scheduler: one task that owns the queue of next fire times, sleeps until the first one
//! is due (never polling per second), decides each due fire in the store and starts its run
//! through a [`Launcher`].
//!
//! Every input is a command handled one at a time by the loop: a schedule changed (stored,
//! deleted, paused, resumed, triggered, backfilled) or a fire's run ended. At start it recovers
//! what a previous server left: fires whose run was going end (`server restarted`), and fires
//! decided but not started are started now, unless the previous server had started their run
//! already (the launcher finds it by the fire's label), so each fire runs exactly once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::store::{Fire, FireState, ScheduleKey, ScheduleSpec, ScheduleStore};
use crate::error::{ErrorKind, Result};
use crate::schedule::{on_overlap, Clock, OverlapAction};

/// The longest the loop sleeps without looking at the clock again, so a wall clock that jumps
/// (NTP, a suspended host) is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How many schedules due at the same instant start their runs at once.
const CONCURRENT_STARTS: usize = 32;

/// What a fire whose run was going when the server stopped records.
pub(crate) const RESTARTED: &str = "the server restarted while the run was going";

/// Starts the runs of fires: `baton server` runs the schedule's workflow on itself.
#[async_trait]
pub trait Launcher: Send + Sync {
    /// Starts the run of `fire` of a schedule with `spec`; answers its workflow run id. When
    /// the run ends, the launcher calls [`RunEnded::report`].
    async fn start(&self, spec: &ScheduleSpec, fire: &Fire, ended: RunEnded) -> Result<String>;

    /// Asks workflow run `run_id` of `project` to terminate.
    async fn terminate(&self, project: &str, run_id: &str) -> Result<()>;

    /// The run a previous server started for `fire` before it died, if any.
    async fn started_before(&self, fire: &Fire) -> Result<Option<String>>;
}

/// Tells the scheduler that a fire's run ended.
pub struct RunEnded {
    tx: mpsc::UnboundedSender<Command>,
    fire: Fire,
}

impl RunEnded {
    /// The run ended in `state`.
    pub fn report(self, state: String) {
        let _ = self.tx.send(Command::RunEnded {
            fire: self.fire,
            state,
        });
    }
}

/// An input of the scheduler loop.
enum Command {
    /// Schedule `key` was stored, deleted, paused, resumed, triggered or backfilled.
    Changed(ScheduleKey),
    /// The run of `fire` ended in `state`.
    RunEnded { fire: Fire, state: String },
}

/// How the rest of the server tells the scheduler about changes.
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl SchedulerHandle {
    /// Schedule `key` changed in the store: the scheduler re-reads it and starts what it has
    /// pending.
    pub fn changed(&self, key: ScheduleKey) {
        let _ = self.tx.send(Command::Changed(key));
    }
}

/// The scheduler loop's state: see the module docs.
pub struct Scheduler {
    store: Arc<ScheduleStore>,
    launcher: Arc<dyn Launcher>,
    clock: Arc<dyn Clock>,
    queue: BTreeSet<(DateTime<Utc>, ScheduleKey)>,
    due: HashMap<ScheduleKey, DateTime<Utc>>,
    tx: mpsc::UnboundedSender<Command>,
    rx: mpsc::UnboundedReceiver<Command>,
}

impl Scheduler {
    /// A scheduler over `store`, starting runs with `launcher`, reading `clock`; and the handle
    /// that tells it about changes.
    pub fn new(
        store: Arc<ScheduleStore>,
        launcher: Arc<dyn Launcher>,
        clock: Arc<dyn Clock>,
    ) -> (Scheduler, SchedulerHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = SchedulerHandle { tx: tx.clone() };
        let scheduler = Scheduler {
            store,
            launcher,
            clock,
            queue: BTreeSet::new(),
            due: HashMap::new(),
            tx,
            rx,
        };
        (scheduler, handle)
    }

    /// How many schedules wait in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Recovers what a previous server left and fills the queue from the store.
    pub async fn load(&mut self) -> Result<()> {
        for fire in self.store.fires_in(FireState::Started, None).await? {
            self.store
                .update_fire(&fire, FireState::Ended, None, Some(RESTARTED))
                .await?;
        }
        let mut keys = BTreeSet::new();
        for fire in self.store.fires_in(FireState::Pending, None).await? {
            if let Some(run_id) = self.launcher.started_before(&fire).await? {
                self.store
                    .update_fire(&fire, FireState::Ended, Some(&run_id), Some(RESTARTED))
                    .await?;
            }
            keys.insert((fire.project, fire.name));
        }
        for fire in self.store.fires_in(FireState::Buffered, None).await? {
            keys.insert((fire.project, fire.name));
        }
        for (key, spec, cursor) in self.store.active().await? {
            if let Some(next) = spec.cron().ok().and_then(|c| c.next_after(cursor)) {
                self.enqueue(key, next);
            }
        }
        for key in keys {
            self.start_waiting(&key).await;
        }
        Ok(())
    }

    /// Runs until `stop` is cancelled: [`Scheduler::load`], then fires each schedule when due.
    pub async fn run(mut self, stop: CancellationToken) {
        if let Err(e) = self.load().await {
            tracing::error!("the scheduler cannot load its schedules: {}", e.chain());
        }
        loop {
            let now = self.clock.now();
            let mut due = Vec::new();
            while self.queue.first().is_some_and(|(at, _)| *at <= now) {
                let (_, key) = self.queue.pop_first().expect("a first entry");
                self.due.remove(&key);
                due.push(key);
            }
            if !due.is_empty() {
                self.tick(due, now).await;
            }
            let wait = self
                .queue
                .first()
                .and_then(|(at, _)| (*at - now).to_std().ok())
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                command = self.rx.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn enqueue(&mut self, key: ScheduleKey, at: DateTime<Utc>) {
        if let Some(old) = self.due.insert(key.clone(), at) {
            self.queue.remove(&(old, key.clone()));
        }
        self.queue.insert((at, key));
    }

    fn dequeue(&mut self, key: &ScheduleKey) {
        if let Some(old) = self.due.remove(key) {
            self.queue.remove(&(old, key.clone()));
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Changed(key) => {
                match self.store.get(&key.0, &key.1).await {
                    Ok(record) if !record.paused => {
                        let next = record.next_fire.as_deref().and_then(|t| t.parse().ok());
                        match next {
                            Some(next) => self.enqueue(key.clone(), next),
                            None => self.dequeue(&key),
                        }
                    }
                    Ok(_) => self.dequeue(&key),
                    Err(e) if e.kind() == ErrorKind::NotFound => self.dequeue(&key),
                    Err(e) => tracing::error!("cannot read schedule `{}`: {}", key.1, e.chain()),
                }
                self.start_waiting(&key).await;
            }
            Command::RunEnded { fire, state } => {
                if let Err(e) = self
                    .store
                    .update_fire(&fire, FireState::Ended, None, Some(&state))
                    .await
                {
                    tracing::error!("cannot record the end of a fire: {}", e.chain());
                }
                self.start_waiting(&(fire.project, fire.name)).await;
            }
        }
    }

    /// Decides the fires of schedules `keys` due at `now` (in one transaction), queues their
    /// next fire times and starts what they can, up to [`CONCURRENT_STARTS`] schedules at once.
    async fn tick(&mut self, keys: Vec<ScheduleKey>, now: DateTime<Utc>) {
        let decided = match self.store.decide_all(keys, now).await {
            Ok(decided) => decided,
            Err(e) => {
                tracing::error!("cannot decide the fires of due schedules: {}", e.chain());
                return;
            }
        };
        let mut starts = Vec::new();
        for (key, decided) in decided {
            let Some(spec) = decided.spec else { continue };
            if let Some(next) = decided.next_fire {
                self.enqueue(key.clone(), next);
            }
            if !decided.fires.is_empty() {
                starts.push((key, spec, decided.fires));
            }
        }
        let this = &*self;
        futures::stream::iter(starts)
            .for_each_concurrent(CONCURRENT_STARTS, |(key, spec, fires)| async move {
                if let Err(e) = this.start_fires(&key, &spec, fires).await {
                    tracing::error!(
                        "cannot start the fires of schedule `{}`: {}",
                        key.1,
                        e.chain()
                    );
                }
            })
            .await;
    }

    /// Starts, skips or buffers the pending fires of schedule `key` (and a buffered one once
    /// nothing runs) as its overlap policy says.
    async fn start_waiting(&mut self, key: &ScheduleKey) {
        let started = async {
            let pending = self.store.fires_in(FireState::Pending, Some(key)).await?;
            let spec = match self.store.get(&key.0, &key.1).await {
                Ok(schedule) => schedule.spec,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            self.start_fires(key, &spec, pending).await
        };
        if let Err(e) = started.await {
            tracing::error!(
                "cannot start the fires of schedule `{}`: {}",
                key.1,
                e.chain()
            );
        }
    }

    /// Starts, skips or buffers `pending` fires of schedule `key` with `spec` as its overlap
    /// policy says, after starting a buffered fire when nothing runs.
    async fn start_fires(
        &self,
        key: &ScheduleKey,
        spec: &ScheduleSpec,
        pending: Vec<Fire>,
    ) -> Result<()> {
        let (mut buffered, mut running) = self.store.waiting_and_running(key).await?;
        if pending.is_empty() && buffered.is_empty() {
            return Ok(());
        }
        if running.is_empty() && !buffered.is_empty() {
            let fire = buffered.remove(0);
            running.extend(self.start(spec, fire).await?);
        }
        for fire in pending {
            let action = on_overlap(
                spec.overlap,
                running.len(),
                spec.concurrency_limit,
                !buffered.is_empty(),
            );
            match action {
                OverlapAction::Start => running.extend(self.start(spec, fire).await?),
                OverlapAction::Skip(reason) => {
                    tracing::warn!("schedule `{}`: {reason}", key.1);
                    self.store
                        .update_fire(&fire, FireState::Skipped, None, Some(&reason))
                        .await?;
                }
                OverlapAction::Buffer => {
                    self.store
                        .update_fire(&fire, FireState::Buffered, None, None)
                        .await?;
                    buffered.push(fire);
                }
                OverlapAction::TerminateThenBuffer => {
                    self.terminate_all(&running).await;
                    self.store
                        .update_fire(&fire, FireState::Buffered, None, None)
                        .await?;
                    buffered.push(fire);
                }
                OverlapAction::TerminateThenStart => {
                    self.terminate_all(&running).await;
                    running.extend(self.start(spec, fire).await?);
                }
            }
        }
        Ok(())
    }

    /// Starts `fire`'s run and records it `started` (or `failed` with the reason); answers
    /// the fire when its run is going.
    async fn start(&self, spec: &ScheduleSpec, fire: Fire) -> Result<Option<Fire>> {
        let ended = RunEnded {
            tx: self.tx.clone(),
            fire: fire.clone(),
        };
        match self.launcher.start(spec, &fire, ended).await {
            Ok(run_id) => {
                self.store
                    .update_fire(&fire, FireState::Started, Some(&run_id), None)
                    .await?;
                Ok(Some(Fire {
                    state: FireState::Started,
                    run_id: Some(run_id),
                    ..fire
                }))
            }
            Err(e) => {
                tracing::warn!(
                    "schedule `{}`: the fire of {} could not start: {}",
                    fire.name,
                    fire.scheduled,
                    e.chain()
                );
                self.store
                    .update_fire(&fire, FireState::Failed, None, Some(&e.to_string()))
                    .await?;
                Ok(None)
            }
        }
    }

    async fn terminate_all(&self, running: &[Fire]) {
        for fire in running {
            let Some(run_id) = &fire.run_id else { continue };
            if let Err(e) = self.launcher.terminate(&fire.project, run_id).await {
                tracing::warn!("cannot terminate workflow run `{run_id}`: {}", e.chain());
            }
        }
    }
}
