//! Workflows: loading a workflow source into a [`WorkflowGraph`], and checking it.

pub mod graph;
pub mod load;
mod python;
mod yaml;

pub use graph::{RetryPolicy, Step, StepAction, WorkflowGraph, WorkflowParam};
pub use load::{load_workflow_file, LoadOptions, PYTHON_ENV};
