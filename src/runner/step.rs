//! `baton runner UID`: execute one recorded run, resolving its code at start-up.
//!
//! This is the "pull at runtime" half of the spec: nothing before this point has downloaded the
//! function's code. The runner reads the run record, resolves the function's source through the
//! database (a `store://` artifact, a local archive or a `.py` file) into the code cache, runs
//! the handler through [`PythonRunner`], and records state, results, artifacts and the exact
//! code version it used. SIGTERM, SIGINT or SIGHUP abort the handler and record the run as
//! `aborted`; the runner gets SIGTERM when the process that started it dies, even by SIGKILL.

use std::path::Path;

use super::{ContextSettings, HandlerRequest, PythonRunner, RunState as HandlerState};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::launcher::{log_path, now, shutdown_signal};
use crate::model::{RunObject, RunState};
use crate::project::Project;

/// Executes the recorded run `uid` and returns its final record.
///
/// Every state change is conditional ([`Db::update_active_run`]): a run settled meanwhile by
/// someone else (the process that started this runner found it dead, or a reader found the
/// workflow's driver dead) keeps that record, and this runner stops.
pub async fn run_step(project: &Project, db: &dyn Db, uid: &str) -> Result<RunObject> {
    // Listen first, so a signal from here on aborts the run instead of killing the runner
    // before it can record anything.
    let shutdown = shutdown_signal();
    let mut run = db.read_run(project.name(), uid).await?;
    if run.status.state.is_terminal() {
        return Err(already_ended(&run));
    }
    run.status.state = RunState::Running;
    run.status.start_time = Some(now());
    run.status.last_update = run.status.start_time.clone();
    if !db.update_active_run(&run).await? {
        return Err(already_ended(&db.read_run(project.name(), uid).await?));
    }

    let outcome = tokio::select! {
        outcome = execute(project, db, &mut run) => Some(outcome),
        _ = shutdown => None,
    };
    match outcome {
        Some(Ok(handler)) => {
            run.status.state = match handler.state {
                HandlerState::Completed => RunState::Completed,
                HandlerState::Error => RunState::Error,
            };
            run.status.results = handler.results;
            run.status.artifacts = handler
                .artifacts
                .iter()
                .map(|a| serde_json::to_value(a).expect("artifacts serialize"))
                .collect();
            run.status.error = handler.error;
            run.status.failure_kind = handler.failure_kind;
        }
        Some(Err(err)) => {
            tracing::error!("{err}");
            run.status.state = RunState::Error;
            run.status.error = Some(error_chain(&err));
            run.status.failure_kind = super::failure_kind_of(&err);
        }
        None => {
            tracing::warn!("run `{uid}` aborted by a signal");
            run.status.state = RunState::Aborted;
            run.status.error = Some("Run aborted".into());
        }
    }
    run.status.end_time = Some(now());
    run.status.last_update = run.status.end_time.clone();
    if !db.update_active_run(&run).await? {
        // Settled by someone else first: theirs is the record.
        return db.read_run(project.name(), uid).await;
    }
    Ok(run)
}

fn already_ended(run: &RunObject) -> Error {
    Error::conflict(format!(
        "Run `{}` already ended in state `{}`",
        run.metadata.uid, run.status.state
    ))
}

/// An error with its causes, on one line, for the run record.
fn error_chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

async fn execute(
    project: &Project,
    db: &dyn Db,
    run: &mut RunObject,
) -> Result<super::HandlerOutcome> {
    let function_name = run
        .spec
        .function
        .rsplit('/')
        .next()
        .unwrap_or(&run.spec.function)
        .to_string();
    let function = project.function(&function_name)?;
    let source = function.url.clone().ok_or_else(|| {
        Error::invalid(format!(
            "Function `{function_name}` has no source (`url`) to run"
        ))
    })?;
    let handler = run
        .spec
        .handler
        .clone()
        .or(function.handler.clone())
        .ok_or_else(|| {
            Error::invalid(format!("No handler given for function `{function_name}`"))
        })?;
    let code = project.resolve_source(db, &source).await?;
    tracing::info!(source = %source, digest = %code.record.digest, dir = %code.dir.display(), "code resolved");
    // A bare function name of a `.py` source runs from that file.
    let handler = match (&code.file_stem, handler.contains(':')) {
        (Some(stem), false) => format!("{stem}:{handler}"),
        _ => handler,
    };
    run.status.code = Some(code.record.clone());
    if !db.update_active_run(run).await? {
        return Err(already_ended(
            &db.read_run(project.name(), &run.metadata.uid).await?,
        ));
    }

    let output = run
        .spec
        .output_path
        .clone()
        .unwrap_or_else(|| project.resolve_artifact_path(None));
    let request = HandlerRequest {
        code_dir: code.dir,
        code_source: Some(source.clone()),
        handler,
        params: run.spec.parameters.clone(),
        inputs: run.spec.inputs.clone(),
        context: ContextSettings {
            uid: run.metadata.uid.clone(),
            name: run.metadata.name.clone(),
            project: run.metadata.project.clone(),
            artifact_path: Path::new(&output).join(&run.metadata.uid),
            labels: run.metadata.labels.clone(),
        },
    };
    PythonRunner::from_env()
        .run(&request, &log_path(project, &run.metadata.uid))
        .await
}
