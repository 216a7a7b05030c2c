//! The one error type of baton.
//!
//! Its kinds mirror MLRun's error classes so the same failure reads the same whether it comes from
//! the CLI, the library or (later) the HTTP API: each kind maps to an HTTP status and a CLI exit
//! code. Messages say what failed and on what; causes go in `source`, and the CLI prints the chain.
//! A hint, when there is one, is kept apart and printed after a blank line.

use std::fmt;

/// A boxed error used as the cause of a [`Error::Runtime`] failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across baton.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure baton reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed something malformed or inconsistent (MLRunInvalidArgumentError).
    #[error("{message}")]
    InvalidArgument {
        /// What is wrong, quoting the offending value.
        message: String,
        /// How to fix it, if there is a standard fix.
        hint: Option<String>,
    },
    /// A named thing does not exist (MLRunNotFoundError).
    #[error("{message}")]
    NotFound {
        /// What was looked up, quoting the name or URI.
        message: String,
    },
    /// The request conflicts with existing state (MLRunConflictError).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// The request is well formed but cannot be served (MLRunBadRequestError).
    #[error("{message}")]
    BadRequest {
        /// Why the request is refused.
        message: String,
    },
    /// Something failed while doing the work (MLRunRuntimeError).
    #[error("{message}")]
    Runtime {
        /// What was being done.
        message: String,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A file-system operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The class of an [`Error`], used to pick an HTTP status and a CLI exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// See [`Error::InvalidArgument`].
    InvalidArgument,
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::BadRequest`].
    BadRequest,
    /// See [`Error::Runtime`] and [`Error::Io`].
    Runtime,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::BadRequest => "BadRequest",
            ErrorKind::Runtime => "Runtime",
        })
    }
}

impl Error {
    /// An [`Error::InvalidArgument`] without a hint.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            message: message.into(),
            hint: None,
        }
    }

    /// An [`Error::InvalidArgument`] with a hint telling the user how to fix it.
    pub fn invalid_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::InvalidArgument {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// An [`Error::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound {
            message: message.into(),
        }
    }

    /// An [`Error::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
        }
    }

    /// An [`Error::BadRequest`].
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest {
            message: message.into(),
        }
    }

    /// An [`Error::Runtime`] without a cause.
    pub fn runtime(message: impl Into<String>) -> Self {
        Error::Runtime {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Runtime`] caused by `source`.
    pub fn runtime_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Runtime {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Io`] with a context naming what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::BadRequest { .. } => ErrorKind::BadRequest,
            Error::Runtime { .. } | Error::Io { .. } => ErrorKind::Runtime,
        }
    }

    /// The hint to print after the error, if any.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::InvalidArgument { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

/// Adds a path-naming context to I/O results: `fs::read(p).io_context(|| format!(..))`.
pub trait IoResultExt<T> {
    /// Wraps an I/O error into [`Error::Io`] with the given context.
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoResultExt<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(context(), source))
    }
}
