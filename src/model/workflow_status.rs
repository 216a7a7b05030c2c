//! The status of a workflow run and of its steps: what every engine reports and what a run
//! record stores. Plain data, shared by the engines, the recorder and the CLI.

use std::fmt;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkflowState {
    /// Some steps have not finished yet.
    Running,
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
        self != WorkflowState::Running
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

/// The status of a workflow run.
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
}

impl WorkflowRunStatus {
    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepStatus> {
        self.steps.iter().find(|s| s.name == name)
    }
}
