//! The engine conformance suite (`baton::engine::conformance`) against the local engine.

use std::sync::Arc;

use baton::engine::conformance::{self, ConformanceExecutor};
use baton::engine::WorkflowEngine;
use baton::engines::local::LocalEngine;

const FAN_OUT: usize = 4;

fn local() -> (LocalEngine, Arc<ConformanceExecutor>) {
    let exec = Arc::new(ConformanceExecutor::new(FAN_OUT));
    (LocalEngine::new(exec.clone()), exec)
}

#[tokio::test(start_paused = true)]
async fn local_runs_a_linear_dag_in_order() {
    let (engine, exec) = local();
    conformance::runs_a_linear_dag_in_order(&engine, &exec).await;
}

#[tokio::test(start_paused = true)]
async fn local_fans_out_concurrently() {
    let (engine, _) = local();
    conformance::fans_out_concurrently(&engine, FAN_OUT).await;
}

#[tokio::test(start_paused = true)]
async fn local_passes_outputs_and_arguments() {
    conformance::passes_outputs_and_arguments(&local().0).await;
}

#[tokio::test(start_paused = true)]
async fn local_evaluates_conditions() {
    conformance::evaluates_conditions(&local().0).await;
}

#[tokio::test(start_paused = true)]
async fn local_retries_and_failures() {
    conformance::retries_and_failures(&local().0).await;
}

#[tokio::test(start_paused = true)]
async fn local_terminate_cancels_the_run() {
    conformance::terminate_cancels_the_run(&local().0).await;
}

#[tokio::test(start_paused = true)]
async fn local_run_timeout_cancels_the_run() {
    conformance::run_timeout_cancels_the_run(&local().0).await;
}

#[tokio::test(start_paused = true)]
async fn local_retry_reruns_what_did_not_succeed() {
    let (engine, exec) = local();
    conformance::retry_reruns_what_did_not_succeed(&engine, &exec).await;
}

#[tokio::test(start_paused = true)]
async fn local_events_fold_into_the_status() {
    conformance::events_fold_into_the_status(&local().0).await;
}

#[tokio::test(start_paused = true)]
async fn local_unknown_runs_are_not_found() {
    conformance::unknown_runs_are_not_found(&local().0).await;
}

#[test]
fn local_refuses_deploy_steps_at_check() {
    let (engine, _) = local();
    let dag = conformance::dag("{name: w, steps: [{name: d, function: f, action: deploy}]}");
    let e = engine.check(&dag).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Step `d` deploys real-time function `f`"),
        "{e}"
    );
}
