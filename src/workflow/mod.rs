//! Workflows: loading a workflow source into a [`WorkflowGraph`], and checking it.

mod arg_types;
pub mod args;
pub mod condition;
pub mod dag;
pub mod graph;
pub mod load;
mod python;
pub mod refs;
mod render;
mod yaml;

pub use args::{merge_args, ArgSchemaEntry};
pub use condition::Condition;
pub use dag::{Dag, DagCheck, StepNode};
pub use graph::{RetryPolicy, Step, StepAction, WorkflowGraph, WorkflowParam};
pub use load::{load_workflow_file, LoadOptions, TraceProject, PYTHON_ENV};
pub use refs::Template;
pub use render::{render_graph, GraphFormat};
