//! Step execution: run a Python handler `<module>:<function>` from a code folder.
//!
//! The code resolver hands the runner a folder (an extracted payload); the runner executes one
//! handler from it and returns a [`HandlerOutcome`]: state, results, artifacts, error. Between
//! the two sides sits a small protocol, one JSON request in and one JSON result out, with the
//! handler's logs on the process output (see `python/bootstrap.py`).
//!
//! # Why a protocol and not an embedded interpreter
//!
//! Step start-up dominates workflows of small steps. A [`PythonRunner`] has two transports
//! ([`Isolation`]): a fresh `python -u -c <bootstrap>` process per handler run, or a child forked
//! by a warm Python worker (a "zygote", see [`ForkServer`]) that has the bootstrap imported and
//! never imports user code. Both give the run its own process and process group, its log and the
//! same cancellation. Nothing outside this module depends on which one ran a handler: callers
//! see only [`HandlerRequest`] in, [`HandlerOutcome`] out, and a log file.
//!
//! # Failures
//!
//! A handler that fails in Python (module or function missing, a required parameter unfilled, an
//! exception, a generator returned) is an `Ok` outcome with [`RunState::Error`] and a message; the
//! traceback is in the log. `Err` is kept for failures of the runner itself: a malformed handler
//! name, a missing code folder, an interpreter that cannot start, or a process that died without
//! reporting (killed, crashed, `os._exit`).

mod hyper;
mod log_threads;
mod params;
mod python;
mod source;
mod step;
mod zygote;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ErrorKind;
use crate::model::run::FailureKind;
use crate::{Error, Result};

pub use params::{parse_param, parse_params, MAX_VALUE_DEPTH};
pub use python::PythonRunner;
pub use source::{CodeSources, ResolvedSource};
pub use step::{run_recorded_step, run_step, StepEnv};
pub(crate) use zygote::cached_programs;
pub use zygote::ForkServer;

/// The environment variable naming the Python interpreter that runs handlers and traces Python
/// workflows.
pub const PYTHON_ENV: &str = "BATON_PYTHON";

/// How a handler run is isolated: each one always gets a process (and process group) of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// A fresh interpreter per run (`python -u -c <bootstrap>`): tens of milliseconds each.
    Process,
    /// A child forked by a warm interpreter that has the bootstrap imported ([`ForkServer`]):
    /// about a millisecond each.
    #[default]
    Fork,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Process => "process",
            Isolation::Fork => "fork",
        })
    }
}

impl FromStr for Isolation {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "process" => Ok(Isolation::Process),
            "fork" => Ok(Isolation::Fork),
            other => Err(Error::invalid(format!(
                "Isolation `{other}` is not one of `process`, `fork`"
            ))),
        }
    }
}

/// Everything needed to run one handler. Paths may be relative: they are taken against the
/// caller's current directory, not the code folder the handler runs in.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerRequest {
    /// The folder holding the code (an extracted payload); the handler's module is a file inside
    /// it, and it is the handler's working directory and first `sys.path` entry.
    pub code_dir: PathBuf,
    /// `module:function`; the module may be dotted (`pkg.trainer` is `pkg/trainer.py`).
    pub handler: String,
    /// Params, bound to the handler's parameters by name (see [`parse_param`] for CLI typing).
    pub params: Map<String, Value>,
    /// Inputs, key to URL or local path; bound by name as objects with `.local()`, `.url`,
    /// `.get()`. Only local paths, `file://` and `http(s)://` are readable by the bootstrap:
    /// resolve other schemes (`store://`, `s3://`) before building the request.
    pub inputs: BTreeMap<String, String>,
    /// What the handler's `context` object reports.
    pub context: ContextSettings,
    /// What the user calls the code (the function's source, such as a `store://` URI), named
    /// in messages instead of the cache folder it was fetched to; `None` names the folder.
    pub code_source: Option<String>,
    /// A Python expression evaluated over the results of a completed run (a hyper-parameter
    /// run's `stop_condition`), reported as [`HandlerOutcome::stop`].
    pub stop_condition: Option<String>,
    /// Environment variables set in the handler's process before its module is imported.
    pub env: BTreeMap<String, String>,
    /// Whether `code_dir` is baton's own (an entry of the code cache, which never changes): the
    /// handler's module is then compiled once and its compiled code kept beside it, even under
    /// `PYTHONDONTWRITEBYTECODE`, which is about the user's folders. Otherwise (a project's own
    /// `.py`) the interpreter's settings decide.
    pub keep_bytecode: bool,
}

/// The run identity and destinations exposed to the handler through its `context` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSettings {
    /// The run's uid.
    pub uid: String,
    /// The run's name.
    pub name: String,
    /// The project the run belongs to.
    pub project: String,
    /// Where `context.log_artifact` writes payloads (created on first use).
    pub artifact_path: PathBuf,
    /// The run's labels.
    pub labels: BTreeMap<String, String>,
}

/// The terminal state of a handler run, named as MLRun names run states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// The handler returned.
    Completed,
    /// The handler could not be found or called, or it raised.
    Error,
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunState::Completed => "completed",
            RunState::Error => "error",
        })
    }
}

/// An artifact the handler logged with `context.log_artifact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedArtifact {
    /// The artifact key.
    pub key: String,
    /// The absolute path the payload was written to.
    pub target_path: String,
    /// The format the handler declared, if any (`csv`, `json`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// What a handler run produced. Results and artifacts logged before a failure are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerOutcome {
    /// Whether the handler completed.
    pub state: RunState,
    /// Results logged with `log_result(s)`, plus `return` for a truthy return value.
    #[serde(default)]
    pub results: Map<String, Value>,
    /// Artifacts logged with `log_artifact`, one per key (the last one logged wins).
    #[serde(default)]
    pub artifacts: Vec<LoggedArtifact>,
    /// Why the run failed, when `state` is [`RunState::Error`].
    #[serde(default)]
    pub error: Option<String>,
    /// What kind of failure it was, when `state` is [`RunState::Error`]: the bootstrap reports
    /// [`FailureKind::Config`] for a handler that cannot be found or called as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<FailureKind>,
    /// Whether [`HandlerRequest::stop_condition`] held on the results (only when one was given
    /// and the run completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<bool>,
    /// Why [`HandlerRequest::stop_condition`] could not be evaluated (`NameError: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_error: Option<String>,
}

impl HandlerOutcome {
    /// Records the outcome on a run's status: its state, results, artifacts, error and failure
    /// kind.
    pub(crate) fn record(self, status: &mut crate::model::RunStatus) {
        status.state = match self.state {
            RunState::Completed => crate::model::RunState::Completed,
            RunState::Error => crate::model::RunState::Error,
        };
        status.results = self.results;
        status.artifacts = self
            .artifacts
            .iter()
            .map(|a| serde_json::to_value(a).expect("artifacts serialize"))
            .collect();
        status.error = self.error;
        status.failure_kind = self.failure_kind;
    }
}

/// The failure kind of an error the runner met before or around the handler: a malformed
/// request or something that does not exist ([`ErrorKind::InvalidArgument`],
/// [`ErrorKind::NotFound`], [`ErrorKind::BadRequest`]) fails the same way on every attempt.
pub(crate) fn failure_kind_of(err: &Error) -> Option<FailureKind> {
    match err.kind() {
        ErrorKind::InvalidArgument | ErrorKind::NotFound | ErrorKind::BadRequest => {
            Some(FailureKind::Config)
        }
        _ => None,
    }
}

/// A parsed `module:function` handler name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerRef {
    /// The module, possibly dotted; a segment may contain `-` (an inline body named `my-code`).
    pub module: String,
    /// The function inside the module.
    pub function: String,
}

const HANDLER_HINT: &str = "a handler names a Python file at the root of the code (without \
                            `.py`) and a function in it, e.g. `my_func:main` runs `main` from \
                            `my_func.py`; `pkg.trainer:main` runs it from `pkg/trainer.py`";

impl HandlerRef {
    /// Parses `module:function`, refusing anything the bootstrap could not resolve.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((module, function)) = text.split_once(':') else {
            return Err(Error::invalid_with_hint(
                format!("Handler `{text}` must have the form `module:function`"),
                HANDLER_HINT,
            ));
        };
        if let Some(stem) = module.strip_suffix(".py") {
            return Err(Error::invalid_with_hint(
                format!("Handler `{text}` names the file `{module}`, not the module"),
                format!("drop the `.py`: `{stem}:{function}`"),
            ));
        }
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        };
        if !module.split('.').all(segment_ok) {
            return Err(Error::invalid_with_hint(
                format!("Handler `{text}` has an invalid module `{module}`"),
                HANDLER_HINT,
            ));
        }
        let identifier = !function.is_empty()
            && !function.starts_with(|c: char| c.is_ascii_digit())
            && function.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !identifier {
            return Err(Error::invalid_with_hint(
                format!("Handler `{text}` has an invalid function name `{function}`"),
                HANDLER_HINT,
            ));
        }
        Ok(HandlerRef {
            module: module.to_owned(),
            function: function.to_owned(),
        })
    }
}

impl FromStr for HandlerRef {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        HandlerRef::parse(text)
    }
}

impl fmt::Display for HandlerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_dotted_and_dashed_modules() {
        let h = HandlerRef::parse("my_func:main").unwrap();
        assert_eq!(
            (h.module.as_str(), h.function.as_str()),
            ("my_func", "main")
        );
        let h = HandlerRef::parse("pkg.trainer:train_2").unwrap();
        assert_eq!(
            (h.module.as_str(), h.function.as_str()),
            ("pkg.trainer", "train_2")
        );
        assert_eq!(
            HandlerRef::parse("my-code:handler").unwrap().module,
            "my-code"
        );
        assert_eq!(
            HandlerRef::parse("pkg.trainer:main").unwrap().to_string(),
            "pkg.trainer:main"
        );
    }

    #[test]
    fn refuses_a_handler_without_colon_with_the_rule_and_an_example() {
        let err = HandlerRef::parse("main").unwrap_err();
        assert!(err.to_string().contains("`main`"), "{err}");
        assert!(err.to_string().contains("module:function"), "{err}");
        assert!(err.hint().unwrap().contains("`my_func:main`"));
    }

    #[test]
    fn refuses_malformed_parts() {
        for bad in [
            ":main",
            "mod:",
            "a..b:main",
            ".a:main",
            "a/b:main",
            "a:b:c",
            "a:1f",
            "a:f.g",
        ] {
            assert!(HandlerRef::parse(bad).is_err(), "{bad} was accepted");
        }
        let err = HandlerRef::parse("trainer.py:main").unwrap_err();
        assert!(err.hint().unwrap().contains("`trainer:main`"), "{err:?}");
    }
}
