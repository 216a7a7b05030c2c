//! The record of one workflow run, as `baton workflows get` shows it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ResolvedCodeRecord;
use crate::engine::{StepStatus, WorkflowRunStatus, WorkflowState};

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
}

impl WorkflowRunRecord {
    /// Takes state, steps and error from an engine status snapshot.
    pub fn update(&mut self, status: &WorkflowRunStatus) {
        self.state = status.state;
        self.steps = status.steps.clone();
        self.error = status.error.clone();
        if status.state.is_terminal() && self.finished.is_none() {
            self.finished = Some(crate::launcher::now());
        }
    }
}
