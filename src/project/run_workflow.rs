//! Running a project workflow: resolve its source now, build the DAG, pick the engine, drive it,
//! and record every step as it happens.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::workflows::ResolvedWorkflow;
use super::Project;
use crate::db::{Db, RunFilter};
use crate::engine::{
    select_engine, EngineKind, StepState, UnavailableEngine, WorkflowEngine, WorkflowEvent,
    WorkflowObserver, WorkflowRunId, WorkflowRunRequest,
};
use crate::engines::local::LocalEngine;
use crate::error::{Error, Result};
use crate::model::{Driver, RunState, WorkflowRunRecord, WorkflowSpec};
use crate::runner::{step_outputs, RunnerExecutor};
use crate::workflow::{
    load_workflow_file, merge_args, ArgSchemaEntry, Dag, DagCheck, LoadOptions, StepAction,
};

/// How to run a workflow.
#[derive(Debug, Clone, Default)]
pub struct RunWorkflowOptions {
    /// Arguments overriding the spec's and the pipeline's defaults.
    pub args: Map<String, Value>,
    /// The engine asked for (`--engine`); the spec's, else `local`, when `None`.
    pub engine: Option<EngineKind>,
    /// Run locally (MLRun's `local=True`).
    pub local: bool,
    /// Steps at once (default: the number of CPUs).
    pub parallelism: Option<NonZeroUsize>,
    /// Give up waiting after this long (the run is then terminated).
    pub timeout: Option<Duration>,
    /// Let arguments the workflow does not declare through, with a warning, instead of refusing
    /// the run.
    pub allow_extra_args: bool,
}

/// A workflow ready to run: its source resolved, its graph checked, its arguments merged.
#[derive(Debug, Clone)]
pub struct PreparedWorkflow {
    /// The project's spec of the workflow.
    pub spec: WorkflowSpec,
    /// The source as resolved for this run.
    pub source: ResolvedWorkflow,
    /// The checked step graph.
    pub dag: Dag,
    /// The merged arguments.
    pub args: Map<String, Value>,
    /// The engine that will run it.
    pub engine: EngineKind,
}

impl Project {
    /// Resolves workflow `name` for one run: its artifact is read and fetched now (so a new
    /// version is picked up by the next run), traced or parsed into a graph, checked against the
    /// project's functions, and its arguments merged with MLRun's rules.
    pub async fn prepare_workflow(
        &self,
        db: &dyn Db,
        name: &str,
        options: &RunWorkflowOptions,
    ) -> Result<PreparedWorkflow> {
        let spec = self.workflow(name)?;
        let spec_engine = spec.engine.as_deref().map(str::parse).transpose()?;
        // The embedded default runs locally when nothing names an engine.
        let requested = options.engine.or(if spec_engine.is_none() {
            Some(EngineKind::Local)
        } else {
            None
        });
        let engine = select_engine(requested, spec_engine, options.local, false)?;
        let (source, dag) = self.load_workflow_dag(db, &spec).await?;
        let schema: Vec<ArgSchemaEntry> = spec
            .args_schema
            .iter()
            .map(|v| serde_json::from_value(v.clone()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                Error::invalid(format!(
                    "The args_schema of workflow `{name}` is malformed: {e}"
                ))
            })?;
        let mut given = spec.args.clone();
        given.extend(options.args.clone());
        let args = merge_args(dag.params(), &schema, &given, options.allow_extra_args)?;
        if engine == EngineKind::Local {
            if let Some(step) = dag.steps().iter().find(|s| s.action == StepAction::Deploy) {
                return Err(Error::bad_request(format!(
                    "Step `{}` deploys real-time function `{}`, which the local engine cannot do; use the remote or kfp engine",
                    step.name, step.function
                )));
            }
        }
        Ok(PreparedWorkflow {
            spec,
            source,
            dag,
            args,
            engine,
        })
    }

    /// Resolves a workflow's source now and turns it into a checked DAG (steps must name the
    /// project's functions).
    pub async fn load_workflow_dag(
        &self,
        db: &dyn Db,
        spec: &WorkflowSpec,
    ) -> Result<(ResolvedWorkflow, Dag)> {
        let source = self.resolve_workflow(db, spec).await?;
        let mut load =
            LoadOptions::new(spec.name.clone()).with_source(source.record.source.clone());
        if let Some(handler) = &spec.handler {
            load = load.with_handler(handler.clone());
        }
        let file = source.file.clone();
        let graph = tokio::task::spawn_blocking(move || load_workflow_file(&file, &load))
            .await
            .map_err(|e| Error::runtime_from("Loading the workflow failed", e))??;
        let functions = self.functions()?.into_iter().map(|f| f.name).collect();
        let dag = Dag::build(
            graph,
            &DagCheck {
                known_functions: Some(functions),
            },
        )?;
        Ok((source, dag))
    }

    /// Runs a prepared workflow to a terminal state, recording the workflow run (and each step's
    /// function run) as it goes. `observer` sees every event (the CLI draws progress with it).
    /// The run is terminated when `cancel` resolves, when `workflows terminate` asks for it, or
    /// when the timeout passes.
    pub async fn run_workflow(
        &self,
        db: Arc<dyn Db>,
        prepared: PreparedWorkflow,
        options: &RunWorkflowOptions,
        observer: Arc<dyn WorkflowObserver>,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<WorkflowRunRecord> {
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let fan_out: Arc<dyn WorkflowObserver> =
            Arc::new(FanOut(vec![observer, Arc::new(events_tx)]));
        let engine: Arc<dyn WorkflowEngine> = match prepared.engine {
            EngineKind::Local => {
                let executor =
                    RunnerExecutor::new(self.clone(), db.clone(), step_interpreter().await);
                let mut engine = LocalEngine::new(Arc::new(executor)).with_observer(fan_out);
                if let Some(n) = options.parallelism {
                    engine = engine.with_parallelism(n);
                }
                Arc::new(engine)
            }
            other => Arc::new(UnavailableEngine::new(other)),
        };
        // Taken before the engine starts the first steps, so no step starts before its run.
        let started = crate::model::now();
        let id = engine
            .run(WorkflowRunRequest {
                project: self.name().to_string(),
                dag: prepared.dag,
                args: prepared.args.clone(),
            })
            .await?;
        let mut record = WorkflowRunRecord {
            id: id.to_string(),
            project: self.name().to_string(),
            name: prepared.spec.name.clone(),
            engine: prepared.engine.to_string(),
            state: crate::engine::WorkflowState::Running,
            args: prepared.args,
            workflow: prepared.source.record,
            steps: Vec::new(),
            error: None,
            started,
            finished: None,
            driver: Some(Driver::current()),
        };
        record.update(&engine.status(&id).await?);
        db.store_workflow_run(&record).await?;

        let wait = engine.wait(&id, None);
        tokio::pin!(wait);
        tokio::pin!(cancel);
        let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        let mut terminating = false;
        let mut timed_out = false;
        let status = loop {
            tokio::select! {
                status = &mut wait => break status?,
                Some((event_id, event)) = events.recv() => {
                    // One snapshot covers every event queued meanwhile.
                    let mut changed = event_id == id
                        && !matches!(event, WorkflowEvent::WorkflowFinished { .. });
                    while let Ok((event_id, event)) = events.try_recv() {
                        changed |= event_id == id
                            && !matches!(event, WorkflowEvent::WorkflowFinished { .. });
                    }
                    if changed {
                        record.update(&engine.status(&id).await?);
                        db.store_workflow_run(&record).await?;
                    }
                }
                _ = &mut cancel, if !terminating => {
                    terminating = true;
                    engine.terminate(&id).await?;
                }
                _ = poll.tick(), if !terminating => {
                    timed_out = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                    if timed_out || db.workflow_termination_requested(self.name(), &record.id).await? {
                        terminating = true;
                        engine.terminate(&id).await?;
                    }
                }
            }
        };
        record.update(&status);
        if let (true, Some(timeout)) = (timed_out, options.timeout) {
            record.error = Some(format!(
                "the run did not finish within {}",
                humantime::format_duration(timeout)
            ));
        }
        db.store_workflow_run(&record).await?;
        Ok(record)
    }
}

impl Project {
    /// A recorded workflow run; a run whose driver died is settled first (see
    /// [`Project::settle_orphaned_workflow_run`]).
    pub async fn workflow_run(&self, db: &dyn Db, id: &str) -> Result<WorkflowRunRecord> {
        let mut run = db.read_workflow_run(self.name(), id).await?;
        if self.settle_orphaned_workflow_run(db, &mut run).await? {
            db.store_workflow_run(&run).await?;
        }
        Ok(run)
    }

    /// The project's workflow runs, newest first, orphaned ones settled.
    pub async fn workflow_runs(&self, db: &dyn Db) -> Result<Vec<WorkflowRunRecord>> {
        let mut runs = db.list_workflow_runs(self.name()).await?;
        for run in &mut runs {
            if self.settle_orphaned_workflow_run(db, run).await? {
                db.store_workflow_run(run).await?;
            }
        }
        Ok(runs)
    }

    /// Settles a workflow run whose driver died before recording its end: the run is `Failed`,
    /// its step runs still active are `aborted` (their runners died with the driver, or are
    /// stopping and lose the race to record), and every unsettled step takes the state its run
    /// ended in (`Succeeded`, `Failed`, else `Canceled`; a step that never ran is `Canceled`).
    /// Returns whether the record changed; the caller stores it.
    pub async fn settle_orphaned_workflow_run(
        &self,
        db: &dyn Db,
        run: &mut WorkflowRunRecord,
    ) -> Result<bool> {
        let unsettled =
            !run.state.is_terminal() || run.steps.iter().any(|s| !s.state.is_terminal());
        if !unsettled || !run.driver.as_ref().is_some_and(Driver::is_gone) {
            return Ok(false);
        }
        let pid = run.driver.as_ref().map_or(0, |d| d.pid);
        run.settle_if_orphaned();
        let filter = RunFilter {
            labels: vec![("workflow".to_string(), run.id.clone())],
        };
        let mut step_runs = db.list_runs(self.name(), &filter).await?;
        let now = crate::model::now();
        for step_run in step_runs
            .iter_mut()
            .filter(|r| !r.status.state.is_terminal())
        {
            step_run.status.state = RunState::Aborted;
            step_run.status.error = Some(format!(
                "Run aborted: the `baton run` process (pid {pid}) driving workflow run `{}` exited",
                run.id
            ));
            step_run.status.end_time = Some(now.clone());
            step_run.status.last_update = Some(now.clone());
            if !db.update_active_run(step_run).await? {
                // Its runner recorded an end first: that one stands.
                *step_run = db.read_run(self.name(), &step_run.metadata.uid).await?;
            }
        }
        let finished = chrono::Utc::now();
        for step in run.steps.iter_mut().filter(|s| !s.state.is_terminal()) {
            // The run the step linked, else the newest run recorded for it (a run reported after
            // the last record the driver stored).
            let step_run = step_runs.iter().find(|r| match &step.run_uid {
                Some(uid) => &r.metadata.uid == uid,
                None => r.metadata.labels.get("workflow-step") == Some(&step.name),
            });
            let ran = step.state == StepState::Running || step_run.is_some();
            step.finished = Some(finished);
            match step_run.map(|r| (r, r.status.state)) {
                Some((r, RunState::Completed)) => {
                    step.state = StepState::Succeeded;
                    step.outputs = step_outputs(r);
                    step.error = None;
                }
                Some((r, RunState::Error)) => {
                    step.state = StepState::Failed;
                    step.error = Some(format!(
                        "run `{}`: {}",
                        r.metadata.uid,
                        r.status.error.as_deref().unwrap_or("the run failed")
                    ));
                }
                _ => {
                    step.state = StepState::Canceled;
                    step.error = Some(if ran {
                        format!("canceled while running: the `baton run` process (pid {pid}) driving the workflow exited")
                    } else {
                        format!("not run: the `baton run` process (pid {pid}) driving the workflow exited")
                    });
                }
            }
            if let Some(r) = step_run {
                step.run_uid = Some(r.metadata.uid.clone());
            }
        }
        Ok(true)
    }
}

/// The interpreter for every step of a run: `BATON_PYTHON` when set, else the real executable
/// behind `python3`, resolved once here rather than through a version-manager shim per step. A
/// failure to resolve leaves each step to find `python3` itself (and report it).
async fn step_interpreter() -> Option<std::path::PathBuf> {
    if std::env::var_os(crate::workflow::PYTHON_ENV).is_some_and(|p| !p.is_empty()) {
        return None;
    }
    crate::runner::PythonRunner::from_env()
        .resolve_executable()
        .await
        .inspect_err(|e| tracing::warn!("{e}"))
        .ok()
}

/// Sends every event to several observers.
struct FanOut(Vec<Arc<dyn WorkflowObserver>>);

impl WorkflowObserver for FanOut {
    fn on_event(&self, id: &WorkflowRunId, event: &WorkflowEvent) {
        for observer in &self.0 {
            observer.on_event(id, event);
        }
    }
}
