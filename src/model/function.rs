//! Function definitions as `project.yaml` stores them (MLRun's dict form).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Extra;
use crate::error::{Error, Result};

/// One entry of `spec.functions`: `{name, url, kind, image, handler, requirements, tag}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionEntry {
    /// The function's (normalised) name.
    pub name: String,
    /// The source: a `store://` URI (stored as given), a `.py` path or an archive path/URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Runtime kind; `job` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Default handler (`module:function` for code-artifact sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// The user's own build requirements; they win over the artifact's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// Function tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Pull the code when the function starts rather than when it is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_source_on_run: Option<bool>,
    /// Unknown fields (an MLRun `spec:` block, `with_repo`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl FunctionEntry {
    /// The function's kind, `job` when unset.
    pub fn kind(&self) -> Result<FunctionKind> {
        self.kind.as_deref().unwrap_or("job").parse()
    }
}

/// The runtime kinds baton knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// A batch job (the default); pulls its code at start-up.
    Job,
    /// A local process.
    Local,
    /// A Nuclio real-time function; pulls its code at build time unless `load_source_on_run`.
    Nuclio,
    /// A serving graph; like Nuclio.
    Serving,
    /// An application; pulls its code at start-up.
    Application,
}

impl FunctionKind {
    /// All kinds, for error messages.
    pub const ALL: [FunctionKind; 5] = [
        FunctionKind::Job,
        FunctionKind::Local,
        FunctionKind::Nuclio,
        FunctionKind::Serving,
        FunctionKind::Application,
    ];

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionKind::Job => "job",
            FunctionKind::Local => "local",
            FunctionKind::Nuclio => "nuclio",
            FunctionKind::Serving => "serving",
            FunctionKind::Application => "application",
        }
    }

    /// Whether the code is pulled when the function starts (true) or baked in at build time,
    /// given the function's `load_source_on_run` setting.
    pub fn pulls_at_runtime(self, load_source_on_run: Option<bool>) -> bool {
        match self {
            FunctionKind::Job | FunctionKind::Local | FunctionKind::Application => true,
            FunctionKind::Nuclio | FunctionKind::Serving => load_source_on_run.unwrap_or(false),
        }
    }
}

impl fmt::Display for FunctionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FunctionKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        FunctionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Unsupported function kind `{s}`: expected one of job, local, nuclio, serving, application"
                ))
            })
    }
}
