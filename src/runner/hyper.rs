//! Hyper-parameter runs: the runner of a parent run (one whose spec has `hyperparams`) executes
//! its iterations, each as a child run of its own, and records on the parent what MLRun's local
//! runtime records (`mlrun/runtimes/base.py:_run_many`, `runtimes/utils.py:results_to_iter`).
//!
//! Iteration `n` of run `U` is recorded as run `U-n` with `metadata.iteration = n` and the label
//! `parent-run=U`; it runs the parent's handler and code with the parent's parameters plus its
//! parameter set, logs to its own log file beside the parent's, and holds no lease of its own (it
//! lives exactly as long as its parent's runner, see [`RunObject::runner_lease`]). Up to
//! `parallel_runs` iterations run at once, each forked by a warm Python worker; when one fails
//! beyond `max_errors`, or its results meet the `stop_condition`, no new one starts and the
//! running ones finish.
//!
//! The parent then records the summary table (`status.iterations`, also logged as the
//! `iteration_results` CSV artifact), the best iteration's results and artifacts plus
//! `best_iteration` when a selector picked one, and its state: `error` when any iteration failed
//! (MLRun's "N of M tasks failed"), else `completed`.
//!
//! # Why the stop condition is evaluated by the iteration
//!
//! MLRun evaluates `stop_condition` with Python's `eval` over the iteration's results. The
//! iteration's own Python process does the same right after its handler returns (see
//! `python/bootstrap.py`), so the condition means exactly what it means in MLRun and costs no
//! extra process.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value};

use super::step::note;
use super::{
    ForkServer, HandlerOutcome, HandlerRequest, Isolation, LoggedArtifact,
    RunState as HandlerState, StepEnv,
};
use crate::db::{settle_run, Db, RunFilter};
use crate::error::{IoResultExt, Result};
use crate::model::hyper::{summary_table, table_csv, IterationRow};
use crate::model::run::{FailureKind, PARENT_RUN_LABEL};
use crate::model::{now, HyperPlan, RunObject, RunState, RunStatus};

/// One finished iteration.
struct Finished {
    run: RunObject,
    /// The stop condition held on its results.
    stop: bool,
    /// The stop condition could not be evaluated on its results.
    stop_error: Option<String>,
}

/// Runs the iterations of the parent `run` (already `running`), `base` being the handler request
/// the parent would run without hyperparameters, and returns the parent's outcome; the summary
/// table goes into `run.status.iterations`.
pub(super) async fn run_iterations(
    db: &dyn Db,
    env: &StepEnv,
    run: &mut RunObject,
    base: HandlerRequest,
) -> Result<HandlerOutcome> {
    let options = run.spec.hyper_param_options.clone().unwrap_or_default();
    let plan = HyperPlan::new(&run.spec.hyperparams, &options)?;
    let random = RandomState::new();
    let mut draw = 0u64;
    let sets = plan.parameter_sets(|n| {
        let mut hasher = random.build_hasher();
        draw += 1;
        hasher.write_u64(draw);
        (hasher.finish() % n as u64) as usize
    });
    note(
        &env.log,
        &format!(
            "{} iterations ({}), {} at a time",
            sets.len(),
            plan.strategy().as_str(),
            plan.parallel_runs()
        ),
    );

    // Iterations fork from a warm worker, even under a runner that starts a fresh interpreter
    // per run (`baton runner`, a KFP pod): one interpreter start for the whole run instead of
    // one per iteration. The worker ends with this call.
    let env = &match env.python.isolation() {
        Isolation::Fork => env.clone(),
        Isolation::Process => StepEnv {
            python: env.python.clone().with_fork_server(ForkServer::new()),
            ..env.clone()
        },
    };
    let parent: &RunObject = run;
    let mut pending = sets.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    let mut finished: Vec<Finished> = Vec::new();
    let (mut errors, mut stopped_by) = (0u32, None::<String>);
    loop {
        while stopped_by.is_none() && running.len() < plan.parallel_runs() {
            let Some((index, params)) = pending.next() else {
                break;
            };
            let number = index as u32 + 1;
            running.push(run_iteration(
                db,
                env,
                parent,
                &base,
                number,
                params,
                plan.stop_condition(),
            ));
        }
        let Some(done) = running.next().await else {
            break;
        };
        let done = done?;
        let number = done.run.metadata.iteration;
        note(
            &env.log,
            &format!(
                "iteration {number} ({}): {}",
                done.run.metadata.uid, done.run.status.state
            ),
        );
        if done.run.status.state != RunState::Completed {
            errors += 1;
            if errors > plan.max_errors() && stopped_by.is_none() {
                stopped_by = Some(format!("{errors} iterations failed"));
            }
        }
        if let Some(err) = &done.stop_error {
            stopped_by.get_or_insert_with(|| {
                format!(
                    "the stop condition `{}` could not be evaluated on iteration {number}: {err}",
                    plan.stop_condition().unwrap_or_default()
                )
            });
        } else if done.stop && stopped_by.is_none() {
            stopped_by = Some(format!(
                "the stop condition `{}` held on iteration {number}",
                plan.stop_condition().unwrap_or_default()
            ));
        }
        finished.push(done);
    }
    drop(running);
    if let Some(why) = &stopped_by {
        note(&env.log, &format!("no more iterations: {why}"));
    }
    finished.sort_by_key(|f| f.run.metadata.iteration);
    conclude(run, &base, &plan, &finished, stopped_by, errors)
}

/// The parent's outcome from its finished iterations.
fn conclude(
    run: &mut RunObject,
    base: &HandlerRequest,
    plan: &HyperPlan,
    finished: &[Finished],
    stopped_by: Option<String>,
    errors: u32,
) -> Result<HandlerOutcome> {
    let rows: Vec<IterationRow<'_>> = finished
        .iter()
        .map(|f| IterationRow {
            iteration: f.run.metadata.iteration,
            state: f.run.status.state.as_str(),
            params: &f.run.spec.parameters,
            results: &f.run.status.results,
        })
        .collect();
    let table = summary_table(&rows);
    let csv_path = write_table(&base.context.artifact_path, &table_csv(&table))?;
    run.status.iterations = table;

    let best = plan.selector().and_then(|selector| {
        selector.best(finished.iter().map(|f| {
            (
                f.run.metadata.iteration,
                f.run.status.state == RunState::Completed,
                &f.run.status.results,
            )
        }))
    });
    let mut results = Map::new();
    let mut artifacts = Vec::new();
    if let Some(best) = best.and_then(|n| finished.iter().find(|f| f.run.metadata.iteration == n)) {
        results.insert("best_iteration".into(), best.run.metadata.iteration.into());
        results.extend(best.run.status.results.clone());
        artifacts.extend(
            best.run
                .status
                .artifacts
                .iter()
                .filter_map(|a| serde_json::from_value::<LoggedArtifact>(a.clone()).ok()),
        );
    }
    artifacts.retain(|a| a.key != "iteration_results");
    artifacts.push(LoggedArtifact {
        key: "iteration_results".into(),
        target_path: csv_path.to_string_lossy().into_owned(),
        format: Some("csv".into()),
    });

    let failed: Vec<&Finished> = finished
        .iter()
        .filter(|f| f.run.status.state != RunState::Completed)
        .collect();
    let stop_failed = finished.iter().any(|f| f.stop_error.is_some());
    let error = if stop_failed {
        stopped_by
    } else if errors > 0 {
        let first = failed[0];
        Some(format!(
            "{errors} of {} iterations failed; iteration {} (run `{}`): {}",
            finished.len(),
            first.run.metadata.iteration,
            first.run.metadata.uid,
            first.run.status.error.as_deref().unwrap_or("failed")
        ))
    } else {
        None
    };
    let failure_kind = error.as_ref().map(|_| {
        let all_config = !failed.is_empty()
            && failed
                .iter()
                .all(|f| f.run.status.failure_kind == Some(FailureKind::Config));
        if all_config || stop_failed {
            FailureKind::Config
        } else {
            FailureKind::Handler
        }
    });
    Ok(HandlerOutcome {
        state: if error.is_some() {
            HandlerState::Error
        } else {
            HandlerState::Completed
        },
        results,
        artifacts,
        error,
        failure_kind,
        stop: None,
        stop_error: None,
    })
}

/// Writes the `iteration_results` CSV into the parent's artifact folder.
fn write_table(artifact_path: &std::path::Path, csv: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(artifact_path)
        .io_context(|| format!("Failed to create `{}`", artifact_path.display()))?;
    let path = artifact_path.join("iteration_results.csv");
    std::fs::write(&path, csv).io_context(|| format!("Failed to write `{}`", path.display()))?;
    std::path::absolute(&path).io_context(|| format!("Failed to resolve `{}`", path.display()))
}

/// Records iteration `number` of `parent` as a child run, runs it and records how it ended.
async fn run_iteration(
    db: &dyn Db,
    env: &StepEnv,
    parent: &RunObject,
    base: &HandlerRequest,
    number: u32,
    params: Map<String, Value>,
    stop_condition: Option<&str>,
) -> Result<Finished> {
    let mut child = parent.clone();
    let uid = format!("{}-{number}", parent.metadata.uid);
    child.metadata.uid = uid.clone();
    child.metadata.iteration = number;
    child
        .metadata
        .labels
        .insert(PARENT_RUN_LABEL.into(), parent.metadata.uid.clone());
    child.spec.parameters.extend(params);
    child.spec.hyperparams = Map::new();
    child.spec.hyper_param_options = None;
    let started = now();
    child.status = RunStatus {
        state: RunState::Running,
        start_time: Some(started.clone()),
        last_update: Some(started),
        code: parent.status.code.clone(),
        ..RunStatus::default()
    };
    db.store_run(&child).await?;

    let mut request = base.clone();
    request.params = child.spec.parameters.clone();
    request.context.uid = uid.clone();
    request.context.artifact_path = base.context.artifact_path.with_file_name(&uid);
    request.stop_condition = stop_condition.map(str::to_string);
    let log = env.log.with_file_name(format!("{uid}.log"));
    let (mut stop, mut stop_error) = (false, None);
    match env.python.run(&request, &log).await {
        Ok(outcome) => {
            stop = outcome.stop == Some(true);
            stop_error = outcome.stop_error.clone();
            outcome.record(&mut child.status);
        }
        Err(err) => {
            note(&log, &format!("error: {}", err.chain()));
            child.status.state = RunState::Error;
            child.status.error = Some(err.chain().to_string());
            child.status.failure_kind = super::failure_kind_of(&err);
        }
    }
    child.status.end_time = Some(now());
    child.status.last_update = child.status.end_time.clone();
    if !db.update_active_run(&child).await? {
        child = db.read_run(&child.metadata.project, &uid).await?;
    }
    Ok(Finished {
        run: child,
        stop,
        stop_error,
    })
}

/// Settles the iterations of `parent` that did not end (its runner was stopped, or failed, while
/// they ran): they are recorded `aborted`.
pub(super) async fn settle_unfinished(db: &dyn Db, parent: &RunObject) -> Result<()> {
    let filter = RunFilter {
        labels: vec![(PARENT_RUN_LABEL.to_string(), parent.metadata.uid.clone())],
    };
    for child in db.list_runs(&parent.metadata.project, &filter).await? {
        if !child.status.state.is_terminal() {
            settle_run(
                db,
                &child,
                RunState::Aborted,
                format!(
                    "Run aborted: its parent run `{}` ended first",
                    parent.metadata.uid
                ),
            )
            .await?;
        }
    }
    Ok(())
}
