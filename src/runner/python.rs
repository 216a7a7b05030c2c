//! The fresh-process transport: one `python -u -c <bootstrap> <request.json>` per handler run.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::process::{Child, Command};

use super::{ContextSettings, HandlerOutcome, HandlerRef, HandlerRequest};
use crate::error::IoResultExt;
use crate::{Error, Result};

/// The bootstrap, shipped inside the binary so a runner needs nothing but an interpreter.
const BOOTSTRAP: &str = include_str!("python/bootstrap.py");

/// The protocol version; the bootstrap refuses a request with another one.
const PROTOCOL: u32 = 1;

/// Runs handlers with a Python interpreter, one fresh process per run.
///
/// Cancellation is by dropping: if the future returned by [`PythonRunner::run`] is dropped before
/// it completes, the handler's whole process group is killed (`SIGKILL`), so subprocesses the
/// handler started die with it. To cancel on a signal or a deadline, race the future against it:
///
/// ```no_run
/// # async fn f(req: baton::runner::HandlerRequest, cancel: tokio::sync::oneshot::Receiver<()>) {
/// let runner = baton::runner::PythonRunner::from_env();
/// tokio::select! {
///     outcome = runner.run(&req, "run.log".as_ref()) => { let _ = outcome; }
///     _ = cancel => { /* the run future was dropped: the handler is already being killed */ }
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonRunner {
    python: PathBuf,
}

impl PythonRunner {
    /// A runner using the given interpreter.
    pub fn new(python: impl Into<PathBuf>) -> Self {
        PythonRunner {
            python: python.into(),
        }
    }

    /// A runner using `$BATON_PYTHON`, else `python3` from `PATH`.
    pub fn from_env() -> Self {
        let python = std::env::var_os(crate::workflow::PYTHON_ENV)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| OsString::from("python3"));
        PythonRunner::new(python)
    }

    /// The interpreter this runner starts.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// The real executable behind this runner's interpreter (`sys.executable`), found by
    /// starting it once. Version managers such as pyenv put a shim on `PATH` that costs more
    /// than the interpreter itself; a workflow resolves it once and hands every step the real
    /// executable instead of paying for the shim per step.
    pub async fn resolve_executable(&self) -> Result<PathBuf> {
        let output = tokio::process::Command::new(&self.python)
            .args(["-c", "import sys; sys.stdout.write(sys.executable)"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| {
                Error::runtime_from(
                    format!(
                        "Failed to start Python `{}` (set BATON_PYTHON)",
                        self.python.display()
                    ),
                    e,
                )
            })?;
        let executable = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() || executable.is_empty() {
            return Err(Error::runtime(format!(
                "Python `{}` did not report its executable ({})",
                self.python.display(),
                output.status
            )));
        }
        Ok(PathBuf::from(executable))
    }

    /// Runs the handler `req` names and returns its outcome; the handler's stdout and stderr
    /// are appended to `log` (created if missing), in the order they were written.
    ///
    /// A handler that fails in Python is an `Ok` outcome in state `error` (see the module docs);
    /// `Err` means the handler name is malformed, the code folder is missing, Python could not
    /// start, or the process ended without reporting a result.
    pub async fn run(&self, req: &HandlerRequest, log: &Path) -> Result<HandlerOutcome> {
        let handler = HandlerRef::parse(&req.handler)?;
        let code_dir = absolute(&req.code_dir)?;
        if !code_dir.is_dir() {
            return Err(Error::not_found(format!(
                "Code folder `{}` for handler `{handler}` does not exist",
                code_dir.display()
            )));
        }
        let scratch = tempfile::Builder::new()
            .prefix("baton-run-")
            .tempdir()
            .io_context(|| "Could not create a temporary folder for the handler run".into())?;
        let request_path = scratch.path().join("request.json");
        let result_path = scratch.path().join("result.json");
        let wire = WireRequest {
            protocol: PROTOCOL,
            code_dir: &code_dir,
            module: &handler.module,
            function: &handler.function,
            params: &req.params,
            inputs: absolute_inputs(&req.inputs)?,
            context: ContextSettings {
                artifact_path: absolute(&req.context.artifact_path)?,
                ..req.context.clone()
            },
            result_path: &result_path,
        };
        let body = serde_json::to_vec(&wire)
            .map_err(|e| Error::runtime_from("Could not encode the handler request", e))?;
        fs::write(&request_path, body)
            .io_context(|| format!("Could not write `{}`", request_path.display()))?;

        let (stdout, stderr) = open_log(log)?;
        let mut command = Command::new(&self.python);
        command
            .arg("-u") // unbuffered, so stdout and stderr land in the log in the order written
            .arg("-c")
            .arg(BOOTSTRAP)
            .arg(&request_path)
            .current_dir(&code_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let child = command.spawn().map_err(|e| {
            Error::runtime_from(
                format!(
                    "Could not start Python `{}` for handler `{handler}` (set BATON_PYTHON to \
                     the interpreter to use)",
                    self.python.display()
                ),
                e,
            )
        })?;
        let status = ProcessGroup::new(child).wait().await.map_err(|e| {
            Error::runtime_from(
                format!("Lost track of the process of handler `{handler}`"),
                e,
            )
        })?;

        let text = match fs::read(&result_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::runtime(format!(
                    "Handler `{handler}` ended ({}) without reporting a result; see the log `{}`",
                    describe(status),
                    log.display()
                )));
            }
            Err(e) => {
                return Err(Error::io(
                    format!("Could not read `{}`", result_path.display()),
                    e,
                ))
            }
        };
        serde_json::from_slice(&text).map_err(|e| {
            Error::runtime_from(
                format!("Handler `{handler}` reported a result the runner cannot read"),
                e,
            )
        })
    }
}

/// The request as the bootstrap reads it.
#[derive(Serialize)]
struct WireRequest<'a> {
    protocol: u32,
    code_dir: &'a Path,
    module: &'a str,
    function: &'a str,
    params: &'a Map<String, Value>,
    inputs: BTreeMap<String, String>,
    context: ContextSettings,
    result_path: &'a Path,
}

/// The child, and its process group while it may still be running. Dropping it before
/// [`ProcessGroup::wait`] returns kills the whole group: the handler and anything it started.
struct ProcessGroup {
    child: Child,
    /// `Some` until the child is reaped; after that the id could belong to someone else.
    pgid: Option<i32>,
}

impl ProcessGroup {
    fn new(child: Child) -> Self {
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        ProcessGroup { child, pgid }
    }

    async fn wait(mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.pgid = None;
        Ok(status)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) has no memory-safety preconditions. The child is not reaped yet,
            // so its id still names its own process group (spawned with `process_group(0)`).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        // `kill_on_drop` then kills the leader (if the group kill failed) and tokio reaps it.
    }
}

fn open_log(log: &Path) -> Result<(fs::File, fs::File)> {
    if let Some(parent) = log.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .io_context(|| format!("Could not create the log folder `{}`", parent.display()))?;
    }
    // One open file description in append mode shared by stdout and stderr: every write lands
    // at the end, in the order the handler made it, with nothing buffered on the Rust side.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .io_context(|| format!("Could not open the log `{}`", log.display()))?;
    let copy = file
        .try_clone()
        .io_context(|| format!("Could not open the log `{}`", log.display()))?;
    Ok((file, copy))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Ok(PathBuf::new());
    }
    std::path::absolute(path).io_context(|| format!("Could not resolve `{}`", path.display()))
}

/// Makes relative local input paths absolute: the handler runs in the code folder, not here.
fn absolute_inputs(inputs: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    inputs
        .iter()
        .map(|(key, value)| {
            let value = if value.contains("://") || value.is_empty() {
                value.clone()
            } else {
                absolute(Path::new(value))?.to_string_lossy().into_owned()
            };
            Ok((key.clone(), value))
        })
        .collect()
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}
