//! Kubeflow Pipelines (KFP v2): what the `kfp` engine needs to talk to a KFP server.
//!
//! - [`client`]: the KFP v2beta1 REST client (runs, experiments), with KFP's error bodies mapped
//!   to baton's error kinds and retries for the requests that may be repeated.
//!
//! The engine itself (`engines::kfp::KfpEngine`) sits a layer above and drives runs through it.

pub mod client;
