//! The run object, in MLRun's shape (`metadata`, `spec`, `status`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Extra, FunctionEntry, FunctionOverrides, HyperParamOptions};

/// The label an iteration of a hyper-parameter run carries: its parent run's uid.
pub const PARENT_RUN_LABEL: &str = "parent-run";

/// One execution of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunObject {
    /// Identity and labels.
    pub metadata: RunMetadata,
    /// What to run and with what.
    pub spec: RunSpec,
    /// What happened.
    pub status: RunStatus,
    /// Unknown top-level fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Run identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunMetadata {
    /// Unique id (hex).
    pub uid: String,
    /// Run name (`<function>-<handler>`).
    pub name: String,
    /// Owning project.
    pub project: String,
    /// Hyper-parameter iteration (0).
    #[serde(default)]
    pub iteration: u32,
    /// Labels such as `kind`, `workflow`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unknown metadata fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Run inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunSpec {
    /// The function, as `<project>/<name>`.
    pub function: String,
    /// Handler override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Parameters, JSON-typed.
    #[serde(default)]
    pub parameters: serde_json::Map<String, Value>,
    /// Inputs: key to URL or path.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Where the run writes artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_path: Option<String>,
    /// The function as it was when the run was submitted, with its code pinned: all a runner
    /// needs besides the database, the datastore and the code cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_snapshot: Option<FunctionSnapshot>,
    /// Hyperparameters, each a list of values: the run is a parent whose iterations each run
    /// one parameter set (see [`super::hyper`]).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub hyperparams: serde_json::Map<String, Value>,
    /// How the hyperparameters are expanded and the iterations judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyper_param_options: Option<HyperParamOptions>,
    /// Unknown spec fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Run outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunStatus {
    /// Lifecycle state.
    pub state: RunState,
    /// Logged results.
    #[serde(default)]
    pub results: serde_json::Map<String, Value>,
    /// Logged artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Value>,
    /// The error message of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure ended a failed run, when the runner could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<FailureKind>,
    /// When the runner started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the run reached a final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Last state change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
    /// The code the runner resolved at start-up, so the run can be reproduced exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ResolvedCodeRecord>,
    /// A hyper-parameter run's summary table (MLRun's `status.iterations`): a header row, then
    /// one row per iteration (see [`super::hyper::summary_table`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iterations: Vec<Vec<Value>>,
    /// Unknown status fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The function a run executes, frozen at submit so the run does not depend on the project
/// folder (or a later edit of `project.yaml`) when its runner starts, wherever that is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSnapshot {
    /// The function's definition (name, kind, image, handler, requirements, source as given in
    /// `url`, unknown fields such as `env`).
    pub function: FunctionEntry,
    /// Where the runner reads the code: the `store://` URI pinned to the artifact version that
    /// was current at submit (`^uid`), or the absolute path of a file or archive source.
    pub code_location: String,
    /// For a `store://` source, the artifact uid and payload digest pinned at submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<ResolvedCodeRecord>,
    /// What the workflow step changed in the function for this run (environment, resources,
    /// ...); empty for a run of the function as the project defines it.
    #[serde(default, skip_serializing_if = "FunctionOverrides::is_empty")]
    pub overrides: FunctionOverrides,
}

/// The exact code a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedCodeRecord {
    /// The function's source as configured (a store URI, a path).
    pub source: String,
    /// The artifact version uid, for store sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `sha256:<hex>` of the payload.
    pub digest: String,
}

/// What kind of failure ended a run: whether running it again could change the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The run cannot start or be called as configured (its handler's module or function is
    /// missing, its parameters do not bind, its function has no source): a retry cannot help.
    Config,
    /// The handler ran and failed (it raised or exited): a retry may succeed.
    Handler,
}

impl RunObject {
    /// The outputs of a step whose run completed, as MLRun gives them: the run's results, overridden
    /// by its artifacts (their target path) of the same key.
    pub fn step_outputs(&self) -> serde_json::Map<String, Value> {
        let mut outputs = self.status.results.clone();
        for artifact in &self.status.artifacts {
            if let (Some(key), Some(target)) =
                (artifact["key"].as_str(), artifact.get("target_path"))
            {
                outputs.insert(key.to_string(), target.clone());
            }
        }
        outputs
    }

    /// The name of the heartbeat lease the run's runner holds while it runs: a `running` run
    /// whose lease expired lost its runner (killed with the process that started it).
    /// An iteration of a hyper-parameter run is executed by its parent's runner, so it names
    /// the parent's lease.
    pub fn runner_lease(&self) -> String {
        let uid = self
            .metadata
            .labels
            .get(PARENT_RUN_LABEL)
            .unwrap_or(&self.metadata.uid);
        format!("run/{}/{uid}", self.metadata.project)
    }

    /// Whether the run is the parent of hyper-parameter iterations.
    pub fn is_hyper(&self) -> bool {
        !self.spec.hyperparams.is_empty()
    }
}

impl FailureKind {
    /// Whether running again could give another outcome.
    pub fn is_retryable(self) -> bool {
        self == FailureKind::Handler
    }
}

/// Run lifecycle states (MLRun's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Recorded, not started.
    #[default]
    Created,
    /// The runner is executing it.
    Running,
    /// Finished successfully.
    Completed,
    /// Failed.
    Error,
    /// Stopped before finishing.
    Aborted,
}

impl RunState {
    /// Whether the state is final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Error | RunState::Aborted
        )
    }

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Error => "error",
            RunState::Aborted => "aborted",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
