//! `project.yaml` in MLRun's format.

use serde::{Deserialize, Serialize};

use super::Extra;

/// A project file: `kind: project`, metadata, spec, status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectFile {
    /// Always `project`.
    pub kind: String,
    /// The project's name and bookkeeping.
    pub metadata: ProjectMetadata,
    /// Functions, workflows, artifact path and the rest.
    pub spec: ProjectSpec,
    /// MLRun's status block.
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub status: Extra,
    /// Unknown top-level fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Project metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectMetadata {
    /// The project name.
    pub name: String,
    /// Unknown metadata fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Project spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProjectSpec {
    /// Function definitions (MLRun's dict form).
    #[serde(default)]
    pub functions: Vec<serde_json::Value>,
    /// Workflow specs.
    #[serde(default)]
    pub workflows: Vec<serde_json::Value>,
    /// The default artifact path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_path: Option<String>,
    /// Unknown spec fields.
    #[serde(flatten)]
    pub extra: Extra,
}
