//! Loading a workflow file into a [`WorkflowGraph`]: pick the loader from the file's extension.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, IoResultExt, Result};
use crate::workflow::graph::WorkflowGraph;
use crate::workflow::{python, yaml};

pub use crate::runner::PYTHON_ENV;

/// How to load a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// The Python handler to call (`set_workflow(handler=..)`); `None` tries `kfpipeline`, then
    /// `pipeline`. Ignored for YAML files.
    pub handler: Option<String>,
    /// The Python interpreter that runs the tracer.
    pub python: PathBuf,
    /// The workflow's name, given to the graph (a YAML file's own `name` wins).
    pub name: String,
    /// How long tracing a Python workflow may take before it is killed (default 60 s).
    pub timeout: Duration,
    /// What the user calls the file (the `store://` URI of a workflow artifact), used in
    /// messages instead of the path it was fetched to; `None` names the path.
    pub source: Option<String>,
    /// The project a Python workflow sees as `pipeline_context.project` / `this_project`: its
    /// name and params (`get_param`, `get_artifact_uri` give constants from them).
    pub project: Option<TraceProject>,
    /// Warm Python workers to fork the tracer from (a child of `python`'s worker instead of a
    /// new interpreter); needs a tokio runtime. `None` starts `python`.
    pub fork: Option<crate::runner::ForkServer>,
}

/// What a traced workflow knows of its project.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TraceProject {
    /// The project's name.
    pub name: String,
    /// The project's `spec.params`.
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl LoadOptions {
    /// Options for the workflow `name`, with no explicit handler and the interpreter from
    /// `$BATON_PYTHON`, else `python3`.
    pub fn new(name: impl Into<String>) -> Self {
        let python = std::env::var_os(PYTHON_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("python3"));
        LoadOptions {
            handler: None,
            python,
            name: name.into(),
            timeout: Duration::from_secs(60),
            source: None,
            project: None,
            fork: None,
        }
    }

    /// The same options tracing through `server`'s warm worker (see [`LoadOptions::fork`]).
    pub fn forked_by(mut self, server: crate::runner::ForkServer) -> Self {
        self.fork = Some(server);
        self
    }

    /// The same options giving the workflow its project (see [`LoadOptions::project`]).
    pub fn with_project(mut self, project: TraceProject) -> Self {
        self.project = Some(project);
        self
    }

    /// The same options naming the file `source` in messages (see [`LoadOptions::source`]).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// How messages name the workflow file at `path`.
    pub(crate) fn label(&self, path: &Path) -> String {
        match &self.source {
            Some(source) => source.clone(),
            None => path.display().to_string(),
        }
    }

    /// The same options with an explicit handler.
    pub fn with_handler(mut self, handler: impl Into<String>) -> Self {
        self.handler = Some(handler.into());
        self
    }
}

/// Loads the workflow at `path`: `.py` through the Python tracer, `.yaml`/`.yml` as the graph
/// form. The result is not validated beyond what loading needs (see the DAG for that), and
/// every step having a name.
pub fn load_workflow_file(path: &Path, opts: &LoadOptions) -> Result<WorkflowGraph> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let load = match extension.as_deref() {
        Some("py") => python::load_python_workflow,
        Some("yaml" | "yml") => yaml::load_yaml_workflow,
        _ => {
            return Err(Error::invalid_with_hint(
                format!(
                    "cannot load workflow `{}`: unknown file type",
                    opts.label(path)
                ),
                "a workflow file ends in `.py`, `.yaml` or `.yml`",
            ))
        }
    };
    std::fs::metadata(path)
        .io_context(|| format!("cannot read workflow `{}`", opts.label(path)))?;
    let graph = load(path, opts)?;
    if let Some(i) = graph.steps.iter().position(|s| s.name.trim().is_empty()) {
        return Err(Error::invalid_with_hint(
            format!(
                "workflow `{}`: step {} has an empty name",
                opts.label(path),
                i + 1
            ),
            "give every step a unique, non-empty `name`",
        ));
    }
    Ok(graph)
}
