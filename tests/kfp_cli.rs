//! `baton run --engine kfp` from the CLI: the workflow compiles with the project's functions,
//! is submitted to Kubeflow Pipelines (the fake of `tests/common/fake_kfp.rs`, as strict as the
//! real API), followed to its end and recorded on the baton server the pods report to.

mod common;

use common::fake_kfp::FakeKfp;
use common::server::{data_dir, TestServer};
use common::{Run, TestProject};
use serde_json::Value;

const CHAIN: &str = "name: chain
params:
  - {name: x, default: 1}
  - {name: fake_outcome, default: SUCCEEDED}
steps:
  - name: first
    function: steps
    handler: steps:double
    params: {x: \"{{args.x}}\"}
    outputs: [return]
  - name: second
    function: steps
    handler: steps:double
    params: {x: \"{{steps.first.outputs.return}}\"}
";

/// `baton ARGS` in `p`, against `server`, with extra environment `env`.
fn baton_on(p: &TestProject, server: &TestServer, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = p.command(args);
    command.env("BATON_API", &server.url);
    for (name, value) in env {
        command.env(name, value);
    }
    Run::from(command.output().unwrap())
}

/// A project on `server` with function `steps` and workflow `chain`, all logged through the CLI.
fn chain_project(server: &TestServer) -> TestProject {
    let p = TestProject::new();
    p.write("steps.py", "def double(x):\n    return 2 * int(x)\n");
    p.write("chain.yaml", CHAIN);
    let api = |args: &[&str]| baton_on(&p, server, &[], args).ok();
    api(&["log-code", "steps_code", "--local-path", "steps.py"]);
    api(&[
        "log-code",
        "chain",
        "--local-path",
        "chain.yaml",
        "--code-type",
        "workflow",
    ]);
    api(&[
        "set-function",
        "--name",
        "steps",
        "--func",
        "store://artifacts/my-project/steps_code",
        "--handler",
        "steps:double",
    ]);
    api(&[
        "set-workflow",
        "--name",
        "chain",
        "--path",
        "store://artifacts/my-project/chain",
    ]);
    p
}

/// A project on `server` with function `steps` and workflow `chain`, and the CLI's answer to
/// `baton run chain --engine kfp ARGS`.
fn run_on_kfp(server: &TestServer, kfp: &str, args: &[&str]) -> (TestProject, Run) {
    let p = chain_project(server);
    let env = [
        ("BATON_KFP_URL", kfp),
        ("BATON_KFP_POLL", "50ms"),
        ("BATON_KFP_IMAGE", "baton/runner:test"),
    ];
    let mut run = vec!["run", "chain", "--engine", "kfp", "--json"];
    run.extend_from_slice(args);
    let outcome = baton_on(&p, server, &env, &run);
    (p, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_on_kfp_compiled_and_recorded_under_the_kfp_run_id() {
    let kfp = FakeKfp::start().await;
    let (_dir, data) = data_dir();
    let url = kfp.url();
    let (server_url, record, on_server) = tokio::task::spawn_blocking(move || {
        let server = TestServer::start_in(&data, &[]);
        let (_p, outcome) = run_on_kfp(&server, &url, &["-a", "x=3"]);
        let record = outcome.json();
        let id = record["id"].as_str().unwrap_or_default().to_string();
        let on_server = server.get(&format!(
            "/api/baton/v1/projects/my-project/workflow-runs/{id}"
        ));
        (server.url.clone(), record, on_server)
    })
    .await
    .unwrap();
    assert_eq!(record["state"], "Succeeded", "{record:#}");
    assert_eq!(record["engine"], "kfp");
    let id = record["id"].as_str().unwrap();
    assert_eq!(kfp.run_state(id), Some("SUCCEEDED"));

    // What KFP received: the compiled spec, the typed runtime parameters, steps that report to
    // the server.
    let create = kfp
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/apis/v2beta1/runs")
        .expect("a run was created");
    let body = &create.body;
    assert_eq!(body["runtime_config"]["parameters"]["x"], 3, "{body:#}");
    let executors = body["pipeline_spec"]["deploymentSpec"]["executors"]
        .as_object()
        .unwrap();
    assert_eq!(executors.len(), 2);
    for executor in executors.values() {
        let container = &executor["container"];
        assert_eq!(container["image"], "baton/runner:test");
        let command: Vec<&str> = container["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(&command[..4], ["baton", "runner", "--kfp", "--project"]);
        assert_eq!(
            container["env"],
            serde_json::json!([{"name": "BATON_API", "value": server_url}])
        );
    }

    // The server holds the record.
    assert_eq!(on_server["state"], "Succeeded", "{on_server:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_kfp_run_fails_the_command_and_says_which_run() {
    let kfp = FakeKfp::start().await;
    let (_dir, data) = data_dir();
    let url = kfp.url();
    let outcome = tokio::task::spawn_blocking(move || {
        let server = TestServer::start_in(&data, &[]);
        run_on_kfp(&server, &url, &["-a", "fake_outcome=FAILED"]).1
    })
    .await
    .unwrap();
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    let record: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(record["state"], "Failed", "{record:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kfp_engine_needs_a_baton_server_for_its_pods() {
    let kfp = FakeKfp::start().await;
    let url = kfp.url();
    let err = tokio::task::spawn_blocking(move || {
        let p = TestProject::new();
        p.write("chain.yaml", CHAIN);
        p.write("steps.py", "def double(x):\n    return 2 * int(x)\n");
        p.baton(&[
            "set-function",
            "--name",
            "steps",
            "--func",
            "steps.py",
            "--handler",
            "double",
        ])
        .ok();
        p.baton(&["set-workflow", "--name", "chain", "--path", "chain.yaml"])
            .ok();
        Run::from(
            p.command(&["run", "chain", "--engine", "kfp"])
                .env("BATON_KFP_URL", url)
                .output()
                .unwrap(),
        )
        .fails(2)
    })
    .await
    .unwrap();
    assert!(err.contains("record their runs on a baton server"), "{err}");
    assert!(kfp
        .requests()
        .iter()
        .all(|r| r.path != "/apis/v2beta1/runs"));
}

/// `remote:kfp`: the server compiles and submits (its own address in the steps' environment),
/// follows the KFP run, answers MLRun's `pipelines/{id}` polling, and the workflow id is the
/// KFP run id; a server without KFP refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_kfp_runs_through_the_server_and_answers_mlruns_polling() {
    let kfp = FakeKfp::start().await;
    let (_dir, data) = data_dir();
    let url = kfp.url();
    let (record, pipeline, submitted) = tokio::task::spawn_blocking(move || {
        let server = TestServer::start_in(
            &data,
            &[
                "--kfp-url",
                &url,
                "--public-url",
                "http://baton.example:8080",
            ],
        );
        // The CLI: remote:kfp (the server drives the KFP run).
        let p = chain_project(&server);
        let record = baton_on(
            &p,
            &server,
            &[],
            &["run", "chain", "--engine", "remote:kfp", "--json"],
        )
        .json();

        // MLRun's client: `project.run(engine="remote:kfp")` sends engine `kfp`.
        let (status, submitted) = server.call(
            reqwest::Method::POST,
            "/api/v1/projects/my-project/workflows/chain/submit",
            Some(
                &serde_json::json!({"spec": {"name": "chain", "engine": "kfp",
                "path": "store://artifacts/my-project/chain", "args": {"x": 5}}}),
            ),
        );
        assert_eq!(status, 200, "{submitted}");
        let id = submitted["run_id"].as_str().unwrap().to_string();
        let mut pipeline = Value::Null;
        common::poll("the KFP run ends", || {
            pipeline = server.get(&format!("/api/v1/projects/my-project/pipelines/{id}"));
            pipeline["run"]["status"] != "Running" && pipeline["run"]["status"] != "Pending"
        });
        (record, pipeline, submitted)
    })
    .await
    .unwrap();
    assert_eq!(record["state"], "Succeeded", "{record:#}");
    assert_eq!(record["engine"], "kfp");
    assert_eq!(
        kfp.run_state(record["id"].as_str().unwrap()),
        Some("SUCCEEDED")
    );
    assert_eq!(pipeline["run"]["status"], "Succeeded", "{pipeline:#}");
    let id = submitted["run_id"].as_str().unwrap();
    assert_eq!(
        kfp.run_state(id),
        Some("SUCCEEDED"),
        "the workflow id is the KFP run id"
    );
    // Both runs' steps report to the server's public address.
    let creates: Vec<_> = kfp
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/apis/v2beta1/runs")
        .collect();
    assert_eq!(creates.len(), 2);
    for create in &creates {
        let executors = create.body["pipeline_spec"]["deploymentSpec"]["executors"]
            .as_object()
            .unwrap();
        for executor in executors.values() {
            assert_eq!(
                executor["container"]["env"][0]["value"], "http://baton.example:8080",
                "{executor:#}"
            );
        }
    }
    assert_eq!(creates[1].body["runtime_config"]["parameters"]["x"], 5);
}
