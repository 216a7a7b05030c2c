//! baton: a workflow engine dispatcher for MLRun-style projects whose functions and workflows
//! live in versioned **code artifacts**.
//!
//! Data flows one way. A request (the CLI, the HTTP server) becomes a call on the
//! [`service::Baton`], which holds the injected parts: the [`project::Project`] (its home and its
//! definition behind a [`project::ProjectStore`]), the [`db::Db`], where code comes from
//! ([`runner::CodeSources`]: the [`datastore`] and the [`code`] cache) and the
//! [`logs::LogStore`]. A run resolves its workflow into a [`workflow::Dag`] and hands it to an
//! [`engine::WorkflowEngine`]; the engine dispatches each step to the [`runner`], which pulls its
//! code at start-up from what the run record pinned.
//!
//! # Layers
//!
//! Imports point down this list only (`tests/module_layers.rs` fails on a cycle):
//!
//! 1. `cli`, [`server`] and [`web`] (the run pages): parse, one service call, print, answer or
//!    render.
//! 2. [`service`]: the use cases, and the wiring of engines to the runner.
//! 3. [`launcher`] (start `baton runner` processes), [`project`] (definitions, builds, running
//!    and recording workflows), [`engines`] (the implementations of the engine trait).
//! 4. [`engine`] (the trait, events, the conformance suite), [`runner`] (execute one recorded
//!    run), [`artifact`] (log code artifacts), [`workflow`] (load, check, render graphs), [`kfp`]
//!    (compile a workflow to a Kubeflow Pipelines v2 spec), [`schedule`] (cron, time zones and
//!    the policies of scheduled runs).
//! 5. [`db`], [`code`], [`datastore`], [`logs`].
//! 6. [`model`] (plain MLRun-shaped data), [`uri`] (the `store://` grammar), [`error`].
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
pub mod kfp;
pub mod launcher;
pub mod logs;
pub mod model;
pub mod project;
pub mod runner;
pub mod schedule;
pub mod server;
pub mod service;
pub mod uri;
pub mod web;
pub mod workflow;

pub use error::{Error, Result};
