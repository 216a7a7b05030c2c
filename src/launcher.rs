//! Submitting function runs: record the run, start `baton runner` for it, wait for it.
//!
//! The launcher never resolves a function's code: it records the run (`created`) and starts the
//! runner as a separate process, which resolves the code at start-up ("pull at runtime"). The
//! runner is the same program wherever a step runs, so a local run and a step of a workflow go
//! through the same path. Stopping a run sends the runner SIGTERM; the runner then kills the
//! handler's process group and records the run as `aborted`, so nothing is left half-recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Map, Value};

use crate::db::Db;
use crate::error::{IoResultExt, Result};
use crate::model::{RunMetadata, RunObject, RunSpec, RunState, RunStatus};
use crate::project::{
    check_module_handler, resolve_function_artifact, source_kind, Project, SourceKind,
};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The project function.
    pub function: String,
    /// Handler override.
    pub handler: Option<String>,
    /// Parameters, JSON-typed.
    pub params: Map<String, Value>,
    /// Inputs: key to URL or path.
    pub inputs: BTreeMap<String, String>,
    /// Extra labels (a workflow step adds `workflow=<id>`).
    pub labels: BTreeMap<String, String>,
}

/// The log file of a run.
pub fn log_path(project: &Project, uid: &str) -> PathBuf {
    project.state_dir().join("logs").join(format!("{uid}.log"))
}

/// The current time as RFC 3339, the format of every timestamp in run records.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Validates a run request against the project and records the run as `created`.
///
/// A `store://` source is checked again here (it must still exist and be function code), the
/// same check MLRun's server repeats when a run is submitted; its code is not fetched.
pub async fn submit(project: &Project, db: &dyn Db, request: RunRequest) -> Result<RunObject> {
    let function = project.function(&request.function)?;
    let source = function.url.clone().unwrap_or_default();
    let handler = request.handler.clone().or(function.handler.clone());
    match source_kind(&source)? {
        SourceKind::Store => {
            check_module_handler(handler.as_deref(), &source)?;
            resolve_function_artifact(db, project.name(), &source).await?;
        }
        SourceKind::Archive => {
            check_module_handler(handler.as_deref(), &source)?;
        }
        SourceKind::PythonFile => {}
    }
    let uid = uuid::Uuid::new_v4().simple().to_string();
    let handler_name = handler
        .as_deref()
        .map(|h| h.rsplit(':').next().unwrap_or(h).to_string())
        .unwrap_or_else(|| "handler".into());
    let mut labels = request.labels.clone();
    labels.insert("kind".into(), function.kind()?.as_str().into());
    let output_path = project.resolve_artifact_path(None);
    let run = RunObject {
        metadata: RunMetadata {
            uid,
            name: format!("{}-{handler_name}", function.name),
            project: project.name().to_string(),
            iteration: 0,
            labels,
            extra: Default::default(),
        },
        spec: RunSpec {
            function: format!("{}/{}", project.name(), function.name),
            handler,
            parameters: request.params,
            inputs: request.inputs,
            output_path: Some(output_path),
            extra: Default::default(),
        },
        status: RunStatus {
            state: RunState::Created,
            last_update: Some(now()),
            ..RunStatus::default()
        },
        extra: Default::default(),
    };
    db.store_run(&run).await?;
    Ok(run)
}

/// A running `baton runner` process. Dropping the handle stops the run (SIGTERM to the runner,
/// which records it as aborted).
#[derive(Debug)]
pub struct RunHandle {
    child: tokio::process::Child,
    uid: String,
    project: String,
}

/// Starts the runner for a recorded run, its output appended to the run's log. `python`, when
/// given, is the interpreter the runner uses (else `BATON_PYTHON`, else `python3`).
pub fn start(project: &Project, run: &RunObject, python: Option<&Path>) -> Result<RunHandle> {
    let log = log_path(project, &run.metadata.uid);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .io_context(|| format!("Failed to create `{}`", dir.display()))?;
    }
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .io_context(|| format!("Failed to open `{}`", log.display()))
    };
    let exe =
        std::env::current_exe().io_context(|| "Failed to locate the baton executable".into())?;
    let mut command = tokio::process::Command::new(exe);
    if let Some(python) = python {
        command.env(crate::workflow::PYTHON_ENV, python);
    }
    let child = command
        .arg("-C")
        .arg(project.root())
        .arg("runner")
        .arg(&run.metadata.uid)
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .spawn()
        .io_context(|| "Failed to start `baton runner`".into())?;
    Ok(RunHandle {
        child,
        uid: run.metadata.uid.clone(),
        project: project.name().to_string(),
    })
}

impl RunHandle {
    /// The run's uid.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Waits for the runner to exit and returns the final run record. A runner that died
    /// without recording a final state (killed, crashed) leaves the run in `error`, saying so.
    pub async fn wait(mut self, db: &dyn Db) -> Result<RunObject> {
        let status = self
            .child
            .wait()
            .await
            .io_context(|| format!("Failed to wait for the runner of run `{}`", self.uid))?;
        let mut run = db.read_run(&self.project, &self.uid).await?;
        if !run.status.state.is_terminal() {
            run.status.state = RunState::Error;
            run.status.error = Some(format!(
                "The runner exited ({status}) without recording a final state; see `baton runs logs {}`",
                self.uid
            ));
            run.status.end_time = Some(now());
            run.status.last_update = run.status.end_time.clone();
            db.store_run(&run).await?;
        }
        Ok(run)
    }

    /// Asks the runner to stop (SIGTERM); it aborts the handler and records the run `aborted`.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        // A handle dropped before the runner exited means the run was cancelled (a workflow
        // timeout, Ctrl-C); `try_wait` reaps it when it already ended.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}
