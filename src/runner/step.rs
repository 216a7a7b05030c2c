//! `baton runner UID`: execute one recorded run, resolving its code at start-up.
//!
//! This is the "pull at runtime" half of the spec: nothing before this point has downloaded the
//! function's code. The runner reads the run record, resolves the code its function snapshot
//! pins (a `store://` artifact version, a local archive or a `.py` file) into the code cache,
//! runs the handler through [`PythonRunner`], and records state, results, artifacts and the
//! exact code version it used. It needs the database, the datastore and the cache, never the
//! project folder. When `cancel` resolves (the CLI passes SIGTERM, SIGINT or SIGHUP) the handler
//! is aborted and the run recorded `aborted`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CodeSources, ContextSettings, HandlerRequest, PythonRunner, ResolvedSource};
use crate::db::{Db, Heartbeat, LeaseChange, LEASE_RENEWAL, LEASE_TTL};
use crate::error::{Error, Result};
use crate::model::now;
use crate::model::{RunObject, RunState};

/// Where a runner finds what a run needs besides its record.
#[derive(Debug, Clone)]
pub struct StepEnv {
    /// The datastore and the code cache.
    pub code: CodeSources,
    /// The interpreter that runs handlers.
    pub python: PythonRunner,
    /// The run's log file: the handler's output is appended to it.
    pub log: PathBuf,
}

/// Executes the recorded run `uid` and returns its final record.
///
/// Every state change is conditional ([`Db::update_active_run`]): a run settled meanwhile by
/// someone else (the process that started this runner found it dead, or a reader found the
/// workflow's driver dead) keeps that record, and this runner stops.
///
/// While it runs, the runner holds the run's heartbeat lease ([`RunObject::runner_lease`]), so a
/// reader can settle a `running` run whose runner was killed outright.
pub async fn run_step(
    db: Arc<dyn Db>,
    project: &str,
    uid: &str,
    env: &StepEnv,
    cancel: impl Future<Output = ()>,
) -> Result<RunObject> {
    let run = db.read_run(project, uid).await?;
    run_recorded_step(db, run, env, cancel).await
}

/// [`run_step`] of `run`, as it was just read or recorded (by the caller that submitted it).
pub async fn run_recorded_step(
    db: Arc<dyn Db>,
    mut run: RunObject,
    env: &StepEnv,
    cancel: impl Future<Output = ()>,
) -> Result<RunObject> {
    let (project, uid) = (run.metadata.project.clone(), run.metadata.uid.clone());
    let (project, uid) = (project.as_str(), uid.as_str());
    if run.status.state.is_terminal() {
        return Err(already_ended(&run));
    }
    // Code the cache already holds is known before the run starts: it is recorded with
    // `running`, in the same transaction, and the handler starts without another write.
    let cached = match &run.spec.function_snapshot {
        Some(snapshot) => {
            env.code
                .resolve_cached(db.as_ref(), project, snapshot)
                .await
        }
        None => None,
    };
    if let Some(code) = &cached {
        run.status.code = Some(code.record.clone());
    }
    run.status.state = RunState::Running;
    run.status.start_time = Some(now());
    run.status.last_update = run.status.start_time.clone();
    // The lease is taken in the same transaction that marks the run running.
    let (lease, owner) = (run.runner_lease(), Heartbeat::new_owner());
    let take = LeaseChange::Take {
        name: &lease,
        owner: &owner,
        ttl: LEASE_TTL,
    };
    if !db.update_active_run_with_lease(&run, &take).await? {
        return Err(already_ended(&db.read_run(project, uid).await?));
    }
    let lease = Heartbeat::held(db.clone(), &lease, owner, LEASE_TTL, LEASE_RENEWAL);
    let run = match drive(db.as_ref(), run, env, cached, cancel).await {
        Ok(run) => run,
        Err(err) => {
            lease.release().await?;
            return Err(err);
        }
    };
    // The end is recorded as the lease is given up, in one transaction.
    if !lease.release_with(&run).await? {
        // Settled by someone else first: theirs is the record.
        return db.read_run(project, uid).await;
    }
    Ok(run)
}

/// Runs the handler of `run` (already recorded `running`, with its code when `cached` holds
/// it) and returns the run with its end filled in, for the caller to record.
async fn drive(
    db: &dyn Db,
    mut run: RunObject,
    env: &StepEnv,
    cached: Option<ResolvedSource>,
    cancel: impl Future<Output = ()>,
) -> Result<RunObject> {
    let outcome = tokio::select! {
        outcome = execute(db, env, &mut run, cached) => Some(outcome),
        _ = cancel => None,
    };
    match outcome {
        Some(Ok(handler)) => handler.record(&mut run.status),
        Some(Err(err)) => {
            // Into the run's log, where its reader looks (not the terminal of a process that
            // runs many steps in-process).
            tracing::debug!("{err}");
            note(&env.log, &format!("error: {}", err.chain()));
            run.status.state = RunState::Error;
            run.status.error = Some(err.chain().to_string());
            run.status.failure_kind = super::failure_kind_of(&err);
        }
        None => {
            tracing::debug!("run `{}` aborted", run.metadata.uid);
            note(&env.log, "run aborted");
            run.status.state = RunState::Aborted;
            run.status.error = Some("Run aborted".into());
        }
    }
    if run.is_hyper() {
        super::hyper::settle_unfinished(db, &run).await?;
    }
    run.status.end_time = Some(now());
    run.status.last_update = run.status.end_time.clone();
    Ok(run)
}

/// Appends a `[baton] ` line to the run's log, best effort.
pub(super) fn note(log: &Path, text: &str) {
    use std::io::Write;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| writeln!(file, "[baton] {text}"));
    if let Err(err) = appended {
        tracing::warn!("could not write the log `{}`: {err}", log.display());
    }
}

fn already_ended(run: &RunObject) -> Error {
    Error::conflict(format!(
        "Run `{}` already ended in state `{}`",
        run.metadata.uid, run.status.state
    ))
}

/// Resolves the code of `run` (unless `cached` holds it, already recorded), records it and runs
/// the handler.
async fn execute(
    db: &dyn Db,
    env: &StepEnv,
    run: &mut RunObject,
    cached: Option<ResolvedSource>,
) -> Result<super::HandlerOutcome> {
    let snapshot = run.spec.function_snapshot.clone().ok_or_else(|| {
        Error::invalid(format!(
            "Run `{}` has no function snapshot (it was recorded by an older baton); submit it \
             again",
            run.metadata.uid
        ))
    })?;
    let function = &snapshot.function;
    let handler = run
        .spec
        .handler
        .clone()
        .or(function.handler.clone())
        .ok_or_else(|| {
            Error::invalid(format!("No handler given for function `{}`", function.name))
        })?;
    let (code, recorded_with_start) = match cached {
        Some(code) => (code, true),
        None => {
            let code = env
                .code
                .resolve(db, &run.metadata.project, &snapshot)
                .await?;
            (code, false)
        }
    };
    tracing::info!(source = %code.record.source, digest = %code.record.digest, dir = %code.dir.display(), "code resolved");
    // A bare function name of a `.py` source runs from that file.
    let handler = match (&code.file_stem, handler.contains(':')) {
        (Some(stem), false) => format!("{stem}:{handler}"),
        _ => handler,
    };
    let code_source = code.record.source.clone();
    run.status.code = Some(code.record);

    let output =
        run.spec.output_path.clone().ok_or_else(|| {
            Error::invalid(format!("Run `{}` has no output path", run.metadata.uid))
        })?;
    let keep_bytecode = code.dir.starts_with(env.code.cache.code_dir());
    let request = HandlerRequest {
        code_dir: code.dir,
        code_source: Some(code_source),
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
        stop_condition: None,
        env: snapshot.overrides.env.clone(),
        keep_bytecode,
    };
    // Code the cache did not hold was fetched just now, after the run was marked running: it is
    // recorded before the handler starts (a run settled meanwhile by someone else keeps their
    // record, and its handler never starts).
    if !recorded_with_start {
        record_code(db, run).await?;
    }
    if run.is_hyper() {
        return super::hyper::run_iterations(db, env, run, request).await;
    }
    env.python.run(&request, &env.log).await
}

/// Records `run` with the code it resolved; a run that ended meanwhile (settled by someone
/// else) is [`crate::Error::Conflict`].
async fn record_code(db: &dyn Db, run: &RunObject) -> Result<()> {
    if !db.update_active_run(run).await? {
        return Err(already_ended(
            &db.read_run(&run.metadata.project, &run.metadata.uid)
                .await?,
        ));
    }
    Ok(())
}
