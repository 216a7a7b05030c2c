//! Engine implementations of [`crate::engine::WorkflowEngine`], one module each.
//!
//! - [`local`]: the in-process dispatcher; steps run through a
//!   [`crate::engine::StepExecutor`] (in production, `baton runner` subprocesses on this machine).
//! - [`remote`]: runs hosted by a `baton server`, driven over HTTP.
//!
//! - [`kfp`]: runs are Kubeflow Pipelines runs, created from a compiled pipeline spec and polled.

pub mod kfp;
pub mod local;
pub mod remote;
