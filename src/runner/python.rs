//! The fresh-process transport: one `python -u -c <bootstrap> <request.json>` per handler run.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::process::{Child, Command};

use super::zygote::{ForkServer, RunFds};
use super::{ContextSettings, HandlerOutcome, HandlerRef, HandlerRequest, Isolation};
use crate::error::IoResultExt;
use crate::logs::{copy_capped, LogCap};
use crate::{Error, Result};

/// The bootstrap, shipped inside the binary so a runner needs nothing but an interpreter.
pub(super) const BOOTSTRAP: &str = include_str!("python/bootstrap.py");

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
///
/// With a [`ForkServer`] ([`PythonRunner::with_fork_server`]) each run is instead a child forked
/// by a warm Python worker of that interpreter: the same protocol, log, process group and
/// cancellation, without an interpreter's start-up per run.
#[derive(Debug, Clone)]
pub struct PythonRunner {
    python: PathBuf,
    fork: Option<ForkServer>,
}

impl PartialEq for PythonRunner {
    fn eq(&self, other: &Self) -> bool {
        self.python == other.python && self.isolation() == other.isolation()
    }
}

impl Eq for PythonRunner {}

impl PythonRunner {
    /// A runner using the given interpreter.
    pub fn new(python: impl Into<PathBuf>) -> Self {
        PythonRunner {
            python: python.into(),
            fork: None,
        }
    }

    /// The same runner, its runs forked by `server`'s warm worker for this interpreter (started
    /// now, in the background, so the first run finds it ready).
    pub fn with_fork_server(self, server: ForkServer) -> Self {
        server.prestart(&self.python);
        PythonRunner {
            fork: Some(server),
            ..self
        }
    }

    /// How this runner isolates a handler run.
    pub fn isolation(&self) -> Isolation {
        match self.fork {
            Some(_) => Isolation::Fork,
            None => Isolation::Process,
        }
    }

    /// A runner using `$BATON_PYTHON`, else `python3` from `PATH`.
    pub fn from_env() -> Self {
        let python = std::env::var_os(super::PYTHON_ENV)
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
        let inputs = absolute_inputs(&req.inputs)?;
        let context = ContextSettings {
            artifact_path: absolute(&req.context.artifact_path)?,
            ..req.context.clone()
        };
        let wire = |result_path: &Path| {
            serde_json::to_vec(&WireRequest {
                protocol: PROTOCOL,
                code_dir: &code_dir,
                code_source: req.code_source.as_deref(),
                module: &handler.module,
                function: &handler.function,
                params: &req.params,
                inputs: inputs.clone(),
                context: context.clone(),
                stop_condition: req.stop_condition.as_deref(),
                env: &req.env,
                keep_bytecode: req.keep_bytecode,
                result_path,
            })
            .map_err(|e| Error::runtime_from("Could not encode the handler request", e))
        };
        let cap = LogCap::from_env()?;
        let (output, log_write) = std::io::pipe()
            .io_context(|| "Could not create a pipe for the handler's output".into())?;
        // The handler watches the read end of this pipe and kills its whole group when it
        // closes: the write end lives only here, so the end of this run (dropped, or this
        // process killed, even by SIGKILL) takes the handler and everything it started along.
        let (watch_read, watch_write) = watch_pipe()?;

        let (ended, text) = match &self.fork {
            None => {
                Scratch::remove_stale();
                let scratch = Scratch::create()?;
                let result_path = scratch.path().join("result.json");
                let request_path = scratch.path().join("request.json");
                // The request holds every parameter, secrets included: readable by this user
                // only.
                write_private(&request_path, &wire(&result_path)?)
                    .io_context(|| format!("Could not write `{}`", request_path.display()))?;
                let child = self.spawn_cold(
                    &handler,
                    &code_dir,
                    &request_path,
                    log_write,
                    &watch_read,
                    &scratch,
                )?;
                drop(watch_read);
                let copied = spawn_log_copy(output, log, cap)?;
                let status = ProcessGroup::new(child, watch_write)
                    .wait()
                    .await
                    .map_err(|e| {
                        Error::runtime_from(
                            format!("Lost track of the process of handler `{handler}`"),
                            e,
                        )
                    })?;
                finish_log_copy(copied).await;
                let text = match fs::read(&result_path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => {
                        return Err(Error::io(
                            format!("Could not read `{}`", result_path.display()),
                            e,
                        ))
                    }
                };
                (describe(status), text)
            }
            Some(server) => {
                let step = server.step_dir(&self.python)?;
                let body = wire(&step.path().join("result.json"))?;
                let (result_read, result_write) = result_pipe()?;
                let copied = spawn_log_copy(output, log, cap)?;
                let fds = RunFds {
                    log: log_write.into(),
                    watch: watch_read,
                    result: result_write,
                };
                let followed = follow_forked(
                    server.run(&self.python, &handler, &body, fds),
                    result_read,
                    copied,
                )
                .await;
                drop(watch_write);
                let (ended, text) = followed?;
                let text = text
                    .io_context(|| format!("Could not read the result of handler `{handler}`"))?;
                (ended, text)
            }
        };

        if text.is_empty() {
            return Err(Error::runtime(format!(
                "Handler `{handler}` ended ({ended}) without reporting a result; see the log `{}`",
                log.display()
            )));
        }
        serde_json::from_slice(&text).map_err(|e| {
            Error::runtime_from(
                format!("Handler `{handler}` reported a result the runner cannot read"),
                e,
            )
        })
    }

    /// Starts `python -u -c <bootstrap> <request>` in a process group of its own, its output on
    /// `log_write`, holding `watch_read` and the scratch folder's lock.
    fn spawn_cold(
        &self,
        handler: &HandlerRef,
        code_dir: &Path,
        request_path: &Path,
        log_write: std::io::PipeWriter,
        watch_read: &OwnedFd,
        scratch: &Scratch,
    ) -> Result<Child> {
        let stderr = log_write
            .try_clone()
            .io_context(|| "Could not create a pipe for the handler's output".into())?;
        let mut command = Command::new(&self.python);
        command
            .arg("-u") // unbuffered, so stdout and stderr land in the log in the order written
            .arg("-c")
            .arg(BOOTSTRAP)
            .arg(request_path)
            .current_dir(code_dir)
            .stdin(Stdio::null())
            .stdout(log_write)
            .stderr(stderr)
            .kill_on_drop(true);
        command.process_group(0);
        let inherited = [watch_read.as_raw_fd(), scratch.lock_fd()];
        command.env("BATON_WATCH_FD", inherited[0].to_string());
        // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2),
        // which is async-signal-safe, on descriptors this process owns for the whole spawn.
        unsafe {
            command.pre_exec(move || {
                // Keep the watch pipe and the scratch folder's lock across exec: the lock then
                // stays held while any process of the run lives.
                for fd in inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        // The command holds the pipe's write ends; it is dropped on return, so the copy sees
        // the end of the output once every process of the handler's group is gone.
        command.spawn().map_err(|e| {
            Error::runtime_from(
                format!(
                    "Could not start Python `{}` for handler `{handler}` (set BATON_PYTHON to \
                     the interpreter to use)",
                    self.python.display()
                ),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    code_source: Option<&'a str>,
    module: &'a str,
    function: &'a str,
    params: &'a Map<String, Value>,
    inputs: BTreeMap<String, String>,
    context: ContextSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_condition: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    keep_bytecode: bool,
    result_path: &'a Path,
}

/// The child, and its process group while it may still be running. Dropping it before
/// [`ProcessGroup::wait`] returns kills the whole group: the handler and anything it started.
struct ProcessGroup {
    child: Child,
    /// `Some` until the child is reaped; after that the id could belong to someone else.
    pgid: Option<i32>,
    /// The write end of the handler's watch pipe, closed when the run ends.
    _watch: OwnedFd,
}

impl ProcessGroup {
    fn new(child: Child, watch: OwnedFd) -> Self {
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        ProcessGroup {
            child,
            pgid,
            _watch: watch,
        }
    }

    /// Waits for the handler to exit, then kills what it left in its group (a subprocess it
    /// started, a forked child) before reaping it: a run ends with all of its processes.
    async fn wait(mut self) -> std::io::Result<ExitStatus> {
        if let Some(pgid) = self.pgid {
            // Wait without reaping: while the leader is a zombie its id cannot be reused, so
            // the group kill below reaches only this run's processes.
            tokio::task::spawn_blocking(move || wait_exited(pgid))
                .await
                .map_err(std::io::Error::other)??;
            // SAFETY: kill(2) has no memory-safety preconditions; the group is ours (above).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let status = self.child.wait().await?;
        self.pgid = None;
        Ok(status)
    }
}

/// Blocks until child `pid` has exited, leaving it to be reaped (`WNOWAIT`).
fn wait_exited(pid: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t for waitid(2) to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(2) on our own child with a valid out-pointer.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
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

/// A pipe whose two ends are closed on exec (the read end is kept for the handler by hand).
pub(super) fn watch_pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(Error::io(
            "Could not create the pipe that ties the handler to the runner",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The pipe a forked child writes its result into: the write end blocking (the child's), the
/// read end ready for tokio.
fn result_pipe() -> Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
    let (read, write) = watch_pipe()?;
    let read = tokio::net::unix::pipe::Receiver::from_owned_fd(read)
        .io_context(|| "Could not create the pipe for the handler's result".into())?;
    Ok((read, write))
}

/// Follows a forked run until its result and its output are complete, or until its worker
/// reports how it ended; returns that report (`exited` when the run was complete first) and the
/// result's bytes.
///
/// The child closes its output, then writes its result and leaves: once both pipes are at their
/// end, there is nothing more to wait for. Dropping `run` then closes the connection, and the
/// worker kills what is left of the child's group and reaps it while the next step starts: the
/// child's exit (tearing down its copy of the interpreter) and the worker's report are off the
/// run's path. A child that ends without a result (killed, crashed) is followed to its report,
/// which says how it ended. A process that left the child's group and still holds a pipe gets
/// [`LOG_DRAIN_GRACE`] once the report is in.
async fn follow_forked(
    run: impl std::future::Future<Output = Result<String>>,
    mut result: tokio::net::unix::pipe::Receiver,
    copied: tokio::sync::oneshot::Receiver<Result<u64>>,
) -> Result<(String, std::io::Result<Vec<u8>>)> {
    use tokio::io::AsyncReadExt;
    let mut text = Vec::new();
    let read = result.read_to_end(&mut text);
    tokio::pin!(run, read, copied);
    let (mut read_done, mut log_done) = (None, None);
    let ended = loop {
        tokio::select! {
            ended = &mut run => break Some(ended?),
            done = &mut read, if read_done.is_none() => read_done = Some(done),
            done = &mut copied, if log_done.is_none() => log_done = Some(done),
        }
        if matches!(read_done, Some(Ok(n)) if n > 0) && log_done.is_some() {
            break None;
        }
    };
    let read_done = match read_done {
        Some(done) => done,
        None => tokio::time::timeout(LOG_DRAIN_GRACE, &mut read)
            .await
            .unwrap_or(Ok(0)),
    };
    match log_done {
        Some(done) => report_log_copy(Ok(done)),
        None => report_log_copy(tokio::time::timeout(LOG_DRAIN_GRACE, &mut copied).await),
    }
    let ended = ended.unwrap_or_else(|| "exited".to_string());
    Ok((ended, read_done.map(|_| text)))
}

/// Writes a file only its owner can read (`0600`).
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(body)
}

/// A run's private scratch folder (`$TMPDIR/baton-run-*`, mode `0700`), removed when dropped.
///
/// It holds an exclusive lock on its `owner.lock` file (which names the owner's pid) for as
/// long as a process of the run lives; the handler inherits it. A folder whose lock nobody holds
/// any more was left by a runner killed before it could remove it, and the next run removes it.
pub(super) struct Scratch {
    dir: tempfile::TempDir,
    lock: fs::File,
}

/// The lock file inside a scratch folder.
const SCRATCH_LOCK: &str = "owner.lock";

/// Scratch folders without a lock file (from before the lock) are removed once this old.
const LOCKLESS_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

impl Scratch {
    /// A new scratch folder. The folders earlier runs left behind are removed by
    /// [`Scratch::remove_stale`], which the caller runs where it costs least.
    pub(super) fn create() -> Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir()
            .io_context(|| "Could not create a temporary folder for the handler run".into())?;
        let path = dir.path().join(SCRATCH_LOCK);
        let mut lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .io_context(|| format!("Could not create `{}`", path.display()))?;
        // Locked first, then the pid written: a cleaner that finds the lock free and a pid
        // inside knows the owner came and went.
        flock(&lock, libc::LOCK_EX)
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .io_context(|| format!("Could not lock `{}`", path.display()))?;
        Ok(Scratch { dir, lock })
    }

    /// Removes the scratch folders in the temporary folder that their owners left behind (a
    /// scan of the whole folder, which takes milliseconds where it holds thousands of entries).
    pub(super) fn remove_stale() {
        remove_stale_scratch(&std::env::temp_dir());
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    fn lock_fd(&self) -> RawFd {
        self.lock.as_raw_fd()
    }
}

const SCRATCH_PREFIX: &str = "baton-run-";

/// Removes the scratch folders in `tmp` that their owners left behind: no process holds their
/// lock and it names a pid, or (from before the lock) they have none and are old. Best effort:
/// a folder that cannot be inspected or removed is left alone.
fn remove_stale_scratch(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
        {
            continue;
        }
        let dir = entry.path();
        let stale = match fs::File::open(dir.join(SCRATCH_LOCK)) {
            Ok(mut lock) => {
                let mut owner = String::new();
                flock(&lock, libc::LOCK_EX | libc::LOCK_NB).is_ok()
                    && lock.read_to_string(&mut owner).is_ok()
                    && !owner.trim().is_empty()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > LOCKLESS_STALE_AFTER)),
            Err(_) => false,
        };
        if stale {
            tracing::debug!(folder = %dir.display(), "removing a stale scratch folder");
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// flock(2) on an open file.
fn flock(file: &fs::File, operation: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock(2) on a descriptor `file` keeps open for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Copies the handler's output (one pipe for stdout and stderr, so the log keeps the order it
/// was written in) into `log` under `cap`, on a copy thread (see [`super::log_threads`]). The
/// copy ends when every process holding the pipe is gone.
fn spawn_log_copy(
    output: std::io::PipeReader,
    log: &Path,
    cap: LogCap,
) -> Result<tokio::sync::oneshot::Receiver<Result<u64>>> {
    if let Some(parent) = log.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .io_context(|| format!("Could not create the log folder `{}`", parent.display()))?;
    }
    let (done, copied) = tokio::sync::oneshot::channel();
    let log = log.to_path_buf();
    super::log_threads::LOG_THREADS
        .spawn(move || {
            let _ = done.send(copy_capped(output, &log, cap));
        })
        .io_context(|| "Could not start the log copy".into())?;
    Ok(copied)
}

/// Waits for the log copy to drain what the handler wrote. A process that left the handler's
/// group (`setsid`) may keep the pipe open: after [`LOG_DRAIN_GRACE`] the run goes on without
/// the rest of its output.
async fn finish_log_copy(copied: tokio::sync::oneshot::Receiver<Result<u64>>) {
    report_log_copy(tokio::time::timeout(LOG_DRAIN_GRACE, copied).await);
}

/// Warns about a log copy that did not copy everything, or did not finish in time.
fn report_log_copy(
    copied: std::result::Result<
        std::result::Result<Result<u64>, tokio::sync::oneshot::error::RecvError>,
        tokio::time::error::Elapsed,
    >,
) {
    match copied {
        Ok(Ok(Ok(0))) => {}
        Ok(Ok(Ok(dropped))) => {
            tracing::warn!("the handler's output reached the log's cap: {dropped} bytes dropped")
        }
        Ok(Ok(Err(err))) => tracing::warn!("the handler's output was not all logged: {err}"),
        Ok(Err(_)) => tracing::warn!("the log copy stopped early"),
        Err(_) => tracing::warn!(
            "a process that left the handler's process group still holds its output open; \
             the run's log may miss its last lines"
        ),
    }
}

/// How long a finished handler's output may take to drain into the log.
const LOG_DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

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
