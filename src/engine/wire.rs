//! The remote engine's protocol: what travels between a [`WorkflowEngine`](super::WorkflowEngine)
//! client and the server hosting the runs, as JSON.
//!
//! | request | body | answer |
//! | --- | --- | --- |
//! | `POST /api/baton/v1/engine/runs` | [`EngineRunBody`] | [`RunIdBody`] |
//! | `GET /api/baton/v1/engine/runs/{id}` | | [`WorkflowRunStatus`] |
//! | `GET /api/baton/v1/engine/runs/{id}/events` | | [`StreamLine`]s, one JSON per line |
//! | `POST /api/baton/v1/engine/runs/{id}/terminate` | | `{}` |
//!
//! A retry is a run whose body carries the `previous` status. The events stream starts with the
//! status, then each event as it happens, and ends after `workflow_finished`.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{RunOptions, WorkflowEvent, WorkflowRunStatus};
use crate::workflow::WorkflowGraph;

/// Where the engine protocol lives on a server.
pub const ENGINE_RUNS_PATH: &str = "/api/baton/v1/engine/runs";

/// A run (or, with `previous`, a retry) to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineRunBody {
    /// The project whose functions the steps run.
    pub project: String,
    /// The workflow (the server checks it again).
    pub graph: WorkflowGraph,
    /// The merged arguments.
    #[serde(default)]
    pub args: Map<String, Value>,
    /// The run's options.
    #[serde(default)]
    pub options: WireOptions,
    /// For a retry: the run it continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<WorkflowRunStatus>,
}

/// [`RunOptions`] as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireOptions {
    /// At most this many attempts at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<NonZeroUsize>,
    /// The run's timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Labels for what the steps record.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The schedule that fired the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

impl From<&RunOptions> for WireOptions {
    fn from(options: &RunOptions) -> Self {
        WireOptions {
            parallelism: options.parallelism,
            timeout_ms: options
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            labels: options.labels.clone(),
            schedule: options.schedule.clone(),
        }
    }
}

impl From<WireOptions> for RunOptions {
    fn from(options: WireOptions) -> Self {
        RunOptions {
            parallelism: options.parallelism,
            timeout: options.timeout_ms.map(Duration::from_millis),
            labels: options.labels,
            schedule: options.schedule,
        }
    }
}

/// The id of a started run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunIdBody {
    /// The run's id.
    pub id: String,
}

/// One line of a run's events stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamLine {
    /// The status when the stream started (the first line).
    Status(WorkflowRunStatus),
    /// An event after it.
    Event(WorkflowEvent),
}

/// Body of `POST /api/baton/v1/projects/{project}/workflows/{name}/runs`: run a workflow of
/// the project on the server, its source resolved there when the run starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkflowSubmitBody {
    /// Arguments overriding the spec's and the workflow's defaults.
    #[serde(default)]
    pub args: Map<String, Value>,
    /// The engine the server runs it with (`local`; `kfp` needs the KFP engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// At most this many steps at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<NonZeroUsize>,
    /// The run's timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Let undeclared arguments through with a warning.
    #[serde(default)]
    pub allow_extra_args: bool,
    /// The project's definition (functions, workflows) to store first, so the server runs
    /// what the caller sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<crate::model::ProjectFile>,
}

/// Body of `POST /api/baton/v1/projects/{project}/workflow-runs/{id}/retry`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkflowRetryBody {
    /// At most this many steps at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<NonZeroUsize>,
    /// The run's timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}
