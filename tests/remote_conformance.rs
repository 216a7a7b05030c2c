//! The engine conformance suite (`baton::engine::conformance`) against the remote engine, driving
//! a real `baton server` on a loopback port whose engine runs the suite's steps.

use std::net::SocketAddr;
use std::sync::Arc;

use baton::engine::conformance::{self, ConformanceExecutor};
use baton::engine::WorkflowEngine;
use baton::engines::remote::RemoteEngine;
use baton::server::{Server, ServerConfig, DEFAULT_BODY_LIMIT};

const FAN_OUT: usize = 4;

/// A server whose steps run through a [`ConformanceExecutor`], and a remote engine talking to
/// it; the server stops when the guard is dropped (at the end of the test's runtime).
struct Remote {
    engine: RemoteEngine,
    exec: Arc<ConformanceExecutor>,
    _data: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn remote() -> Remote {
    let exec = Arc::new(ConformanceExecutor::new(FAN_OUT));
    let data = tempfile::tempdir().unwrap();
    let server = Server::bind(ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data.path().to_path_buf(),
        token: None,
        max_workers: 2,
        body_limit: DEFAULT_BODY_LIMIT,
        isolation: baton::runner::Isolation::default(),
        step_executor: Some(exec.clone()),
        kfp: None,
        public_url: None,
        schedule_min_interval: baton::server::schedules::DEFAULT_MIN_INTERVAL,
    })
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Remote {
        engine: RemoteEngine::new(&format!("http://{addr}"), None).unwrap(),
        exec,
        _data: data,
        _stop: stop,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_runs_a_linear_dag_in_order() {
    let r = remote().await;
    conformance::runs_a_linear_dag_in_order(&r.engine, &r.exec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_fans_out_concurrently() {
    let r = remote().await;
    conformance::fans_out_concurrently(&r.engine, FAN_OUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_passes_outputs_and_arguments() {
    conformance::passes_outputs_and_arguments(&remote().await.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_evaluates_conditions() {
    conformance::evaluates_conditions(&remote().await.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_retries_and_failures() {
    conformance::retries_and_failures(&remote().await.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_terminate_cancels_the_run() {
    conformance::terminate_cancels_the_run(&remote().await.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_run_timeout_cancels_the_run() {
    conformance::run_timeout_cancels_the_run(&remote().await.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_retry_reruns_what_did_not_succeed() {
    let r = remote().await;
    conformance::retry_reruns_what_did_not_succeed(&r.engine, &r.exec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_events_fold_into_the_status() {
    conformance::events_fold_into_the_status(&remote().await.engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_unknown_runs_are_not_found() {
    conformance::unknown_runs_are_not_found(&remote().await.engine).await;
}

#[test]
fn remote_refuses_deploy_steps_at_check() {
    let engine = RemoteEngine::new("http://127.0.0.1:9", None).unwrap();
    let dag = conformance::dag("{name: w, steps: [{name: d, function: f, action: deploy}]}");
    let e = engine.check(&dag).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Step `d` deploys real-time function `f`"),
        "{e}"
    );
}

#[test]
fn a_server_url_must_be_http() {
    let e = RemoteEngine::new("ftp://host", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Unsupported server URL `ftp://host`: only `http://` is supported by this build"
    );
    let e = RemoteEngine::new("not a url", None).unwrap_err();
    assert_eq!(e.to_string(), "Malformed server URL `not a url`");
}
