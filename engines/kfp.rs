//! The kfp engine: a workflow run is a Kubeflow Pipelines run, created from the pipeline spec the
//! workflow compiles to and followed by polling KFP.
//!
//! # Ids
//!
//! The KFP run id is the [`WorkflowRunId`], so any process that can reach KFP can read a run's
//! status without having started it. KFP retries a run **in place** (`:retry` re-runs the failed
//! tasks of the same run), while baton records a retry as a new run that continues the old one;
//! so a retry's id is the KFP run id with a suffix, `<kfp-run-id>.retry-<n>`, and both ids read
//! the same KFP run. The earlier id therefore follows the retry too: KFP keeps one record per
//! run, and there is nothing left to tell what the earlier attempt ended as except the stored
//! baton record (a subscription taken before the retry ended with that attempt).
//!
//! # Status
//!
//! A KFP run maps to a [`WorkflowRunStatus`] as a pure function ([`map_run`]): the run's state
//! (`PENDING`→`Pending`, `RUNNING`→`Running`, `CANCELING`→`Canceling`, `SUCCEEDED`/`SKIPPED`→
//! `Succeeded`, `FAILED`→`Failed`, or `Canceled` when the run was terminated: KFP 2.x ends a
//! terminated run `FAILED`, after `CANCELING` in its state history), and each step's state from
//! the task whose display name is the step's name. The status is built as the fold of the events
//! that lead to it, so a subscriber that polls emits exactly the events between two polls and
//! its fold equals [`WorkflowEngine::status`]. Times come from KFP (never from this machine's
//! clock), so two reads of a run agree.
//!
//! # What KFP cannot say
//!
//! Step outputs are not read back (the steps record their runs, outputs included, on the baton
//! server); attempts are counted as one per step that ran (KFP's retry policy is applied by KFP);
//! `parallelism` is not passed. A run's timeout is enforced by this engine: it terminates the run
//! when the timeout passes, so it holds only while the engine lives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;

use crate::engine::{
    check_retryable, wait_by_following, AttemptResult, EngineKind, RunOptions, StepRef, StepState,
    Subscription, WorkflowEngine, WorkflowEvent, WorkflowEventKind, WorkflowRunId,
    WorkflowRunRequest, WorkflowRunStatus, WorkflowState,
};
use crate::error::{Error, ErrorKind, Result};
use crate::kfp::client::{parse_time, KfpClient, NewRun, Run, RuntimeState, StateChange};
use crate::workflow::Dag;

/// Turns a run request into a KFP pipeline spec (JSON, `schemaVersion` 2.1.0). The engine takes
/// it at construction so that it does not depend on one compiler.
pub type CompileFn = Arc<dyn Fn(&WorkflowRunRequest) -> Result<Value> + Send + Sync>;

/// How often a run is polled by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A poll that fails this many times in a row (after the client's own retries) ends the run
/// `Failed` for its observers.
const MAX_POLL_ERRORS: u32 = 5;

/// The reason a terminated run gives.
const TERMINATED: &str = "the run was terminated";

/// A workflow engine whose runs are KFP runs. See the module docs.
#[derive(Clone)]
pub struct KfpEngine {
    inner: Arc<Inner>,
    poll: Duration,
}

struct Inner {
    client: KfpClient,
    compile: CompileFn,
    local: Mutex<Local>,
}

/// What this process knows beyond what KFP says.
#[derive(Default)]
struct Local {
    /// Per KFP run id: the workflow's name and steps, for runs started here.
    shapes: HashMap<String, Shape>,
    /// Per KFP run id: why this process stopped the run (terminate, timeout).
    canceled: HashMap<String, String>,
    /// Runs whose end this process observed without KFP (the run vanished), by id.
    ended: HashMap<WorkflowRunId, WorkflowRunStatus>,
}

/// The workflow a run executes: its name and its steps in declaration order.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// The workflow's name.
    pub name: String,
    /// Its steps' names.
    pub steps: Vec<String>,
}

impl std::fmt::Debug for KfpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KfpEngine({})", self.inner.client)
    }
}

impl std::fmt::Display for KfpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kfp engine on {}", self.inner.client)
    }
}

/// A [`WorkflowRunId`] split into the KFP run and the retry it names (0: the first attempt).
fn split_id(id: &WorkflowRunId) -> (String, u32) {
    let text = id.as_str();
    if let Some((run, n)) = text.rsplit_once(".retry-") {
        if let Ok(n) = n.parse() {
            return (run.to_string(), n);
        }
    }
    (text.to_string(), 0)
}

fn lock(local: &Mutex<Local>) -> std::sync::MutexGuard<'_, Local> {
    local.lock().unwrap_or_else(|e| e.into_inner())
}

impl KfpEngine {
    /// An engine creating runs through `client`, compiling workflows with `compile`.
    pub fn new(client: KfpClient, compile: CompileFn) -> Self {
        KfpEngine {
            inner: Arc::new(Inner {
                client,
                compile,
                local: Mutex::default(),
            }),
            poll: DEFAULT_POLL_INTERVAL,
        }
    }

    /// This engine, polling runs every `interval` (default [`DEFAULT_POLL_INTERVAL`]).
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    /// The KFP client.
    pub fn client(&self) -> &KfpClient {
        &self.inner.client
    }
}

impl Inner {
    /// Reads the run and maps it, with the steps it is known to have.
    async fn read(&self, id: &WorkflowRunId) -> Result<Mapped> {
        let (kfp_id, _) = split_id(id);
        let run = self.client.get_run(&kfp_id).await?;
        let (shape, canceled) = {
            let local = lock(&self.local);
            (
                local.shapes.get(&kfp_id).cloned(),
                local.canceled.get(&kfp_id).cloned(),
            )
        };
        let shape = shape.unwrap_or_else(|| shape_of_run(&run));
        Ok(map_run(id, &run, &shape, canceled.as_deref()))
    }

    fn ended(&self, id: &WorkflowRunId) -> Option<WorkflowRunStatus> {
        lock(&self.local).ended.get(id).cloned()
    }

    /// Terminates the run unless it is already over, giving `reason` to this process's readers.
    async fn terminate(&self, id: &WorkflowRunId, reason: &str) -> Result<()> {
        if self.ended(id).is_some() {
            return Ok(());
        }
        let (kfp_id, _) = split_id(id);
        let run = self.client.get_run(&kfp_id).await?;
        if run.state.is_terminal() || run.state == RuntimeState::Canceling {
            return Ok(());
        }
        lock(&self.local)
            .canceled
            .entry(kfp_id.clone())
            .or_insert_with(|| reason.to_string());
        match self.client.terminate_run(&kfp_id).await {
            Ok(()) => Ok(()),
            // KFP refuses a run that ended meanwhile: a terminal run ignores a terminate.
            Err(e) if e.kind() == ErrorKind::InvalidArgument => {
                match self.client.get_run(&kfp_id).await {
                    Ok(run) if run.state.is_terminal() => Ok(()),
                    _ => {
                        lock(&self.local).canceled.remove(&kfp_id);
                        Err(e)
                    }
                }
            }
            Err(e) => {
                lock(&self.local).canceled.remove(&kfp_id);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl WorkflowEngine for KfpEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Kfp
    }

    /// Whether the workflow compiles is decided by the compile function, at [`run`](Self::run)
    /// (before anything is created on KFP); nothing else is refused here.
    fn check(&self, _dag: &Dag) -> Result<()> {
        Ok(())
    }

    async fn run(&self, request: WorkflowRunRequest, options: RunOptions) -> Result<WorkflowRunId> {
        if let Some(schedule) = &options.schedule {
            return Err(Error::bad_request(format!(
                "the kfp engine does not schedule runs (schedule `{schedule}`); use a remote engine"
            )));
        }
        let spec = (self.inner.compile)(&request)?;
        let shape = Shape {
            name: request.dag.name().to_string(),
            steps: request.dag.steps().iter().map(|s| s.name.clone()).collect(),
        };
        let description = format!(
            "baton workflow `{}` of project `{}`",
            shape.name, request.project
        );
        let run = self
            .inner
            .client
            .create_run(&NewRun {
                display_name: &shape.name,
                description: &description,
                pipeline_spec: &spec,
                parameters: &request.args,
            })
            .await?;
        if run.run_id.is_empty() {
            return Err(Error::runtime(format!(
                "KFP at {} created a run without an id",
                self.inner.client.base_url()
            )));
        }
        lock(&self.inner.local)
            .shapes
            .insert(run.run_id.clone(), shape);
        let id = WorkflowRunId::from(run.run_id);
        if let Some(limit) = options.timeout {
            let inner = self.inner.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                let reason = format!(
                    "the run did not finish within {}",
                    humantime::format_duration(limit)
                );
                if let Err(e) = inner.terminate(&id, &reason).await {
                    tracing::warn!(
                        "Failed to stop KFP run `{id}` at its timeout: {}",
                        e.chain()
                    );
                }
            });
        }
        Ok(id)
    }

    async fn status(&self, id: &WorkflowRunId) -> Result<WorkflowRunStatus> {
        if let Some(status) = self.inner.ended(id) {
            return Ok(status);
        }
        Ok(self.inner.read(id).await?.status)
    }

    async fn subscribe(&self, id: &WorkflowRunId) -> Result<Subscription> {
        if let Some(status) = self.inner.ended(id) {
            return Ok(Subscription {
                status,
                events: futures::stream::empty().boxed(),
            });
        }
        let first = self.inner.read(id).await?;
        let status = first.status.clone();
        if status.state.is_terminal() {
            return Ok(Subscription {
                status,
                events: futures::stream::empty().boxed(),
            });
        }
        let poller = Poller {
            inner: self.inner.clone(),
            id: id.clone(),
            poll: self.poll,
            last: first,
            errors: 0,
            queue: Default::default(),
            done: false,
        };
        let events = futures::stream::unfold(poller, |mut p| async move {
            let event = p.next().await?;
            Some((event, p))
        });
        Ok(Subscription {
            status,
            events: events.fuse().boxed(),
        })
    }

    async fn wait(
        &self,
        id: &WorkflowRunId,
        timeout: Option<Duration>,
    ) -> Result<WorkflowRunStatus> {
        wait_by_following(self, id, timeout).await
    }

    async fn terminate(&self, id: &WorkflowRunId) -> Result<()> {
        self.inner.terminate(id, TERMINATED).await
    }

    /// Retries the KFP run in place (`:retry`): KFP runs its failed tasks again and keeps the
    /// ones that succeeded. The spec is not compiled again (KFP reuses the run's own), so
    /// `request` only has to be the same workflow. Answers `<kfp-run-id>.retry-<n>` (see the
    /// module docs). KFP only retries a run that ended `FAILED` (a terminated one included);
    /// anything else is its 409, [`Error::Conflict`].
    async fn retry(
        &self,
        previous: &WorkflowRunStatus,
        request: WorkflowRunRequest,
        _options: RunOptions,
    ) -> Result<WorkflowRunId> {
        check_retryable(previous)?;
        self.check(&request.dag)?;
        let (kfp_id, n) = split_id(&previous.id);
        self.inner.client.retry_run(&kfp_id).await?;
        let mut local = lock(&self.inner.local);
        local.canceled.remove(&kfp_id);
        local.shapes.entry(kfp_id.clone()).or_insert_with(|| Shape {
            name: request.dag.name().to_string(),
            steps: request.dag.steps().iter().map(|s| s.name.clone()).collect(),
        });
        Ok(WorkflowRunId::from(format!("{kfp_id}.retry-{}", n + 1)))
    }
}

/// Follows one run by polling, yielding the events between two reads.
struct Poller {
    inner: Arc<Inner>,
    id: WorkflowRunId,
    poll: Duration,
    last: Mapped,
    errors: u32,
    queue: std::collections::VecDeque<WorkflowEvent>,
    done: bool,
}

impl Poller {
    async fn next(&mut self) -> Option<WorkflowEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            tokio::time::sleep(self.poll).await;
            match self.inner.read(&self.id).await {
                Ok(next) => {
                    self.errors = 0;
                    self.queue.extend(next.events_since(&self.last));
                    self.done = next.status.state.is_terminal();
                    self.last = next;
                }
                Err(e) => {
                    self.errors += 1;
                    let (kfp_id, _) = split_id(&self.id);
                    let url = self.inner.client.run_url(&kfp_id);
                    let reason = if e.kind() == ErrorKind::NotFound {
                        format!("KFP run `{kfp_id}` vanished from `{url}`: {}", e.chain())
                    } else if self.errors >= MAX_POLL_ERRORS {
                        format!(
                            "KFP run `{kfp_id}` could not be read from `{url}` ({} times in a row): {}",
                            self.errors,
                            e.chain()
                        )
                    } else {
                        tracing::debug!("Failed to poll KFP run `{kfp_id}`: {}", e.chain());
                        continue;
                    };
                    let events = self.last.abandon(&reason, Utc::now());
                    let mut status = self.last.status.clone();
                    for event in &events {
                        status.apply(event);
                    }
                    lock(&self.inner.local)
                        .ended
                        .insert(self.id.clone(), status);
                    self.queue.extend(events);
                    self.done = true;
                }
            }
        }
    }
}

/// A KFP run mapped to baton: the events that lead from a pending status to it, grouped so that
/// two reads can be compared, and their fold.
#[derive(Debug, Clone)]
pub struct Mapped {
    started: Option<WorkflowEvent>,
    canceling: Option<WorkflowEvent>,
    steps: Vec<Vec<WorkflowEvent>>,
    finished: Option<WorkflowEvent>,
    /// The fold of the events: the run's status.
    pub status: WorkflowRunStatus,
}

impl Mapped {
    /// The events that take an observer of `earlier` to this read.
    pub fn events_since(&self, earlier: &Mapped) -> Vec<WorkflowEvent> {
        let mut out = Vec::new();
        if earlier.finished.is_some() {
            return out;
        }
        if earlier.started.is_none() {
            out.extend(self.started.clone());
        }
        if earlier.canceling.is_none() {
            out.extend(self.canceling.clone());
        }
        for (before, now) in earlier.steps.iter().zip(&self.steps) {
            if before.len() < now.len() {
                out.extend(now[before.len()..].iter().cloned());
            }
        }
        out.extend(self.finished.clone());
        out
    }

    /// The events that end this (unfinished) run `Failed` for `reason`, at `at`: running steps
    /// fail, pending ones are skipped.
    fn abandon(&self, reason: &str, at: DateTime<Utc>) -> Vec<WorkflowEvent> {
        let mut out = Vec::new();
        if self.status.state.is_terminal() {
            return out;
        }
        if self.started.is_none() {
            out.push(WorkflowEvent {
                at,
                kind: WorkflowEventKind::WorkflowStarted {
                    name: self.status.name.clone(),
                    steps: self.status.steps.iter().map(|s| s.name.clone()).collect(),
                },
            });
        }
        for (index, step) in self.status.steps.iter().enumerate() {
            let step_ref = StepRef {
                index,
                name: step.name.clone(),
            };
            let kind = match step.state {
                StepState::Running => WorkflowEventKind::StepFinished {
                    step: step_ref,
                    attempt: step.attempts,
                    run_uid: None,
                    result: AttemptResult::Failed {
                        error: reason.to_string(),
                        step_error: reason.to_string(),
                    },
                },
                StepState::Pending => WorkflowEventKind::StepSkipped {
                    step: step_ref,
                    reason: reason.to_string(),
                },
                _ => continue,
            };
            out.push(WorkflowEvent { at, kind });
        }
        out.push(WorkflowEvent {
            at,
            kind: WorkflowEventKind::WorkflowFinished {
                state: WorkflowState::Failed,
                error: Some(reason.to_string()),
            },
        });
        out
    }
}

/// The states of the run's current attempt: its state history after the last retry (a terminal
/// state followed by a live one).
fn current_attempt(history: &[StateChange]) -> &[StateChange] {
    let start = history
        .windows(2)
        .rposition(|w| w[0].state.is_terminal() && !w[1].state.is_terminal())
        .map_or(0, |i| i + 1);
    &history[start..]
}

/// The steps of a pipeline spec (or of the `{pipeline_spec, platform_spec}` wrapper): the
/// `taskInfo.name` of every task that runs an executor, depth first in declaration order,
/// looking through sub-DAG tasks (conditions).
pub fn steps_of_spec(spec: &Value) -> Vec<String> {
    let spec = spec
        .get("pipeline_spec")
        .or_else(|| spec.get("pipelineSpec"))
        .unwrap_or(spec);
    let components = spec.get("components");
    let mut out = Vec::new();
    fn walk(dag: &Value, components: Option<&Value>, out: &mut Vec<String>, depth: usize) {
        let Some(tasks) = dag.get("tasks").and_then(Value::as_object) else {
            return;
        };
        for (key, task) in tasks {
            let component = task
                .pointer("/componentRef/name")
                .and_then(Value::as_str)
                .and_then(|name| components?.get(name));
            match component.and_then(|c| c.get("dag")) {
                Some(sub) if depth < 32 => walk(sub, components, out, depth + 1),
                _ => out.push(
                    task.pointer("/taskInfo/name")
                        .and_then(Value::as_str)
                        .unwrap_or(key)
                        .to_string(),
                ),
            }
        }
    }
    if let Some(dag) = spec.pointer("/root/dag") {
        walk(dag, components, &mut out, 0);
    }
    out
}

/// The shape of a run started elsewhere: its display name and the steps of its spec.
fn shape_of_run(run: &Run) -> Shape {
    Shape {
        name: run.display_name.clone(),
        steps: run
            .pipeline_spec
            .as_ref()
            .map(steps_of_spec)
            .unwrap_or_default(),
    }
}

/// Maps a KFP run to baton's status of run `id` (see the module docs): `shape` names the
/// workflow and its steps, `canceled` is why this process stopped the run, if it did.
pub fn map_run(id: &WorkflowRunId, run: &Run, shape: &Shape, canceled: Option<&str>) -> Mapped {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let attempt = current_attempt(&run.state_history);
    let terminated = canceled.is_some()
        || run.state == RuntimeState::Canceled
        || attempt.iter().any(|c| c.state == RuntimeState::Canceling);
    let reason = canceled.unwrap_or(TERMINATED);
    let state = match run.state {
        RuntimeState::Pending | RuntimeState::Unspecified => WorkflowState::Pending,
        RuntimeState::Running | RuntimeState::Paused if canceled.is_some() => {
            WorkflowState::Canceling
        }
        RuntimeState::Running | RuntimeState::Paused => WorkflowState::Running,
        RuntimeState::Canceling => WorkflowState::Canceling,
        RuntimeState::Succeeded | RuntimeState::Skipped => WorkflowState::Succeeded,
        RuntimeState::Failed if terminated => WorkflowState::Canceled,
        RuntimeState::Failed => WorkflowState::Failed,
        RuntimeState::Canceled => WorkflowState::Canceled,
    };
    let run_started = attempt
        .iter()
        .find(|c| c.state != RuntimeState::Pending)
        .and_then(|c| parse_time(c.update_time.as_deref()))
        .or_else(|| parse_time(run.created_at.as_deref()))
        .unwrap_or(epoch);
    let run_finished = parse_time(run.finished_at.as_deref())
        .or_else(|| {
            attempt
                .iter()
                .rev()
                .find(|c| c.state.is_terminal())
                .and_then(|c| parse_time(c.update_time.as_deref()))
        })
        .unwrap_or(run_started)
        .max(run_started);
    let event = |at, kind| WorkflowEvent { at, kind };
    let mut mapped = Mapped {
        started: None,
        canceling: None,
        steps: vec![Vec::new(); shape.steps.len()],
        finished: None,
        status: WorkflowRunStatus::pending(id.clone(), shape.name.clone(), &shape.steps),
    };
    if state == WorkflowState::Pending {
        return mapped;
    }
    mapped.started = Some(event(
        run_started,
        WorkflowEventKind::WorkflowStarted {
            name: shape.name.clone(),
            steps: shape.steps.clone(),
        },
    ));
    if state == WorkflowState::Canceling {
        mapped.canceling = Some(event(
            run_started,
            WorkflowEventKind::WorkflowCanceling {
                reason: reason.to_string(),
            },
        ));
    }
    let mut failed_steps = Vec::new();
    for (index, name) in shape.steps.iter().enumerate() {
        let task = run
            .run_details
            .task_details
            .iter()
            .rev()
            .find(|t| &t.display_name == name);
        let kfp = task.map_or(RuntimeState::Unspecified, |t| t.state);
        let ran = matches!(
            kfp,
            RuntimeState::Running
                | RuntimeState::Paused
                | RuntimeState::Canceling
                | RuntimeState::Succeeded
                | RuntimeState::Failed
        ) || task.is_some_and(|t| parse_time(t.start_time.as_deref()).is_some());
        let mut step_state = match kfp {
            RuntimeState::Pending | RuntimeState::Unspecified => StepState::Pending,
            RuntimeState::Running | RuntimeState::Paused | RuntimeState::Canceling => {
                StepState::Running
            }
            RuntimeState::Succeeded => StepState::Succeeded,
            RuntimeState::Skipped => StepState::Skipped,
            RuntimeState::Failed if state == WorkflowState::Canceled => StepState::Canceled,
            RuntimeState::Failed => StepState::Failed,
            RuntimeState::Canceled => StepState::Canceled,
        };
        if state.is_terminal() && !step_state.is_terminal() {
            step_state = match (state, step_state) {
                (WorkflowState::Canceled, _) => StepState::Canceled,
                (WorkflowState::Failed, StepState::Running) => StepState::Failed,
                (WorkflowState::Succeeded, StepState::Running) => StepState::Succeeded,
                _ => StepState::Skipped,
            };
        }
        let step_started = task
            .and_then(|t| {
                parse_time(t.start_time.as_deref()).or(parse_time(t.create_time.as_deref()))
            })
            .unwrap_or(run_started);
        // A task KFP ended without an end time ends when it started (stable across reads); one
        // the run's end made terminal ends with the run.
        let step_finished = task
            .and_then(|t| parse_time(t.end_time.as_deref()))
            .unwrap_or(if kfp.is_terminal() {
                step_started
            } else {
                run_finished
            })
            .max(step_started);
        let step = StepRef {
            index,
            name: name.clone(),
        };
        let path = &mut mapped.steps[index];
        let start = |path: &mut Vec<WorkflowEvent>| {
            path.push(event(
                step_started,
                WorkflowEventKind::StepStarted {
                    step: step.clone(),
                    attempt: 1,
                },
            ))
        };
        match step_state {
            StepState::Pending => {}
            StepState::Running => start(path),
            StepState::Succeeded => {
                start(path);
                path.push(event(
                    step_finished,
                    WorkflowEventKind::StepFinished {
                        step: step.clone(),
                        attempt: 1,
                        run_uid: None,
                        result: AttemptResult::Succeeded {
                            outputs: Default::default(),
                        },
                    },
                ));
            }
            StepState::Failed => {
                failed_steps.push(format!("`{name}`"));
                let error = task
                    .and_then(|t| t.error.as_ref())
                    .map(|e| e.message.clone())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("step `{name}` failed in KFP"));
                start(path);
                path.push(event(
                    step_finished,
                    WorkflowEventKind::StepFinished {
                        step: step.clone(),
                        attempt: 1,
                        run_uid: None,
                        result: AttemptResult::Failed {
                            step_error: error.clone(),
                            error,
                        },
                    },
                ));
            }
            StepState::Skipped => path.push(event(
                step_finished,
                WorkflowEventKind::StepSkipped {
                    step: step.clone(),
                    reason: if kfp == RuntimeState::Skipped {
                        "KFP skipped the step".to_string()
                    } else {
                        "an upstream step did not succeed".to_string()
                    },
                },
            )),
            StepState::Canceled => {
                if ran {
                    start(path);
                }
                path.push(event(
                    step_finished,
                    WorkflowEventKind::StepCanceled {
                        step: step.clone(),
                        reason: reason.to_string(),
                    },
                ));
            }
        }
    }
    if state.is_terminal() {
        let error = match state {
            WorkflowState::Canceled => Some(reason.to_string()),
            WorkflowState::Failed => {
                let said = run
                    .error
                    .as_ref()
                    .map(|e| e.message.as_str())
                    .filter(|m| !m.is_empty());
                let steps = if failed_steps.is_empty() {
                    String::new()
                } else {
                    format!(": step {} failed", failed_steps.join(", "))
                };
                Some(match said {
                    Some(said) => format!("KFP run `{}` failed{steps}: {said}", run.run_id),
                    None => format!("KFP run `{}` failed{steps}", run.run_id),
                })
            }
            _ => None,
        };
        mapped.finished = Some(event(
            run_finished,
            WorkflowEventKind::WorkflowFinished { state, error },
        ));
    }
    let mut status = mapped.status.clone();
    for e in mapped
        .started
        .iter()
        .chain(&mapped.canceling)
        .chain(mapped.steps.iter().flatten())
        .chain(&mapped.finished)
    {
        status.apply(e);
    }
    mapped.status = status;
    mapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kfp::client::{RunDetails, TaskDetail};

    fn run(state: RuntimeState, tasks: &[(&str, RuntimeState)], history: &[RuntimeState]) -> Run {
        Run {
            run_id: "r1".into(),
            display_name: "w".into(),
            created_at: Some("2026-01-01T00:00:00Z".into()),
            finished_at: state
                .is_terminal()
                .then(|| "2026-01-01T00:01:00Z".to_string()),
            state,
            run_details: RunDetails {
                task_details: tasks
                    .iter()
                    .map(|(name, state)| TaskDetail {
                        display_name: name.to_string(),
                        state: *state,
                        ..TaskDetail::default()
                    })
                    .collect(),
            },
            state_history: history
                .iter()
                .enumerate()
                .map(|(i, s)| StateChange {
                    update_time: Some(format!("2026-01-01T00:00:{:02}Z", i + 1)),
                    state: *s,
                    error: None,
                })
                .collect(),
            ..Run::default()
        }
    }

    fn shape() -> Shape {
        Shape {
            name: "w".into(),
            steps: vec!["a".into(), "b".into()],
        }
    }

    use RuntimeState::*;

    /// (run state, task states, history, canceled here) -> (run state, step states).
    #[test]
    fn state_mapping_table() {
        type Row = (
            RuntimeState,
            &'static [(&'static str, RuntimeState)],
            &'static [RuntimeState],
            Option<&'static str>,
            WorkflowState,
            [StepState; 2],
        );
        #[rustfmt::skip]
        let table: &[Row] = &[
            (Pending, &[], &[Pending], None, WorkflowState::Pending, [StepState::Pending; 2]),
            (Unspecified, &[], &[], None, WorkflowState::Pending, [StepState::Pending; 2]),
            (Running, &[("a", Running)], &[Pending, Running], None, WorkflowState::Running, [StepState::Running, StepState::Pending]),
            (Running, &[("a", Running)], &[Running], Some("stop"), WorkflowState::Canceling, [StepState::Running, StepState::Pending]),
            (Canceling, &[("a", Canceling)], &[Running, Canceling], None, WorkflowState::Canceling, [StepState::Running, StepState::Pending]),
            (Succeeded, &[("a", Succeeded), ("b", Skipped)], &[Running, Succeeded], None, WorkflowState::Succeeded, [StepState::Succeeded, StepState::Skipped]),
            (Failed, &[("a", Succeeded), ("b", Failed)], &[Running, Failed], None, WorkflowState::Failed, [StepState::Succeeded, StepState::Failed]),
            (Failed, &[("a", Failed)], &[Running, Failed], None, WorkflowState::Failed, [StepState::Failed, StepState::Skipped]),
            (Failed, &[("a", Failed)], &[Running, Canceling, Failed], None, WorkflowState::Canceled, [StepState::Canceled; 2]),
            (Failed, &[("a", Running)], &[Running, Failed], Some("stop"), WorkflowState::Canceled, [StepState::Canceled; 2]),
            (Canceled, &[("a", Canceled)], &[Running, Canceled], None, WorkflowState::Canceled, [StepState::Canceled; 2]),
            // A retry after a terminate: only the current attempt's history counts.
            (Failed, &[("a", Failed)], &[Running, Canceling, Failed, Running, Failed], None, WorkflowState::Failed, [StepState::Failed, StepState::Skipped]),
            (Skipped, &[], &[Skipped], None, WorkflowState::Succeeded, [StepState::Skipped; 2]),
        ];
        for (i, (rs, tasks, history, canceled, want, steps)) in table.iter().enumerate() {
            let m = map_run(&"r1".into(), &run(*rs, tasks, history), &shape(), *canceled);
            assert_eq!(m.status.state, *want, "row {i}: {:?}", m.status);
            let got: Vec<StepState> = m.status.steps.iter().map(|s| s.state).collect();
            assert_eq!(got, steps, "row {i}");
            if want.is_terminal() {
                assert!(
                    m.status.steps.iter().all(|s| s.finished.is_some()),
                    "row {i}"
                );
            }
        }
    }

    #[test]
    fn events_between_reads_fold_into_the_later_read() {
        let reads = [
            run(Pending, &[], &[Pending]),
            run(Running, &[("a", Running)], &[Pending, Running]),
            run(
                Running,
                &[("a", Succeeded), ("b", Running)],
                &[Pending, Running],
            ),
            run(
                Failed,
                &[("a", Succeeded), ("b", Failed)],
                &[Pending, Running, Failed],
            ),
        ];
        let id = WorkflowRunId::from("r1");
        for skip in 0..reads.len() {
            let mut last = map_run(&id, &reads[0], &shape(), None);
            let mut folded = last.status.clone();
            for read in reads.iter().skip(1 + skip % 2) {
                let next = map_run(&id, read, &shape(), None);
                for e in next.events_since(&last) {
                    folded.apply(&e);
                }
                assert_eq!(folded, next.status);
                last = next;
            }
        }
        assert!(last_error(&reads[3]).contains("step `b` failed"));
    }

    fn last_error(run: &Run) -> String {
        map_run(&"r1".into(), run, &shape(), None)
            .status
            .error
            .unwrap_or_default()
    }

    #[test]
    fn ids_carry_the_retry() {
        assert_eq!(split_id(&"abc".into()), ("abc".to_string(), 0));
        assert_eq!(split_id(&"abc.retry-2".into()), ("abc".to_string(), 2));
        assert_eq!(
            split_id(&"abc.retry-x".into()),
            ("abc.retry-x".to_string(), 0)
        );
    }

    #[test]
    fn steps_come_from_the_spec_through_sub_dags() {
        let spec = serde_json::json!({"pipeline_spec": {
            "components": {"comp-condition-1": {"dag": {"tasks": {"c": {"componentRef": {"name": "comp-c"}, "taskInfo": {"name": "C"}}}}}},
            "root": {"dag": {"tasks": {
                "a": {"componentRef": {"name": "comp-a"}, "taskInfo": {"name": "A"}},
                "condition-1": {"componentRef": {"name": "comp-condition-1"}, "taskInfo": {"name": "condition-1"}},
                "b": {"componentRef": {"name": "comp-b"}}
            }}}
        }});
        assert_eq!(steps_of_spec(&spec), ["A", "C", "b"]);
    }
}
