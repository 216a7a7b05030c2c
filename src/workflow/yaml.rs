//! The YAML workflow loader: the graph form of [`WorkflowGraph`], written by hand.
//!
//! The file is the graph's own serde form, with one convenience: `name` may be left out, and the
//! loader fills it from [`LoadOptions::name`] (the name the workflow is registered under). A
//! `name` in the file wins.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, IoResultExt, Result};
use crate::workflow::graph::{Step, WorkflowGraph, WorkflowParam};
use crate::workflow::load::LoadOptions;

/// [`WorkflowGraph`] with an optional name; the same fields, the same strictness.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlWorkflow {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    params: Vec<WorkflowParam>,
    steps: Vec<Step>,
}

/// Reads and parses the YAML workflow at `path`.
pub(crate) fn load_yaml_workflow(path: &Path, opts: &LoadOptions) -> Result<WorkflowGraph> {
    let text = std::fs::read_to_string(path)
        .io_context(|| format!("cannot read workflow `{}`", opts.label(path)))?;
    parse_yaml_workflow(&text, path, opts)
}

/// Parses YAML workflow text; `path` only names the file in errors.
pub(crate) fn parse_yaml_workflow(
    text: &str,
    path: &Path,
    opts: &LoadOptions,
) -> Result<WorkflowGraph> {
    if text.trim().is_empty() {
        return Err(Error::invalid_with_hint(
            format!("workflow `{}` is empty", opts.label(path)),
            "a YAML workflow needs at least `steps:`",
        ));
    }
    let workflow: YamlWorkflow = serde_yaml::from_str(text).map_err(|e| {
        // serde_yaml's message already ends with "at line L column C" when it knows the place.
        let place = match e.location() {
            Some(loc) if !e.to_string().contains(" at line ") => {
                format!(" at line {} column {}", loc.line(), loc.column())
            }
            _ => String::new(),
        };
        Error::invalid_with_hint(
            format!("invalid workflow `{}`: {e}{place}", opts.label(path)),
            "fix the field at that place; a workflow has `name`, `params` and `steps`, and a step \
             has `name`, `function`, `handler`, `params`, `inputs`, `outputs`, `after`, `when`, \
             `retries`, `timeout` and `action`",
        )
    })?;
    Ok(WorkflowGraph {
        name: workflow.name.unwrap_or_else(|| opts.name.clone()),
        params: workflow.params,
        steps: workflow.steps,
    })
}
