//! baton: a workflow engine dispatcher for MLRun-style projects whose functions and workflows
//! live in versioned **code artifacts**.
//!
//! Data flows one way. A request (the CLI, later the HTTP server) becomes a call on
//! [`project::Project`]; the project reads and writes metadata through the [`db::Db`] trait and
//! payloads through the [`datastore`]; a run resolves its workflow into a [`workflow::Dag`] and
//! hands it to a [`engine::WorkflowEngine`]; the engine dispatches each step to the
//! [`runner`], which pulls its code at start-up through [`code`].
//!
//! # Glossary
//!
//! - **code artifact**: a versioned record (`kind: code`) pointing at a source file or an archive,
//!   addressed by a [`uri::StoreUri`].
//! - **function**: a named, runnable unit of a project whose source may be a code artifact.
//! - **workflow**: a graph of steps, each running a function, loaded from a Python or YAML file.
//! - **run**: one execution of a function (a step of a workflow is also a run).
//! - **engine**: what drives a workflow's steps (`local`, `kfp`, `remote`, ...).
//! - **runner**: the program that executes one step: resolve code, run the handler, report.

pub mod artifact;
pub mod cli;
pub mod code;
pub mod datastore;
pub mod db;
pub mod engine;
#[path = "../engines/mod.rs"]
pub mod engines;
pub mod error;
pub mod launcher;
pub mod logs;
pub mod model;
pub mod project;
pub mod runner;
pub mod service;
pub mod uri;
pub mod workflow;

pub use error::{Error, Result};
