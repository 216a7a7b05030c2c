//! The local engine: a dispatcher that runs a workflow's steps on this machine.
//!
//! # One owner for run state
//!
//! A run is one task. Its `Dispatcher` owns the DAG's step table and is only touched between
//! `await`s, one input at a time (as sdk-core's `workflow_stream.rs`: nothing async happens while
//! state is mutated). Inputs are `Finished` (an attempt ended), `RetryDue` (a backoff elapsed) and
//! `Terminate`; the dispatcher answers with commands (`Start` step X, `RetryAfter` a delay), which
//! the driver loop carries out by spawning one task per attempt.
//!
//! Each step keeps a count of unfinished predecessors; when a step settles, only its successors
//! are visited. Dispatching a whole workflow is therefore O(steps + edges), with no rescans.
//!
//! # Step lifecycle
//!
//! ```text
//! Pending  --(deps settled, all succeeded, slot free, `when` true)--> Running
//! Pending  --(`when` false | an upstream step failed or was skipped)--> Skipped
//! Pending  --(substitution or `when` error)--------------------------> Failed
//! Running  --(attempt succeeded)-------------------------------------> Succeeded
//! Running  --(attempt failed or timed out, retries left)--> Pending --(backoff)--> Running
//! Running  --(attempt failed or timed out, no retries left)----------> Failed
//! Running  --(attempt failed, not retryable)-------------------------> Failed
//! Pending | Running --(Terminate)------------------------------------> Canceled
//! Succeeded | Failed | Skipped | Canceled --(anything)--> unchanged
//! ```
//!
//! # Failures
//!
//! A step that fails for good does not stop the run: steps already running finish, steps that
//! depend on it (directly or not) are skipped, and independent branches keep going, as MLRun and
//! KFP do. The run then ends `Failed`, naming the failing step.
//!
//! # Cancellation
//!
//! An attempt is cancelled by dropping its future: on timeout (the attempt fails with "timed out
//! after 10m") and on terminate. Executors must therefore release what they hold on drop (a
//! subprocess executor kills its child in `Drop`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::engine::{
    EngineKind, RunReport, StepExecutor, StepInvocation, StepOutcome, StepState, StepStatus,
    WorkflowEngine, WorkflowEvent, WorkflowObserver, WorkflowRunId, WorkflowRunRequest,
    WorkflowRunStatus, WorkflowState,
};
use crate::error::{Error, Result};
use crate::workflow::refs;
use crate::workflow::Dag;

/// What the driver tells the dispatcher.
enum Input {
    /// An attempt of a step reported its run.
    RunStarted(RunReport),
    /// An attempt of step `index` ended.
    Finished { index: usize, outcome: StepOutcome },
    /// The backoff before retrying step `index` elapsed.
    RetryDue(usize),
}

impl Input {
    fn name(&self) -> &'static str {
        match self {
            Input::RunStarted(_) => "run-started",
            Input::Finished { .. } => "finished",
            Input::RetryDue(_) => "retry-due",
        }
    }
}

/// What the dispatcher asks the driver to do.
enum Command {
    /// Start an attempt.
    Start {
        index: usize,
        invocation: Box<StepInvocation>,
        timeout: Option<Duration>,
    },
    /// Deliver `RetryDue(index)` after `delay`.
    RetryAfter { index: usize, delay: Duration },
}

/// The per-step row of the dispatcher's table.
#[derive(Debug, Clone)]
struct Slot {
    state: StepState,
    attempts: u32,
    started: Option<chrono::DateTime<Utc>>,
    finished: Option<chrono::DateTime<Utc>>,
    run_uid: Option<String>,
    error: Option<String>,
    /// Predecessors not yet settled.
    remaining: usize,
    /// Why the step cannot run: the first upstream step that did not succeed.
    blocked: Option<String>,
}

/// The run-state owner: the step table and the rules of the lifecycle above. Synchronous; the
/// driver feeds it inputs and carries out its commands.
struct Dispatcher {
    id: WorkflowRunId,
    project: String,
    dag: Arc<Dag>,
    args: Map<String, Value>,
    observer: Arc<dyn WorkflowObserver>,
    parallelism: usize,
    slots: Vec<Slot>,
    /// Outputs of succeeded steps, by step name (what references resolve against).
    outputs: HashMap<String, Map<String, Value>>,
    ready: VecDeque<usize>,
    in_flight: usize,
    settled: usize,
    /// Steps that failed for good, in the order they failed.
    failures: Vec<usize>,
    terminated: bool,
    /// Scratch stack for [`Dispatcher::settle`].
    cascade: Vec<usize>,
}

impl Dispatcher {
    fn new(
        run: RunSpec,
        id: WorkflowRunId,
        parallelism: usize,
        observer: Arc<dyn WorkflowObserver>,
        prior: Option<&WorkflowRunStatus>,
    ) -> Self {
        let dag = run.dag;
        let slots = (0..dag.len())
            .map(|i| Slot {
                state: StepState::Pending,
                attempts: 0,
                started: None,
                finished: None,
                run_uid: None,
                error: None,
                remaining: dag.predecessors(i).count(),
                blocked: None,
            })
            .collect();
        let mut d = Dispatcher {
            id,
            project: run.project,
            args: run.args,
            observer,
            parallelism: parallelism.max(1),
            slots,
            outputs: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: 0,
            settled: 0,
            failures: Vec::new(),
            terminated: false,
            cascade: Vec::new(),
            dag,
        };
        let dag = Arc::clone(&d.dag);
        if let Some(prior) = prior {
            // Reuse what succeeded before; settle in topological order so each reused step
            // releases its successors exactly once.
            let mut reused = Vec::new();
            for old in prior
                .steps
                .iter()
                .filter(|s| s.state == StepState::Succeeded)
            {
                if let Some(i) = dag.index_of(&old.name) {
                    let slot = &mut d.slots[i];
                    slot.state = StepState::Succeeded;
                    slot.attempts = old.attempts;
                    slot.started = old.started;
                    slot.finished = old.finished;
                    slot.run_uid.clone_from(&old.run_uid);
                    d.outputs.insert(old.name.clone(), old.outputs.clone());
                    reused.push(i);
                }
            }
            let mut is_reused = vec![false; dag.len()];
            for &i in &reused {
                is_reused[i] = true;
            }
            for &i in dag.topological_order() {
                if is_reused[i] {
                    d.emit(WorkflowEvent::StepReused {
                        name: dag.step(i).name.clone(),
                    });
                    d.settle(i);
                }
            }
        }
        for &i in dag.topological_order() {
            if dag.predecessors(i).next().is_none() && !d.slots[i].state.is_terminal() {
                d.ready.push_back(i);
            }
        }
        d
    }

    fn emit(&self, event: WorkflowEvent) {
        self.observer.on_event(&self.id, &event);
    }

    fn is_done(&self) -> bool {
        self.settled == self.slots.len()
    }

    /// Starts what is ready, up to the parallelism limit.
    fn fill(&mut self, out: &mut Vec<Command>) {
        while self.in_flight < self.parallelism && !self.terminated {
            let Some(i) = self.ready.pop_front() else {
                break;
            };
            self.launch(i, out);
        }
    }

    /// Starts an attempt of step `i` (or settles it when its condition says so).
    fn launch(&mut self, i: usize, out: &mut Vec<Command>) {
        let dag = Arc::clone(&self.dag);
        let step = dag.step(i);
        if self.slots[i].attempts == 0 {
            if let Some(when) = &step.when {
                match refs::evaluate_condition(when, &self.args, &self.outputs) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.skip(i, format!("condition `{when}` is false"));
                        return;
                    }
                    Err(e) => {
                        self.fail(i, e.to_string());
                        return;
                    }
                }
            }
        }
        let substituted =
            substitute_map(&step.params, &self.args, &self.outputs).and_then(|params| {
                Ok((
                    params,
                    substitute_map(&step.inputs, &self.args, &self.outputs)?,
                ))
            });
        let (params, inputs) = match substituted {
            Ok(both) => both,
            Err(e) => {
                self.fail(i, e.to_string());
                return;
            }
        };
        let mut invocation_step = step.clone();
        invocation_step.params = params;
        invocation_step.inputs = inputs;
        let now = Utc::now();
        let slot = &mut self.slots[i];
        slot.attempts += 1;
        slot.state = StepState::Running;
        slot.started.get_or_insert(now);
        let attempt = slot.attempts;
        self.in_flight += 1;
        self.emit(WorkflowEvent::StepStarted {
            name: step.name.clone(),
            attempt,
            at: now,
        });
        out.push(Command::Start {
            index: i,
            invocation: Box::new(StepInvocation {
                workflow_id: self.id.to_string(),
                project: self.project.clone(),
                step: invocation_step,
                attempt,
                args: self.args.clone(),
                run_reports: None,
                index: i,
            }),
            timeout: step.timeout,
        });
    }

    fn handle(&mut self, input: Input, out: &mut Vec<Command>) {
        match input {
            Input::RunStarted(report) => self.run_started(report),
            Input::Finished { index, outcome } => self.finished(index, outcome, out),
            Input::RetryDue(index) => {
                if !self.terminated && self.slots[index].state == StepState::Pending {
                    // A retry goes before steps that became ready meanwhile.
                    self.ready.push_front(index);
                }
            }
        }
        self.fill(out);
    }

    fn run_started(&mut self, report: RunReport) {
        let slot = &mut self.slots[report.index];
        // Reports race with outcomes: one may arrive after its attempt ended (and is still the
        // latest attempt's run), but one from an earlier attempt must not replace a later run.
        if slot.attempts != report.attempt {
            return;
        }
        slot.run_uid = Some(report.run_uid.clone());
        self.emit(WorkflowEvent::StepRunStarted {
            name: self.dag.step(report.index).name.clone(),
            attempt: report.attempt,
            run_uid: report.run_uid,
        });
    }

    fn finished(&mut self, i: usize, outcome: StepOutcome, out: &mut Vec<Command>) {
        let dag = Arc::clone(&self.dag);
        let step = dag.step(i);
        self.in_flight -= 1;
        let succeeded = outcome.state == StepState::Succeeded;
        let error = (!succeeded).then(|| {
            outcome
                .error
                .clone()
                .unwrap_or_else(|| "the step failed without an error message".to_owned())
        });
        let retryable = outcome.retryable;
        let slot = &mut self.slots[i];
        let attempt = slot.attempts;
        if outcome.run_uid.is_some() {
            slot.run_uid.clone_from(&outcome.run_uid);
        }
        self.emit(WorkflowEvent::StepFinished {
            name: step.name.clone(),
            attempt,
            state: if succeeded {
                StepState::Succeeded
            } else {
                StepState::Failed
            },
            error: error.clone(),
            run_uid: outcome.run_uid,
            at: Utc::now(),
        });
        if succeeded {
            let slot = &mut self.slots[i];
            slot.state = StepState::Succeeded;
            slot.error = None;
            slot.finished = Some(Utc::now());
            self.outputs.insert(step.name.clone(), outcome.outputs);
            self.settle(i);
            return;
        }
        let error = error.expect("a failed attempt has an error");
        match &step.retries {
            Some(policy) if attempt <= policy.limit && !retryable => {
                self.fail(i, format!("{error} (not retried: a retry cannot fix this)"));
            }
            Some(policy) if attempt <= policy.limit && !self.terminated => {
                let slot = &mut self.slots[i];
                slot.state = StepState::Pending;
                slot.error = Some(error);
                self.emit(WorkflowEvent::StepRetrying {
                    name: step.name.clone(),
                    next_attempt: attempt + 1,
                    delay: policy.backoff,
                });
                out.push(Command::RetryAfter {
                    index: i,
                    delay: policy.backoff,
                });
            }
            _ => self.fail(i, error),
        }
    }

    /// Step `i` failed for good.
    fn fail(&mut self, i: usize, error: String) {
        let slot = &mut self.slots[i];
        slot.state = StepState::Failed;
        slot.error = Some(error);
        slot.finished = Some(Utc::now());
        self.failures.push(i);
        self.settle(i);
    }

    /// Step `i` will not run.
    fn skip(&mut self, i: usize, reason: String) {
        let slot = &mut self.slots[i];
        slot.state = StepState::Skipped;
        slot.finished = Some(Utc::now());
        slot.error = Some(reason.clone());
        self.emit(WorkflowEvent::StepSkipped {
            name: self.dag.step(i).name.clone(),
            reason,
        });
        self.settle(i);
    }

    /// Step `i` reached a terminal state: release its successors, skipping (transitively) those
    /// that can no longer run. Visits each edge once over the whole run.
    fn settle(&mut self, i: usize) {
        let dag = Arc::clone(&self.dag);
        let mut stack = std::mem::take(&mut self.cascade);
        stack.push(i);
        while let Some(j) = stack.pop() {
            self.settled += 1;
            let state = self.slots[j].state;
            for s in dag.successors(j) {
                let slot = &mut self.slots[s];
                if state != StepState::Succeeded && slot.blocked.is_none() {
                    let verb = match state {
                        StepState::Skipped => "was skipped",
                        StepState::Canceled => "was canceled",
                        _ => "failed",
                    };
                    slot.blocked = Some(format!("upstream step `{}` {verb}", dag.step(j).name));
                }
                slot.remaining -= 1;
                if slot.remaining > 0 || slot.state.is_terminal() {
                    continue;
                }
                match slot.blocked.take() {
                    Some(reason) => {
                        slot.state = StepState::Skipped;
                        slot.finished = Some(Utc::now());
                        slot.error = Some(reason.clone());
                        self.emit(WorkflowEvent::StepSkipped {
                            name: dag.step(s).name.clone(),
                            reason,
                        });
                        stack.push(s);
                    }
                    None => self.ready.push_back(s),
                }
            }
        }
        self.cascade = stack;
    }

    /// Marks the run terminated; `false` when it already was (terminate is idempotent).
    fn terminate(&mut self) -> bool {
        !std::mem::replace(&mut self.terminated, true)
    }

    /// After a terminate, once every attempt's future is gone: everything unsettled is canceled.
    fn cancel_rest(&mut self) {
        let now = Utc::now();
        for slot in &mut self.slots {
            if !slot.state.is_terminal() {
                slot.error = Some(if slot.state == StepState::Running {
                    "canceled while running: the workflow was terminated".to_owned()
                } else {
                    "not run: the workflow was terminated".to_owned()
                });
                slot.state = StepState::Canceled;
                slot.finished = Some(now);
            }
        }
        self.ready.clear();
        self.in_flight = 0;
        self.settled = self.slots.len();
    }

    fn status(&self) -> WorkflowRunStatus {
        let (state, error) = if !self.is_done() {
            (WorkflowState::Running, None)
        } else if self.terminated {
            (
                WorkflowState::Canceled,
                Some("the workflow was terminated".to_owned()),
            )
        } else if let Some(&first) = self.failures.first() {
            let name = |i: usize| format!("`{}`", self.dag.step(i).name);
            let error = self.slots[first].error.as_deref().unwrap_or_default();
            let message = if self.failures.len() == 1 {
                format!("step {} failed: {error}", name(first))
            } else {
                let all: Vec<String> = self.failures.iter().map(|&i| name(i)).collect();
                format!("steps {} failed; {}: {error}", all.join(", "), name(first))
            };
            (WorkflowState::Failed, Some(message))
        } else {
            (WorkflowState::Succeeded, None)
        };
        WorkflowRunStatus {
            id: self.id.clone(),
            name: self.dag.name().to_owned(),
            state,
            steps: self
                .slots
                .iter()
                .zip(self.dag.steps())
                .map(|(slot, step)| StepStatus {
                    name: step.name.clone(),
                    state: slot.state,
                    attempts: slot.attempts,
                    started: slot.started,
                    finished: slot.finished,
                    run_uid: slot.run_uid.clone(),
                    outputs: self.outputs.get(&step.name).cloned().unwrap_or_default(),
                    error: slot.error.clone(),
                })
                .collect(),
            error,
        }
    }
}

fn substitute_map(
    values: &std::collections::BTreeMap<String, Value>,
    args: &Map<String, Value>,
    outputs: &HashMap<String, Map<String, Value>>,
) -> Result<std::collections::BTreeMap<String, Value>> {
    values
        .iter()
        .map(|(k, v)| Ok((k.clone(), refs::substitute(v, args, outputs)?)))
        .collect()
}

/// Runs one attempt: the executor's future, under the step's timeout, with panics caught.
async fn run_attempt(
    executor: Arc<dyn StepExecutor>,
    index: usize,
    invocation: StepInvocation,
    timeout: Option<Duration>,
) -> (usize, StepOutcome) {
    let execution = AssertUnwindSafe(executor.execute(invocation)).catch_unwind();
    let result = match timeout {
        // On elapse `tokio::time::timeout` drops the execution future: that is the cancellation.
        Some(limit) => match tokio::time::timeout(limit, execution).await {
            Ok(result) => result,
            Err(_) => {
                let limit = humantime::format_duration(limit);
                return (
                    index,
                    StepOutcome::failed(format!("timed out after {limit}")),
                );
            }
        },
        None => execution.await,
    };
    let outcome = result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        StepOutcome::failed(format!("the step executor panicked: {message}"))
    });
    (index, outcome)
}

/// Messages from the engine to a running dispatch loop.
enum Control {
    Terminate,
    Snapshot(oneshot::Sender<WorkflowRunStatus>),
}

type RetryTimer = Pin<Box<dyn Future<Output = usize> + Send>>;

/// The driver: feeds the dispatcher one input at a time and carries out its commands.
async fn drive(
    mut dispatcher: Dispatcher,
    executor: Arc<dyn StepExecutor>,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> WorkflowRunStatus {
    let mut attempts: JoinSet<(usize, StepOutcome)> = JoinSet::new();
    let mut timers: FuturesUnordered<RetryTimer> = FuturesUnordered::new();
    let mut commands = Vec::new();
    let mut control_open = true;
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    dispatcher.fill(&mut commands);
    loop {
        for command in commands.drain(..) {
            match command {
                Command::Start {
                    index,
                    mut invocation,
                    timeout,
                } => {
                    invocation.run_reports = Some(reports_tx.clone());
                    attempts.spawn(run_attempt(
                        Arc::clone(&executor),
                        index,
                        *invocation,
                        timeout,
                    ));
                }
                Command::RetryAfter { index, delay } => timers.push(Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    index
                })),
            }
        }
        if dispatcher.is_done() {
            break;
        }
        let input = tokio::select! {
            message = control.recv(), if control_open => match message {
                Some(Control::Snapshot(reply)) => {
                    let _ = reply.send(dispatcher.status());
                    continue;
                }
                // A closed channel means the engine was dropped: nobody can observe the run.
                Some(Control::Terminate) | None => {
                    control_open = control_open && message.is_some();
                    if dispatcher.terminate() {
                        // Runs reported before the terminate still link their steps.
                        while let Ok(report) = reports.try_recv() {
                            dispatcher.run_started(report);
                        }
                        attempts.abort_all();
                        timers.clear();
                        // Wait until every aborted future is dropped; attempts that finished in
                        // the meantime are recorded as they ended.
                        while let Some(joined) = attempts.join_next().await {
                            if let Ok((index, outcome)) = joined {
                                dispatcher.handle(Input::Finished { index, outcome }, &mut commands);
                            }
                        }
                        commands.clear();
                        dispatcher.cancel_rest();
                    }
                    continue;
                }
            },
            Some(joined) = attempts.join_next(), if !attempts.is_empty() => match joined {
                Ok((index, outcome)) => Input::Finished { index, outcome },
                Err(e) => {
                    // Attempts catch panics and are only aborted on terminate, handled above.
                    tracing::error!(error = %e, "a step attempt task ended unexpectedly");
                    continue;
                }
            },
            Some(index) = timers.next(), if !timers.is_empty() => Input::RetryDue(index),
            Some(report) = reports.recv() => Input::RunStarted(report),
        };
        tracing::trace!(input = input.name(), "dispatcher input");
        dispatcher.handle(input, &mut commands);
    }
    tracing::trace!("dispatcher done");
    let status = dispatcher.status();
    dispatcher.emit(WorkflowEvent::WorkflowFinished {
        state: status.state,
        error: status.error.clone(),
        at: Utc::now(),
    });
    status
}

/// What a run needs beyond its id: kept so a retry can rerun it.
#[derive(Clone)]
struct RunSpec {
    project: String,
    dag: Arc<Dag>,
    args: Map<String, Value>,
}

struct RunEntry {
    spec: RunSpec,
    control: mpsc::UnboundedSender<Control>,
    finished: watch::Receiver<Option<WorkflowRunStatus>>,
}

/// The `local` engine: runs each workflow's steps through a [`StepExecutor`] on this machine.
///
/// Runs live in memory, keyed by id, for the engine's lifetime. Dropping the engine terminates
/// the runs still going (their steps' futures are dropped).
///
/// ```
/// # use std::sync::Arc;
/// # use baton::engine::{WorkflowEngineExt, WorkflowRunRequest, WorkflowState};
/// # use baton::engine::{StepExecutor, StepInvocation, StepOutcome};
/// # use baton::engines::local::LocalEngine;
/// # use baton::workflow::{Dag, DagCheck};
/// struct Echo;
///
/// #[async_trait::async_trait]
/// impl StepExecutor for Echo {
///     async fn execute(&self, step: StepInvocation) -> StepOutcome {
///         let mut outputs = serde_json::Map::new();
///         outputs.insert("out".into(), step.step.params["x"].clone());
///         StepOutcome::succeeded(outputs)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let graph = serde_yaml::from_str(r#"
/// name: main
/// params: [{name: n, default: 2}]
/// steps:
///   - {name: a, function: f, params: {x: "{{args.n}}"}, outputs: [out]}
///   - {name: b, function: f, params: {x: "{{steps.a.outputs.out}}"}, outputs: [out]}
/// "#).unwrap();
/// let dag = Dag::build(graph, &DagCheck::default()).unwrap();
/// let engine = LocalEngine::new(Arc::new(Echo));
/// let args = serde_json::json!({"n": 2}).as_object().unwrap().clone();
/// let status = engine
///     .run_and_wait(WorkflowRunRequest { project: "p".into(), dag, args })
///     .await
///     .unwrap();
/// assert_eq!(status.state, WorkflowState::Succeeded);
/// assert_eq!(status.step("b").unwrap().outputs["out"], 2);
/// # }
/// ```
pub struct LocalEngine {
    executor: Arc<dyn StepExecutor>,
    observer: Arc<dyn WorkflowObserver>,
    parallelism: usize,
    runs: Mutex<HashMap<WorkflowRunId, RunEntry>>,
}

impl fmt::Display for LocalEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalEngine(parallelism={})", self.parallelism)
    }
}

impl LocalEngine {
    /// An engine running steps through `executor`, as many at once as this machine has CPUs.
    pub fn new(executor: Arc<dyn StepExecutor>) -> Self {
        LocalEngine {
            executor,
            observer: Arc::new(()),
            parallelism: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            runs: Mutex::new(HashMap::new()),
        }
    }

    /// At most `parallelism` attempts run at once (steps waiting for a retry do not count).
    pub fn with_parallelism(mut self, parallelism: NonZeroUsize) -> Self {
        self.parallelism = parallelism.get();
        self
    }

    /// Reports every run's events to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn WorkflowObserver>) -> Self {
        self.observer = observer;
        self
    }

    fn start(&self, spec: RunSpec, prior: Option<&WorkflowRunStatus>) -> WorkflowRunId {
        let id = WorkflowRunId::random();
        let dispatcher = Dispatcher::new(
            spec.clone(),
            id.clone(),
            self.parallelism,
            Arc::clone(&self.observer),
            prior,
        );
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (finished_tx, finished_rx) = watch::channel(None);
        let executor = Arc::clone(&self.executor);
        tokio::spawn(async move {
            let status = drive(dispatcher, executor, control_rx).await;
            let _ = finished_tx.send(Some(status));
        });
        self.lock().insert(
            id.clone(),
            RunEntry {
                spec,
                control: control_tx,
                finished: finished_rx,
            },
        );
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkflowRunId, RunEntry>> {
        // A poisoned map is still consistent: entries are inserted whole.
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(
        &self,
        id: &WorkflowRunId,
    ) -> Result<(
        RunSpec,
        mpsc::UnboundedSender<Control>,
        watch::Receiver<Option<WorkflowRunStatus>>,
    )> {
        let runs = self.lock();
        let entry = runs
            .get(id)
            .ok_or_else(|| Error::not_found(format!("workflow run `{id}` not found")))?;
        Ok((
            entry.spec.clone(),
            entry.control.clone(),
            entry.finished.clone(),
        ))
    }
}

fn dispatcher_gone(id: &WorkflowRunId) -> Error {
    Error::runtime(format!(
        "the dispatcher of workflow run `{id}` stopped unexpectedly"
    ))
}

async fn final_status(
    id: &WorkflowRunId,
    mut finished: watch::Receiver<Option<WorkflowRunStatus>>,
) -> Result<WorkflowRunStatus> {
    let status = finished
        .wait_for(Option::is_some)
        .await
        .map_err(|_| dispatcher_gone(id))?;
    Ok(status.clone().expect("waited for Some"))
}

#[async_trait]
impl WorkflowEngine for LocalEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Local
    }

    async fn run(&self, request: WorkflowRunRequest) -> Result<WorkflowRunId> {
        let spec = RunSpec {
            project: request.project,
            dag: Arc::new(request.dag),
            args: request.args,
        };
        Ok(self.start(spec, None))
    }

    async fn status(&self, id: &WorkflowRunId) -> Result<WorkflowRunStatus> {
        let (_, control, finished) = self.entry(id)?;
        if let Some(status) = finished.borrow().clone() {
            return Ok(status);
        }
        let (reply, answer) = oneshot::channel();
        if control.send(Control::Snapshot(reply)).is_err() {
            // The loop ended between the two looks: its final status is (about to be) published.
            return final_status(id, finished).await;
        }
        // The loop may also end just after the request was queued; the request then goes
        // unanswered (it can even outlive the loop's receiver), so the final status answers too.
        tokio::select! {
            Ok(status) = answer => Ok(status),
            status = final_status(id, finished) => status,
        }
    }

    async fn wait(
        &self,
        id: &WorkflowRunId,
        timeout: Option<Duration>,
    ) -> Result<WorkflowRunStatus> {
        let (_, _, finished) = self.entry(id)?;
        match timeout {
            None => final_status(id, finished).await,
            Some(limit) => tokio::time::timeout(limit, final_status(id, finished))
                .await
                .map_err(|_| {
                    Error::runtime(format!(
                        "workflow run `{id}` did not finish within {}; it is still running",
                        humantime::format_duration(limit)
                    ))
                })?,
        }
    }

    async fn terminate(&self, id: &WorkflowRunId) -> Result<()> {
        let (_, control, _) = self.entry(id)?;
        // A finished loop has dropped its receiver: terminal runs ignore the request.
        let _ = control.send(Control::Terminate);
        Ok(())
    }

    async fn retry(&self, id: &WorkflowRunId) -> Result<WorkflowRunId> {
        let (spec, _, finished) = self.entry(id)?;
        let previous = finished.borrow().clone().ok_or_else(|| {
            Error::conflict(format!(
                "workflow run `{id}` is still running; wait for it or terminate it before \
                 retrying"
            ))
        })?;
        if previous.state == WorkflowState::Succeeded {
            return Err(Error::bad_request(format!(
                "workflow run `{id}` succeeded; there is nothing to retry"
            )));
        }
        Ok(self.start(spec, Some(&previous)))
    }
}

#[cfg(test)]
mod tests {
    //! Scripted inputs straight into the [`Dispatcher`], commands asserted: no tasks, no clock.

    use super::*;
    use crate::workflow::{DagCheck, WorkflowGraph};

    fn dispatcher(yaml: &str, parallelism: usize) -> Dispatcher {
        let graph: WorkflowGraph = serde_yaml::from_str(yaml).unwrap();
        let spec = RunSpec {
            project: "p".into(),
            dag: Arc::new(Dag::build(graph, &DagCheck::default()).unwrap()),
            args: Map::new(),
        };
        Dispatcher::new(spec, "id".into(), parallelism, Arc::new(()), None)
    }

    fn started(commands: &mut Vec<Command>) -> Vec<String> {
        commands
            .drain(..)
            .map(|c| match c {
                Command::Start { invocation, .. } => {
                    format!("start {}#{}", invocation.step.name, invocation.attempt)
                }
                Command::RetryAfter { index, delay } => format!("retry {index} after {delay:?}"),
            })
            .collect()
    }

    #[test]
    fn script_diamond_with_retry_and_parallelism_one() {
        let mut d = dispatcher(
            "{name: w, steps: [{name: a, function: f}, {name: b, function: f, after: [a], retries: {limit: 1, backoff: 3s}}, {name: c, function: f, after: [a]}, {name: d, function: f, after: [b, c]}]}",
            1,
        );
        let mut out = Vec::new();
        d.fill(&mut out);
        assert_eq!(started(&mut out), ["start a#1"]);
        let ok = || StepOutcome::succeeded(Map::new());
        d.handle(
            Input::Finished {
                index: 0,
                outcome: ok(),
            },
            &mut out,
        );
        assert_eq!(started(&mut out), ["start b#1"]);
        d.handle(
            Input::Finished {
                index: 1,
                outcome: StepOutcome::failed("boom"),
            },
            &mut out,
        );
        // The failed attempt frees the slot: c starts while b backs off.
        assert_eq!(started(&mut out), ["retry 1 after 3s", "start c#1"]);
        d.handle(Input::RetryDue(1), &mut out);
        assert!(out.is_empty(), "the slot is busy with c");
        d.handle(
            Input::Finished {
                index: 2,
                outcome: ok(),
            },
            &mut out,
        );
        assert_eq!(started(&mut out), ["start b#2"]);
        d.handle(
            Input::Finished {
                index: 1,
                outcome: ok(),
            },
            &mut out,
        );
        assert_eq!(started(&mut out), ["start d#1"]);
        assert!(!d.is_done());
        d.handle(
            Input::Finished {
                index: 3,
                outcome: ok(),
            },
            &mut out,
        );
        assert!(d.is_done());
        assert_eq!(d.status().state, WorkflowState::Succeeded);
        assert_eq!(d.status().steps[1].attempts, 2);
    }

    #[test]
    fn script_failure_skips_dependents_transitively() {
        let mut d = dispatcher(
            "{name: w, steps: [{name: a, function: f}, {name: b, function: f, after: [a]}, {name: c, function: f, after: [b]}, {name: x, function: f}]}",
            4,
        );
        let mut out = Vec::new();
        d.fill(&mut out);
        assert_eq!(started(&mut out), ["start a#1", "start x#1"]);
        d.handle(
            Input::Finished {
                index: 0,
                outcome: StepOutcome::failed("bad"),
            },
            &mut out,
        );
        assert!(out.is_empty());
        let status = d.status();
        assert_eq!(status.state, WorkflowState::Running);
        assert_eq!(status.steps[1].state, StepState::Skipped);
        assert_eq!(
            status.steps[1].error.as_deref(),
            Some("upstream step `a` failed")
        );
        assert_eq!(
            status.steps[2].error.as_deref(),
            Some("upstream step `b` was skipped")
        );
        d.handle(
            Input::Finished {
                index: 3,
                outcome: StepOutcome::succeeded(Map::new()),
            },
            &mut out,
        );
        let status = d.status();
        assert_eq!(status.state, WorkflowState::Failed);
        assert_eq!(status.error.as_deref(), Some("step `a` failed: bad"));
    }
}
