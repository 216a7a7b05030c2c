//! Engine implementations of [`crate::engine::WorkflowEngine`], one module each.
//!
//! - [`local`]: the in-process dispatcher; steps run through a
//!   [`crate::engine::StepExecutor`] (in production, `baton runner` subprocesses on this machine).
//!
//! `kfp` and `remote` are not built yet; [`crate::engine::UnavailableEngine`] stands in for them.

pub mod local;
