//! MLRun-shaped objects (`kind`, `metadata`, `spec`, `status`).
//!
//! The same JSON goes to the database, into `project.yaml` and (later) over the MLRun-compatible
//! API. Every struct keeps the fields it does not know in an `extra` map, so an object written by
//! the MLRun SDK survives a round trip through baton unchanged.

pub mod artifact;
pub mod function;
pub mod hyper;
pub mod overrides;
pub mod project;
pub mod run;
pub mod workflow;
pub mod workflow_run;
pub mod workflow_status;

pub use artifact::{Artifact, ArtifactMetadata, CodeArtifactSpec, CodeType};
pub use function::{FunctionEntry, FunctionKind};
pub use hyper::{HyperParamOptions, HyperPlan};
pub use overrides::FunctionOverrides;
pub use project::{ProjectFile, ProjectMetadata, ProjectSpec};
pub use run::{
    FunctionSnapshot, ResolvedCodeRecord, RunMetadata, RunObject, RunSpec, RunState, RunStatus,
};
pub use workflow::WorkflowSpec;
pub use workflow_run::{Driver, WorkflowRunRecord, WorkflowRunSummary};
pub use workflow_status::{
    AttemptResult, StepRef, StepState, StepStatus, WorkflowEvent, WorkflowEventKind, WorkflowRunId,
    WorkflowRunStatus, WorkflowState,
};

/// Fields an object does not model, kept verbatim for the round trip.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The current time as RFC 3339 (with microseconds), the format of every timestamp in run records.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
