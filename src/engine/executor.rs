//! The seam between an engine and whatever runs a step's code: [`StepExecutor`] executes one
//! attempt ([`StepInvocation`]) and reports how it ended ([`StepOutcome`]).
//!
//! It lives here, beside the engine trait, so that executors (the runner's `RunnerExecutor`, a
//! test executor) depend on the engine contract only, never on an engine implementation.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::workflow::Step;

/// One attempt of one step, as handed to a [`StepExecutor`]. Only the engine creates them.
#[derive(Debug, Clone)]
pub struct StepInvocation {
    /// The run's id.
    pub workflow_id: String,
    /// The project the workflow belongs to.
    pub project: String,
    /// The step, with `{{...}}` references in its params and inputs already substituted.
    pub step: Step,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The run's merged arguments.
    pub args: Map<String, Value>,
    /// The run's labels ([`super::RunOptions::labels`]), for what the executor records.
    pub labels: BTreeMap<String, String>,
    /// Where [`StepInvocation::report_run`] sends the attempt's run uid (set by the driver).
    pub(crate) run_reports: Option<mpsc::UnboundedSender<RunReport>>,
    pub(crate) index: usize,
}

/// "Attempt `attempt` of step `index` runs as run `run_uid`", sent while the attempt executes.
pub(crate) struct RunReport {
    pub(crate) index: usize,
    pub(crate) attempt: u32,
    pub(crate) run_uid: String,
}

impl StepInvocation {
    /// Reports the run this attempt executes as, as soon as it exists, so the run's status links
    /// the step to it while it runs and after it is timed out or canceled (an attempt dropped
    /// then never returns its [`StepOutcome`]).
    pub fn report_run(&self, run_uid: impl Into<String>) {
        if let Some(reports) = &self.run_reports {
            let _ = reports.send(RunReport {
                index: self.index,
                attempt: self.attempt,
                run_uid: run_uid.into(),
            });
        }
    }
}

/// How an attempt ended: it ran, so it either succeeded or failed (a step that did not run is
/// the engine's business, never an executor's).
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The attempt succeeded.
    Succeeded {
        /// Its outputs (referenced downstream as `{{steps.X.outputs.K}}`).
        outputs: Map<String, Value>,
        /// The run uid the attempt recorded, if any.
        run_uid: Option<String>,
    },
    /// The attempt failed.
    Failed {
        /// Why.
        error: String,
        /// The run uid the attempt recorded, if any.
        run_uid: Option<String>,
        /// Whether another attempt could end differently; `false` for a failure no retry can
        /// fix (the handler's module or function is missing, its parameters do not bind), which
        /// is then not retried whatever the step's retry policy says.
        retryable: bool,
    },
}

impl StepOutcome {
    /// A succeeded attempt with these outputs.
    pub fn succeeded(outputs: Map<String, Value>) -> Self {
        StepOutcome::Succeeded {
            outputs,
            run_uid: None,
        }
    }

    /// A failed attempt.
    pub fn failed(error: impl Into<String>) -> Self {
        StepOutcome::Failed {
            error: error.into(),
            run_uid: None,
            retryable: true,
        }
    }

    /// The same outcome, marked as one that no retry can change (a success is left alone).
    pub fn not_retryable(mut self) -> Self {
        if let StepOutcome::Failed { retryable, .. } = &mut self {
            *retryable = false;
        }
        self
    }

    /// The same outcome with a run uid.
    pub fn with_run_uid(mut self, uid: impl Into<String>) -> Self {
        match &mut self {
            StepOutcome::Succeeded { run_uid, .. } | StepOutcome::Failed { run_uid, .. } => {
                *run_uid = Some(uid.into());
            }
        }
        self
    }

    /// The run uid the attempt recorded, if any.
    pub fn run_uid(&self) -> Option<&str> {
        match self {
            StepOutcome::Succeeded { run_uid, .. } | StepOutcome::Failed { run_uid, .. } => {
                run_uid.as_deref()
            }
        }
    }
}

/// Executes one attempt of one step; the seam between the dispatcher and whatever runs code.
///
/// The dispatcher cancels an attempt by dropping the returned future (timeout, terminate), so an
/// implementation must stop its work on drop (e.g. kill its subprocess). A panic is caught and
/// counts as a failed attempt.
#[async_trait]
pub trait StepExecutor: Send + Sync {
    /// Runs `step` to completion and reports how it ended.
    async fn execute(&self, step: StepInvocation) -> StepOutcome;
}
