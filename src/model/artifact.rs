//! The code artifact record (`kind: code`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Extra;
use crate::error::{Error, Result};
use crate::uri::StoreUri;

/// The `kind` of a code artifact.
pub const CODE_KIND: &str = "code";

/// What a code artifact is meant for: the source of a function or of a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CodeType {
    /// The source of a function (the default).
    #[default]
    Function,
    /// The source of a workflow.
    Workflow,
}

impl CodeType {
    /// The lowercase name stored in records.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeType::Function => "function",
            CodeType::Workflow => "workflow",
        }
    }
}

impl fmt::Display for CodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CodeType {
    type Err = Error;

    /// Exactly `function` or `workflow`, case-sensitive, as MLRun accepts them.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "function" => Ok(CodeType::Function),
            "workflow" => Ok(CodeType::Workflow),
            other => Err(Error::invalid(format!(
                "`{other}` is not a valid code_type: expected `function` or `workflow`"
            ))),
        }
    }
}

/// A code artifact as stored in the database and returned by `artifacts get --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Always [`CODE_KIND`] for artifacts baton creates.
    pub kind: String,
    /// Identity and versioning.
    pub metadata: ArtifactMetadata,
    /// Where the payload is and what it is.
    pub spec: CodeArtifactSpec,
    /// MLRun's status block (`state: created`).
    #[serde(default)]
    pub status: Extra,
    /// Unknown top-level fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Identity and versioning of an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ArtifactMetadata {
    /// The artifact key, unique within a project.
    pub key: String,
    /// The owning project.
    #[serde(default)]
    pub project: String,
    /// Hyper-parameter iteration; always 0 for code artifacts.
    #[serde(default)]
    pub iter: u32,
    /// The producer id; fixed for a version.
    #[serde(default)]
    pub tree: String,
    /// The tag this copy of the record was read or written under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The content hash of the record: identical content, identical uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// sha1 of the payload, as MLRun computes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Free-form labels; not part of the uid.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// When the record was last stored (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Unknown metadata fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The spec of a code artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CodeArtifactSpec {
    /// The local path the code was logged from, exactly as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_path: Option<String>,
    /// Where the payload is stored (a URL or an absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// An inline body kept in the record instead of a stored payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// Payload size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Free-form format string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The database key (defaults to the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_key: Option<String>,
    /// The language of the code (`python` for `.py`/`.ipynb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Function or workflow; legacy records may lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_type: Option<CodeType>,
    /// Pip requirements of the code, merged into builds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// `sha256:<hex>` of the payload bytes, checked by every resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Unknown spec fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Artifact {
    /// The code type, treating a missing one as `function` (MLRun's default).
    pub fn code_type(&self) -> CodeType {
        self.spec.code_type.unwrap_or_default()
    }

    /// The database key: `spec.db_key`, else the key.
    pub fn db_key(&self) -> &str {
        self.spec.db_key.as_deref().unwrap_or(&self.metadata.key)
    }

    /// The fully pinned store URI of this version:
    /// `store://artifacts/<project>/<db_key>#<iter>[:<tag>]@<tree>^<uid>`.
    pub fn store_uri(&self) -> StoreUri {
        StoreUri {
            project: Some(self.metadata.project.clone()),
            key: self.db_key().to_string(),
            iter: Some(self.metadata.iter),
            tag: self.metadata.tag.clone(),
            tree: Some(self.metadata.tree.clone()).filter(|t| !t.is_empty()),
            uid: self.metadata.uid.clone(),
        }
    }

    /// The file name the payload is materialised under: the first non-empty base name among
    /// `src_path`, `target_path` and the key (MLRun's rule); an inline body logged without any
    /// path is named `<key>.py` so its module is importable as the key.
    pub fn file_name(&self) -> String {
        let base = |p: &Option<String>| {
            p.as_deref()
                .map(|p| p.trim_end_matches('/'))
                .and_then(|p| p.rsplit(['/', '\\']).next())
                .filter(|b| !b.is_empty() && *b != "." && *b != "..")
                .map(str::to_string)
        };
        base(&self.spec.src_path)
            .or_else(|| base(&self.spec.target_path))
            .unwrap_or_else(|| {
                if self.spec.inline.is_some() {
                    format!("{}.py", self.metadata.key)
                } else {
                    self.metadata.key.clone()
                }
            })
    }
}
