//! `baton runner --kfp`: a step of a compiled pipeline as a KFP pod runs it, against a real
//! `baton server` (the pod's `BATON_API`): it records its run there, pulls its code at start-up,
//! writes its declared outputs as JSON text and exits non-zero when the handler fails.

mod common;

use std::process::Command;

use common::server::{data_dir, TestServer};
use common::Run;
use serde_json::{json, Value};

const STEPS: &str = r#"def double(p1):
    print("doubling", p1, flush=True)
    return p1 * 2

def greet(name):
    return {"greeting": "hi " + name, "n": len(name)}

def boom():
    raise ValueError("no luck")
"#;

/// The server with project `p` and the steps' code logged; returns the function definition the
/// compiler would embed.
fn server_with_code() -> (tempfile::TempDir, TestServer, String) {
    let (dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    server.create_project("p");
    let source = server.log_code("p", "steps_code", "steps.py", STEPS, "function");
    let function =
        json!({"name": "steps", "url": source, "kind": "job", "handler": "steps:double"});
    (dir, server, function.to_string())
}

/// `baton runner --kfp ARGS` with the pod's environment.
fn pod(server: &TestServer, cache: &std::path::Path, args: &[&str]) -> Run {
    Run::from(
        Command::new(common::baton_bin())
            .args(["runner", "--kfp"])
            .args(args)
            .env("BATON_API", &server.url)
            .env("BATON_CACHE_DIR", cache)
            .env_remove("BATON_TOKEN")
            .env_remove("MLRUN_DBPATH")
            .output()
            .unwrap(),
    )
}

/// The runs the server recorded for step `step` of workflow `wf`.
fn step_runs(server: &TestServer, wf: &str) -> Vec<Value> {
    server.get(&format!("/api/v1/projects/p/runs?label=workflow%3D{wf}"))["runs"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_step_records_its_run_and_writes_its_outputs_as_json() {
    let (dir, server, function) = server_with_code();
    let out = dir.path().join("outputs/return");
    let output = format!("return={}", out.display());
    let stdout = pod(
        &server,
        &dir.path().join("cache"),
        &[
            "--project",
            "p",
            "--workflow",
            "kfp-run-1",
            "--step",
            "first",
            "--function",
            &function,
            "--param-json",
            "p1=21",
            "--output",
            &output,
        ],
    )
    .ok();
    assert!(
        stdout.contains("doubling 21"),
        "the handler's output is the pod's log: {stdout}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "42");

    let runs = step_runs(&server, "kfp-run-1");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run["status"]["state"], "completed");
    assert_eq!(run["metadata"]["labels"]["workflow-step"], "first");
    assert_eq!(
        run["status"]["code"]["source"],
        run["spec"]["function_snapshot"]["function"]["url"]
    );
}

#[test]
fn text_and_json_params_keep_their_types_and_structured_outputs_are_json() {
    let (dir, server, _) = server_with_code();
    let function = json!({"name": "steps", "url": "store://artifacts/p/steps_code", "kind": "job"})
        .to_string();
    let out = dir.path().join("o/return");
    let output = format!("return={}", out.display());
    pod(
        &server,
        &dir.path().join("cache"),
        &[
            "--project",
            "p",
            "--workflow",
            "w2",
            "--step",
            "hello",
            "--function",
            &function,
            "--handler",
            "steps:greet",
            "--param",
            "name=007",
            "--output",
            &output,
        ],
    )
    .ok();
    // `--param` is text: "007" stays a string (as JSON, quoted).
    let runs = step_runs(&server, "w2");
    assert_eq!(runs[0]["spec"]["parameters"]["name"], "007");
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(value, json!({"greeting": "hi 007", "n": 3}));
}

#[test]
fn a_failing_handler_fails_the_pod_and_is_recorded() {
    let (dir, server, _) = server_with_code();
    let function = json!({"name": "steps", "url": "store://artifacts/p/steps_code", "kind": "job"})
        .to_string();
    let err = pod(
        &server,
        &dir.path().join("cache"),
        &[
            "--project",
            "p",
            "--workflow",
            "w3",
            "--step",
            "bad",
            "--function",
            &function,
            "--handler",
            "steps:boom",
        ],
    )
    .fails(1);
    assert!(err.contains("no luck"), "{err}");
    let runs = step_runs(&server, "w3");
    assert_eq!(runs[0]["status"]["state"], "error", "{runs:?}");
}

#[test]
fn a_declared_output_the_handler_did_not_return_fails_the_step() {
    let (dir, server, function) = server_with_code();
    let output = format!("missing={}", dir.path().join("missing").display());
    let err = pod(
        &server,
        &dir.path().join("cache"),
        &[
            "--project",
            "p",
            "--step",
            "s",
            "--function",
            &function,
            "--param-json",
            "p1=1",
            "--output",
            &output,
        ],
    )
    .fails(1);
    assert!(err.contains("Step output `missing` was declared"), "{err}");
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn a_pod_without_a_server_or_with_bad_flags_says_what_to_fix() {
    let err = Run::from(
        Command::new(common::baton_bin())
            .args([
                "runner",
                "--kfp",
                "--project",
                "p",
                "--step",
                "s",
                "--function",
                "{}",
            ])
            .env_remove("BATON_API")
            .env_remove("MLRUN_DBPATH")
            .output()
            .unwrap(),
    )
    .fails(2);
    assert!(err.contains("set BATON_API"), "{err}");
    let (dir, server, _) = server_with_code();
    let err = pod(
        &server,
        &dir.path().join("cache"),
        &["--project", "p", "--step", "s", "--function", "not json"],
    )
    .fails(2);
    assert!(
        err.contains("--function is not a function definition"),
        "{err}"
    );
    let err = pod(
        &server,
        &dir.path().join("cache"),
        &[
            "--project",
            "p",
            "--step",
            "s",
            "--function",
            r#"{"name": "steps"}"#,
            "--param-json",
            "x=nope",
        ],
    )
    .fails(2);
    assert!(err.contains("--param-json `x`"), "{err}");
}
