//! Workflows: loading a workflow source into a [`WorkflowGraph`], and checking it.

pub mod graph;

pub use graph::{RetryPolicy, Step, StepAction, WorkflowGraph, WorkflowParam};
