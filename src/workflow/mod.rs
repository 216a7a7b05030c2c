//! Workflows: loading a workflow source into a [`WorkflowGraph`], and checking it.

pub mod dag;
pub mod graph;
pub mod refs;

pub use dag::{Dag, DagCheck};
pub use graph::{RetryPolicy, Step, StepAction, WorkflowGraph, WorkflowParam};
