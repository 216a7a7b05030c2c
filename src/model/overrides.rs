//! Step-level changes to a function: what MLRun's modifiers (`with_requests`, `with_limits`,
//! `set_env`, `set_envs`, `with_node_selection`, `apply(mount_pvc(...))`) called on a function
//! object inside a pipeline do to the steps run from that object.
//!
//! They are recorded on the step (in the workflow graph) and then on its run's function snapshot,
//! never in `project.yaml`: another step of the same function runs without them. Engines honour
//! what they can: the local engine sets the environment variables and warns once about the rest;
//! the KFP compiler puts environment variables and resources into the step's container.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a step changes in its function.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionOverrides {
    /// Environment variables of the step's process (`set_env`, `set_envs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Resource requests: `cpu`, `memory`, `nvidia.com/gpu` (`with_requests`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Resource limits, same keys (`with_limits`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
    /// Node labels the step's pod must run on (`with_node_selection(node_selector=...)`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Volumes mounted by `apply(<mount helper>)`, as the helper was called
    /// (`{"helper": "mount_pvc", "pvc_name": ..., "volume_mount_path": ...}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<BTreeMap<String, Value>>,
}

impl FunctionOverrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self == &FunctionOverrides::default()
    }

    /// What a machine-local engine cannot enforce (everything but `env`), named for a warning:
    /// `requests`, `limits`, `node selector`, `mounts`.
    pub fn unenforceable_locally(&self) -> Vec<&'static str> {
        [
            (!self.requests.is_empty(), "resource requests"),
            (!self.limits.is_empty(), "resource limits"),
            (!self.node_selector.is_empty(), "node selection"),
            (!self.mounts.is_empty(), "volume mounts"),
        ]
        .into_iter()
        .filter_map(|(set, what)| set.then_some(what))
        .collect()
    }
}
