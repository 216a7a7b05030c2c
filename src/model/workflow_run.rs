//! The record of one workflow run, as `baton workflows get` shows it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ResolvedCodeRecord;
use super::{StepState, StepStatus, WorkflowRunStatus, WorkflowState};

/// The label naming the schedule that fired a run (MLRun's).
pub const SCHEDULE_LABEL: &str = "mlrun/schedule-name";

/// A workflow run: what ran, on which engine, from which exact workflow source, and how each
/// step went. Each step's function run is a separate run record labelled `workflow=<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRunRecord {
    /// The run id.
    pub id: String,
    /// The owning project.
    pub project: String,
    /// The workflow's name.
    pub name: String,
    /// The engine that ran it.
    pub engine: String,
    /// The run's state.
    pub state: WorkflowState,
    /// The merged arguments.
    pub args: Map<String, Value>,
    /// The workflow source resolved for this run (artifact uid and digest for a store source).
    pub workflow: ResolvedCodeRecord,
    /// Every step, in declaration order.
    pub steps: Vec<StepStatus>,
    /// Why the run failed or was canceled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the run started (RFC 3339).
    pub started: String,
    /// When it reached a final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// The process driving the run (the local engine lives in it). While it runs it holds the
    /// lease [`WorkflowRunRecord::driver_lease`], so a run whose driver died can be told from
    /// one still going, from any host sharing the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// The workflow graph that ran (its JSON form), so the run can be retried exactly by
    /// another process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<Value>,
    /// The run this one retries, if it is a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    /// The run's labels (a scheduled run carries `mlrun/schedule-name`); its step runs carry
    /// them too.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// What listings of workflow runs show (`baton workflows list`, the project page, a schedule
/// looking for its run), and what tells whether a run may need settling: a
/// [`WorkflowRunRecord`] read without its arguments, its steps' outputs or its graph, which make
/// up most of a record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkflowRunSummary {
    /// The run id.
    pub id: String,
    /// The owning project.
    pub project: String,
    /// The workflow's name.
    pub name: String,
    /// The engine that ran it.
    pub engine: String,
    /// The run's state.
    pub state: WorkflowState,
    /// When the run started (RFC 3339).
    pub started: String,
    /// When it reached a final state.
    #[serde(default)]
    pub finished: Option<String>,
    /// The process driving the run, if any.
    #[serde(default)]
    pub driver: Option<Driver>,
    /// The run this one retries, if it is a retry.
    #[serde(default)]
    pub retry_of: Option<String>,
    /// The run's labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    steps: Vec<SummaryStep>,
}

/// The part of a step's status a summary reads.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
struct SummaryStep {
    state: StepState,
}

impl WorkflowRunSummary {
    /// The summary of a whole record.
    pub fn of(run: &WorkflowRunRecord) -> Self {
        WorkflowRunSummary {
            id: run.id.clone(),
            project: run.project.clone(),
            name: run.name.clone(),
            engine: run.engine.clone(),
            state: run.state,
            started: run.started.clone(),
            finished: run.finished.clone(),
            driver: run.driver.clone(),
            retry_of: run.retry_of.clone(),
            labels: run.labels.clone(),
            steps: run
                .steps
                .iter()
                .map(|s| SummaryStep { state: s.state })
                .collect(),
        }
    }

    /// Whether the run, or one of its steps, has not reached a final state.
    pub fn is_unsettled(&self) -> bool {
        unsettled(self.state, self.steps.iter().map(|s| s.state))
    }

    /// Whether the run may have lost its driver: it has one, and something left to settle
    /// (whether the driver is gone is its lease's to say).
    pub fn may_be_orphaned(&self) -> bool {
        self.driver.is_some() && self.is_unsettled()
    }
}

/// Whether a run in `state` with steps in `steps` has something left to settle.
fn unsettled(state: WorkflowState, mut steps: impl Iterator<Item = StepState>) -> bool {
    !state.is_terminal() || steps.any(|s| !s.is_terminal())
}

/// The `baton run` process that drives a workflow run (for people: liveness is its lease's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Driver {
    /// Its process id.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// What the process is (`baton run`, `baton server`), for messages about its death.
    #[serde(default = "default_program")]
    pub program: String,
}

/// What drives workflow runs started by this process ([`Driver::program`]); `baton server`
/// sets it once at start.
static PROGRAM: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

fn default_program() -> String {
    "baton run".into()
}

impl Driver {
    /// This process on this host.
    pub fn current() -> Self {
        Driver {
            pid: std::process::id(),
            host: host_name(),
            program: PROGRAM
                .get()
                .map_or_else(default_program, |p| p.to_string()),
        }
    }

    /// Names this process's kind in the driver records it writes from now on (once; later
    /// calls change nothing).
    pub fn set_program(program: &'static str) {
        let _ = PROGRAM.set(program);
    }

    /// "the `baton run` process (pid N)", for messages.
    pub fn describe(&self) -> String {
        format!("the `{}` process (pid {})", self.program, self.pid)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

impl WorkflowRunRecord {
    /// Whether the run, or one of its steps, has not reached a final state.
    pub fn is_unsettled(&self) -> bool {
        unsettled(self.state, self.steps.iter().map(|s| s.state))
    }

    /// Whether the run may have lost its driver: it has one, and something left to settle
    /// (whether the driver is gone is its lease's to say).
    pub fn may_be_orphaned(&self) -> bool {
        self.driver.is_some() && self.is_unsettled()
    }

    /// The name of the lease the run's driver holds while it drives the run.
    pub fn driver_lease(&self) -> String {
        format!("workflow-run/{}/{}", self.project, self.id)
    }

    /// Marks a run whose driver died (its lease expired) while it was running as failed, saying
    /// so; returns whether the record changed. The steps it had started may have finished on
    /// their own: their runs (labelled `workflow=<id>`) tell.
    pub fn settle_orphaned(&mut self) -> bool {
        let orphaned = !self.state.is_terminal() && self.driver.is_some();
        if orphaned {
            let driver = self
                .driver
                .as_ref()
                .map(Driver::describe)
                .unwrap_or_default();
            self.state = WorkflowState::Failed;
            self.error = Some(format!(
                "{driver} driving this run exited before the run finished"
            ));
            self.finished = Some(super::now());
        }
        orphaned
    }

    /// The engine status this record holds (what a retry continues).
    pub fn status(&self) -> WorkflowRunStatus {
        WorkflowRunStatus {
            id: self.id.clone().into(),
            name: self.name.clone(),
            state: self.state,
            steps: self.steps.clone(),
            error: self.error.clone(),
            started: None,
            finished: None,
        }
    }

    /// Takes state, steps and error from an engine status snapshot.
    pub fn update(&mut self, status: &WorkflowRunStatus) {
        self.state = status.state;
        self.steps = status.steps.clone();
        self.error = status.error.clone();
        if status.state.is_terminal() && self.finished.is_none() {
            self.finished = Some(super::now());
        }
    }
}
