//! The status of a workflow run and of its steps: what every engine reports and what a run
//! record stores. Plain data, shared by the engines, the recorder and the CLI.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The id of one workflow run (a uuid4 in hex, as MLRun's local runner makes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkflowRunId(String);

impl WorkflowRunId {
    /// A fresh random id.
    pub fn random() -> Self {
        WorkflowRunId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for WorkflowRunId {
    fn from(id: String) -> Self {
        WorkflowRunId(id)
    }
}

impl From<&str> for WorkflowRunId {
    fn from(id: &str) -> Self {
        WorkflowRunId(id.to_owned())
    }
}

impl fmt::Display for WorkflowRunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The state of a whole workflow run (MLRun's pipeline run statuses).
///
/// ```text
/// Pending --(WorkflowStarted)--> Running --(terminate, timeout)--> Canceling
/// Running | Canceling --(WorkflowFinished)--> Succeeded | Failed | Canceled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WorkflowState {
    /// Accepted, no step dispatched yet.
    Pending,
    /// Some steps have not finished yet.
    Running,
    /// A terminate (or the run's timeout) is stopping the running steps.
    Canceling,
    /// Every step succeeded or was skipped by its condition.
    Succeeded,
    /// At least one step failed after its retries.
    Failed,
    /// The run was terminated.
    Canceled,
}

impl WorkflowState {
    /// Whether the state is final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowState::Succeeded | WorkflowState::Failed | WorkflowState::Canceled
        )
    }
}

impl fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepState {
    /// Waiting for its dependencies, a free slot, or a retry backoff.
    Pending,
    /// An attempt is executing.
    Running,
    /// The step finished successfully.
    Succeeded,
    /// The step failed after its retries.
    Failed,
    /// The step did not run: its condition was false or an upstream step did not succeed.
    Skipped,
    /// The run was terminated before the step finished.
    Canceled,
}

impl StepState {
    /// Whether the state is final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, StepState::Pending | StepState::Running)
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What is known about one step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStatus {
    /// The step's name.
    pub name: String,
    /// Its state.
    pub state: StepState,
    /// Attempts started so far (0 for a step that never ran).
    pub attempts: u32,
    /// When the first attempt started.
    pub started: Option<DateTime<Utc>>,
    /// When the step reached a terminal state.
    pub finished: Option<DateTime<Utc>>,
    /// The run uid of the last attempt, when the executor reported one.
    pub run_uid: Option<String>,
    /// The outputs of a succeeded step.
    pub outputs: Map<String, Value>,
    /// Why the last attempt failed, or why the step was skipped or canceled.
    pub error: Option<String>,
}

/// The status of a workflow run: the fold of its [`WorkflowEvent`]s (see
/// [`WorkflowRunStatus::apply`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRunStatus {
    /// The run's id.
    pub id: WorkflowRunId,
    /// The workflow's name.
    pub name: String,
    /// The run's state.
    pub state: WorkflowState,
    /// Every step, in declaration order.
    pub steps: Vec<StepStatus>,
    /// Why the run failed or was canceled, naming the failing step.
    pub error: Option<String>,
    /// When the run started dispatching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    /// When the run reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
}

impl WorkflowRunStatus {
    /// A run accepted but not started: every step `Pending`.
    pub fn pending(id: WorkflowRunId, name: impl Into<String>, steps: &[String]) -> Self {
        WorkflowRunStatus {
            id,
            name: name.into(),
            state: WorkflowState::Pending,
            steps: steps
                .iter()
                .map(|s| StepStatus::pending(s.clone()))
                .collect(),
            error: None,
            started: None,
            finished: None,
        }
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepStatus> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Folds one event into the status. Every engine's reported status equals the fold of the
    /// events it published, from [`WorkflowRunStatus::pending`].
    ///
    /// Events of a step the status does not list are ignored; a terminal run ignores everything
    /// (a late event cannot reopen it).
    pub fn apply(&mut self, event: &WorkflowEvent) {
        if self.state.is_terminal() {
            return;
        }
        let at = event.at;
        let kind = &event.kind;
        if let Some(step) = kind.step() {
            let Some(status) = self.step_mut(step) else {
                return;
            };
            status.apply(kind, at);
            return;
        }
        match kind {
            WorkflowEventKind::WorkflowStarted { name, steps } => {
                self.name.clone_from(name);
                if self.steps.len() != steps.len()
                    || self.steps.iter().zip(steps).any(|(s, n)| &s.name != n)
                {
                    self.steps = steps
                        .iter()
                        .map(|s| StepStatus::pending(s.clone()))
                        .collect();
                }
                self.state = WorkflowState::Running;
                self.started = Some(at);
            }
            WorkflowEventKind::WorkflowCanceling { .. } => self.state = WorkflowState::Canceling,
            WorkflowEventKind::WorkflowFinished { state, error } => {
                self.state = *state;
                self.error.clone_from(error);
                self.finished = Some(at);
            }
            _ => {}
        }
    }

    fn step_mut(&mut self, step: &StepRef) -> Option<&mut StepStatus> {
        // The index makes folding O(1); the name guards against a status of another shape.
        if self
            .steps
            .get(step.index)
            .is_some_and(|s| s.name == step.name)
        {
            return self.steps.get_mut(step.index);
        }
        self.steps.iter_mut().find(|s| s.name == step.name)
    }
}

impl StepStatus {
    /// A step that has not run.
    pub fn pending(name: String) -> Self {
        StepStatus {
            name,
            state: StepState::Pending,
            attempts: 0,
            started: None,
            finished: None,
            run_uid: None,
            outputs: Map::new(),
            error: None,
        }
    }

    /// Folds a step event (see [`WorkflowRunStatus::apply`]). A terminal step ignores all but
    /// a late run report, which still links the run it executed as.
    fn apply(&mut self, kind: &WorkflowEventKind, at: DateTime<Utc>) {
        if self.state.is_terminal() && !matches!(kind, WorkflowEventKind::StepRunStarted { .. }) {
            return;
        }
        match kind {
            WorkflowEventKind::StepReused { status, .. } => *self = status.clone(),
            WorkflowEventKind::StepStarted { attempt, .. } => {
                self.state = StepState::Running;
                self.attempts = *attempt;
                self.started.get_or_insert(at);
            }
            WorkflowEventKind::StepRunStarted {
                run_uid, attempt, ..
            } => {
                if *attempt == self.attempts {
                    self.run_uid = Some(run_uid.clone());
                }
            }
            WorkflowEventKind::StepFinished {
                run_uid, result, ..
            } => {
                if run_uid.is_some() {
                    self.run_uid.clone_from(run_uid);
                }
                match result {
                    AttemptResult::Succeeded { outputs } => {
                        self.state = StepState::Succeeded;
                        self.outputs.clone_from(outputs);
                        self.error = None;
                        self.finished = Some(at);
                    }
                    AttemptResult::Retrying { error, .. } => {
                        self.state = StepState::Pending;
                        self.error = Some(error.clone());
                    }
                    AttemptResult::Failed { step_error, .. } => {
                        self.state = StepState::Failed;
                        self.error = Some(step_error.clone());
                        self.finished = Some(at);
                    }
                }
            }
            WorkflowEventKind::StepFailed { error, .. } => self.end(StepState::Failed, error, at),
            WorkflowEventKind::StepSkipped { reason, .. } => {
                self.end(StepState::Skipped, reason, at)
            }
            WorkflowEventKind::StepCanceled { reason, .. } => {
                self.end(StepState::Canceled, reason, at)
            }
            WorkflowEventKind::WorkflowStarted { .. }
            | WorkflowEventKind::WorkflowCanceling { .. }
            | WorkflowEventKind::WorkflowFinished { .. } => {}
        }
    }

    fn end(&mut self, state: StepState, why: &str, at: DateTime<Utc>) {
        self.state = state;
        self.error = Some(why.to_owned());
        self.finished = Some(at);
    }
}

/// The step an event is about: its index in declaration order (so folding is O(1)) and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRef {
    /// The step's index in the workflow, in declaration order.
    pub index: usize,
    /// The step's name.
    pub name: String,
}

/// Something that happened during a run, with when. Engines publish them in order; folding them
/// with [`WorkflowRunStatus::apply`] gives the run's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: WorkflowEventKind,
}

impl WorkflowEvent {
    /// `kind`, happening now.
    pub fn now(kind: WorkflowEventKind) -> Self {
        WorkflowEvent {
            at: Utc::now(),
            kind,
        }
    }
}

/// How one attempt of a step ended, and what follows for the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptResult {
    /// The attempt, and so the step, succeeded.
    Succeeded {
        /// What it produced (referenced downstream as `{{steps.X.outputs.K}}`).
        outputs: Map<String, Value>,
    },
    /// The attempt failed; the step will run again after `delay`.
    Retrying {
        /// Why the attempt failed.
        error: String,
        /// The attempt that will run next.
        next_attempt: u32,
        /// The backoff before it.
        delay: Duration,
    },
    /// The attempt failed and the step failed for good.
    Failed {
        /// Why the attempt failed.
        error: String,
        /// The step's error: the attempt's, plus why it was not retried when that applies.
        step_error: String,
    },
}

/// What happened (see [`WorkflowEvent`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkflowEventKind {
    /// The run started dispatching; always the first event.
    WorkflowStarted {
        /// The workflow's name.
        name: String,
        /// Its steps, in declaration order.
        steps: Vec<String>,
    },
    /// A step that succeeded in an earlier run is reused by a retry, with its status then.
    StepReused {
        /// The step.
        step: StepRef,
        /// Its status in the earlier run.
        status: StepStatus,
    },
    /// An attempt of a step started.
    StepStarted {
        /// The step.
        step: StepRef,
        /// The attempt number, from 1.
        attempt: u32,
    },
    /// A running attempt reported the run it executes as.
    StepRunStarted {
        /// The step.
        step: StepRef,
        /// The attempt number, from 1.
        attempt: u32,
        /// The run uid.
        run_uid: String,
    },
    /// An attempt of a step ended.
    StepFinished {
        /// The step.
        step: StepRef,
        /// The attempt number, from 1.
        attempt: u32,
        /// The run uid the executor reported.
        run_uid: Option<String>,
        /// How it ended and what follows.
        result: AttemptResult,
    },
    /// A step failed without an attempt (a reference it needs or its condition cannot be
    /// evaluated).
    StepFailed {
        /// The step.
        step: StepRef,
        /// Why.
        error: String,
    },
    /// A step will not run.
    StepSkipped {
        /// The step.
        step: StepRef,
        /// Why (a false condition, an upstream step that did not succeed).
        reason: String,
    },
    /// The run is being stopped (terminate, timeout); running steps are being aborted.
    WorkflowCanceling {
        /// Why.
        reason: String,
    },
    /// A step was stopped, or will never start, because the run was stopped.
    StepCanceled {
        /// The step.
        step: StepRef,
        /// Why.
        reason: String,
    },
    /// The run reached a terminal state; always the last event.
    WorkflowFinished {
        /// The terminal state.
        state: WorkflowState,
        /// Why it failed or was canceled.
        error: Option<String>,
    },
}

impl WorkflowEventKind {
    /// The step the event is about, for step events.
    pub fn step(&self) -> Option<&StepRef> {
        match self {
            WorkflowEventKind::StepReused { step, .. }
            | WorkflowEventKind::StepStarted { step, .. }
            | WorkflowEventKind::StepRunStarted { step, .. }
            | WorkflowEventKind::StepFinished { step, .. }
            | WorkflowEventKind::StepFailed { step, .. }
            | WorkflowEventKind::StepSkipped { step, .. }
            | WorkflowEventKind::StepCanceled { step, .. } => Some(step),
            WorkflowEventKind::WorkflowStarted { .. }
            | WorkflowEventKind::WorkflowCanceling { .. }
            | WorkflowEventKind::WorkflowFinished { .. } => None,
        }
    }
}
