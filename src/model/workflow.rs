//! Workflow specs as `project.yaml` stores them (`spec.workflows`, MLRun's `WorkflowSpec`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Extra;

/// One entry of `spec.workflows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSpec {
    /// The workflow's name.
    pub name: String,
    /// The source: a `store://` workflow artifact (kept as given) or a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Embedded source code (MLRun's `embed=True`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Engine name (`local`, `kfp`, `remote`, `remote:local`, `remote:kfp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Default arguments.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub args: Map<String, Value>,
    /// Argument schema entries (`name`, `type`, `default`, `doc`, `required`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args_schema: Vec<Value>,
    /// The workflow function in a Python file (else `kfpipeline`, else `pipeline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// A 5-field cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Image of the workflow runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}
