//! The promises of [`WorkflowEngine`], as plain async functions that take any engine (the shape
//! of object_store's `integration.rs`). Each engine's tests call every one of them: the local
//! engine from `tests/conformance.rs`; kfp and remote will do the same with their own setup.
//!
//! The steps run through a [`ConformanceExecutor`], whose behaviour each step picks with its
//! `handler`, so a workflow script says what happens and needs nothing else:
//!
//! | handler     | the attempt                                                              |
//! | ----------- | ------------------------------------------------------------------------ |
//! | `ok`        | succeeds, with outputs `x` = its param `x` (if any) and `attempt`         |
//! | `fail`      | fails                                                                    |
//! | `fail-once` | fails on its first attempt in the executor's lifetime, then succeeds     |
//! | `hang`      | never finishes (until its future is dropped)                             |
//! | `barrier`   | waits at the executor's barrier, then succeeds                           |
//!
//! Every wait is bounded by [`BOUND`]; run the checks on tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`), where timeouts and backoffs cost nothing. They
//! also run on the real clock (an engine whose steps run behind a real server), so the run
//! timeout and the backoffs they use are short. Nothing here
//! asserts on elapsed time: concurrency is proven by a barrier that only opens when every step of
//! a fan-out is running at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::Barrier;

use super::{
    RunOptions, StepExecutor, StepInvocation, StepOutcome, StepState, WorkflowEngine,
    WorkflowRunId, WorkflowRunRequest, WorkflowRunStatus, WorkflowState,
};
use crate::workflow::{Dag, DagCheck};

/// The bound on every wait of the suite; reaching it fails the check.
pub const BOUND: Duration = Duration::from_secs(24 * 3600);

/// The suite's step executor (see the module docs). `fan_out` is the size of its barrier.
pub struct ConformanceExecutor {
    barrier: Barrier,
    calls: Mutex<HashMap<String, u32>>,
    started: Mutex<Vec<String>>,
}

impl ConformanceExecutor {
    /// An executor whose barrier opens for `fan_out` steps at once.
    pub fn new(fan_out: usize) -> Self {
        ConformanceExecutor {
            barrier: Barrier::new(fan_out),
            calls: Mutex::default(),
            started: Mutex::default(),
        }
    }

    /// The steps started so far, in order (one entry per attempt).
    pub fn started(&self) -> Vec<String> {
        self.started.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl StepExecutor for ConformanceExecutor {
    async fn execute(&self, inv: StepInvocation) -> StepOutcome {
        let name = inv.step.name.clone();
        self.started
            .lock()
            .expect("not poisoned")
            .push(name.clone());
        let calls = {
            let mut calls = self.calls.lock().expect("not poisoned");
            let n = calls.entry(name).or_default();
            *n += 1;
            *n
        };
        let mut outputs = Map::new();
        if let Some(x) = inv.step.params.get("x") {
            outputs.insert("x".into(), x.clone());
        }
        outputs.insert("attempt".into(), json!(inv.attempt));
        match inv.step.handler.as_deref().unwrap_or("ok") {
            "fail" => StepOutcome::failed("failed on purpose"),
            "fail-once" if calls == 1 => StepOutcome::failed("first call fails"),
            "hang" => std::future::pending().await,
            "barrier" => {
                self.barrier.wait().await;
                StepOutcome::succeeded(outputs)
            }
            _ => StepOutcome::succeeded(outputs),
        }
    }
}

/// A checked DAG from a YAML workflow graph.
pub fn dag(yaml: &str) -> Dag {
    Dag::build(
        serde_yaml::from_str(yaml).expect("a valid workflow graph"),
        &DagCheck::default(),
    )
    .expect("a valid DAG")
}

fn request(yaml: &str, args: Value) -> WorkflowRunRequest {
    WorkflowRunRequest {
        project: "conformance".into(),
        dag: dag(yaml),
        args: args.as_object().cloned().unwrap_or_default(),
    }
}

async fn wait(engine: &dyn WorkflowEngine, id: &WorkflowRunId) -> WorkflowRunStatus {
    engine
        .wait(id, Some(BOUND))
        .await
        .expect("the run finishes")
}

async fn run(engine: &dyn WorkflowEngine, yaml: &str, args: Value) -> WorkflowRunStatus {
    let id = engine
        .run(request(yaml, args), RunOptions::default())
        .await
        .expect("the run starts");
    wait(engine, &id).await
}

fn state(status: &WorkflowRunStatus, step: &str) -> StepState {
    status.step(step).expect("the step is reported").state
}

/// A chain runs in order; every step succeeds; the run succeeds.
pub async fn runs_a_linear_dag_in_order(engine: &dyn WorkflowEngine, exec: &ConformanceExecutor) {
    let status = run(
        engine,
        "{name: w, steps: [{name: a, function: f}, {name: b, function: f, after: [a]}, {name: c, function: f, after: [b]}]}",
        json!({}),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded, "{status:?}");
    assert_eq!(exec.started(), ["a", "b", "c"]);
    for step in &status.steps {
        assert_eq!(step.state, StepState::Succeeded);
        assert!(step.started <= step.finished);
    }
}

/// Independent steps run at once, up to the run's parallelism: each waits at a barrier of
/// `fan_out` that only opens when all of them are running, so an engine that runs fewer at once
/// never finishes (the bound fails it).
pub async fn fans_out_concurrently(engine: &dyn WorkflowEngine, fan_out: usize) {
    let steps: Vec<String> = (0..fan_out)
        .map(|i| format!("{{name: s{i}, function: f, handler: barrier, after: [root]}}"))
        .collect();
    let yaml = format!(
        "{{name: w, steps: [{{name: root, function: f}}, {}, {{name: join, function: f, after: [{}]}}]}}",
        steps.join(", "),
        (0..fan_out).map(|i| format!("s{i}")).collect::<Vec<_>>().join(", ")
    );
    let options = RunOptions {
        parallelism: std::num::NonZeroUsize::new(fan_out),
        ..RunOptions::default()
    };
    let id = engine
        .run(request(&yaml, json!({})), options)
        .await
        .expect("the run starts");
    let status = wait(engine, &id).await;
    assert_eq!(status.state, WorkflowState::Succeeded, "{status:?}");
    // Overlap, from the reported times: every branch started before any of them ended.
    let branch = |i: usize| status.step(&format!("s{i}")).expect("a branch").clone();
    let last_start = (0..fan_out).filter_map(|i| branch(i).started).max();
    let first_end = (0..fan_out).filter_map(|i| branch(i).finished).min();
    assert!(last_start <= first_end, "{status:?}");
    assert!(status.step("join").expect("join").started >= last_start);
}

/// Outputs reach later steps with their JSON type; arguments are substituted.
pub async fn passes_outputs_and_arguments(engine: &dyn WorkflowEngine) {
    let status = run(
        engine,
        "{name: w, params: [{name: n}], steps: [{name: a, function: f, params: {x: '{{args.n}}'}, outputs: [x]}, {name: b, function: f, params: {x: '{{steps.a.outputs.x}}'}, outputs: [x]}, {name: c, function: f, params: {x: 'n={{steps.b.outputs.x}}'}}]}",
        json!({"n": 7}),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded, "{status:?}");
    assert_eq!(status.step("b").expect("b").outputs["x"], json!(7));
    assert_eq!(status.step("c").expect("c").outputs["x"], json!("n=7"));
}

/// A false condition skips its step and what depends on it; a true one runs.
pub async fn evaluates_conditions(engine: &dyn WorkflowEngine) {
    let status = run(
        engine,
        "{name: w, params: [{name: n}], steps: [{name: a, function: f, params: {x: '{{args.n}}'}, outputs: [x]}, {name: yes, function: f, when: '{{steps.a.outputs.x}} > 1'}, {name: no, function: f, when: '{{steps.a.outputs.x}} < 1'}, {name: after_no, function: f, after: [no]}]}",
        json!({"n": 2}),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Succeeded, "{status:?}");
    assert_eq!(state(&status, "yes"), StepState::Succeeded);
    assert_eq!(state(&status, "no"), StepState::Skipped);
    assert_eq!(state(&status, "after_no"), StepState::Skipped);
    assert_eq!(status.step("no").expect("no").attempts, 0);
}

/// A failed attempt is retried by its policy; a step that fails for good fails the run, skips
/// its dependents and lets independent branches finish.
pub async fn retries_and_failures(engine: &dyn WorkflowEngine) {
    let status = run(
        engine,
        "{name: w, steps: [{name: flaky, function: f, handler: fail-once, retries: {limit: 1, backoff: 1s}}, {name: bad, function: f, handler: fail}, {name: after_bad, function: f, after: [bad]}, {name: other, function: f}]}",
        json!({}),
    )
    .await;
    assert_eq!(status.state, WorkflowState::Failed, "{status:?}");
    let flaky = status.step("flaky").expect("flaky");
    assert_eq!((flaky.state, flaky.attempts), (StepState::Succeeded, 2));
    assert_eq!(state(&status, "bad"), StepState::Failed);
    assert_eq!(state(&status, "after_bad"), StepState::Skipped);
    assert_eq!(state(&status, "other"), StepState::Succeeded);
    let error = status.error.as_deref().unwrap_or_default();
    assert!(error.contains("`bad`"), "{error}");
}

/// Terminate cancels running and pending steps; the run ends `Canceled`; terminate is
/// idempotent and a terminal run ignores it.
pub async fn terminate_cancels_the_run(engine: &dyn WorkflowEngine) {
    let id = engine
        .run(
            request(
                "{name: w, steps: [{name: h, function: f, handler: hang}, {name: next, function: f, after: [h]}]}",
                json!({}),
            ),
            RunOptions::default(),
        )
        .await
        .expect("the run starts");
    let mut sub = engine.subscribe(&id).await.expect("subscribe");
    while state(&sub.status, "h") != StepState::Running {
        let event = tokio::time::timeout(BOUND, sub.events.next())
            .await
            .expect("h starts")
            .expect("the run goes on");
        sub.status.apply(&event);
    }
    engine.terminate(&id).await.expect("terminate");
    engine.terminate(&id).await.expect("terminate again");
    let status = wait(engine, &id).await;
    assert_eq!(status.state, WorkflowState::Canceled, "{status:?}");
    assert_eq!(state(&status, "h"), StepState::Canceled);
    assert_eq!(state(&status, "next"), StepState::Canceled);
    engine
        .terminate(&id)
        .await
        .expect("terminate after the end");
    assert_eq!(engine.status(&id).await.expect("status"), status);
}

/// The run's timeout stops it like a terminate, saying so.
pub async fn run_timeout_cancels_the_run(engine: &dyn WorkflowEngine) {
    let options = RunOptions {
        timeout: Some(Duration::from_secs(2)),
        ..RunOptions::default()
    };
    let id = engine
        .run(
            request(
                "{name: w, steps: [{name: h, function: f, handler: hang}]}",
                json!({}),
            ),
            options,
        )
        .await
        .expect("the run starts");
    let status = wait(engine, &id).await;
    assert_eq!(status.state, WorkflowState::Canceled, "{status:?}");
    assert_eq!(
        status.error.as_deref(),
        Some("the run did not finish within 2s")
    );
    assert_eq!(state(&status, "h"), StepState::Canceled);
}

/// A retry, given only the previous status (as read back from a record), reuses what
/// succeeded (outputs included) and reruns the rest; a succeeded run is refused.
pub async fn retry_reruns_what_did_not_succeed(
    engine: &dyn WorkflowEngine,
    exec: &ConformanceExecutor,
) {
    let yaml = "{name: w, steps: [{name: a, function: f, params: {x: 3}, outputs: [x]}, {name: b, function: f, handler: fail-once, after: [a]}, {name: c, function: f, params: {x: '{{steps.a.outputs.x}}'}, after: [b]}]}";
    let first = run(engine, yaml, json!({})).await;
    assert_eq!(first.state, WorkflowState::Failed, "{first:?}");
    assert_eq!(state(&first, "c"), StepState::Skipped);
    // Only what a stored record keeps.
    let stored: WorkflowRunStatus =
        serde_json::from_value(serde_json::to_value(&first).expect("serializes"))
            .expect("deserializes");
    let before = exec.started().len();
    let id = engine
        .retry(&stored, request(yaml, json!({})), RunOptions::default())
        .await
        .expect("the retry starts");
    assert_ne!(id, first.id);
    let second = wait(engine, &id).await;
    assert_eq!(second.state, WorkflowState::Succeeded, "{second:?}");
    assert_eq!(second.step("a"), first.step("a"), "a is reused as it was");
    assert_eq!(second.step("c").expect("c").outputs["x"], json!(3));
    assert_eq!(exec.started()[before..], ["b", "c"]);
    let refused = engine
        .retry(&second, request(yaml, json!({})), RunOptions::default())
        .await
        .expect_err("a succeeded run is not retried");
    assert_eq!(refused.kind(), crate::error::ErrorKind::BadRequest);
}

/// Folding the events from a subscription taken at start gives the final status, and the
/// stream ends after the run; every status seen along the way is consistent (terminal steps
/// have an end time, a terminal run has only terminal steps).
pub async fn events_fold_into_the_status(engine: &dyn WorkflowEngine) {
    let id = engine
        .run(
            request(
                "{name: w, steps: [{name: a, function: f, handler: fail-once, retries: {limit: 1, backoff: 1s}}, {name: b, function: f, after: [a]}, {name: c, function: f, when: '1 > 2'}, {name: d, function: f, handler: fail}]}",
                json!({}),
            ),
            RunOptions::default(),
        )
        .await
        .expect("the run starts");
    let mut sub = engine.subscribe(&id).await.expect("subscribe");
    while let Some(event) = tokio::time::timeout(BOUND, sub.events.next())
        .await
        .expect("the stream ends")
    {
        sub.status.apply(&event);
        for step in &sub.status.steps {
            assert_eq!(
                step.state.is_terminal(),
                step.finished.is_some(),
                "{step:?}"
            );
        }
    }
    let status = wait(engine, &id).await;
    assert_eq!(sub.status, status);
    assert_eq!(status.state, WorkflowState::Failed);
    assert!(status.steps.iter().all(|s| s.state.is_terminal()));
    assert!(status.started.is_some() && status.finished >= status.started);
    // A late subscriber gets the final status and an empty stream.
    let late = engine.subscribe(&id).await.expect("subscribe");
    assert_eq!(late.status, status);
    assert_eq!(late.events.count().await, 0);
}

/// Unknown ids are `NotFound`.
pub async fn unknown_runs_are_not_found(engine: &dyn WorkflowEngine) {
    let unknown = WorkflowRunId::from("no-such-run");
    let kind = crate::error::ErrorKind::NotFound;
    assert_eq!(engine.status(&unknown).await.expect_err("").kind(), kind);
    assert_eq!(engine.terminate(&unknown).await.expect_err("").kind(), kind);
    assert_eq!(engine.subscribe(&unknown).await.expect_err("").kind(), kind);
    assert_eq!(
        engine.wait(&unknown, None).await.expect_err("").kind(),
        kind
    );
}
