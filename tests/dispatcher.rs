//! The local dispatcher, driven through `LocalEngine` with scripted executors.
//!
//! Every test runs on tokio's paused clock: timeouts and backoffs elapse in virtual time, and a
//! test that waits for something that never happens fails at its bounded timeout instead of
//! hanging. No test sleeps to make an assertion true.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use baton::engine::{
    AttemptResult, RunOptions, StepState, Subscription, WorkflowEngine, WorkflowEventKind,
    WorkflowRunId, WorkflowRunRequest, WorkflowRunStatus, WorkflowState,
};
use baton::engine::{StepExecutor, StepInvocation, StepOutcome};
use baton::engines::local::LocalEngine;
use baton::error::ErrorKind;
use baton::workflow::{Dag, DagCheck};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Barrier};
use tokio::time::Instant;

/// What a scripted step does on one call.
#[derive(Clone)]
enum Act {
    /// Succeed with these outputs.
    Succeed(Value),
    /// Fail with this error.
    Fail(&'static str),
    /// Fail with this error, which no retry can fix.
    FailForGood(&'static str),
    /// Succeed after this much (virtual) time.
    SucceedAfter(Duration),
    /// Never finish (until the future is dropped).
    Hang,
    /// Wait at the shared barrier, then succeed.
    Barrier,
    /// Panic.
    Panic,
}

/// One recorded call.
#[derive(Debug, Clone)]
struct Call {
    step: String,
    attempt: u32,
    params: Value,
    inputs: Value,
    at: Instant,
}

/// An executor whose behaviour is scripted per step and per call (the n-th time it sees a step,
/// counting across runs), recording calls, concurrency and dropped (cancelled) executions.
#[derive(Default)]
struct Scripted {
    script: HashMap<(String, usize), Act>,
    calls: Mutex<Vec<Call>>,
    ended: Mutex<Vec<(String, Instant)>>,
    dropped: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    barrier: Option<Barrier>,
    started: Option<mpsc::UnboundedSender<String>>,
}

impl Scripted {
    fn on(mut self, step: &str, call: usize, act: Act) -> Self {
        self.script.insert((step.to_owned(), call), act);
        self
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn order(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.step).collect()
    }

    fn call(&self, step: &str, attempt: u32) -> Call {
        self.calls()
            .into_iter()
            .find(|c| c.step == step && c.attempt == attempt)
            .unwrap_or_else(|| panic!("no call of `{step}` attempt {attempt}"))
    }

    fn dropped(&self) -> Vec<String> {
        let mut d = self.dropped.lock().unwrap().clone();
        d.sort();
        d
    }
}

/// Counts an execution in flight; records it as dropped unless it completed.
struct InFlight<'a> {
    executor: &'a Scripted,
    step: String,
    completed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.executor.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.completed {
            self.executor
                .dropped
                .lock()
                .unwrap()
                .push(self.step.clone());
        }
    }
}

#[async_trait]
impl StepExecutor for Scripted {
    async fn execute(&self, inv: StepInvocation) -> StepOutcome {
        let name = inv.step.name.clone();
        let nth = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                step: name.clone(),
                attempt: inv.attempt,
                params: json!(inv.step.params),
                inputs: json!(inv.step.inputs),
                at: Instant::now(),
            });
            calls.iter().filter(|c| c.step == name).count()
        };
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let mut guard = InFlight {
            executor: self,
            step: name.clone(),
            completed: false,
        };
        if let Some(started) = &self.started {
            let _ = started.send(name.clone());
        }
        let act = self
            .script
            .get(&(name.clone(), nth))
            .cloned()
            .unwrap_or(Act::Succeed(json!({})));
        let outcome = match act {
            Act::Succeed(outputs) => StepOutcome::succeeded(outputs.as_object().unwrap().clone()),
            Act::Fail(error) => StepOutcome::failed(error),
            Act::FailForGood(error) => StepOutcome::failed(error).not_retryable(),
            Act::SucceedAfter(d) => {
                tokio::time::sleep(d).await;
                StepOutcome::succeeded(Map::new())
            }
            Act::Hang => std::future::pending().await,
            Act::Barrier => {
                self.barrier.as_ref().expect("a barrier").wait().await;
                StepOutcome::succeeded(Map::new())
            }
            Act::Panic => panic!("scripted panic in `{name}`"),
        };
        guard.completed = true;
        self.ended.lock().unwrap().push((name, Instant::now()));
        outcome.with_run_uid(format!("uid-{}-{}", inv.step.name, inv.attempt))
    }
}

fn dag(yaml: &str) -> Dag {
    Dag::build(serde_yaml::from_str(yaml).unwrap(), &DagCheck::default()).unwrap()
}

fn request(dag: Dag, args: Value) -> WorkflowRunRequest {
    WorkflowRunRequest {
        project: "proj".into(),
        dag,
        args: args.as_object().unwrap().clone(),
    }
}

/// A [`LocalEngine`] with this test's [`RunOptions`], remembering each run's request so that
/// `retry(id)` can hand the engine the previous status and the request again.
struct Local {
    engine: LocalEngine,
    options: RunOptions,
    requests: Mutex<HashMap<WorkflowRunId, WorkflowRunRequest>>,
}

impl std::ops::Deref for Local {
    type Target = LocalEngine;

    fn deref(&self) -> &LocalEngine {
        &self.engine
    }
}

impl Local {
    async fn run(&self, req: WorkflowRunRequest) -> baton::Result<WorkflowRunId> {
        let id = self.engine.run(req.clone(), self.options.clone()).await?;
        self.requests.lock().unwrap().insert(id.clone(), req);
        Ok(id)
    }

    async fn run_and_wait(&self, req: WorkflowRunRequest) -> baton::Result<WorkflowRunStatus> {
        let id = self.run(req).await?;
        self.engine.wait(&id, None).await
    }

    async fn retry(&self, id: &WorkflowRunId) -> baton::Result<WorkflowRunId> {
        let previous = self.engine.status(id).await?;
        let req = self.requests.lock().unwrap()[id].clone();
        let new = self
            .engine
            .retry(&previous, req.clone(), self.options.clone())
            .await?;
        self.requests.lock().unwrap().insert(new.clone(), req);
        Ok(new)
    }
}

fn engine(executor: &Arc<Scripted>, parallelism: usize) -> Local {
    Local {
        engine: LocalEngine::new(executor.clone() as Arc<dyn StepExecutor>),
        options: RunOptions {
            parallelism: NonZeroUsize::new(parallelism),
            ..RunOptions::default()
        },
        requests: Mutex::default(),
    }
}

fn state(status: &WorkflowRunStatus, step: &str) -> StepState {
    status.step(step).unwrap().state
}

/// A bound on every wait: hitting it fails the test (virtual time, so it costs nothing).
const BOUND: Duration = Duration::from_secs(24 * 3600);

async fn run(engine: &Local, req: WorkflowRunRequest) -> WorkflowRunStatus {
    tokio::time::timeout(BOUND, engine.run_and_wait(req))
        .await
        .expect("the workflow never finished")
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn linear_chain_runs_in_order() {
    let exec = Arc::new(Scripted::default());
    let status = run(
        &engine(&exec, 4),
        request(
            dag("{name: w, steps: [{name: d, function: f, after: [c]}, {name: b, function: f, after: [a]}, {name: a, function: f}, {name: c, function: f, after: [b]}]}"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded);
    assert_eq!(status.error, None);
    assert_eq!(exec.order(), ["a", "b", "c", "d"]);
    assert_eq!(exec.max_in_flight.load(Ordering::SeqCst), 1);
    let a = status.step("a").unwrap();
    assert_eq!((a.attempts, a.run_uid.as_deref()), (1, Some("uid-a-1")));
    assert!(a.started.is_some() && a.finished.is_some());
    // Steps are reported in declaration order.
    let names: Vec<&str> = status.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["d", "b", "a", "c"]);
}

#[tokio::test(start_paused = true)]
async fn fan_out_runs_concurrently() {
    // Each of the 4 branches only completes once all 4 are in flight at the same time; if the
    // dispatcher ran them one by one the run would never finish and BOUND would fail the test.
    let mut exec = Scripted {
        barrier: Some(Barrier::new(4)),
        ..Default::default()
    };
    for b in ["b1", "b2", "b3", "b4"] {
        exec = exec.on(b, 1, Act::Barrier);
    }
    let exec = Arc::new(exec);
    let status = run(
        &engine(&exec, 8),
        request(
            dag("{name: w, steps: [{name: a, function: f}, {name: b1, function: f, after: [a]}, {name: b2, function: f, after: [a]}, {name: b3, function: f, after: [a]}, {name: b4, function: f, after: [a]}, {name: z, function: f, after: [b1, b2, b3, b4]}]}"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded);
    assert_eq!(exec.max_in_flight.load(Ordering::SeqCst), 4);
    let order = exec.order();
    assert_eq!((order[0].as_str(), order[5].as_str()), ("a", "z"));
}

#[tokio::test(start_paused = true)]
async fn parallelism_limit_is_respected() {
    let mut exec = Scripted::default();
    let mut steps = Vec::new();
    for i in 0..10 {
        exec = exec.on(
            &format!("s{i}"),
            1,
            Act::SucceedAfter(Duration::from_secs(1)),
        );
        steps.push(format!("{{name: s{i}, function: f}}"));
    }
    let exec = Arc::new(exec);
    let yaml = format!("{{name: w, steps: [{}]}}", steps.join(", "));
    let started = Instant::now();
    let status = run(&engine(&exec, 3), request(dag(&yaml), json!({}))).await;
    assert_eq!(status.state, WorkflowState::Succeeded);
    assert_eq!(exec.max_in_flight.load(Ordering::SeqCst), 3);
    // 10 one-second steps, 3 at a time: 4 waves of virtual time.
    assert_eq!(started.elapsed(), Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn outputs_and_args_are_substituted_with_types_kept() {
    let exec = Arc::new(Scripted::default().on(
        "a",
        1,
        Act::Succeed(json!({"n": 42, "obj": {"k": [1, 2]}, "path": "s3://b/t.csv", "ok": true})),
    ));
    let status = run(
        &engine(&exec, 2),
        request(
            dag(r#"
name: w
params: [{name: p, default: 1}, {name: name}]
steps:
  - {name: a, function: f, outputs: [n, obj, path, ok], params: {p: "{{args.p}}"}}
  - name: b
    function: f
    params:
      n: "{{steps.a.outputs.n}}"
      o: "{{steps.a.outputs.obj}}"
      ok: "{{steps.a.outputs.ok}}"
      text: "n={{steps.a.outputs.n}} by {{args.name}} {{workflow.uid}}"
      list: ["{{args.p}}", "{{steps.a.outputs.obj}}"]
    inputs: {table: "{{steps.a.outputs.path}}"}
"#),
            json!({"p": 7.5, "name": "bob"}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded);
    assert_eq!(exec.call("a", 1).params, json!({"p": 7.5}));
    let b = exec.call("b", 1);
    assert_eq!(
        b.params,
        json!({
            "n": 42, "o": {"k": [1, 2]}, "ok": true,
            "text": "n=42 by bob {{workflow.uid}}",
            "list": [7.5, {"k": [1, 2]}]
        })
    );
    assert_eq!(b.inputs, json!({"table": "s3://b/t.csv"}));
    assert_eq!(status.step("a").unwrap().outputs["n"], json!(42));
}

#[tokio::test(start_paused = true)]
async fn false_condition_skips_the_step_and_its_dependents() {
    let exec = Arc::new(Scripted::default().on("a", 1, Act::Succeed(json!({"rows": 0}))));
    let status = run(
        &engine(&exec, 2),
        request(
            dag(r#"
name: w
steps:
  - {name: a, function: f, outputs: [rows]}
  - {name: b, function: f, when: "{{steps.a.outputs.rows}} > 0"}
  - {name: c, function: f, after: [b]}
  - {name: d, function: f, after: [c]}
  - {name: e, function: f, when: "{{steps.a.outputs.rows}} == 0"}
"#),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded);
    assert_eq!(exec.order(), ["a", "e"]);
    assert_eq!(state(&status, "b"), StepState::Skipped);
    assert_eq!(
        status.step("b").unwrap().error.as_deref(),
        Some("condition `{{steps.a.outputs.rows}} > 0` is false")
    );
    assert_eq!(state(&status, "c"), StepState::Skipped);
    assert_eq!(
        status.step("c").unwrap().error.as_deref(),
        Some("upstream step `b` was skipped")
    );
    assert_eq!(state(&status, "d"), StepState::Skipped);
    assert_eq!(state(&status, "e"), StepState::Succeeded);
    assert_eq!(status.step("b").unwrap().attempts, 0);
}

#[tokio::test(start_paused = true)]
async fn failure_skips_dependents_and_independent_branches_complete() {
    let exec = Arc::new(Scripted::default().on("a", 1, Act::Fail("boom")).on(
        "x",
        1,
        Act::SucceedAfter(Duration::from_secs(5)),
    ));
    let status = run(
        &engine(&exec, 4),
        request(
            dag("{name: w, steps: [{name: a, function: f}, {name: b, function: f, after: [a]}, {name: c, function: f, after: [b, x]}, {name: x, function: f}, {name: y, function: f, after: [x]}]}"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Failed);
    assert_eq!(status.error.as_deref(), Some("step `a` failed: boom"));
    assert_eq!(state(&status, "a"), StepState::Failed);
    assert_eq!(status.step("a").unwrap().error.as_deref(), Some("boom"));
    assert_eq!(state(&status, "b"), StepState::Skipped);
    assert_eq!(state(&status, "c"), StepState::Skipped);
    // The independent branch ran to the end after the failure.
    assert_eq!(state(&status, "x"), StepState::Succeeded);
    assert_eq!(state(&status, "y"), StepState::Succeeded);
    let mut order = exec.order();
    order.sort();
    assert_eq!(order, ["a", "x", "y"]);
}

#[tokio::test(start_paused = true)]
async fn failed_step_is_retried_after_its_backoff() {
    let exec = Arc::new(Scripted::default().on("a", 1, Act::Fail("flaky")));
    let engine = engine(&exec, 2);
    let id = engine
        .run(request(
            dag("{name: w, steps: [{name: a, function: f, retries: {limit: 2, backoff: 30s}}, {name: b, function: f, after: [a]}]}"),
            json!({}),
        ))
        .await
        .unwrap();
    let events = engine.subscribe(&id).await.unwrap().events;
    let status = tokio::time::timeout(BOUND, engine.wait(&id, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, WorkflowState::Succeeded);
    let a = status.step("a").unwrap();
    assert_eq!((a.attempts, a.error.as_deref()), (2, None));
    assert_eq!(a.run_uid.as_deref(), Some("uid-a-2"));
    let first_end = exec.ended.lock().unwrap()[0].1;
    assert_eq!(exec.call("a", 2).at - first_end, Duration::from_secs(30));
    assert_eq!(exec.order(), ["a", "a", "b"]);

    let mut seen = Vec::new();
    for event in events.collect::<Vec<_>>().await {
        match event.kind {
            WorkflowEventKind::StepStarted { step, attempt } => {
                seen.push(format!("start {}#{attempt}", step.name))
            }
            WorkflowEventKind::StepFinished {
                step,
                attempt,
                result,
                ..
            } => match result {
                AttemptResult::Succeeded { .. } => {
                    seen.push(format!("end {}#{attempt} Succeeded", step.name))
                }
                AttemptResult::Failed { .. } => {
                    seen.push(format!("end {}#{attempt} Failed", step.name))
                }
                AttemptResult::Retrying {
                    next_attempt,
                    delay,
                    ..
                } => {
                    seen.push(format!("end {}#{attempt} Failed", step.name));
                    seen.push(format!("retry {}#{next_attempt} in {delay:?}", step.name));
                }
            },
            WorkflowEventKind::WorkflowFinished { state, .. } => {
                seen.push(format!("workflow {state}"))
            }
            other => seen.push(format!("{other:?}")),
        }
    }
    assert_eq!(
        seen,
        [
            "start a#1",
            "end a#1 Failed",
            "retry a#2 in 30s",
            "start a#2",
            "end a#2 Succeeded",
            "start b#1",
            "end b#1 Succeeded",
            "workflow Succeeded"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn retries_run_out() {
    let exec = Arc::new(Scripted::default().on("a", 1, Act::Fail("one")).on(
        "a",
        2,
        Act::Fail("two"),
    ));
    let status = run(
        &engine(&exec, 2),
        request(
            dag("{name: w, steps: [{name: a, function: f, retries: {limit: 1, backoff: 1s}}]}"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Failed);
    assert_eq!(status.step("a").unwrap().attempts, 2);
    assert_eq!(status.error.as_deref(), Some("step `a` failed: two"));
}

#[tokio::test(start_paused = true)]
async fn a_failure_no_retry_can_fix_is_not_retried() {
    let exec = Arc::new(Scripted::default().on("a", 1, Act::FailForGood("no such function")));
    let status = run(
        &engine(&exec, 2),
        request(
            dag("{name: w, steps: [{name: a, function: f, retries: {limit: 100, backoff: 0s}}]}"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Failed);
    assert_eq!(exec.order(), ["a"]);
    assert_eq!(status.step("a").unwrap().attempts, 1);
    assert_eq!(
        status.error.as_deref(),
        Some("step `a` failed: no such function (not retried: a retry cannot fix this)")
    );
}

#[test]
fn a_retry_limit_above_the_cap_is_refused_naming_the_step() {
    let graph = serde_yaml::from_str(
        "{name: w, steps: [{name: a, function: f, retries: {limit: 4294967295, backoff: 0s}}]}",
    )
    .unwrap();
    let err = Dag::build(graph, &DagCheck::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "step `a` asks for 4294967295 retries; at most 100 are allowed"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_drops_the_execution_and_fails_the_step() {
    let exec = Arc::new(Scripted::default().on("slow", 1, Act::Hang));
    let started = Instant::now();
    let status = run(
        &engine(&exec, 2),
        request(
            dag("{name: w, steps: [{name: slow, function: f, timeout: 10m}, {name: next, function: f, after: [slow]}]}"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(started.elapsed(), Duration::from_secs(600));
    assert_eq!(exec.dropped(), ["slow"]);
    assert_eq!(exec.in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(status.state, WorkflowState::Failed);
    assert_eq!(
        status.step("slow").unwrap().error.as_deref(),
        Some("timed out after 10m")
    );
    assert_eq!(
        status.error.as_deref(),
        Some("step `slow` failed: timed out after 10m")
    );
    assert_eq!(state(&status, "next"), StepState::Skipped);
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempt_is_retried() {
    let exec = Arc::new(Scripted::default().on("slow", 1, Act::Hang));
    let status = run(
        &engine(&exec, 2),
        request(
            dag("{name: w, steps: [{name: slow, function: f, timeout: 1m, retries: {limit: 1, backoff: 5s}}]}"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded);
    assert_eq!(status.step("slow").unwrap().attempts, 2);
    assert_eq!(exec.dropped(), ["slow"]);
}

#[tokio::test(start_paused = true)]
async fn terminate_cancels_running_and_pending_steps() {
    let (tx, mut started) = mpsc::unbounded_channel();
    let exec = Arc::new(
        Scripted {
            started: Some(tx),
            ..Default::default()
        }
        .on("a", 1, Act::Hang)
        .on("b", 1, Act::Hang),
    );
    let engine = engine(&exec, 4);
    let id = engine
        .run(request(
            dag("{name: w, steps: [{name: a, function: f}, {name: b, function: f}, {name: c, function: f, after: [a, b]}]}"),
            json!({}),
        ))
        .await
        .unwrap();
    for _ in 0..2 {
        tokio::time::timeout(BOUND, started.recv()).await.unwrap();
    }
    let running = engine.status(&id).await.unwrap();
    assert_eq!(running.state, WorkflowState::Running);
    assert_eq!(state(&running, "a"), StepState::Running);
    assert_eq!(state(&running, "c"), StepState::Pending);

    engine.terminate(&id).await.unwrap();
    engine.terminate(&id).await.unwrap();
    let status = tokio::time::timeout(BOUND, engine.wait(&id, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, WorkflowState::Canceled);
    assert_eq!(status.error.as_deref(), Some("the workflow was terminated"));
    assert_eq!(exec.dropped(), ["a", "b"]);
    for step in ["a", "b", "c"] {
        assert_eq!(state(&status, step), StepState::Canceled, "{step}");
    }
    assert_eq!(exec.order().len(), 2, "c never started");
    // A terminal run ignores further terminates.
    engine.terminate(&id).await.unwrap();
    assert_eq!(engine.status(&id).await.unwrap(), status);
}

#[tokio::test(start_paused = true)]
async fn terminate_after_finish_changes_nothing() {
    let exec = Arc::new(Scripted::default());
    let engine = engine(&exec, 1);
    let id = engine
        .run(request(
            dag("{name: w, steps: [{name: a, function: f}]}"),
            json!({}),
        ))
        .await
        .unwrap();
    let done = engine.wait(&id, Some(BOUND)).await.unwrap();
    engine.terminate(&id).await.unwrap();
    assert_eq!(engine.wait(&id, None).await.unwrap(), done);
    assert_eq!(done.state, WorkflowState::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn engine_retry_reruns_only_what_did_not_succeed() {
    let exec = Arc::new(
        Scripted::default()
            .on("a", 1, Act::Succeed(json!({"n": 3})))
            .on("b", 1, Act::Fail("first time")),
    );
    let engine = engine(&exec, 2);
    let graph = "{name: w, steps: [{name: a, function: f, outputs: [n]}, {name: b, function: f, params: {n: '{{steps.a.outputs.n}}'}, after: [a]}, {name: c, function: f, after: [b]}, {name: x, function: f}]}";
    let first = run(&engine, request(dag(graph), json!({}))).await;
    assert_eq!(first.state, WorkflowState::Failed);
    assert_eq!(state(&first, "c"), StepState::Skipped);

    let retry_id = engine.retry(&first.id).await.unwrap();
    assert_ne!(retry_id, first.id);
    let second = engine.wait(&retry_id, Some(BOUND)).await.unwrap();
    assert_eq!(second.state, WorkflowState::Succeeded);
    // a and x succeeded the first time: reused, not run again; b reran with a's old output.
    let mut order = exec.order();
    order.sort();
    assert_eq!(order, ["a", "b", "b", "c", "x"]);
    assert_eq!(exec.calls().last().unwrap().step, "c");
    assert_eq!(exec.calls()[3].params, json!({"n": 3}));
    assert_eq!(second.step("a").unwrap().outputs["n"], json!(3));
    assert_eq!(
        second.step("a").unwrap().run_uid.as_deref(),
        Some("uid-a-1")
    );

    let e = engine.retry(&retry_id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert!(e
        .to_string()
        .contains("succeeded; there is nothing to retry"));
}

#[tokio::test(start_paused = true)]
async fn retry_of_a_running_run_and_unknown_ids_are_refused() {
    let exec = Arc::new(Scripted::default().on("a", 1, Act::Hang));
    let engine = engine(&exec, 1);
    let id = engine
        .run(request(
            dag("{name: w, steps: [{name: a, function: f}]}"),
            json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(
        engine.retry(&id).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let e = engine
        .wait(&id, Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did not finish within 5s"), "{e}");
    let unknown = WorkflowRunId::from("nope");
    assert_eq!(
        engine.status(&unknown).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        engine.terminate(&unknown).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        engine.wait(&unknown, None).await.unwrap_err().to_string(),
        "workflow run `nope` not found"
    );
    engine.terminate(&id).await.unwrap();
    assert_eq!(
        engine.wait(&id, Some(BOUND)).await.unwrap().state,
        WorkflowState::Canceled
    );
}

#[tokio::test(start_paused = true)]
async fn missing_runtime_output_and_panics_fail_the_step() {
    // `a` declares `n` but does not produce it: `b` fails before its executor is called.
    let exec = Arc::new(Scripted::default().on("p", 1, Act::Panic));
    let status = run(
        &engine(&exec, 2),
        request(
            dag("{name: w, steps: [{name: a, function: f, outputs: [n]}, {name: b, function: f, params: {n: '{{steps.a.outputs.n}}'}}, {name: p, function: f}]}"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Failed);
    assert_eq!(
        status.step("b").unwrap().error.as_deref(),
        Some("unknown reference `{{steps.a.outputs.n}}`: step `a` did not produce output `n`; it produced: nothing")
    );
    assert_eq!(
        status.step("p").unwrap().error.as_deref(),
        Some("the step executor panicked: scripted panic in `p`")
    );
    assert_eq!(
        status
            .error
            .as_deref()
            .map(|e| e.starts_with("steps `p`, `b` failed;")
                || e.starts_with("steps `b`, `p` failed;")),
        Some(true),
        "{:?}",
        status.error
    );
    assert!(!exec.order().contains(&"b".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn empty_workflow_succeeds() {
    let exec = Arc::new(Scripted::default());
    let status = run(
        &engine(&exec, 1),
        request(dag("{name: w, steps: []}"), json!({})),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded);
    assert!(status.steps.is_empty());
}

/// Succeeds at once, reporting a run uid first.
struct Instant0;

#[async_trait]
impl StepExecutor for Instant0 {
    async fn execute(&self, inv: StepInvocation) -> StepOutcome {
        inv.report_run(format!("run-{}", inv.step.name));
        StepOutcome::succeeded(Map::new())
    }
}

/// Folding the events a subscriber sees, from the status it subscribed at, gives the status the
/// engine reports at the end, however the subscription races the run. This races real threads
/// (no paused clock), so it is a stress test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_folds_to_the_final_status_however_it_races_the_run() {
    let engine = Arc::new(LocalEngine::new(Arc::new(Instant0)));
    for _ in 0..500 {
        let id = engine
            .run(
                request(
                    dag("name: w\nsteps:\n  - {name: a, function: f}\n  - {name: b, function: f, after: [a]}\n"),
                    json!({}),
                ),
                RunOptions::default(),
            )
            .await
            .unwrap();
        tokio::task::yield_now().await;
        let Subscription { mut status, events } = engine.subscribe(&id).await.unwrap();
        let events: Vec<_> = tokio::time::timeout(Duration::from_secs(10), events.collect())
            .await
            .expect("the event stream ends after the run");
        for event in &events {
            status.apply(event);
        }
        assert_eq!(status, engine.wait(&id, None).await.unwrap());
    }
}

#[tokio::test(start_paused = true)]
async fn a_reported_run_links_the_step_while_it_runs_and_after_it_is_canceled() {
    struct ReportThenHang;
    #[async_trait]
    impl StepExecutor for ReportThenHang {
        async fn execute(&self, inv: StepInvocation) -> StepOutcome {
            inv.report_run("run-42");
            std::future::pending().await
        }
    }
    let engine = LocalEngine::new(Arc::new(ReportThenHang));
    let id = engine
        .run(
            request(
                dag("name: w\nsteps:\n  - {name: a, function: f}\n"),
                json!({}),
            ),
            RunOptions::default(),
        )
        .await
        .unwrap();
    let mut events = engine.subscribe(&id).await.unwrap().events;
    loop {
        let event = events.next().await.unwrap();
        if let WorkflowEventKind::StepRunStarted {
            step,
            attempt,
            run_uid,
        } = event.kind
        {
            assert_eq!(
                (step.name.as_str(), attempt, run_uid.as_str()),
                ("a", 1, "run-42")
            );
            break;
        }
    }
    let running = engine.status(&id).await.unwrap();
    assert_eq!(running.step("a").unwrap().state, StepState::Running);
    assert_eq!(
        running.step("a").unwrap().run_uid.as_deref(),
        Some("run-42")
    );
    engine.terminate(&id).await.unwrap();
    let ended = engine.wait(&id, None).await.unwrap();
    assert_eq!(ended.step("a").unwrap().state, StepState::Canceled);
    assert_eq!(ended.step("a").unwrap().run_uid.as_deref(), Some("run-42"));
}

/// An engine with a retention period (a server's) forgets a run that long after it finished,
/// and no sooner; without one (the CLI's) it keeps it for its lifetime.
#[tokio::test(start_paused = true)]
async fn finished_runs_are_forgotten_after_the_retention_period_only() {
    let exec = Arc::new(Scripted::default());
    let retaining = LocalEngine::new(exec.clone() as Arc<dyn StepExecutor>)
        .with_retention(Duration::from_secs(600));
    let keeping = LocalEngine::new(exec.clone() as Arc<dyn StepExecutor>);
    let req = || request(dag("{name: w, steps: [{name: a, function: f}]}"), json!({}));
    let forgetful = retaining.run(req(), RunOptions::default()).await.unwrap();
    let lasting = keeping.run(req(), RunOptions::default()).await.unwrap();
    for (engine, id) in [(&retaining, &forgetful), (&keeping, &lasting)] {
        let status = engine.wait(id, Some(BOUND)).await.unwrap();
        assert_eq!(status.state, WorkflowState::Succeeded);
    }
    tokio::time::sleep(Duration::from_secs(599)).await;
    assert!(
        retaining.status(&forgetful).await.is_ok(),
        "kept within the period"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = retaining.status(&forgetful).await.unwrap_err();
    assert_eq!(err.kind(), baton::error::ErrorKind::NotFound);
    assert!(keeping.status(&lasting).await.is_ok());
}
