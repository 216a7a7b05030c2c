//! The local engine: a dispatcher that runs a workflow's steps on this machine.
//!
//! # One owner for run state
//!
//! A run is one task. Its `Dispatcher` owns the DAG's step table and is only touched between
//! `await`s, one input at a time (as sdk-core's `workflow_stream.rs`: nothing async happens while
//! state is mutated). Inputs are `Finished` (an attempt ended), `RetryDue` (a backoff elapsed),
//! `RunStarted` (an attempt reported its run), and the run's `Terminate` and `Timeout`; the
//! dispatcher answers with commands (`Start` step X, `RetryAfter` a delay), which the driver
//! loop carries out by spawning one task per attempt.
//!
//! Every change of state is an event published on the run's [`feed`](crate::engine::feed): the
//! status that [`WorkflowEngine::status`] and [`WorkflowEngine::wait`] read is the fold of those
//! events, on a `watch` channel, so reading a status never asks the dispatch loop anything.
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
//! Pending | Running --(Terminate | run Timeout)----------------------> Canceled
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
//! An attempt is cancelled by dropping its future: on a step's timeout (the attempt fails with
//! "timed out after 10m"), and on terminate or the run's timeout (the run goes `Canceling`, then
//! `Canceled`). Executors must therefore release what they hold on drop (a subprocess executor
//! kills its child in `Drop`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::engine::feed::{run_feed, RunFeed, RunPublisher};
use crate::engine::{
    check_retryable, refuse_deploy_steps, AttemptResult, EngineKind, RunOptions, RunReport,
    StepExecutor, StepInvocation, StepOutcome, StepRef, StepState, Subscription, WorkflowEngine,
    WorkflowEvent, WorkflowEventKind, WorkflowRunId, WorkflowRunRequest, WorkflowRunStatus,
    WorkflowState,
};
use crate::error::{Error, Result};
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

/// The per-step row of the dispatcher's table: what its rules need. Everything reported (times,
/// errors, run uids) lives in the published status.
#[derive(Debug, Clone)]
struct Slot {
    state: StepState,
    attempts: u32,
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
    options: RunOptions,
    parallelism: usize,
    slots: Vec<Slot>,
    /// Outputs of succeeded steps, by step name (what references resolve against).
    outputs: HashMap<String, Map<String, Value>>,
    ready: VecDeque<usize>,
    in_flight: usize,
    settled: usize,
    /// Steps that failed for good, in the order they failed.
    failures: Vec<usize>,
    /// Why the run is being stopped (terminate, timeout), once it is.
    stopping: Option<String>,
    /// Scratch stack for [`Dispatcher::settle`].
    cascade: Vec<usize>,
    feed: RunPublisher,
}

impl Dispatcher {
    fn new(
        run: RunSpec,
        id: WorkflowRunId,
        options: RunOptions,
        parallelism: usize,
        prior: Option<&WorkflowRunStatus>,
        feed: RunPublisher,
    ) -> Self {
        let dag = run.dag;
        let slots = (0..dag.len())
            .map(|i| Slot {
                state: StepState::Pending,
                attempts: 0,
                remaining: dag.predecessors(i).count(),
                blocked: None,
            })
            .collect();
        let mut d = Dispatcher {
            id,
            project: run.project,
            args: run.args,
            parallelism: options.parallelism.map_or(parallelism, NonZeroUsize::get),
            options,
            slots,
            outputs: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: 0,
            settled: 0,
            failures: Vec::new(),
            stopping: None,
            cascade: Vec::new(),
            dag,
            feed,
        };
        let dag = Arc::clone(&d.dag);
        d.emit(WorkflowEventKind::WorkflowStarted {
            name: dag.name().to_owned(),
            steps: dag.steps().iter().map(|s| s.name.clone()).collect(),
        });
        if let Some(prior) = prior {
            // Reuse what succeeded before; settle in topological order so each reused step
            // releases its successors exactly once.
            let mut reused: Vec<Option<_>> = vec![None; dag.len()];
            for old in prior
                .steps
                .iter()
                .filter(|s| s.state == StepState::Succeeded)
            {
                if let Some(i) = dag.index_of(&old.name) {
                    reused[i] = Some(old);
                }
            }
            for &i in dag.topological_order() {
                if let Some(old) = reused[i] {
                    let slot = &mut d.slots[i];
                    slot.state = StepState::Succeeded;
                    slot.attempts = old.attempts;
                    d.outputs.insert(old.name.clone(), old.outputs.clone());
                    d.emit(WorkflowEventKind::StepReused {
                        step: d.step_ref(i),
                        status: old.clone(),
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

    fn emit(&self, kind: WorkflowEventKind) {
        self.feed.publish(WorkflowEvent::now(kind));
    }

    fn step_ref(&self, i: usize) -> StepRef {
        StepRef {
            index: i,
            name: self.dag.step(i).name.clone(),
        }
    }

    fn is_done(&self) -> bool {
        self.settled == self.slots.len()
    }

    /// Starts what is ready, up to the parallelism limit.
    fn fill(&mut self, out: &mut Vec<Command>) {
        while self.in_flight < self.parallelism && self.stopping.is_none() {
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
        let node = dag.node(i);
        if self.slots[i].attempts == 0 {
            if let Some(when) = &node.when {
                match when.evaluate(&self.args, &self.outputs) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.skip(i, format!("condition `{when}` is false"));
                        return;
                    }
                    Err(e) => {
                        self.fail(i, e.chain().to_string());
                        return;
                    }
                }
            }
        }
        let rendered = node
            .render_params(&self.args, &self.outputs)
            .and_then(|params| Ok((params, node.render_inputs(&self.args, &self.outputs)?)));
        let (params, inputs) = match rendered {
            Ok(both) => both,
            Err(e) => {
                self.fail(i, e.chain().to_string());
                return;
            }
        };
        let mut invocation_step = step.clone();
        invocation_step.params = params;
        invocation_step.inputs = inputs;
        let slot = &mut self.slots[i];
        slot.attempts += 1;
        slot.state = StepState::Running;
        let attempt = slot.attempts;
        self.in_flight += 1;
        self.emit(WorkflowEventKind::StepStarted {
            step: self.step_ref(i),
            attempt,
        });
        out.push(Command::Start {
            index: i,
            invocation: Box::new(StepInvocation {
                workflow_id: self.id.to_string(),
                project: self.project.clone(),
                step: invocation_step,
                attempt,
                args: self.args.clone(),
                labels: self.options.labels.clone(),
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
                if self.stopping.is_none() && self.slots[index].state == StepState::Pending {
                    // A retry goes before steps that became ready meanwhile.
                    self.ready.push_front(index);
                }
            }
        }
        self.fill(out);
    }

    fn run_started(&mut self, report: RunReport) {
        // Reports race with outcomes: one may arrive after its attempt ended (and is still the
        // latest attempt's run), but one from an earlier attempt must not replace a later run.
        if self.slots[report.index].attempts != report.attempt {
            return;
        }
        self.emit(WorkflowEventKind::StepRunStarted {
            step: self.step_ref(report.index),
            attempt: report.attempt,
            run_uid: report.run_uid,
        });
    }

    fn finished(&mut self, i: usize, outcome: StepOutcome, out: &mut Vec<Command>) {
        let dag = Arc::clone(&self.dag);
        let step = dag.step(i);
        self.in_flight -= 1;
        let attempt = self.slots[i].attempts;
        let (result, run_uid) = match outcome {
            StepOutcome::Succeeded { outputs, run_uid } => {
                self.slots[i].state = StepState::Succeeded;
                self.outputs.insert(step.name.clone(), outputs.clone());
                (AttemptResult::Succeeded { outputs }, run_uid)
            }
            StepOutcome::Failed {
                error,
                run_uid,
                retryable,
            } => {
                let result = match &step.retries {
                    Some(policy) if attempt <= policy.limit && !retryable => {
                        AttemptResult::Failed {
                            step_error: format!("{error} (not retried: a retry cannot fix this)"),
                            error,
                        }
                    }
                    Some(policy) if attempt <= policy.limit && self.stopping.is_none() => {
                        out.push(Command::RetryAfter {
                            index: i,
                            delay: policy.backoff,
                        });
                        AttemptResult::Retrying {
                            error,
                            next_attempt: attempt + 1,
                            delay: policy.backoff,
                        }
                    }
                    _ => AttemptResult::Failed {
                        step_error: error.clone(),
                        error,
                    },
                };
                self.slots[i].state = match result {
                    AttemptResult::Retrying { .. } => StepState::Pending,
                    _ => {
                        self.failures.push(i);
                        StepState::Failed
                    }
                };
                (result, run_uid)
            }
        };
        self.emit(WorkflowEventKind::StepFinished {
            step: self.step_ref(i),
            attempt,
            run_uid,
            result,
        });
        if self.slots[i].state.is_terminal() {
            self.settle(i);
        }
    }

    /// Step `i` failed for good without an attempt.
    fn fail(&mut self, i: usize, error: String) {
        self.slots[i].state = StepState::Failed;
        self.failures.push(i);
        self.emit(WorkflowEventKind::StepFailed {
            step: self.step_ref(i),
            error,
        });
        self.settle(i);
    }

    /// Step `i` will not run.
    fn skip(&mut self, i: usize, reason: String) {
        self.slots[i].state = StepState::Skipped;
        self.emit(WorkflowEventKind::StepSkipped {
            step: self.step_ref(i),
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
                        self.emit(WorkflowEventKind::StepSkipped {
                            step: self.step_ref(s),
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

    /// Starts stopping the run for `reason`; `false` when it already was (terminate is
    /// idempotent, and a timeout after a terminate changes nothing).
    fn stop(&mut self, reason: String) -> bool {
        if self.stopping.is_some() {
            return false;
        }
        self.emit(WorkflowEventKind::WorkflowCanceling {
            reason: reason.clone(),
        });
        self.stopping = Some(reason);
        true
    }

    /// After a stop, once every attempt's future is gone: everything unsettled is canceled.
    fn cancel_rest(&mut self) {
        for i in 0..self.slots.len() {
            let state = self.slots[i].state;
            if state.is_terminal() {
                continue;
            }
            self.slots[i].state = StepState::Canceled;
            self.emit(WorkflowEventKind::StepCanceled {
                step: self.step_ref(i),
                reason: if state == StepState::Running {
                    "canceled while running: the workflow was terminated".to_owned()
                } else {
                    "not run: the workflow was terminated".to_owned()
                },
            });
        }
        self.ready.clear();
        self.in_flight = 0;
        self.settled = self.slots.len();
    }

    /// Publishes the run's end; called once every step is settled.
    fn finish(&mut self) {
        let (state, error) = if let Some(reason) = &self.stopping {
            (WorkflowState::Canceled, Some(reason.clone()))
        } else if let Some(&first) = self.failures.first() {
            let name = |i: usize| format!("`{}`", self.dag.step(i).name);
            let error = self
                .feed
                .with_status(|s| s.steps[first].error.clone())
                .unwrap_or_default();
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
        self.emit(WorkflowEventKind::WorkflowFinished { state, error });
    }
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

type RetryTimer = Pin<Box<dyn Future<Output = usize> + Send>>;

/// What the driver holds besides the dispatcher: the attempts in flight and the retry timers.
struct Work {
    attempts: JoinSet<(usize, StepOutcome)>,
    timers: FuturesUnordered<RetryTimer>,
    commands: Vec<Command>,
    reports: mpsc::UnboundedReceiver<RunReport>,
}

impl Work {
    /// Stops the run: aborts every attempt, waits until each aborted future is dropped (attempts
    /// that finished meanwhile are recorded as they ended), then cancels what is left.
    async fn stop(&mut self, dispatcher: &mut Dispatcher, reason: String) {
        if !dispatcher.stop(reason) {
            return;
        }
        // Runs reported before the stop still link their steps.
        while let Ok(report) = self.reports.try_recv() {
            dispatcher.run_started(report);
        }
        self.attempts.abort_all();
        self.timers.clear();
        while let Some(joined) = self.attempts.join_next().await {
            if let Ok((index, outcome)) = joined {
                dispatcher.handle(Input::Finished { index, outcome }, &mut self.commands);
            }
        }
        self.commands.clear();
        dispatcher.cancel_rest();
    }
}

/// The driver: feeds the dispatcher one input at a time and carries out its commands. A
/// terminate (a message on `terminate`, or the engine dropping its end) and the run's timeout
/// are inputs like the others.
async fn drive(
    mut dispatcher: Dispatcher,
    executor: Arc<dyn StepExecutor>,
    mut terminate: mpsc::UnboundedReceiver<()>,
) {
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let mut work = Work {
        attempts: JoinSet::new(),
        timers: FuturesUnordered::new(),
        commands: Vec::new(),
        reports,
    };
    let timeout = dispatcher.options.timeout;
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::MAX));
    tokio::pin!(deadline);
    let mut terminate_open = true;
    dispatcher.fill(&mut work.commands);
    loop {
        for command in work.commands.drain(..) {
            match command {
                Command::Start {
                    index,
                    mut invocation,
                    timeout,
                } => {
                    invocation.run_reports = Some(reports_tx.clone());
                    work.attempts.spawn(run_attempt(
                        Arc::clone(&executor),
                        index,
                        *invocation,
                        timeout,
                    ));
                }
                Command::RetryAfter { index, delay } => work.timers.push(Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    index
                })),
            }
        }
        if dispatcher.is_done() {
            break;
        }
        let input = tokio::select! {
            // A closed channel means the engine was dropped: nobody can observe the run.
            message = terminate.recv(), if terminate_open => {
                terminate_open = message.is_some();
                work.stop(&mut dispatcher, "the workflow was terminated".to_owned()).await;
                continue;
            }
            () = &mut deadline, if timeout.is_some() && dispatcher.stopping.is_none() => {
                let limit = humantime::format_duration(timeout.unwrap_or_default());
                let reason = format!("the run did not finish within {limit}");
                work.stop(&mut dispatcher, reason).await;
                continue;
            }
            Some(joined) = work.attempts.join_next(), if !work.attempts.is_empty() => match joined {
                Ok((index, outcome)) => Input::Finished { index, outcome },
                Err(e) => {
                    // Attempts catch panics and are only aborted on stop, handled above.
                    tracing::error!(error = %e, "a step attempt task ended unexpectedly");
                    continue;
                }
            },
            Some(index) = work.timers.next(), if !work.timers.is_empty() => Input::RetryDue(index),
            Some(report) = work.reports.recv() => Input::RunStarted(report),
        };
        tracing::trace!(input = input.name(), "dispatcher input");
        dispatcher.handle(input, &mut work.commands);
    }
    tracing::trace!("dispatcher done");
    dispatcher.finish();
}

/// What a run needs to be dispatched.
struct RunSpec {
    project: String,
    dag: Arc<Dag>,
    args: Map<String, Value>,
}

struct RunEntry {
    terminate: mpsc::UnboundedSender<()>,
    feed: RunFeed,
}

/// The `local` engine: runs each workflow's steps through a [`StepExecutor`] on this machine.
///
/// One engine serves any number of runs, of any project, at once. Runs live in memory, keyed by
/// id, for the engine's lifetime, or, with [`LocalEngine::with_retention`] (a long-lived
/// server), until that long after they finished: their records keep them after that. Dropping
/// the engine terminates the runs still going (their steps' futures are dropped).
///
/// ```
/// # use std::sync::Arc;
/// # use baton::engine::{RunOptions, WorkflowEngineExt, WorkflowRunRequest, WorkflowState};
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
///     .run_and_wait(WorkflowRunRequest { project: "p".into(), dag, args }, RunOptions::default())
///     .await
///     .unwrap();
/// assert_eq!(status.state, WorkflowState::Succeeded);
/// assert_eq!(status.step("b").unwrap().outputs["out"], 2);
/// # }
/// ```
pub struct LocalEngine {
    executor: Arc<dyn StepExecutor>,
    parallelism: usize,
    runs: Arc<Mutex<HashMap<WorkflowRunId, RunEntry>>>,
    /// How long a finished run stays known; `None` is the engine's lifetime.
    retention: Option<Duration>,
}

impl fmt::Display for LocalEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalEngine(parallelism={})", self.parallelism)
    }
}

impl LocalEngine {
    /// An engine running steps through `executor`; a run without
    /// [`RunOptions::parallelism`] runs as many at once as this machine has CPUs.
    pub fn new(executor: Arc<dyn StepExecutor>) -> Self {
        LocalEngine {
            executor,
            parallelism: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            runs: Arc::new(Mutex::new(HashMap::new())),
            retention: None,
        }
    }

    /// The same engine forgetting each run `retention` after it finished (its status and
    /// events then answer [`Error::NotFound`]), so a process that runs workflows for months
    /// holds only recent ones.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    fn start(
        &self,
        request: WorkflowRunRequest,
        options: RunOptions,
        prior: Option<&WorkflowRunStatus>,
    ) -> Result<WorkflowRunId> {
        self.check(&request.dag)?;
        if options.schedule.is_some() {
            return Err(Error::bad_request(
                "'schedule' argument is not supported for 'local' engine.",
            ));
        }
        crate::engine::warn_unenforced_overrides(&request.dag, "the local engine");
        let id = WorkflowRunId::random();
        let names: Vec<String> = request.dag.steps().iter().map(|s| s.name.clone()).collect();
        let (publisher, feed) = run_feed(WorkflowRunStatus::pending(
            id.clone(),
            request.dag.name(),
            &names,
        ));
        let spec = RunSpec {
            project: request.project,
            dag: Arc::new(request.dag),
            args: request.args,
        };
        let dispatcher = Dispatcher::new(
            spec,
            id.clone(),
            options,
            self.parallelism,
            prior,
            publisher,
        );
        let (terminate_tx, terminate_rx) = mpsc::unbounded_channel();
        self.lock().insert(
            id.clone(),
            RunEntry {
                terminate: terminate_tx,
                feed,
            },
        );
        let executor = Arc::clone(&self.executor);
        let (runs, retention, finished) = (Arc::clone(&self.runs), self.retention, id.clone());
        tokio::spawn(async move {
            drive(dispatcher, executor, terminate_rx).await;
            if let Some(retention) = retention {
                tokio::time::sleep(retention).await;
                runs.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&finished);
            }
        });
        Ok(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkflowRunId, RunEntry>> {
        // A poisoned map is still consistent: entries are inserted whole.
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry<T>(&self, id: &WorkflowRunId, f: impl FnOnce(&RunEntry) -> T) -> Result<T> {
        let runs = self.lock();
        let entry = runs
            .get(id)
            .ok_or_else(|| Error::not_found(format!("workflow run `{id}` not found")))?;
        Ok(f(entry))
    }
}

#[async_trait]
impl WorkflowEngine for LocalEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Local
    }

    fn check(&self, dag: &Dag) -> Result<()> {
        refuse_deploy_steps(dag, "the local engine")
    }

    async fn run(&self, request: WorkflowRunRequest, options: RunOptions) -> Result<WorkflowRunId> {
        self.start(request, options, None)
    }

    async fn status(&self, id: &WorkflowRunId) -> Result<WorkflowRunStatus> {
        self.entry(id, |e| e.feed.status())
    }

    async fn subscribe(&self, id: &WorkflowRunId) -> Result<Subscription> {
        self.entry(id, |e| e.feed.subscribe())
    }

    async fn wait(
        &self,
        id: &WorkflowRunId,
        timeout: Option<Duration>,
    ) -> Result<WorkflowRunStatus> {
        let feed = self.entry(id, |e| e.feed.clone())?;
        match timeout {
            None => feed.wait().await,
            Some(limit) => tokio::time::timeout(limit, feed.wait())
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
        // A finished loop has dropped its receiver: terminal runs ignore the request.
        self.entry(id, |e| {
            let _ = e.terminate.send(());
        })
    }

    async fn retry(
        &self,
        previous: &WorkflowRunStatus,
        request: WorkflowRunRequest,
        options: RunOptions,
    ) -> Result<WorkflowRunId> {
        check_retryable(previous)?;
        self.start(request, options, Some(previous))
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
        let id = WorkflowRunId::from("id");
        let (publisher, _) = run_feed(WorkflowRunStatus::pending(id.clone(), "w", &[]));
        Dispatcher::new(
            spec,
            id,
            RunOptions::default(),
            parallelism,
            None,
            publisher,
        )
    }

    impl Dispatcher {
        fn status(&self) -> WorkflowRunStatus {
            self.feed.status()
        }
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
        d.finish();
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
        assert!(d.is_done());
        d.finish();
        let status = d.status();
        assert_eq!(status.state, WorkflowState::Failed);
        assert_eq!(status.error.as_deref(), Some("step `a` failed: bad"));
    }
}
