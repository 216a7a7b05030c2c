//! The fork transport: a warm Python worker (a "zygote") per interpreter, forking one child per
//! handler run.
//!
//! # Protocol
//!
//! The worker is `python -u -c <loader> <folder> <program>`, where `<folder>` is a private
//! scratch folder (`0700`, locked by this process like every run's scratch) holding the worker's
//! socket `zygote.sock` (`0600`), and `<program>` the folder holding `zygote.py` and
//! `bootstrap.py` ([`program_dir`]). It imports the bootstrap, binds the socket, prints `ready`
//! and waits. Each handler run is one connection:
//!
//! 1. the runner sends the bootstrap's request (protocol 1, unchanged) as a 4-byte big-endian
//!    length and JSON, with three descriptors attached (`SCM_RIGHTS`): the write end of the run's
//!    log pipe, whose read end this process copies into the log under its cap as for a fresh
//!    process, the read end of the run's watch pipe, and the write end of the run's result pipe;
//! 2. the worker hands the request to its spare, a child it forked while idle (in its own
//!    process group, the worker's descriptors closed, waiting on a socket pair), or forks a child
//!    now when it has none (a burst of requests); the child points stdout and stderr at the log
//!    pipe, runs the request, writes the result's JSON into the result pipe (no file: a forked
//!    step creates, renames and removes nothing, and its folder `<folder>/steps/<n>/` is created
//!    only for downloaded inputs), then leaves with `os._exit`; the worker answers `{"pid": N}`;
//! 3. when the child exits the worker kills its process group (while the unreaped leader still
//!    holds the group id, so no other process can be hit), reaps it, and answers
//!    `{"exit": code}` or `{"signal": number}`.
//!
//! # Who kills and reaps what
//!
//! The worker reaps its children, its spare included (a spare whose worker is gone sees its
//! socket pair end and leaves); this process reaps the worker. A run that is dropped before it
//! ends (a timeout, a terminate) closes its connection: the worker kills the child's group at
//! once, and the closed watch pipe ends the group too (see the bootstrap's `_die_with_runner`),
//! which also covers a worker that is gone. A worker that dies fails the runs it had in flight (their connections
//! end without an exit report) with a message saying so, and the next run starts a new one. The
//! worker dies with this process: it is killed when its [`ForkServer`] is dropped, gets SIGKILL
//! when this process dies (Linux's parent-death signal), and exits when its stdin closes.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::python::{Scratch, BOOTSTRAP};
use super::HandlerRef;
use crate::error::IoResultExt;
use crate::{Error, Result};

/// The worker's program, shipped inside the binary like the bootstrap.
const ZYGOTE: &str = include_str!("python/zygote.py");

/// What `python -c` runs: the worker's program, loaded from its file so that Python finds its
/// compiled code (and the bootstrap's) in `__pycache__` beside it, compiled there by the first
/// worker of this interpreter (even under `PYTHONDONTWRITEBYTECODE`, which is about the user's
/// folders, not this cache).
const LOADER: &str = "import os, sys, importlib.util as u
for f in ('zygote.py', 'bootstrap.py'):
    p = os.path.join(sys.argv[2], f)
    if not os.path.exists(u.cache_from_source(p)):
        import py_compile
        py_compile.compile(p, doraise=False)
s = u.spec_from_file_location('baton_zygote', os.path.join(sys.argv[2], 'zygote.py'))
m = u.module_from_spec(s)
sys.modules['baton_zygote'] = m
s.loader.exec_module(m)
m.Zygote().serve()
";

/// How long a new worker may take to import the bootstrap and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Warm Python workers, one per interpreter, started on first use and restarted when one dies.
/// Cheap to clone (clones share the workers); the workers are killed when the last clone is
/// dropped.
#[derive(Clone, Default)]
pub struct ForkServer {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    workers: Mutex<HashMap<PathBuf, Arc<Worker>>>,
    next_step: AtomicU64,
}

impl std::fmt::Debug for ForkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let workers = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("ForkServer")
            .field("workers", &workers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Two handles are equal when they share their workers.
impl PartialEq for ForkServer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for ForkServer {}

impl ForkServer {
    /// A server with no worker yet.
    pub fn new() -> Self {
        ForkServer::default()
    }

    /// Starts the worker for `python` in the background if none runs, so that the first run
    /// does not wait for the interpreter's start-up. Needs a tokio runtime; without one (or if
    /// the worker cannot start) the first run starts it and reports what went wrong.
    pub fn prestart(&self, python: &Path) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if let Err(err) = self.worker(python) {
            tracing::debug!("the warm Python worker did not start: {err}");
        }
    }

    /// The process id of the live worker for `python`, if there is one.
    pub fn worker_pid(&self, python: &Path) -> Option<u32> {
        let workers = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.get(python).filter(|w| w.alive()).map(|w| w.pid)
    }

    /// The worker for `python`, started if none runs or the last one died.
    fn worker(&self, python: &Path) -> Result<Arc<Worker>> {
        let mut workers = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(worker) = workers.get(python).filter(|w| w.alive()) {
            return Ok(worker.clone());
        }
        let worker = Arc::new(Worker::start(python)?);
        workers.insert(python.to_path_buf(), worker.clone());
        Ok(worker)
    }

    /// The folder of one run inside the worker's private folder, where the child puts the
    /// inputs it downloads; created by the child only then, and removed when dropped.
    pub(super) fn step_dir(&self, python: &Path) -> Result<StepDir> {
        let worker = self.worker(python)?;
        let n = self.inner.next_step.fetch_add(1, Ordering::Relaxed);
        let path = worker.scratch.path().join("steps").join(n.to_string());
        Ok(StepDir {
            path,
            _worker: worker,
        })
    }

    /// Runs one request in a child of `python`'s worker, its output on `log` and its result
    /// written into `result`, and returns how the child ended (`exit status 0`, `killed by
    /// signal 9`). Dropping the future kills the child's process group.
    pub(super) async fn run(
        &self,
        python: &Path,
        handler: &HandlerRef,
        body: &[u8],
        fds: RunFds,
    ) -> Result<String> {
        self.run_request(python, &format!("handler `{handler}`"), body, fds)
            .await
    }

    /// Runs the Python file `file` (a program of baton's own, in a folder of
    /// `<cache>/python/<digest>/`) as `python -B <file> <argv...>` in `cwd` would, in a child of
    /// `python`'s worker, its stdout and stderr written to `output`; returns how it ended
    /// (`exit status 0`, `killed by signal 9`). Dropping the future kills the child's process
    /// group.
    pub async fn run_program(
        &self,
        python: &Path,
        file: &Path,
        argv: &[String],
        cwd: &Path,
        output: OwnedFd,
    ) -> Result<String> {
        let body = serde_json::to_vec(&serde_json::json!({
            "kind": "program",
            "file": file,
            "argv": argv,
            "cwd": cwd,
        }))
        .map_err(|e| Error::runtime_from("Could not encode the program request", e))?;
        let (watch_read, watch_write) = super::python::watch_pipe()?;
        let (_unused, result) = super::python::watch_pipe()?;
        let fds = RunFds {
            log: output,
            watch: watch_read,
            result,
        };
        let what = format!("program `{}`", file.display());
        let ended = self.run_request(python, &what, &body, fds).await;
        drop(watch_write);
        ended
    }

    /// Sends `body` with `fds` to `python`'s worker (started, or restarted once if it died
    /// between runs) and follows the child to its end; `what` names the run in messages.
    async fn run_request(
        &self,
        python: &Path,
        what: &str,
        body: &[u8],
        fds: RunFds,
    ) -> Result<String> {
        let RunFds { log, watch, result } = fds;
        let fds = [log.as_raw_fd(), watch.as_raw_fd(), result.as_raw_fd()];
        let mut restarted = false;
        loop {
            let worker = self.worker(python)?;
            worker.wait_ready(python).await?;
            match send_request(&worker.socket, body, &fds) {
                Ok(stream) => {
                    // The worker holds its own copies now: only the child keeps the log and
                    // the result pipe open.
                    drop(log);
                    drop(watch);
                    drop(result);
                    return worker.follow(stream, python, what).await;
                }
                // A worker that died between runs: this run never reached it, so start another.
                Err(err) if !restarted => {
                    tracing::debug!("the warm Python worker is gone ({err}); restarting it");
                    worker.kill();
                    restarted = true;
                }
                Err(err) => {
                    worker.kill();
                    return Err(Error::runtime_from(
                        format!(
                            "Could not reach the warm Python worker of `{}` for {what}",
                            python.display()
                        ),
                        err,
                    ));
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The descriptors a run hands its child.
pub(super) struct RunFds {
    /// The write end of the pipe whose read end is copied into the run's log.
    pub log: OwnedFd,
    /// The read end of the run's watch pipe (see the bootstrap's `_die_with_runner`).
    pub watch: OwnedFd,
    /// The write end of the pipe the child writes its result into.
    pub result: OwnedFd,
}

/// One run's folder inside its worker's scratch folder.
pub(super) struct StepDir {
    path: PathBuf,
    /// Keeps the worker's folder (which holds this one) alive.
    _worker: Arc<Worker>,
}

impl StepDir {
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StepDir {
    fn drop(&mut self) {
        if self.path.exists() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A running worker process.
struct Worker {
    /// `bootstrap.py`, the socket and the runs' folders; removed when the worker is dropped.
    scratch: Scratch,
    socket: PathBuf,
    pid: u32,
    /// `None` once killed (a task reaps it).
    child: Mutex<Option<Child>>,
    /// The worker exits when this closes (this process is gone).
    _lifeline: ChildStdin,
    /// Where the worker says `ready`, read once.
    stdout: tokio::sync::Mutex<Option<ChildStdout>>,
    ready: tokio::sync::OnceCell<std::result::Result<(), String>>,
    dead: AtomicBool,
}

/// What the worker answers on a run's connection.
#[derive(Deserialize)]
struct Reply {
    pid: Option<u32>,
    exit: Option<i32>,
    signal: Option<i32>,
    error: Option<String>,
}

impl Worker {
    fn start(python: &Path) -> Result<Worker> {
        let scratch = Scratch::create()?;
        let program = match program_dir() {
            Ok(dir) => dir,
            Err(err) => {
                tracing::debug!("the warm Python worker's code is not cached: {err}");
                write_programs(
                    scratch.path(),
                    &[("zygote.py", ZYGOTE), ("bootstrap.py", BOOTSTRAP)],
                )?;
                scratch.path().to_path_buf()
            }
        };
        let mut command = Command::new(python);
        command
            .arg("-u")
            .arg("-c")
            .arg(LOADER)
            .arg(scratch.path())
            .arg(&program)
            .current_dir(scratch.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env_remove("BATON_WATCH_FD")
            .kill_on_drop(true);
        // Its own group: a Ctrl-C meant for this process does not reach the worker (this
        // process stops the runs itself).
        command.process_group(0);
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: the closure runs in the forked child before exec and only calls prctl(2)
            // and getppid(2), which are async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::getppid() != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().map_err(|e| {
            Error::runtime_from(
                format!(
                    "Could not start the warm Python worker `{}` (set BATON_PYTHON to the \
                     interpreter to use)",
                    python.display()
                ),
                e,
            )
        })?;
        // While the interpreter starts, off the path of the first run.
        Scratch::remove_stale();
        let pid = child.id().unwrap_or_default();
        let lifeline = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        tracing::debug!(pid, python = %python.display(), "warm Python worker started");
        Ok(Worker {
            socket: scratch.path().join("zygote.sock"),
            scratch,
            pid,
            child: Mutex::new(Some(child)),
            _lifeline: lifeline,
            stdout: tokio::sync::Mutex::new(Some(stdout)),
            ready: tokio::sync::OnceCell::new(),
            dead: AtomicBool::new(false),
        })
    }

    fn alive(&self) -> bool {
        if self.dead.load(Ordering::Relaxed) {
            return false;
        }
        let running = {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
        };
        if !running {
            self.kill();
        }
        running
    }

    /// Marks the worker dead, kills it and reaps it; the next run starts another.
    fn kill(&self) {
        self.dead.store(true, Ordering::Relaxed);
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.start_kill();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = child.wait().await;
                });
            }
            // Without a runtime, tokio reaps the killed child later (`kill_on_drop`).
        }
    }

    /// Waits until the worker listens; a worker that exits first (a broken interpreter) is an
    /// error saying so.
    async fn wait_ready(&self, python: &Path) -> Result<()> {
        let ready = self
            .ready
            .get_or_init(|| async {
                let Some(stdout) = self.stdout.lock().await.take() else {
                    return Err("its output was already read".to_string());
                };
                let mut line = String::new();
                let mut stdout = BufReader::new(stdout);
                let read = stdout.read_line(&mut line);
                match tokio::time::timeout(READY_TIMEOUT, read).await {
                    Ok(Ok(_)) if line.trim() == "ready" => Ok(()),
                    Ok(Ok(_)) => Err("it exited before listening (its error is above)".into()),
                    Ok(Err(e)) => Err(format!("its output could not be read: {e}")),
                    Err(_) => Err(format!(
                        "it did not listen within {}",
                        humantime::format_duration(READY_TIMEOUT)
                    )),
                }
            })
            .await;
        ready.clone().map_err(|why| {
            self.kill();
            Error::runtime(format!(
                "The warm Python worker `{}` did not start: {why} (set BATON_PYTHON to the \
                 interpreter to use, or run with `--isolation process`)",
                python.display()
            ))
        })
    }

    /// Follows one run on its connection until the worker reports the child's exit.
    async fn follow(&self, stream: UnixStream, python: &Path, what: &str) -> Result<String> {
        let lost = |e: std::io::Error| {
            Error::runtime_from(
                format!("Lost the connection to the warm Python worker for {what}"),
                e,
            )
        };
        stream.set_nonblocking(true).map_err(lost)?;
        let mut lines =
            BufReader::new(tokio::net::UnixStream::from_std(stream).map_err(lost)?).lines();
        let mut child = None;
        loop {
            let Some(line) = lines.next_line().await.map_err(lost)? else {
                // The connection ended without an exit report: the worker died.
                self.kill();
                return Err(Error::runtime(format!(
                    "The warm Python worker of `{}` (pid {}) died while {what} ran{}; \
                     the step failed, and the next one starts a new worker",
                    python.display(),
                    self.pid,
                    child.map_or_else(String::new, |pid| format!(" (in process {pid})"))
                )));
            };
            let reply: Reply = serde_json::from_str(&line).map_err(|e| {
                Error::runtime_from(
                    format!("The warm Python worker answered `{line}` for {what}"),
                    e,
                )
            })?;
            if let Some(error) = reply.error {
                return Err(Error::runtime(format!(
                    "The warm Python worker could not start {what}: {error}"
                )));
            }
            if let Some(signal) = reply.signal {
                return Ok(format!("killed by signal {signal}"));
            }
            if let Some(code) = reply.exit {
                return Ok(format!("exit status {code}"));
            }
            if let Some(pid) = reply.pid {
                tracing::trace!(pid, what, "handler forked");
                child = Some(pid);
            }
        }
    }
}

/// `<cache>/python/<digest>/`, the worker's program and the bootstrap as files in the user's
/// cache (see [`cached_programs`]): Python compiles them once and finds their compiled code in
/// `__pycache__` at every later start, which saves compiling 30 KB of source (about 6 ms) each
/// time a worker starts.
fn program_dir() -> Result<PathBuf> {
    cached_programs(&[("zygote.py", ZYGOTE), ("bootstrap.py", BOOTSTRAP)])
}

/// The folder `<cache>/python/<digest>/` (created `0700`) holding `files` (name, source), named
/// by a digest of them all, written when missing. Python programs of baton's own live there, so
/// that their compiled code can be kept beside them.
pub(crate) fn cached_programs(files: &[(&str, &str)]) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for (name, text) in files {
        digest.update(name);
        digest.update([0]);
        digest.update(text);
        digest.update([0]);
    }
    let dir = crate::code::CodeCache::default_root()?
        .join("python")
        .join(&hex::encode(digest.finalize())[..16]);
    let complete = files.iter().all(|(name, text)| {
        fs::metadata(dir.join(name)).is_ok_and(|m| m.len() == text.len() as u64)
    });
    if !complete {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .io_context(|| format!("Could not create `{}`", dir.display()))?;
        write_programs(&dir, files)?;
    }
    Ok(dir)
}

/// Writes `files` (name, source) into `dir`, each whole or not at all (a temporary file renamed),
/// so a worker starting meanwhile never reads half a file.
fn write_programs(dir: &Path, files: &[(&str, &str)]) -> Result<()> {
    for (name, text) in files {
        let path = dir.join(name);
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .io_context(|| format!("Could not write `{}`", path.display()))?;
        file.write_all(text.as_bytes())
            .io_context(|| format!("Could not write `{}`", path.display()))?;
        file.persist(&path)
            .map_err(|e| Error::io(format!("Could not write `{}`", path.display()), e.error))?;
    }
    Ok(())
}

/// Connects to a worker and sends one request with `fds` attached.
fn send_request(socket: &Path, body: &[u8], fds: &[RawFd]) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket)?;
    let mut message = Vec::with_capacity(body.len() + 4);
    let length = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    message.extend_from_slice(&length.to_be_bytes());
    message.extend_from_slice(body);
    let sent = send_with_fds(&stream, &message, fds)?;
    stream.write_all(&message[sent..])?;
    Ok(stream)
}

/// sendmsg(2) of (a first part of) `data` with `fds` attached as `SCM_RIGHTS`; returns the
/// number of bytes sent.
fn send_with_fds(stream: &UnixStream, data: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    let fds_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fds_len as u32) } as usize;
    // u64s, so the control buffer is aligned for `cmsghdr`.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at a control buffer of `space` bytes, enough for one header with
    // `fds_len` bytes of data, so the first header and its data are inside it.
    let sent = unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(fds_len as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(header), fds_len);
        libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent as usize)
}
