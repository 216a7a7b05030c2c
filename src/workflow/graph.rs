//! The workflow graph: the one intermediate form every loader produces and every engine reads.
//!
//! ```yaml
//! name: main
//! params: [{name: p1, default: 5, type: int}]
//! steps:
//!   - name: prep
//!     function: my-func
//!     handler: my_func:main
//!     params: {p1: "{{args.p1}}", mode: fast}
//!     inputs: {table: "{{steps.ingest.outputs.dataset}}"}
//!     outputs: [dataset]
//!     after: [ingest]
//!     when: "{{steps.ingest.outputs.rows}} > 0"
//!     retries: {limit: 2, backoff: 5s}
//!     timeout: 10m
//!     action: run
//!     hyperparams: {lr: [0.1, 0.01]}          # optional: one run per parameter set
//!     hyper_param_options: {selector: max.accuracy}
//!     overrides: {env: {MODE: fast}, limits: {memory: 1Gi}}   # optional: set_env, with_limits...
//! ```
//!
//! A string that is exactly one `{{...}}` reference takes the referenced value's type; references
//! inside longer strings are substituted as text.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{FunctionOverrides, HyperParamOptions};

/// A whole workflow: its parameters and its steps, in declaration order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowGraph {
    /// The workflow's name.
    pub name: String,
    /// Pipeline parameters, with their defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<WorkflowParam>,
    /// The steps; names are unique.
    pub steps: Vec<Step>,
}

/// A pipeline parameter (`{{args.<name>}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowParam {
    /// The parameter's name.
    pub name: String,
    /// Its default; a parameter without one is required. An explicit `null` is a default
    /// (Python's `None`), not a missing one.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Value>,
    /// Its declared type (`int`, `float`, `str`, `bool`, `list`, `dict`): a Python annotation, or
    /// `type:` in a YAML workflow. Given values are coerced to it (see [`crate::workflow::merge_args`]).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Deserializes a present field as `Some`, even when it is `null` (a missing one stays `None`).
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// One step: a function run (or build, or deploy) with its parameters and dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique name within the workflow.
    pub name: String,
    /// The project function this step runs.
    pub function: String,
    /// Handler override (`module:function` for code-artifact functions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Parameters; values may hold `{{args.x}}` and `{{steps.s.outputs.k}}` references.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Value>,
    /// Inputs (data URLs); values may hold references like params.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Value>,
    /// Output keys this step declares; only these may be referenced downstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// Explicit ordering on top of the data edges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// A condition such as `{{steps.a.outputs.rows}} > 0`; false skips the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Retry policy for a failed step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryPolicy>,
    /// Wall-clock limit of one attempt (`10m`, `30s`).
    #[serde(
        default,
        with = "duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// What the step does with its function.
    #[serde(default)]
    pub action: StepAction,
    /// Hyperparameters (a list of values each), in the order written: the step's run is a
    /// hyper-parameter run whose iterations each run one parameter set.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub hyperparams: Map<String, Value>,
    /// How the hyperparameters are expanded and the iterations judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyper_param_options: Option<HyperParamOptions>,
    /// What this step changes in its function (MLRun's modifiers called in the pipeline):
    /// environment variables, resources, node selection, mounts.
    #[serde(default, skip_serializing_if = "FunctionOverrides::is_empty")]
    pub overrides: FunctionOverrides,
}

/// How often and how patiently a failed step is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Extra attempts after the first failure, at most [`RetryPolicy::MAX_LIMIT`] (checked by
    /// [`crate::workflow::Dag::build`]).
    pub limit: u32,
    /// Pause before each retry (`5s`).
    #[serde(default, with = "duration_text")]
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The most retries a step may ask for. A larger limit is refused rather than clamped, so a
    /// typo (or `2**32-1`) is fixed where it was written instead of quietly meaning something
    /// else; a hundred attempts are already far more than a transient failure needs.
    pub const MAX_LIMIT: u32 = 100;
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StepAction {
    /// Run the function's handler (the default).
    #[default]
    Run,
    /// Build the function's image.
    Build,
    /// Deploy a real-time function.
    Deploy,
}

/// Durations written as human text (`5s`, `10m`, `1h 30m`).
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}` ({e}); use e.g. `30s`, `10m`"
            ))
        })
    }

    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapper(#[serde(with = "super")] Duration);
            Ok(Option::<Wrapper>::deserialize(d)?.map(|Wrapper(d)| d))
        }
    }
}
