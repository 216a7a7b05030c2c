//! The one error type of baton.
//!
//! Its kinds mirror MLRun's error classes so the same failure reads the same whether it comes from
//! the CLI, the library or (later) the HTTP API: each kind maps to an HTTP status and a CLI exit
//! code. Messages say what failed and on what; causes go in `source`, and the CLI prints the chain.
//! A hint, when there is one, is kept apart and printed after a blank line.
//!
//! A server needs three more things from an error, all decided here so that every front end
//! agrees: its HTTP status ([`ErrorKind::http_status`]: 4xx for what the caller can fix, 500 for
//! failures and bugs), MLRun's error body ([`Error::mlrun_body`]), and whether it is a bug
//! ([`Error::Internal`]: a panicked task, a dispatcher gone) rather than a failure of the work.

use std::fmt;

/// A boxed error used as the cause of a failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across baton.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure baton reports.
///
/// Each variant carries the message (what failed, on what), an optional hint (how to fix it; it
/// may name CLI commands, so an HTTP answer leaves it out) and an optional cause, chained as the
/// [`std::error::Error::source`] rather than formatted into the message.
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
        /// Why the value was rejected (a parser's error), if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A named thing does not exist (MLRunNotFoundError).
    #[error("{message}")]
    NotFound {
        /// What was looked up, quoting the name or URI.
        message: String,
        /// How to create it or where to look instead, if known.
        hint: Option<String>,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The request conflicts with existing state (MLRunConflictError).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// How to resolve the conflict, if known.
        hint: Option<String>,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The request is well formed but cannot be served (MLRunBadRequestError).
    #[error("{message}")]
    BadRequest {
        /// Why the request is refused.
        message: String,
        /// What to ask for instead, if known.
        hint: Option<String>,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Something failed while doing the work (MLRunRuntimeError).
    #[error("{message}")]
    Runtime {
        /// What was being done.
        message: String,
        /// What the user can do about it, if anything.
        hint: Option<String>,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A bug in baton rather than a problem with the request or the environment: a task that
    /// panicked, a dispatcher that stopped while it was still needed (MLRunInternalServerError).
    #[error("{message}")]
    Internal {
        /// What broke.
        message: String,
        /// What the user can do about it, if anything.
        hint: Option<String>,
        /// The underlying cause (a join error carrying the panic), if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A file-system operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// What the user can do about it, if anything.
        hint: Option<String>,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The class of an [`Error`], used to pick an HTTP status, an MLRun error class and a CLI exit
/// code (see [`ErrorKind::http_status`], [`ErrorKind::mlrun_class`], [`ErrorKind::exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// See [`Error::Internal`].
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::BadRequest => "BadRequest",
            ErrorKind::Runtime => "Runtime",
            ErrorKind::Internal => "Internal",
        })
    }
}

impl ErrorKind {
    /// The HTTP status a server answers with: 4xx for what the caller can fix, 5xx for the
    /// rest. MLRun's client retries idempotent requests on 500, so only failures that may go
    /// away on their own (and bugs) are 5xx.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument | ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Runtime | ErrorKind::Internal => 500,
        }
    }

    /// The name of the MLRun exception class of this kind (`mlrun.errors`), as MLRun's server
    /// names it in an error body.
    pub fn mlrun_class(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "MLRunInvalidArgumentError",
            ErrorKind::NotFound => "MLRunNotFoundError",
            ErrorKind::Conflict => "MLRunConflictError",
            ErrorKind::BadRequest => "MLRunBadRequestError",
            ErrorKind::Runtime => "MLRunRuntimeError",
            ErrorKind::Internal => "MLRunInternalServerError",
        }
    }

    /// The exit code of a CLI command that failed with this kind: 2 for what the user can fix
    /// (bad input, something missing, a conflict), 1 for a failure while doing the work or a
    /// bug.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Runtime | ErrorKind::Internal => 1,
            ErrorKind::InvalidArgument
            | ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::BadRequest => 2,
        }
    }
}

/// The body of an error answer, in the shape MLRun's server writes (`{"detail": "..."}`) and
/// its client reads: the client raises the exception class of the HTTP status with
/// `details: <detail>` appended to its own message.
///
/// Like MLRun's server, which answers `repr(exc)`, `detail` reads
/// `MLRunNotFoundError('Artifact `p/k` not found')`: the class, then the message and its causes
/// as a Python string literal. The hint is left out (it may name CLI commands); an
/// [`Error::Internal`] shows its message only, not its causes (they are for the server's log).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MlrunErrorBody {
    /// The error class and its message.
    pub detail: String,
}

/// An error and its causes on one line, `message: cause: cause`; see [`Error::chain`].
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(&'a Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl Error {
    /// An [`Error::InvalidArgument`] without a hint.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// An [`Error::InvalidArgument`] with a hint telling the user how to fix it.
    pub fn invalid_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::invalid(message).with_hint(hint)
    }

    /// An [`Error::InvalidArgument`] caused by `source` (a parser's error, say).
    pub fn invalid_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::InvalidArgument {
            message: message.into(),
            hint: None,
            source: Some(source.into()),
        }
    }

    /// An [`Error::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound {
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// An [`Error::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// An [`Error::BadRequest`].
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest {
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// An [`Error::Runtime`] without a cause.
    pub fn runtime(message: impl Into<String>) -> Self {
        Error::Runtime {
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// An [`Error::Runtime`] caused by `source`.
    pub fn runtime_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Runtime {
            message: message.into(),
            hint: None,
            source: Some(source.into()),
        }
    }

    /// An [`Error::Internal`] without a cause.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// An [`Error::Internal`] caused by `source`: `spawn_blocking(f).await.map_err(|e|
    /// Error::internal_from("The hashing task panicked", e))`.
    pub fn internal_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Internal {
            message: message.into(),
            hint: None,
            source: Some(source.into()),
        }
    }

    /// An [`Error::Io`] with a context naming what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            hint: None,
            source,
        }
    }

    /// This error with `hint` (how to fix it) attached, whatever its kind; it replaces any hint
    /// already there.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        let slot = match &mut self {
            Error::InvalidArgument { hint, .. }
            | Error::NotFound { hint, .. }
            | Error::Conflict { hint, .. }
            | Error::BadRequest { hint, .. }
            | Error::Runtime { hint, .. }
            | Error::Internal { hint, .. }
            | Error::Io { hint, .. } => hint,
        };
        *slot = Some(hint.into());
        self
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::BadRequest { .. } => ErrorKind::BadRequest,
            Error::Runtime { .. } | Error::Io { .. } => ErrorKind::Runtime,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The hint to print after the error, if any.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::InvalidArgument { hint, .. }
            | Error::NotFound { hint, .. }
            | Error::Conflict { hint, .. }
            | Error::BadRequest { hint, .. }
            | Error::Runtime { hint, .. }
            | Error::Internal { hint, .. }
            | Error::Io { hint, .. } => hint.as_deref(),
        }
    }

    /// This error and its causes on one line (`message: cause: cause`), for a record or a log
    /// line where the CLI's one-cause-per-line rendering does not fit.
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }

    /// The HTTP status of this error (see [`ErrorKind::http_status`]).
    pub fn http_status(&self) -> u16 {
        self.kind().http_status()
    }

    /// The body a server answers this error with, as MLRun's server would (see
    /// [`MlrunErrorBody`]).
    pub fn mlrun_body(&self) -> MlrunErrorBody {
        let kind = self.kind();
        let message = match kind {
            ErrorKind::Internal => self.to_string(),
            _ => self.chain().to_string(),
        };
        MlrunErrorBody {
            detail: format!("{}({})", kind.mlrun_class(), python_repr(&message)),
        }
    }
}

/// The error an API answer with HTTP `status` and `body` (MLRun's `{"detail": ...}`) stands
/// for: the kind its status (and, for 400, its MLRun class) maps to, with the message unwrapped
/// from the `Class('message')` form. The inverse of [`Error::mlrun_body`] and
/// [`ErrorKind::http_status`], so an error crosses the wire with its kind and its words.
pub fn from_api_answer(status: u16, body: &str) -> Error {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| match v.get("detail") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        })
        .unwrap_or_else(|| body.trim().to_string());
    let (class, message) = parse_detail(&detail);
    let message = if message.is_empty() {
        format!("The server answered HTTP {status}")
    } else {
        message
    };
    // Messages cross the wire unchanged: a 5xx is a failure whose words are the server's.
    match status {
        400 if class == Some("MLRunInvalidArgumentError") => Error::invalid(message),
        400 | 413 | 422 => Error::bad_request(message),
        401 | 403 => Error::invalid_with_hint(
            message,
            "give the server's token with BATON_TOKEN (or MLRUN_HTTPDB__TOKEN)",
        ),
        404 => Error::not_found(message),
        409 => Error::conflict(message),
        _ => Error::runtime(message),
    }
}

/// Splits an error detail into its MLRun class and its message: `Class('message')` (what
/// [`Error::mlrun_body`] writes), `Class: message` (a refusal before any handler), or anything
/// else as the message itself.
fn parse_detail(detail: &str) -> (Option<&str>, String) {
    let is_class = |c: &str| !c.is_empty() && c.chars().all(|c| c.is_ascii_alphanumeric());
    if let Some((class, rest)) = detail.split_once('(') {
        if let Some(literal) = rest.strip_suffix(')') {
            if is_class(class) {
                if let Some(message) = python_unrepr(literal) {
                    return (Some(class), message);
                }
            }
        }
    }
    if let Some((class, message)) = detail.split_once(": ") {
        if is_class(class) {
            return (Some(class), message.to_string());
        }
    }
    (None, detail.to_string())
}

/// The text of a Python `str` literal as `repr` writes it (the inverse of
/// [`python_repr`]): single or double quotes, and the escapes `\\`, `\'`, `\"`,
/// `\n`, `\r`, `\t`, `\xNN`, `\uNNNN` and `\UNNNNNNNN`. Anything else is `None`.
fn python_unrepr(literal: &str) -> Option<String> {
    let quote = literal.chars().next().filter(|q| matches!(q, '\'' | '"'))?;
    let inner = literal.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            // An unescaped quote would have ended the literal.
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = chars.next()?;
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<char> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n {
                return None;
            }
            char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
        };
        match escaped {
            '\\' | '\'' | '"' => out.push(escaped),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'x' => out.push(hex(&mut chars, 2)?),
            'u' => out.push(hex(&mut chars, 4)?),
            'U' => out.push(hex(&mut chars, 8)?),
            // Python keeps an unknown escape as written.
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// `text` as Python's `repr` writes a `str`: single quotes unless the text holds a single quote
/// and no double quote, backslashes and control characters escaped.
fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_maps_back_to_its_kind_and_message() {
        let messages = [
            "Artifact `store://p/k` not found",
            "it's `x`",
            "say \"hi\" and it's",
            "a\\b\nc\td\r",
            "bell\u{7} naïve",
        ];
        type Make = fn(&str) -> Error;
        let rows: [(Make, ErrorKind); 5] = [
            (|m| Error::not_found(m), ErrorKind::NotFound),
            (|m| Error::conflict(m), ErrorKind::Conflict),
            (|m| Error::invalid(m), ErrorKind::InvalidArgument),
            (|m| Error::bad_request(m), ErrorKind::BadRequest),
            (|m| Error::runtime(m), ErrorKind::Runtime),
        ];
        for message in messages {
            for (make, kind) in &rows {
                let err = make(message);
                let body = serde_json::to_string(&err.mlrun_body()).unwrap();
                let back = from_api_answer(err.http_status(), &body);
                assert_eq!(back.kind(), *kind, "{message:?}");
                assert_eq!(back.to_string(), message, "{kind}");
            }
        }
    }

    #[test]
    fn an_internal_error_is_a_runtime_failure_for_the_client() {
        let err = Error::internal("The database task panicked");
        let body = serde_json::to_string(&err.mlrun_body()).unwrap();
        let back = from_api_answer(500, &body);
        assert_eq!(back.kind(), ErrorKind::Runtime);
        assert_eq!(back.to_string(), "The database task panicked");
    }

    #[test]
    fn a_body_that_is_not_mlruns_is_kept_as_the_message() {
        let back = from_api_answer(502, "upstream down");
        assert_eq!(back.kind(), ErrorKind::Runtime);
        assert_eq!(back.to_string(), "upstream down");
        let back = from_api_answer(
            413,
            r#"{"detail": "MLRunBadRequestError: The request body is larger than the server accepts"}"#,
        );
        assert_eq!(back.kind(), ErrorKind::BadRequest);
        assert_eq!(
            back.to_string(),
            "The request body is larger than the server accepts"
        );
    }

    #[test]
    fn python_unrepr_reads_what_repr_writes() {
        let rows = [
            ("'plain'", "plain"),
            ("\"it's\"", "it's"),
            ("'both \\' and \"'", "both ' and \""),
            ("'a\\\\b\\nc\\td'", "a\\b\nc\td"),
            ("'bell\\x07'", "bell\u{7}"),
            ("'\\u00e9\\U0001f600'", "é😀"),
            ("'keep \\q'", "keep \\q"),
        ];
        for (literal, text) in rows {
            assert_eq!(python_unrepr(literal).as_deref(), Some(text), "{literal}");
        }
        for bad in ["", "'", "plain", "'open", "'a'b'", "'\\x0'"] {
            assert_eq!(python_unrepr(bad), None, "{bad}");
        }
    }

    /// Every kind, built through its constructor.
    fn one_of_each() -> Vec<Error> {
        vec![
            Error::invalid("bad `x`"),
            Error::not_found("no `x`"),
            Error::conflict("`x` exists"),
            Error::bad_request("cannot serve `x`"),
            Error::runtime("failed on `x`"),
            Error::internal("the dispatcher of `x` stopped"),
            Error::io("Failed to read `x`", std::io::Error::other("boom")),
        ]
    }

    #[test]
    fn each_kind_maps_to_its_http_status_mlrun_class_and_exit_code() {
        let rows = [
            (
                ErrorKind::InvalidArgument,
                400,
                "MLRunInvalidArgumentError",
                2,
            ),
            (ErrorKind::NotFound, 404, "MLRunNotFoundError", 2),
            (ErrorKind::Conflict, 409, "MLRunConflictError", 2),
            (ErrorKind::BadRequest, 400, "MLRunBadRequestError", 2),
            (ErrorKind::Runtime, 500, "MLRunRuntimeError", 1),
            (ErrorKind::Internal, 500, "MLRunInternalServerError", 1),
        ];
        let kinds: Vec<ErrorKind> = one_of_each().iter().map(Error::kind).collect();
        for (kind, status, class, exit) in rows {
            assert!(kinds.contains(&kind), "{kind} has no constructor");
            assert_eq!(kind.http_status(), status, "{kind}");
            assert_eq!(kind.mlrun_class(), class, "{kind}");
            assert_eq!(kind.exit_code(), exit, "{kind}");
        }
        assert_eq!(
            Error::io("x", std::io::Error::other("y")).http_status(),
            500
        );
    }

    #[test]
    fn every_kind_carries_a_hint_apart_from_its_message() {
        for err in one_of_each() {
            assert_eq!(err.hint(), None, "{err:?}");
            let message = err.to_string();
            let err = err.with_hint("do this instead");
            assert_eq!(err.hint(), Some("do this instead"), "{err:?}");
            assert_eq!(
                err.to_string(),
                message,
                "the hint stays out of the message"
            );
        }
        assert_eq!(
            Error::invalid_with_hint("bad", "fix it").hint(),
            Some("fix it")
        );
    }

    #[test]
    fn a_cause_is_chained_as_the_source_not_formatted_into_the_message() {
        let parse = serde_json::from_str::<u32>("x").unwrap_err();
        let cause = parse.to_string();
        let err = Error::invalid_from("`a.json` is not valid", parse);
        assert_eq!(err.to_string(), "`a.json` is not valid");
        let source = std::error::Error::source(&err).expect("a source");
        assert_eq!(source.to_string(), cause);
        assert_eq!(
            err.chain().to_string(),
            format!("`a.json` is not valid: {cause}")
        );
    }

    #[tokio::test]
    async fn a_panicked_task_is_an_internal_error_not_a_runtime_failure() {
        let join = tokio::task::spawn_blocking(|| panic!("boom"))
            .await
            .unwrap_err();
        let err = Error::internal_from("The database task panicked", join);
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.http_status(), 500);
        assert_eq!(err.kind().exit_code(), 1);
    }

    #[test]
    fn the_mlrun_body_is_detail_with_the_class_and_the_message_as_python_repr() {
        let err = Error::not_found("Artifact `p/k` not found").with_hint("log it first");
        assert_eq!(
            serde_json::to_value(err.mlrun_body()).unwrap(),
            serde_json::json!({"detail": "MLRunNotFoundError('Artifact `p/k` not found')"})
        );
        // The causes are part of the detail; the hint is not.
        let err = Error::runtime_from(
            "Failed to download `s3://b/k`",
            std::io::Error::other("timed out"),
        );
        assert_eq!(
            err.mlrun_body().detail,
            "MLRunRuntimeError('Failed to download `s3://b/k`: timed out')"
        );
        // A bug shows what broke, not its internals.
        let err = Error::internal_from(
            "The database task panicked",
            std::io::Error::other("secret"),
        );
        assert_eq!(
            err.mlrun_body().detail,
            "MLRunInternalServerError('The database task panicked')"
        );
    }

    #[test]
    fn python_repr_quotes_like_python() {
        let rows = [
            ("plain", "'plain'"),
            ("it's", "\"it's\""),
            ("say \"hi\"", "'say \"hi\"'"),
            ("both ' and \"", "'both \\' and \"'"),
            ("a\\b\nc\td", "'a\\\\b\\nc\\td'"),
            ("bell\u{7}", "'bell\\x07'"),
            ("naïve", "'naïve'"),
        ];
        for (text, want) in rows {
            assert_eq!(python_repr(text), want, "{text:?}");
        }
    }
}
