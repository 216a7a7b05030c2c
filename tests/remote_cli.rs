//! The baton CLI against a real `baton server` (`--api`): every command on the server's
//! database, workflows on the remote engines, Ctrl-C and terminate, and a server killed in the
//! middle of a workflow.

mod common;

use std::process::{Child, Stdio};

use common::server::{api, data_dir, TestServer};
use common::{poll, Run, TestProject};
use serde_json::Value;

const STEPS: &str = r#"import os, time

def echo(x):
    print("echo", x, flush=True)
    return x

def double(x):
    print("double", x, flush=True)
    return 2 * int(x)

def parent():
    return os.getppid()

def wait_for(flag, seconds=120):
    print("waiting", flush=True)
    deadline = time.time() + seconds
    while not os.path.exists(flag) and time.time() < deadline:
        time.sleep(0.05)
    return "done"
"#;

const CHAIN: &str = "name: chain
params:
  - {name: x, default: 1}
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
    outputs: [return]
";

const WAITING: &str = "name: waiting
params:
  - {name: flag}
steps:
  - name: quick
    function: steps
    handler: steps:echo
    params: {x: 7}
    outputs: [return]
  - name: slow
    function: steps
    handler: steps:wait_for
    params: {flag: \"{{args.flag}}\"}
    after: [quick]
";

/// A project on the server with function `steps` and workflows `chain` and `waiting`, all
/// logged as code artifacts through the CLI.
fn project_on(server: &TestServer) -> TestProject {
    let p = TestProject::new();
    p.write("steps.py", STEPS);
    p.write("chain.yaml", CHAIN);
    p.write("waiting.yaml", WAITING);
    api(
        &p,
        server,
        &["log-code", "steps_code", "--local-path", "steps.py"],
    )
    .ok();
    for key in ["chain", "waiting"] {
        let file = format!("{key}.yaml");
        api(
            &p,
            server,
            &[
                "log-code",
                key,
                "--local-path",
                &file,
                "--code-type",
                "workflow",
            ],
        )
        .ok();
        let path = format!("store://artifacts/my-project/{key}");
        api(
            &p,
            server,
            &["set-workflow", "--name", key, "--path", &path],
        )
        .ok();
    }
    api(
        &p,
        server,
        &[
            "set-function",
            "--name",
            "steps",
            "--func",
            "store://artifacts/my-project/steps_code",
            "--handler",
            "steps:echo",
        ],
    )
    .ok();
    p
}

/// Starts `baton run NAME ARGS` against the server without waiting for it.
fn spawn_run(p: &TestProject, server: &TestServer, args: &[&str]) -> Child {
    p.command(&[&["run"], args].concat())
        .env("BATON_API", &server.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts workflow `waiting` on the server, its slow step waiting for `flag`; returns the
/// following `baton run` and the run's id once the slow step is running.
fn start_waiting(p: &TestProject, server: &TestServer, flag: &std::path::Path) -> (Child, String) {
    let flag_arg = format!("flag={}", flag.display());
    let child = spawn_run(
        p,
        server,
        &["waiting", "--engine", "remote:local", "-a", &flag_arg],
    );
    let id = only_run_id(p, server);
    wait_until_step_waits(p, server, &id, "slow");
    (child, id)
}

/// The server's record of workflow run `id` (through the CLI).
fn record(p: &TestProject, server: &TestServer, id: &str) -> Value {
    api(p, server, &["workflows", "get", id, "--json"]).json()
}

/// The id of the only workflow run of the project, once there is one.
fn only_run_id(p: &TestProject, server: &TestServer) -> String {
    let mut id = String::new();
    poll("the workflow run is recorded", || {
        let runs = api(p, server, &["workflows", "list", "--json"]).json();
        match runs.as_array().map(Vec::as_slice) {
            Some([run]) => {
                id = run["id"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });
    id
}

/// Waits until step `name` of run `id` has a run whose log says it is waiting.
fn wait_until_step_waits(p: &TestProject, server: &TestServer, id: &str, name: &str) {
    poll("the slow step runs", || {
        let rec = record(p, server, id);
        let Some(uid) = common::step(&rec, name)["run_uid"]
            .as_str()
            .map(str::to_string)
        else {
            return false;
        };
        let logs = api(p, server, &["runs", "logs", &uid]);
        logs.code == 0 && logs.stdout.contains("waiting")
    });
}

fn step_state(rec: &Value, name: &str) -> String {
    common::step(rec, name)["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_command_works_on_the_server_and_remote_local_runs_there() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let p = project_on(&server);

    // A function run here records its run on the server.
    let run = api(
        &p,
        &server,
        &["run-function", "steps", "-p", "x=5", "--json"],
    )
    .json();
    assert_eq!(run["status"]["results"]["return"], 5, "{run:#}");
    let uid = run["metadata"]["uid"].as_str().unwrap();
    let on_server = server.get(&format!("/api/v1/projects/my-project/runs/{uid}"));
    assert_eq!(on_server["data"]["status"]["state"], "completed");

    // The workflow runs on the server, steps passing outputs.
    let rec = api(
        &p,
        &server,
        &[
            "run",
            "chain",
            "--engine",
            "remote:local",
            "-a",
            "x=3",
            "--json",
        ],
    )
    .json();
    assert_eq!(rec["state"], "Succeeded", "{rec:#}");
    assert_eq!(
        common::step(&rec, "second")["outputs"]["return"],
        12,
        "{rec:#}"
    );
    let id = rec["id"].as_str().unwrap();
    let native = server.get(&format!(
        "/api/baton/v1/projects/my-project/workflow-runs/{id}"
    ));
    assert_eq!(native["state"], "Succeeded");
    assert_eq!(native["driver"]["program"], "baton server", "{native:#}");

    // The server executed the steps: their logs are read from it.
    let first = common::step(&rec, "first")["run_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let log = api(&p, &server, &["runs", "logs", &first]).ok();
    assert_eq!(log, "double 3\n");
    let listed = api(&p, &server, &["workflows", "list", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    let runs = api(&p, &server, &["runs", "list", "--json"]).json();
    assert_eq!(runs.as_array().unwrap().len(), 3, "{runs:#}");
}

/// The parent process of `pid` (from `/proc/<pid>/stat`).
fn parent_of(pid: i64) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The parent process of each handler of two runs of a two-step workflow on `server`.
fn handler_parents(server: &TestServer) -> Vec<i64> {
    let p = project_on(server);
    p.write(
        "parents.yaml",
        "name: parents\nsteps:\n  - {name: a, function: steps, handler: steps:parent, outputs: [return]}\n  - {name: b, function: steps, handler: steps:parent, outputs: [return], after: [a]}\n",
    );
    for args in [
        &[
            "log-code",
            "parents",
            "--local-path",
            "parents.yaml",
            "--code-type",
            "workflow",
        ][..],
        &[
            "set-workflow",
            "--name",
            "parents",
            "--path",
            "store://artifacts/my-project/parents",
        ],
    ] {
        api(&p, server, args).ok();
    }
    let mut parents = Vec::new();
    for _ in 0..2 {
        let rec = api(
            &p,
            server,
            &["run", "parents", "--engine", "remote:local", "--json"],
        )
        .json();
        assert_eq!(rec["state"], "Succeeded", "{rec:#}");
        for step in ["a", "b"] {
            parents.push(
                common::step(&rec, step)["outputs"]["return"]
                    .as_i64()
                    .unwrap(),
            );
        }
    }
    parents
}

#[test]
fn the_servers_steps_are_forked_by_its_long_lived_warm_worker_unless_isolation_is_process() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let parents = handler_parents(&server);
    // Every handler of both runs is a child of one warm worker, itself a child of the server.
    assert!(parents.iter().all(|&p| p == parents[0]), "{parents:?}");
    assert_eq!(parent_of(parents[0]), i64::from(server.pid()));

    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &["--isolation", "process"]);
    let parents = handler_parents(&server);
    // Each handler is the child of its own `baton runner`, gone once the step ended.
    let distinct: std::collections::BTreeSet<_> = parents.iter().collect();
    assert_eq!(distinct.len(), 4, "{parents:?}");
    assert!(
        parents.iter().all(|&p| p != i64::from(server.pid())),
        "{parents:?}"
    );
}

#[test]
fn remote_kfp_on_a_server_without_kfp_and_a_missing_server_are_clear_errors() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let p = project_on(&server);
    let err = api(&p, &server, &["run", "chain", "--engine", "remote:kfp"]).fails(2);
    assert!(err.contains("This server has no KFP engine"), "{err}");
    let err = Run::from(
        p.command(&["run", "chain", "--engine", "remote"])
            .env_remove("BATON_API")
            .env_remove("MLRUN_DBPATH")
            .output()
            .unwrap(),
    )
    .fails(2);
    assert!(err.contains("none is given"), "{err}");
    assert!(err.contains("--api"), "{err}");
}

#[test]
fn ctrl_c_on_a_remote_run_terminates_it_on_the_server() {
    let (dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let p = project_on(&server);
    let flag = dir.path().join("never");
    let (child, id) = start_waiting(&p, &server, &flag);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = record(&p, &server, &id);
    assert_eq!(rec["state"], "Canceled", "{rec:#}");
    assert_eq!(step_state(&rec, "quick"), "Succeeded");
    assert_eq!(step_state(&rec, "slow"), "Canceled");
    let slow = common::step(&rec, "slow")["run_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let run = api(&p, &server, &["runs", "get", &slow, "--json"]).json();
    assert_eq!(run["status"]["state"], "aborted", "{run:#}");
}

#[test]
fn workflows_terminate_stops_a_remote_run_from_another_process() {
    let (dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let p = project_on(&server);
    let (child, id) = start_waiting(&p, &server, &dir.path().join("never"));
    api(&p, &server, &["workflows", "terminate", &id]).ok();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(record(&p, &server, &id)["state"], "Canceled");
}

#[test]
fn a_server_killed_mid_workflow_is_reconciled_on_restart_and_retry_reruns_the_rest() {
    let (dir, data) = data_dir();
    let mut server = TestServer::start_in(&data, &[]);
    let p = project_on(&server);
    let flag = dir.path().join("go");
    let (mut child, id) = start_waiting(&p, &server, &flag);
    let quick_uid = common::step(&record(&p, &server, &id), "quick")["run_uid"]
        .as_str()
        .unwrap()
        .to_string();

    server.stop_with(libc::SIGKILL);
    // The CLI that followed the run loses its server and says so.
    let out = child.wait().unwrap();
    assert_ne!(out.code(), Some(0));

    let server = TestServer::start_in(&data, &[]);
    let mut rec = Value::Null;
    poll("the run is reconciled", || {
        rec = record(&p, &server, &id);
        rec["state"] != "Running"
    });
    assert_eq!(rec["state"], "Failed", "{rec:#}");
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains("`baton server`"), "{error}");
    assert_eq!(step_state(&rec, "quick"), "Succeeded");
    assert_ne!(step_state(&rec, "slow"), "Running");
    // Nothing stays running, nothing is lost.
    let runs = api(&p, &server, &["runs", "list", "--json"]).json();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs:#}");
    for run in runs.as_array().unwrap() {
        let state = run["status"]["state"].as_str().unwrap();
        assert!(
            matches!(state, "completed" | "aborted" | "error"),
            "{run:#}"
        );
    }

    // The retry runs only what did not succeed.
    std::fs::write(&flag, "").unwrap();
    let retried = api(&p, &server, &["workflows", "retry", &id, "--json"]).json();
    assert_eq!(retried["state"], "Succeeded", "{retried:#}");
    assert_eq!(retried["retry_of"], id.as_str());
    assert_eq!(
        common::step(&retried, "quick")["run_uid"],
        quick_uid.as_str()
    );
    assert_eq!(common::step(&retried, "slow")["outputs"]["return"], "done");
}

#[test]
fn sigterm_to_the_server_cancels_its_workflows_and_records_them() {
    let (dir, data) = data_dir();
    let mut server = TestServer::start_in(&data, &[]);
    let p = project_on(&server);
    let (child, id) = start_waiting(&p, &server, &dir.path().join("never"));
    assert_eq!(server.stop_with(libc::SIGTERM), Some(0));
    let _ = child.wait_with_output().unwrap();

    // Recorded before the server exited: no reconciliation needed.
    let server = TestServer::start_in(&data, &[]);
    let rec = record(&p, &server, &id);
    assert_eq!(rec["state"], "Canceled", "{rec:#}");
    assert_eq!(step_state(&rec, "slow"), "Canceled");
    let slow = common::step(&rec, "slow")["run_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let run = api(&p, &server, &["runs", "get", &slow, "--json"]).json();
    assert_eq!(run["status"]["state"], "aborted", "{run:#}");
}
