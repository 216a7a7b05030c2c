//! Code artifacts: logging, versioning, naming rules and requirements.

mod log;
pub mod names;
pub mod requirements;
mod role;
mod uid;

pub use log::{log_code_file, CodeSource, LogCodeRequest, LogScope, UploadLock, MAX_INLINE_BODY};
pub use role::check_role;
pub use uid::content_uid;
