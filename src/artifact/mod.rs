//! Code artifacts: logging, versioning and requirements.

pub mod names;
