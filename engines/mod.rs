//! Engine implementations of [`crate::engine::WorkflowEngine`], one module each.
//!
//! - [`local`]: the in-process dispatcher; steps run through a
//!   [`crate::engine::StepExecutor`] (in production, `baton runner` subprocesses on this machine).
//! - [`remote`]: runs hosted by a `baton server`, driven over HTTP.
//!
//! `kfp` is not built yet; [`crate::engine::UnavailableEngine`] stands in for it.

pub mod local;
pub mod remote;
