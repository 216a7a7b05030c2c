//! The Python workflow loader: runs the tracer shim (`tracer.py`, compiled into the binary) on an
//! MLRun/KFP-style workflow file and reads back the graph it records.
//!
//! The shim stands in for `mlrun` and `kfp.dsl`, so neither needs to be installed. It writes its
//! answer to a result file of its own, never to stdout, because user code may print.
//!
//! What the recorded graph looks like:
//! - Pipeline parameters are the handler's parameters (`*args`/`**kwargs` aside); a Python default
//!   becomes the parameter's default (`None` gives an explicit `null` default), none means required.
//! - Placeholders render as `{{args.<param>}}` and `{{steps.<step>.outputs.<key>}}`; inside
//!   f-strings, `str()` and `+` with a string they become text around the reference.
//! - A step is named by `name=`, else after its function; `build_function` and `deploy_function`
//!   steps are `build-<function>` and `deploy-<function>` (as MLRun names its KFP ops). A repeated
//!   name gets `-2`, `-3`, ... (KFP's rule).
//! - `when` is `<operand> <op> <operand>`, with `op` one of `== != < <= > >=` and each operand a
//!   reference or a JSON literal (`"prod"`, `0`, `true`, `null`); nested `dsl.Condition` /
//!   `dsl.If` blocks join their conditions with ` and `.
//! - `step.after(group)` with a `with dsl.Condition(..) as group:` (or `dsl.If`) group that has
//!   ended orders the step after every step recorded in the group and its inner groups, as KFP
//!   does: one `after` entry per step.
//! - At trace time a step prints as `<step name>` and `step.outputs` as its declared outputs with
//!   their references, so `print()` and f-strings over them work.
//! - `step.set_retry(n, backoff_duration=..)` and `step.set_timeout(..)` fill `retries` and
//!   `timeout`.
//!
//! Everything else on the stand-ins, and any use of a placeholder in Python control flow or
//! arithmetic, is refused with the construct and the line of user code that touched it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::{Error, IoResultExt, Result};
use crate::logs::read_tail;
use crate::runner::{cached_programs, ForkServer};
use crate::workflow::graph::WorkflowGraph;
use crate::workflow::load::{LoadOptions, PYTHON_ENV};

/// The tracer shim, run as `python -B -c TRACER <file> <handler> <name> <result>`.
const TRACER: &str = include_str!("tracer.py");

/// What the shim writes to the result file.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum TracerResult {
    Graph(serde_json::Value),
    Error(TracerError),
}

/// A load failure, located in the user's code when the shim knows where.
#[derive(Deserialize)]
struct TracerError {
    message: String,
    hint: Option<String>,
    file: Option<String>,
    line: Option<u32>,
}

/// Traces the Python workflow at `path` into a graph named `opts.name`.
pub(crate) fn load_python_workflow(path: &Path, opts: &LoadOptions) -> Result<WorkflowGraph> {
    let label = opts.label(path);
    let absolute = std::path::absolute(path)
        .io_context(|| format!("cannot resolve workflow path `{}`", label))?;
    let scratch = tempfile::tempdir()
        .io_context(|| "cannot create a temporary folder for the workflow tracer".to_string())?;
    let result_path = scratch.path().join("graph.json");
    let argv = [
        absolute.to_string_lossy().into_owned(),
        opts.handler.clone().unwrap_or_default(),
        opts.name.clone(),
        result_path.to_string_lossy().into_owned(),
        opts.project
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("projects serialize"))
            .unwrap_or_default(),
    ];
    let traced = match forked_runtime(opts) {
        Some((server, runtime)) => run_forked_tracer(
            &server,
            &runtime,
            &opts.python,
            &argv,
            scratch.path(),
            opts.timeout,
        ),
        None => run_tracer(
            Command::new(&opts.python)
                .arg("-B")
                .arg("-c")
                .arg(TRACER)
                .args(&argv),
            scratch.path(),
            opts.timeout,
        ),
    };
    let output = traced.map_err(|e| match e {
        TracerFailure::Start(e) => Error::runtime_from(
            format!(
                "cannot start the Python interpreter `{}` to load workflow `{}`; install \
                 Python 3 or set `{PYTHON_ENV}` to its path",
                opts.python.display(),
                label
            ),
            e,
        ),
        TracerFailure::TimedOut => Error::invalid_with_hint(
            format!(
                "workflow `{}` did not finish loading within {}",
                label,
                humantime::format_duration(opts.timeout)
            ),
            "the pipeline function only describes steps: it must not wait, loop forever or \
             read input",
        ),
        TracerFailure::Io(e) => Error::io("the workflow tracer's output could not be read", e),
    })?;
    let text = match std::fs::read_to_string(&result_path) {
        Ok(text) if !text.is_empty() => text,
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error::runtime(format!(
                "the workflow tracer (`{}`) exited ({}) without a result for workflow `{}`; is \
                 it Python 3 (set `{PYTHON_ENV}`)? stderr: {}",
                opts.python.display(),
                output.status,
                label,
                tail(&stderr, 2000)
            )));
        }
    };
    if !output.stdout.is_empty() {
        tracing::debug!(
            workflow = %label,
            stdout = %String::from_utf8_lossy(&output.stdout),
            "output of the workflow file while tracing"
        );
    }
    let result: TracerResult = serde_json::from_str(&text).map_err(|e| {
        Error::runtime_from(
            format!("unreadable result from the workflow tracer for `{}`", label),
            e,
        )
    })?;
    match result {
        // The shim checks shapes, so what is left here comes from a user value such as a
        // duration text humantime does not read.
        TracerResult::Graph(graph) => serde_json::from_value(graph).map_err(|e| {
            Error::invalid(format!(
                "workflow `{}`: the traced graph is invalid: {e}",
                label
            ))
        }),
        TracerResult::Error(err) => Err(located_error(&label, &absolute, err)),
    }
}

/// Turns the shim's error into an InvalidArgument naming the workflow file and the line.
fn located_error(label: &str, absolute: &Path, err: TracerError) -> Error {
    let place = match (err.file, err.line) {
        (Some(file), Some(line)) if Path::new(&file) == absolute => {
            format!("workflow `{}` line {line}", label)
        }
        (Some(file), Some(line)) => {
            format!("`{file}` line {line} (loading workflow `{}`)", label)
        }
        _ => format!("workflow `{}`", label),
    };
    let message = format!("{place}: {}", err.message);
    match err.hint {
        Some(hint) => Error::invalid_with_hint(message, hint),
        None => Error::invalid(message),
    }
}

/// How much of the tracer's stdout and stderr is read back.
const OUTPUT_TAIL_BYTES: u64 = 64 * 1024;

/// The tracer process's exit status and the end of what it printed.
struct TracerOutput {
    status: TracerStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// How the tracer ended: a process of its own, or a child of a warm worker (as the worker
/// described it).
enum TracerStatus {
    Process(std::process::ExitStatus),
    Forked(String),
}

impl std::fmt::Display for TracerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TracerStatus::Process(status) => status.fmt(f),
            TracerStatus::Forked(ended) => f.write_str(ended),
        }
    }
}

enum TracerFailure {
    Start(std::io::Error),
    TimedOut,
    Io(std::io::Error),
}

/// Runs the tracer with its output in files (a chatty workflow cannot fill a pipe and stall
/// it) and kills it after `timeout`.
fn run_tracer(
    command: &mut Command,
    scratch: &Path,
    timeout: Duration,
) -> Result<TracerOutput, TracerFailure> {
    let stdout_path = scratch.join("stdout");
    let stderr_path = scratch.join("stderr");
    let stdout = std::fs::File::create(&stdout_path).map_err(TracerFailure::Io)?;
    let stderr = std::fs::File::create(&stderr_path).map_err(TracerFailure::Io)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(TracerFailure::Start)?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(TracerFailure::Io)? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TracerFailure::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // A chatty workflow may print any amount: only the ends are read, which is all a message
    // or a debug log shows.
    Ok(TracerOutput {
        status: TracerStatus::Process(status),
        stdout: read_tail(&stdout_path, OUTPUT_TAIL_BYTES).map_err(TracerFailure::Io)?,
        stderr: read_tail(&stderr_path, OUTPUT_TAIL_BYTES).map_err(TracerFailure::Io)?,
    })
}

/// The warm workers to fork the tracer from, and the runtime that drives them, when `opts`
/// names some and this thread can reach a tokio runtime.
fn forked_runtime(opts: &LoadOptions) -> Option<(ForkServer, tokio::runtime::Handle)> {
    let server = opts.fork.clone()?;
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some((server, runtime))
}

/// Runs the tracer in a child of `python`'s warm worker (the tracer's code compiled once and
/// kept in baton's cache), with its output in a file as [`run_tracer`] does, and kills it after
/// `timeout`. Called on a blocking thread: it waits on `runtime`.
fn run_forked_tracer(
    server: &ForkServer,
    runtime: &tokio::runtime::Handle,
    python: &Path,
    argv: &[String],
    scratch: &Path,
    timeout: Duration,
) -> Result<TracerOutput, TracerFailure> {
    let dir = cached_programs(&[("tracer.py", TRACER)])
        .map_err(|e| TracerFailure::Io(std::io::Error::other(e.chain().to_string())))?;
    let output_path = scratch.join("output");
    let output = std::fs::File::create(&output_path).map_err(TracerFailure::Io)?;
    let cwd = std::env::current_dir().map_err(TracerFailure::Io)?;
    let file = dir.join("tracer.py");
    let ended = runtime.block_on(async {
        tokio::time::timeout(
            timeout,
            server.run_program(python, &file, argv, &cwd, output.into()),
        )
        .await
    });
    let ended = match ended {
        Err(_) => return Err(TracerFailure::TimedOut),
        Ok(Err(e)) => {
            return Err(TracerFailure::Start(std::io::Error::other(
                e.chain().to_string(),
            )))
        }
        Ok(Ok(ended)) => ended,
    };
    // One file holds both streams: it stands for stdout and stderr alike.
    let output = read_tail(&output_path, OUTPUT_TAIL_BYTES).map_err(TracerFailure::Io)?;
    Ok(TracerOutput {
        status: TracerStatus::Forked(ended),
        stdout: output.clone(),
        stderr: output,
    })
}

/// The last `max` bytes of `text` (on a character boundary), trimmed.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim()
}
