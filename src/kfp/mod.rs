//! Kubeflow Pipelines (KFP v2): a checked [`Dag`](crate::workflow::Dag) compiled to a KFP v2
//! pipeline, and the REST client the `kfp` engine drives runs through.
//!
//! - [`compile()`] turns a workflow into a `PipelineSpec` (the IR the KFP API server accepts,
//!   `schemaVersion: 2.1.0`): one container component per step whose command is
//!   `baton runner --kfp ...`, the workflow's parameters as typed pipeline parameters, step
//!   outputs as output parameters wired with `taskOutputParameter`, `after` as
//!   `dependentTasks`, a `when` as a condition sub-DAG with a CEL `triggerPolicy` (the way the
//!   KFP SDK compiles `dsl.If`), and retries as a `retryPolicy`. It is a pure function: no I/O,
//!   and the same DAG always gives the same document (keys sorted), so compiled specs make
//!   stable golden files. The IR is checked outside Rust by `tests/kfp/validate_ir.py` (a
//!   strict protobuf parse with the `kfp-pipeline-spec` package plus the graph rules the server
//!   only applies at run creation).
//! - [`client`]: the KFP v2beta1 REST client (runs, experiments), with KFP's error bodies mapped
//!   to baton's error kinds and retries for the requests that may be repeated.
//!
//! The engine itself (`engines::kfp::KfpEngine`) sits a layer above and drives runs through it.

pub mod client;
mod compile;

pub use compile::{compile, to_yaml, CompileOptions, DEFAULT_IMAGE, IMAGE_ENV, SCHEMA_VERSION};

/// The image steps run in when neither the function nor `--image` names one: `BATON_KFP_IMAGE`,
/// else [`DEFAULT_IMAGE`].
pub fn configured_image() -> String {
    std::env::var(IMAGE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned())
}
