//! Submitting function runs: record the run, start `baton runner` for it, wait for it.
//!
//! The launcher never resolves a function's code: it records the run (`created`) and starts the
//! runner as a separate process, which resolves the code at start-up ("pull at runtime"). The
//! runner is the same program wherever a step runs, so a local run and a step of a workflow go
//! through the same path. Stopping a run sends the runner SIGTERM; the runner then kills the
//! handler's process group and records the run as `aborted`, so nothing is left half-recorded.
//! A runner also gets SIGTERM when the process that started it dies, however it dies.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::db::{settle_run, Db};
use crate::error::{IoResultExt, Result};
use crate::model::{
    now, FunctionOverrides, HyperParamOptions, RunMetadata, RunObject, RunSpec, RunState, RunStatus,
};
use crate::project::{check_module_handler, Project};
use crate::uri::{source_kind, SourceKind};

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
    /// The run's uid when the caller chose it (MLRun's client does, and then polls by it); a
    /// fresh one otherwise.
    pub uid: Option<String>,
    /// Hyperparameters: when given, the run's iterations each run one parameter set.
    pub hyperparams: Map<String, Value>,
    /// How the hyperparameters are expanded and judged.
    pub hyper_param_options: Option<HyperParamOptions>,
    /// What a workflow step changes in the function for this run, kept on its snapshot.
    pub overrides: FunctionOverrides,
}

/// Validates a run request against the project and records the run as `created`.
///
/// A `store://` source is checked again here (it must still exist and be function code), the
/// same check MLRun's server repeats when a run is submitted; its code is not fetched.
pub async fn submit(project: &Project, db: &dyn Db, request: RunRequest) -> Result<RunObject> {
    let mut snapshot = project.snapshot_function(db, &request.function).await?;
    snapshot.overrides = request.overrides.clone();
    let function = &snapshot.function;
    let source = function.url.clone().unwrap_or_default();
    let handler = request.handler.clone().or(function.handler.clone());
    if source_kind(&source)? != SourceKind::PythonFile {
        check_module_handler(handler.as_deref(), &source)?;
    }
    crate::model::hyper::check_hyper(&request.hyperparams, request.hyper_param_options.as_ref())?;
    let uid = match &request.uid {
        Some(uid) => claim_uid(db, project.name(), uid).await?,
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
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
            function_snapshot: Some(snapshot.clone()),
            hyperparams: request.hyperparams,
            hyper_param_options: request.hyper_param_options,
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

/// Checks a run uid chosen by the caller: 1 to 64 lowercase letters, digits and `-` (it names
/// a log file), and not the uid of a recorded run.
async fn claim_uid(db: &dyn Db, project: &str, uid: &str) -> Result<String> {
    let valid = !uid.is_empty()
        && uid.len() <= 64
        && uid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(crate::Error::invalid(format!(
            "Run uid `{uid}` is malformed: use 1 to 64 lowercase letters, digits and `-`"
        )));
    }
    match db.read_run(project, uid).await {
        Ok(_) => Err(crate::Error::conflict(format!(
            "A run with uid `{uid}` already exists in project `{project}`"
        ))),
        Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Ok(uid.to_string()),
        Err(e) => Err(e),
    }
}

/// A running `baton runner` process. Dropping the handle stops the run (SIGTERM to the runner,
/// which records it as aborted); [`reap_stopped_runners`] then waits for such runners to exit.
#[derive(Debug)]
pub struct RunHandle {
    /// `Some` until the handle is dropped.
    child: Option<tokio::process::Child>,
    uid: String,
    project: String,
}

/// Runners whose handle was dropped while they ran (a canceled step): asked to stop, and kept so
/// the process that started them can wait until they have recorded their runs and exited.
static STOPPING: Mutex<Vec<Stopping>> = Mutex::new(Vec::new());

/// A runner asked to stop, and the run it executes.
struct Stopping {
    /// Ends when the runner has stopped (and, for a process, has been reaped, so cancelled
    /// steps leave no zombie behind).
    exited: tokio::task::JoinHandle<()>,
    /// Stops the runner for good: it did not stop in time.
    kill: Box<dyn FnOnce() + Send>,
    project: String,
    uid: String,
}

impl Stopping {
    /// Hands `child`, already asked to stop, to a task that reaps it when it exits.
    fn watch(mut child: tokio::process::Child, project: String, uid: String) -> Stopping {
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let exited = tokio::spawn(async move {
            tokio::select! {
                _ = child.wait() => {}
                Ok(()) = killed => {
                    let _ = child.kill().await;
                }
            }
        });
        Stopping {
            exited,
            kill: Box::new(move || {
                let _ = kill.send(());
            }),
            project,
            uid,
        }
    }
}

/// Registers a runner of run `uid` in `project` that runs in this process as `task` and was
/// already told to stop: [`reap_stopped_runners`] waits for it like for a runner process, and
/// aborts the task (which kills its handler) when it does not stop in time.
pub fn stopping_in_process<T: Send + 'static>(
    task: tokio::task::JoinHandle<T>,
    project: String,
    uid: String,
) {
    let abort = task.abort_handle();
    let exited = tokio::spawn(async move {
        let _ = task.await;
    });
    STOPPING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Stopping {
            exited,
            kill: Box::new(move || abort.abort()),
            project,
            uid,
        });
}

/// Waits until every runner asked to stop (by dropping its [`RunHandle`], or through
/// [`stopping_in_process`]) has stopped (each one kills its handler and records its run first),
/// killing those still running after `grace`.
/// A run its runner left unrecorded (stopped before it could listen for signals) is recorded
/// `aborted`. A process that cancels steps calls this before it exits, so it leaves no runner
/// behind and no run `running`. Only runners of runs in `project` (whose records `db` holds)
/// are reaped, so a server serving many projects reaps each through its own database.
pub async fn reap_stopped_runners(db: &dyn Db, project: &str, grace: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let stopping: Vec<Stopping> = {
            let mut all = STOPPING.lock().unwrap_or_else(|e| e.into_inner());
            let (mine, others) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|runner| runner.project == project);
            *all = others;
            mine
        };
        if stopping.is_empty() {
            return Ok(());
        }
        for mut runner in stopping {
            if tokio::time::timeout_at(deadline, &mut runner.exited)
                .await
                .is_err()
            {
                tracing::warn!(
                    "the runner of run `{}` did not stop within {}; killing it",
                    runner.uid,
                    humantime::format_duration(grace)
                );
                (runner.kill)();
                let _ = runner.exited.await;
            }
            let run = db.read_run(&runner.project, &runner.uid).await?;
            settle_run(
                db,
                &run,
                RunState::Aborted,
                "Run aborted before its runner recorded it".into(),
            )
            .await?;
        }
    }
}

/// A future that resolves when this process receives SIGINT, SIGTERM or SIGHUP. The signals are
/// caught from this call on (not from the first poll), so none of them can kill the process
/// before it has recorded what it was doing. Call it inside the tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let streams: Vec<_> = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ]
    .into_iter()
    .filter_map(|kind| {
        signal(kind)
            .inspect_err(|e| tracing::warn!("cannot catch signal {}: {e}", kind.as_raw_value()))
            .ok()
    })
    .collect();
    async move {
        if streams.is_empty() {
            return std::future::pending().await;
        }
        let each = streams.into_iter().map(|mut stream| {
            Box::pin(async move {
                stream.recv().await;
            })
        });
        futures::future::select_all(each).await;
    }
}

/// Where a runner reads and records its run: the embedded database file, or a `baton server`
/// (its token handed over in the environment, never on the command line).
#[derive(Debug, Clone)]
pub enum RunnerDb {
    /// A SQLite file (`--db FILE`).
    File(PathBuf),
    /// A server (`--api URL`, token in `BATON_TOKEN`).
    Server {
        /// The server's address.
        url: String,
        /// Its token, if it needs one.
        token: Option<String>,
    },
}

/// Starts the runner for a recorded run, its output appended to the run's `log`. `python`, when
/// given, is the interpreter the runner uses (else `BATON_PYTHON`, else `python3`).
///
/// The runner gets SIGTERM when this process dies, even by SIGKILL (Linux's parent-death
/// signal), so it aborts its handler and records the run instead of running on unowned.
pub fn start(
    project: &Project,
    db: &RunnerDb,
    run: &RunObject,
    python: Option<&Path>,
    log: &Path,
) -> Result<RunHandle> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .io_context(|| format!("Failed to create `{}`", dir.display()))?;
    }
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .io_context(|| format!("Failed to open `{}`", log.display()))
    };
    let exe =
        std::env::current_exe().io_context(|| "Failed to locate the baton executable".into())?;
    let mut command = tokio::process::Command::new(exe);
    if let Some(python) = python {
        command.env(crate::workflow::PYTHON_ENV, python);
    }
    command
        .arg("runner")
        .arg(&run.metadata.uid)
        .arg("--project")
        .arg(project.name());
    match db {
        RunnerDb::File(path) => {
            command.arg("--db").arg(path);
        }
        RunnerDb::Server { url, token } => {
            command.arg("--api").arg(url);
            match token {
                Some(token) => command.env("BATON_TOKEN", token),
                None => command.env_remove("BATON_TOKEN"),
            };
        }
    }
    command
        .arg("--log")
        .arg(log)
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?);
    #[cfg(target_os = "linux")]
    {
        // The parent-death signal fires when the *thread* that forked the child ends. Runners
        // are started from the main thread or a tokio worker, both of which live as long as
        // this process.
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2) and
        // getppid(2), which are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // This process may have died before the prctl: no signal would come then.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    let child = command
        .spawn()
        .io_context(|| "Failed to start `baton runner`".into())?;
    Ok(RunHandle {
        child: Some(child),
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
    pub async fn wait(self, db: &dyn Db) -> Result<RunObject> {
        self.wait_or_stop(db, std::future::pending()).await
    }

    /// Like [`RunHandle::wait`], and when `stop` resolves first the runner is asked to stop
    /// (SIGTERM: it aborts the handler and records the run `aborted`) and still waited for.
    pub async fn wait_or_stop(
        mut self,
        db: &dyn Db,
        stop: impl Future<Output = ()>,
    ) -> Result<RunObject> {
        tokio::pin!(stop);
        let mut stopping = false;
        // The child stays in the handle while it runs: if this future is dropped (a step's
        // timeout, a terminate), dropping the handle stops the runner.
        let child = self.child.as_mut().expect("a live handle has its child");
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = &mut stop, if !stopping => {
                    stopping = true;
                    terminate(child);
                }
            }
        };
        // The runner exited (or cannot be waited for): nothing is left for `Drop` to stop.
        self.child = None;
        let status =
            status.io_context(|| format!("Failed to wait for the runner of run `{}`", self.uid))?;
        let run = db.read_run(&self.project, &self.uid).await?;
        settle_run(
            db,
            &run,
            RunState::Error,
            format!(
                "The runner exited ({status}) without recording a final state; see `baton runs logs {}`",
                self.uid
            ),
        )
        .await
    }
}

/// Asks a runner to stop (SIGTERM); it aborts the handler and records the run `aborted`.
fn terminate(child: &tokio::process::Child) {
    // `id` is `None` once the child is reaped, so the pid cannot be someone else's.
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        // A handle dropped before the runner exited means the run was cancelled (a workflow
        // timeout, Ctrl-C); `try_wait` reaps it when it already ended.
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                terminate(&child);
                if tokio::runtime::Handle::try_current().is_err() {
                    // No runtime to wait on it: the runner still stops and records its run.
                    return;
                }
                let stopping = Stopping::watch(
                    child,
                    std::mem::take(&mut self.project),
                    std::mem::take(&mut self.uid),
                );
                STOPPING
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(stopping);
            }
        }
    }
}
