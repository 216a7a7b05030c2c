//! Running a project workflow: resolve its source now, build the DAG, pick the engine, start
//! the run, and record every step as it happens by folding the engine's events.
//!
//! A run is started ([`Project::start_workflow`], or [`Project::retry_workflow`] from a stored
//! record), then recorded ([`WorkflowRunHandle::record`]): one loop folds the engine's event
//! stream into the [`WorkflowRunRecord`] and stores it at most every [`STORE_EVERY`] while the
//! run goes on (the step runs themselves are recorded as they happen, by their runners), and
//! delivers a terminate requested in this process (`cancel`) or by another one (`baton workflows
//! terminate`, a flag in the database, looked at every 500 ms) to the engine. The run's timeout
//! is the engine's.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde_json::{Map, Value};

use super::workflows::ResolvedWorkflow;
use super::Project;
use crate::db::{settle_run, Db, Heartbeat, RunFilter, LEASE_RENEWAL, LEASE_TTL};
use crate::engine::{
    select_engine, EngineKind, EngineRegistry, RunOptions, StepState, Subscription, WorkflowEngine,
    WorkflowRunId, WorkflowRunRequest,
};
use crate::error::{Error, Result};
use crate::model::{
    Driver, RunState, WorkflowRunRecord, WorkflowRunSummary, WorkflowSpec, WorkflowState,
};
use crate::workflow::{
    load_workflow_file, merge_args, ArgSchemaEntry, Dag, DagCheck, LoadOptions, TraceProject,
    WorkflowGraph,
};

/// How often, at most, a running workflow's record is stored. Each store rewrites the whole
/// record, which grows with the steps: storing after every step event made a 50-step chain
/// rewrite it 150 times. A reader sees the record at most this late; the record's end is stored
/// at once.
const STORE_EVERY: Duration = Duration::from_millis(100);

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
    /// Stop the run (it ends `Canceled`) when it has not finished after this long.
    pub timeout: Option<Duration>,
    /// Let arguments the workflow does not declare through, with a warning, instead of refusing
    /// the run.
    pub allow_extra_args: bool,
    /// Labels of the run, put on its step runs too.
    pub labels: std::collections::BTreeMap<String, String>,
}

impl RunWorkflowOptions {
    /// The engine's per-run options.
    fn run_options(&self) -> RunOptions {
        RunOptions {
            parallelism: self.parallelism,
            timeout: self.timeout,
            labels: self.labels.clone(),
            ..RunOptions::default()
        }
    }
}

/// The argument schema of workflow `spec` (its `args_schema` entries, parsed).
pub fn args_schema(spec: &crate::model::WorkflowSpec) -> Result<Vec<ArgSchemaEntry>> {
    spec.args_schema
        .iter()
        .map(|v| serde_json::from_value(v.clone()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::invalid(format!(
                "The args_schema of workflow `{}` is malformed: {e}",
                spec.name
            ))
        })
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

/// A started workflow run, not yet recorded to its end: subscribe to follow it, then
/// [`record`](Self::record) it.
pub struct WorkflowRunHandle {
    engine: Arc<dyn WorkflowEngine>,
    dag: Dag,
    record: WorkflowRunRecord,
    events: Subscription,
    /// A second subscription taken at start, for the first [`WorkflowRunHandle::subscribe`].
    observer: Option<Subscription>,
    /// The run's driver lease ([`WorkflowRunRecord::driver_lease`]), renewed in the background.
    lease: Heartbeat,
}

impl Project {
    /// Resolves workflow `name` for one run: its artifact is read and fetched now (so a new
    /// version is picked up by the next run), traced or parsed into a graph, checked against the
    /// project's functions and against what the engine can run, and its arguments merged with
    /// MLRun's rules. A Python workflow is traced in a child of `tracer`'s warm worker when
    /// given, else by a new interpreter.
    pub async fn prepare_workflow(
        &self,
        db: &dyn Db,
        engines: &EngineRegistry,
        name: &str,
        options: &RunWorkflowOptions,
        tracer: Option<crate::runner::ForkServer>,
    ) -> Result<PreparedWorkflow> {
        let spec = self.workflow(name)?;
        let engine = self.workflow_engine(name, options)?;
        let (source, dag) = self.load_workflow_dag(db, &spec, tracer).await?;
        let schema = args_schema(&spec)?;
        let mut given = spec.args.clone();
        given.extend(options.args.clone());
        let args = merge_args(dag.params(), &schema, &given, options.allow_extra_args)?;
        engines.get(engine).check(&dag)?;
        Ok(PreparedWorkflow {
            spec,
            source,
            dag,
            args,
            engine,
        })
    }

    /// The engine a run of workflow `name` with `options` uses, by MLRun's rules
    /// ([`select_engine`]); the embedded default runs locally when nothing names an engine.
    pub fn workflow_engine(&self, name: &str, options: &RunWorkflowOptions) -> Result<EngineKind> {
        let spec = self.workflow(name)?;
        let spec_engine = spec.engine.as_deref().map(str::parse).transpose()?;
        let requested = options.engine.or(if spec_engine.is_none() {
            Some(EngineKind::Local)
        } else {
            None
        });
        select_engine(requested, spec_engine, options.local, false)
    }

    /// Resolves a workflow's source now and turns it into a checked DAG (steps must name the
    /// project's functions); a Python workflow is traced in a child of `tracer`'s warm worker
    /// when given, else by a new interpreter.
    pub async fn load_workflow_dag(
        &self,
        db: &dyn Db,
        spec: &WorkflowSpec,
        tracer: Option<crate::runner::ForkServer>,
    ) -> Result<(ResolvedWorkflow, Dag)> {
        let source = self.resolve_workflow(db, spec).await?;
        let mut load = LoadOptions::new(spec.name.clone())
            .with_source(source.record.source.clone())
            .with_project(TraceProject {
                name: self.name().to_string(),
                params: self
                    .file
                    .spec
                    .extra
                    .get("params")
                    .and_then(|p| p.as_object())
                    .cloned()
                    .unwrap_or_default(),
            });
        if let Some(handler) = &spec.handler {
            load = load.with_handler(handler.clone());
        }
        if let Some(server) = tracer {
            load = load.forked_by(server);
        }
        let file = source.file.clone();
        let graph = tokio::task::spawn_blocking(move || load_workflow_file(&file, &load))
            .await
            .map_err(|e| Error::internal_from("Loading the workflow failed", e))??;
        let dag = self.check_graph(graph)?;
        Ok((source, dag))
    }

    fn check_graph(&self, graph: WorkflowGraph) -> Result<Dag> {
        let functions = self.functions()?.into_iter().map(|f| f.name).collect();
        Dag::build(
            graph,
            &DagCheck {
                known_functions: Some(functions),
            },
        )
    }

    /// Starts a prepared workflow and stores its record; [`WorkflowRunHandle::record`] then
    /// follows it to its end.
    pub async fn start_workflow(
        &self,
        db: &Arc<dyn Db>,
        engines: &EngineRegistry,
        prepared: PreparedWorkflow,
        options: &RunWorkflowOptions,
    ) -> Result<WorkflowRunHandle> {
        let engine = engines.get(prepared.engine);
        let graph = serde_json::to_value(prepared.dag.workflow()).ok();
        let dag = prepared.dag.clone();
        // Taken before the engine starts the first steps, so no step starts before its run.
        let started = crate::model::now();
        let id = engine
            .run(
                WorkflowRunRequest {
                    project: self.name().to_string(),
                    dag: prepared.dag,
                    args: prepared.args.clone(),
                },
                options.run_options(),
            )
            .await?;
        let record = WorkflowRunRecord {
            id: id.to_string(),
            project: self.name().to_string(),
            name: prepared.spec.name.clone(),
            engine: prepared.engine.to_string(),
            state: WorkflowState::Pending,
            args: prepared.args,
            workflow: prepared.source.record,
            steps: Vec::new(),
            error: None,
            started,
            finished: None,
            driver: Some(Driver::current()),
            graph,
            retry_of: None,
            labels: options.labels.clone(),
        };
        WorkflowRunHandle::new(db, engine, dag, record).await
    }

    /// Starts a new run of the recorded workflow run `id`, which ended unsuccessfully, in this
    /// process (which need not be the one that ran it): its steps that succeeded keep their
    /// outputs; failed, skipped and canceled ones run again, with the same graph, arguments and
    /// engine.
    pub async fn retry_workflow(
        &self,
        db: &Arc<dyn Db>,
        engines: &EngineRegistry,
        id: &str,
        options: &RunWorkflowOptions,
    ) -> Result<WorkflowRunHandle> {
        let previous = self.workflow_run(db.as_ref(), id).await?;
        let graph = previous.graph.clone().ok_or_else(|| {
            Error::bad_request(format!(
                "workflow run `{id}` was recorded without its graph (by an older baton), so it \
                 cannot be retried; run the workflow again"
            ))
        })?;
        let graph: WorkflowGraph = serde_json::from_value(graph)
            .map_err(|e| Error::invalid(format!("the graph of workflow run `{id}`: {e}")))?;
        let kind: EngineKind = previous.engine.parse()?;
        let engine = engines.get(kind);
        let dag = self.check_graph(graph)?;
        let started = crate::model::now();
        let new_id = engine
            .retry(
                &previous.status(),
                WorkflowRunRequest {
                    project: self.name().to_string(),
                    dag: dag.clone(),
                    args: previous.args.clone(),
                },
                options.run_options(),
            )
            .await?;
        let record = WorkflowRunRecord {
            id: new_id.to_string(),
            state: WorkflowState::Pending,
            steps: Vec::new(),
            error: None,
            started,
            finished: None,
            driver: Some(Driver::current()),
            retry_of: Some(previous.id.clone()),
            ..previous
        };
        WorkflowRunHandle::new(db, engine, dag, record).await
    }
}

impl WorkflowRunHandle {
    async fn new(
        db: &Arc<dyn Db>,
        engine: Arc<dyn WorkflowEngine>,
        dag: Dag,
        mut record: WorkflowRunRecord,
    ) -> Result<Self> {
        let id = record.id.clone().into();
        // Held from before the first record until after the last: a reader that finds it
        // expired settles the run as orphaned.
        let lease =
            Heartbeat::start(db.clone(), &record.driver_lease(), LEASE_TTL, LEASE_RENEWAL).await?;
        let events = engine.subscribe(&id).await?;
        let observer = Some(engine.subscribe(&id).await?);
        record.update(&events.status);
        db.store_workflow_run(&record).await?;
        Ok(WorkflowRunHandle {
            engine,
            dag,
            record,
            events,
            observer,
            lease,
        })
    }

    /// The workflow that runs.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The run's id.
    pub fn id(&self) -> WorkflowRunId {
        self.record.id.clone().into()
    }

    /// The run's status and its events from then on (for a progress view); the first call
    /// answers with a subscription taken when the run started.
    pub async fn subscribe(&mut self) -> Result<Subscription> {
        match self.observer.take() {
            Some(subscription) => Ok(subscription),
            None => self.engine.subscribe(&self.id()).await,
        }
    }

    /// Follows the run to its end, storing its record after every batch of events. The run is
    /// terminated when `cancel` resolves or when `baton workflows terminate` asks for it.
    pub async fn record(
        self,
        db: &dyn Db,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<WorkflowRunRecord> {
        let WorkflowRunHandle {
            engine,
            dag: _,
            mut record,
            events,
            observer: _,
            lease,
        } = self;
        let id = record.id.clone().into();
        let Subscription { mut status, events } = events;
        // Batches drain the stream with `now_or_never`, which may see its end; fused, a later
        // poll answers `None` again instead of polling a finished stream.
        let mut events = events.fuse();
        tokio::pin!(cancel);
        // Another process asks through the database; a terminate here is an engine input.
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        let mut terminating = false;
        // Events applied since the last store wait for `next_store`.
        let mut next_store = tokio::time::Instant::now();
        let mut unstored = false;
        loop {
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { break };
                    status.apply(&event);
                    // One store covers every event queued meanwhile.
                    while let Some(Some(event)) = events.next().now_or_never() {
                        status.apply(&event);
                    }
                    unstored = true;
                    if tokio::time::Instant::now() >= next_store {
                        record.update(&status);
                        db.store_workflow_run(&record).await?;
                        unstored = false;
                        next_store = tokio::time::Instant::now() + STORE_EVERY;
                    }
                }
                _ = tokio::time::sleep_until(next_store), if unstored => {
                    record.update(&status);
                    db.store_workflow_run(&record).await?;
                    unstored = false;
                    next_store = tokio::time::Instant::now() + STORE_EVERY;
                }
                _ = &mut cancel, if !terminating => {
                    terminating = true;
                    engine.terminate(&id).await?;
                }
                _ = poll.tick(), if !terminating => {
                    if db.workflow_termination_requested(&record.project, &record.id).await? {
                        terminating = true;
                        engine.terminate(&id).await?;
                    }
                }
            }
        }
        if !status.state.is_terminal() {
            // The stream ended early: the engine says why (e.g. its dispatcher died).
            status = engine.wait(&id, None).await?;
        }
        record.update(&status);
        db.store_workflow_run(&record).await?;
        lease.release().await?;
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

    /// The summaries of the project's workflow runs, newest first; a run that may need settling
    /// (see [`Project::settle_orphaned_workflow_run`]) is read whole and settled first.
    pub async fn workflow_run_summaries(&self, db: &dyn Db) -> Result<Vec<WorkflowRunSummary>> {
        let mut runs = db.list_workflow_run_summaries(self.name()).await?;
        for run in &mut runs {
            if run.may_be_orphaned() {
                *run = WorkflowRunSummary::of(&self.workflow_run(db, &run.id).await?);
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
        if !run.may_be_orphaned() || db.lease_alive(&run.driver_lease()).await? {
            return Ok(false);
        }
        // The driver stores its last record before it releases its lease, so a run that ended
        // between the read above and the lease check is settled by now: read it again.
        *run = db.read_workflow_run(self.name(), &run.id).await?;
        if !run.is_unsettled() {
            return Ok(false);
        }
        let driver = run
            .driver
            .as_ref()
            .map(|d| d.describe())
            .unwrap_or_default();
        run.settle_orphaned();
        let filter = RunFilter {
            labels: vec![("workflow".to_string(), run.id.clone())],
        };
        let mut step_runs = db.list_runs(self.name(), &filter).await?;
        for step_run in step_runs.iter_mut() {
            let error = format!(
                "Run aborted: {driver} driving workflow run `{}` exited",
                run.id
            );
            *step_run = settle_run(db, step_run, RunState::Aborted, error).await?;
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
                    step.outputs = r.step_outputs();
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
                        format!("canceled while running: {driver} driving the workflow exited")
                    } else {
                        format!("not run: {driver} driving the workflow exited")
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
