//! Workflows through the real `baton` binary: workflow files and step functions logged as
//! `store://` code artifacts, run on the local engine with real Python handlers, and every step
//! recorded as a function run labelled `workflow=<id>`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use common::{alive, poll, step, zip_bytes, TestProject};
use serde_json::{json, Value};

const STEPS: &str = include_str!("fixtures/cli_workflows/steps.py");
const FLOW_PY: &str = include_str!("fixtures/cli_workflows/flow.py");
const FLOW_YAML: &str = include_str!("fixtures/cli_workflows/flow.yaml");

/// A project whose function `steps` runs the handlers of `steps.py`, logged as `steps_code`.
fn project() -> TestProject {
    let p = TestProject::new();
    p.write("steps.py", STEPS);
    p.log_code("steps_code", "steps.py", &[]);
    p.baton(&[
        "set-function",
        "--name",
        "steps",
        "--func",
        "store://artifacts/my-project/steps_code",
        "--handler",
        "steps:echo",
    ])
    .ok();
    p
}

/// Writes `file`, logs it as the workflow code artifact `<name>_wf` and points workflow `name`
/// at it (extra `set-workflow` arguments in `extra`). Returns the artifact's store URI.
fn set_workflow(p: &TestProject, name: &str, file: &str, contents: &str, extra: &[&str]) -> String {
    p.write(file, contents);
    let key = format!("{}_wf", name.replace('-', "_"));
    p.log_code(&key, file, &["--code-type", "workflow"]);
    let uri = format!("store://artifacts/my-project/{key}");
    let mut args = vec!["set-workflow", "--name", name, "--path", &uri];
    args.extend_from_slice(extra);
    p.baton(&args).ok();
    uri
}

/// `baton run ARGS --json`: the exit code and the printed workflow run record.
fn run(p: &TestProject, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = p.baton(&all);
    let record = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    (out.code, record)
}

/// `baton run ARGS` that must succeed; returns the record.
#[track_caller]
fn run_ok(p: &TestProject, args: &[&str]) -> Value {
    let (code, record) = run(p, args);
    assert_eq!(code, 0, "{record:#}");
    assert_eq!(record["state"], "Succeeded", "{record:#}");
    record
}

/// `baton run ARGS` that must be refused before running, with exit `code`; returns stderr.
#[track_caller]
fn run_refused(p: &TestProject, args: &[&str], code: i32) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let stderr = p.baton(&all).fails(code);
    assert!(
        p.baton(&["workflows", "list", "--json"]).json() == json!([]),
        "a refused run must not be recorded"
    );
    stderr
}

fn time(value: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
    )
    .unwrap()
}

/// The function runs a workflow run recorded, by step name.
fn step_runs(p: &TestProject, id: &str) -> Vec<Value> {
    let label = format!("workflow={id}");
    let runs = p
        .baton(&["runs", "list", "--label", &label, "--json"])
        .json();
    runs.as_array().unwrap().clone()
}

/// (start, end) of every step run of workflow run `id`, sorted by start.
fn intervals(p: &TestProject, id: &str) -> Vec<(DateTime<FixedOffset>, DateTime<FixedOffset>)> {
    let mut all: Vec<_> = step_runs(p, id)
        .iter()
        .map(|r| {
            (
                time(&r["status"]["start_time"]),
                time(&r["status"]["end_time"]),
            )
        })
        .collect();
    all.sort();
    all
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// MLRun-style Python workflows
// ---------------------------------------------------------------------------------------------

#[test]
fn python_workflow_feeds_outputs_into_inputs_and_params_and_skips_a_false_condition() {
    let p = project();
    let uri = set_workflow(&p, "flow", "flow.py", FLOW_PY, &[]);
    let record = run_ok(&p, &["flow"]);
    assert_eq!(record["engine"], "local");
    assert_eq!(record["workflow"]["source"], uri);
    // The run's span holds its steps'.
    for s in record["steps"].as_array().unwrap() {
        if s["state"] == "Succeeded" {
            assert!(
                time(&record["started"]) <= time(&s["started"]),
                "{record:#}"
            );
            assert!(
                time(&s["finished"]) <= time(&record["finished"]),
                "{record:#}"
            );
        }
    }
    assert_eq!(
        record["args"],
        json!({"n": 1, "threshold": 100, "label": "default"})
    );
    // produce's artifact (an input) and result (a param) reached consume, typed.
    assert_eq!(step(&record, "produce")["outputs"]["count"], 2);
    assert_eq!(
        step(&record, "consume")["outputs"]["seen"],
        "payload-1|2|int|default"
    );
    assert_eq!(step(&record, "typed")["outputs"]["kind"], "int:1");
    // `.after(consume, typed)`: tail started once both had finished.
    let tail = step(&record, "tail");
    assert_eq!(tail["state"], "Succeeded");
    for before in ["consume", "typed"] {
        assert!(
            time(&tail["started"]) >= time(&step(&record, before)["finished"]),
            "{record:#}"
        );
    }
    assert!(
        time(&step(&record, "consume")["started"]) >= time(&step(&record, "produce")["finished"])
    );
    // 2 > 100 is false: the guarded step is skipped, and so is the step reading its output.
    let big = step(&record, "big");
    assert_eq!(big["state"], "Skipped");
    assert!(big["error"].as_str().unwrap().contains("is false"), "{big}");
    assert_eq!(big["run_uid"], Value::Null);
    let after = step(&record, "after-big");
    assert_eq!(after["state"], "Skipped");
    assert_eq!(after["error"], "upstream step `big` was skipped");
    // Only the steps that ran recorded function runs, each labelled with its step.
    let runs = step_runs(&p, record["id"].as_str().unwrap());
    let mut names: Vec<&str> = runs
        .iter()
        .map(|r| r["metadata"]["labels"]["workflow-step"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["consume", "produce", "tail", "typed"]);
    for r in &runs {
        assert_eq!(r["status"]["state"], "completed");
        assert_eq!(
            r["status"]["code"]["source"],
            "store://artifacts/my-project/steps_code"
        );
    }
}

#[test]
fn python_workflow_arguments_override_defaults_typed_and_make_the_condition_true() {
    let p = project();
    set_workflow(&p, "flow", "flow.py", FLOW_PY, &[]);
    let record = run_ok(
        &p,
        &["flow", "-a", "n=5", "-a", "threshold=3", "-a", "label=hi"],
    );
    assert_eq!(
        record["args"],
        json!({"n": 5, "threshold": 3, "label": "hi"})
    );
    // `-a n=5` reaches the handler as an int.
    assert_eq!(step(&record, "typed")["outputs"]["kind"], "int:5");
    assert_eq!(
        step(&record, "consume")["outputs"]["seen"],
        "payload-5|10|int|hi"
    );
    // 10 > 3: the guarded branch runs, and its output feeds the next step.
    assert_eq!(step(&record, "big")["state"], "Succeeded");
    assert_eq!(step(&record, "big")["outputs"]["value"], 10);
    assert_eq!(step(&record, "after-big")["state"], "Succeeded");
    assert_eq!(step(&record, "after-big")["outputs"]["value"], 10);
    assert_eq!(step_runs(&p, record["id"].as_str().unwrap()).len(), 6);
}

#[test]
fn set_workflow_default_arguments_apply_and_run_arguments_win() {
    let p = project();
    set_workflow(&p, "flow", "flow.py", FLOW_PY, &["--arg", "n=7"]);
    let record = run_ok(&p, &["flow"]);
    assert_eq!(step(&record, "typed")["outputs"]["kind"], "int:7");
    let record = run_ok(&p, &["flow", "-a", "n=2"]);
    assert_eq!(step(&record, "typed")["outputs"]["kind"], "int:2");
}

#[test]
fn a_required_pipeline_parameter_that_is_missing_is_named() {
    let p = project();
    set_workflow(
        &p,
        "needs",
        "needs.py",
        "def pipeline(source_url, n=1):\n    funcs['steps'].as_step(name='a', handler='steps:echo', params={'x': source_url})\n",
        &[],
    );
    let stderr = run_refused(&p, &["needs"], 2);
    assert!(
        stderr.contains("source_url") && stderr.contains("required"),
        "{stderr}"
    );
    // Given, it runs.
    let record = run_ok(&p, &["needs", "-a", "source_url=s3://x"]);
    assert_eq!(step(&record, "a")["outputs"]["value"], "s3://x");
}

// ---------------------------------------------------------------------------------------------
// YAML workflows, retries, failures
// ---------------------------------------------------------------------------------------------

#[test]
fn yaml_workflow_with_params_outputs_when_after_retries_and_timeout() {
    let p = project();
    set_workflow(&p, "yflow", "flow.yaml", FLOW_YAML, &[]);
    let marker = p.path().join("marker-1");
    let record = run_ok(
        &p,
        &["yflow", "-a", &format!("marker={}", marker.display())],
    );
    assert_eq!(record["args"]["n"], 3);
    // count = 6 > 5: big runs, small does not.
    assert_eq!(step(&record, "big")["outputs"]["value"], 6);
    assert_eq!(step(&record, "small")["state"], "Skipped");
    // flaky failed once (leaving its marker) and succeeded on its retry.
    let flaky = step(&record, "flaky");
    assert_eq!(flaky["state"], "Succeeded", "{record:#}");
    assert_eq!(flaky["attempts"], 2);
    assert_eq!(flaky["outputs"]["attempt"], "second");
    assert!(marker.exists());
    assert!(time(&flaky["started"]) >= time(&step(&record, "produce")["finished"]));
    // Both attempts are recorded runs: the failed one and the completed one.
    let id = record["id"].as_str().unwrap();
    let mut flaky_states: Vec<String> = step_runs(&p, id)
        .iter()
        .filter(|r| r["metadata"]["labels"]["workflow-step"] == "flaky")
        .map(|r| r["status"]["state"].as_str().unwrap().to_string())
        .collect();
    flaky_states.sort();
    assert_eq!(flaky_states, ["completed", "error"]);
    let completed = step_runs(&p, id)
        .into_iter()
        .find(|r| {
            r["metadata"]["labels"]["workflow-step"] == "flaky"
                && r["status"]["state"] == "completed"
        })
        .unwrap();
    assert_eq!(flaky["run_uid"], completed["metadata"]["uid"]);

    // n = 1: count = 2, the other branch runs.
    let marker = p.path().join("marker-2");
    let record = run_ok(
        &p,
        &[
            "yflow",
            "-a",
            "n=1",
            "-a",
            &format!("marker={}", marker.display()),
        ],
    );
    assert_eq!(step(&record, "big")["state"], "Skipped");
    assert_eq!(step(&record, "small")["outputs"]["value"], "small-2");
}

#[test]
fn python_set_retry_retries_a_failed_step() {
    let p = project();
    set_workflow(
        &p,
        "retry",
        "retry.py",
        "def pipeline(marker):\n    funcs['steps'].as_step(name='flaky', handler='steps:flaky', params={'marker': marker}).set_retry(1, backoff_duration=0)\n",
        &[],
    );
    let marker = p.path().join("marker");
    let record = run_ok(
        &p,
        &["retry", "-a", &format!("marker={}", marker.display())],
    );
    assert_eq!(step(&record, "flaky")["attempts"], 2);
    assert_eq!(step(&record, "flaky")["outputs"]["attempt"], "second");
}

#[test]
fn without_retries_the_flaky_step_fails() {
    let p = project();
    set_workflow(
        &p,
        "noretry",
        "noretry.py",
        "def pipeline(marker):\n    funcs['steps'].as_step(name='flaky', handler='steps:flaky', params={'marker': marker})\n",
        &[],
    );
    let marker = p.path().join("marker");
    let (code, record) = run(
        &p,
        &["noretry", "-a", &format!("marker={}", marker.display())],
    );
    assert_eq!(code, 1);
    assert_eq!(record["state"], "Failed");
    assert_eq!(step(&record, "flaky")["attempts"], 1);
}

#[test]
fn a_failing_step_fails_the_run_skips_dependents_and_spares_independent_branches() {
    let p = project();
    set_workflow(
        &p,
        "fails",
        "fails.yaml",
        "name: fails\nsteps:\n  - {name: a, function: steps, handler: steps:boom}\n  - {name: b, function: steps, after: [a]}\n  - {name: c, function: steps, after: [b]}\n  - {name: x, function: steps, params: {x: 1}}\n",
        &[],
    );
    let (code, record) = run(&p, &["fails"]);
    assert_eq!(code, 1, "{record:#}");
    assert_eq!(record["state"], "Failed");
    let error = record["error"].as_str().unwrap();
    assert!(
        error.contains("step `a`") && error.contains("kaboom"),
        "{error}"
    );
    let a = step(&record, "a");
    assert_eq!(a["state"], "Failed");
    assert!(a["run_uid"].is_string());
    assert_eq!(step(&record, "b")["state"], "Skipped");
    assert_eq!(step(&record, "b")["error"], "upstream step `a` failed");
    assert_eq!(step(&record, "c")["state"], "Skipped");
    assert_eq!(step(&record, "c")["error"], "upstream step `b` was skipped");
    assert_eq!(step(&record, "x")["state"], "Succeeded");
    assert_eq!(step(&record, "x")["outputs"]["value"], 1);
    // The failed step's run holds the handler's error.
    let uid = a["run_uid"].as_str().unwrap();
    let failed = p.baton(&["runs", "get", uid, "--json"]).json();
    assert_eq!(failed["status"]["state"], "error");
    assert!(failed["status"]["error"]
        .as_str()
        .unwrap()
        .contains("kaboom"));
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

const FAN_OUT: &str = "name: fan\nparams: [{name: s, default: 1.5}]\nsteps:\n  - {name: s1, function: steps, handler: steps:sleep, params: {seconds: '{{args.s}}'}}\n  - {name: s2, function: steps, handler: steps:sleep, params: {seconds: '{{args.s}}'}}\n  - {name: s3, function: steps, handler: steps:sleep, params: {seconds: '{{args.s}}'}}\n";

/// Three steps that each wait (at most `args.wait` seconds) until all three have started.
const BARRIER: &str = "name: barrier\nparams: [{name: dir}, {name: wait, default: 60}]\nsteps:\n  - {name: b1, function: steps, handler: steps:barrier, params: {folder: '{{args.dir}}', name: b1, parties: 3, seconds: '{{args.wait}}'}}\n  - {name: b2, function: steps, handler: steps:barrier, params: {folder: '{{args.dir}}', name: b2, parties: 3, seconds: '{{args.wait}}'}}\n  - {name: b3, function: steps, handler: steps:barrier, params: {folder: '{{args.dir}}', name: b3, parties: 3, seconds: '{{args.wait}}'}}\n";

/// A fresh, empty folder for the barrier's "started" files.
fn barrier_dir(p: &TestProject) -> String {
    let dir = p.path().join("barrier");
    std::fs::create_dir(&dir).unwrap();
    dir.to_str().unwrap().to_string()
}

/// Concurrency without a timing assumption: no step of the barrier can finish before all three
/// have started, so the run succeeds only if the three ran at once.
#[test]
fn parallel_steps_meet_at_a_barrier_with_parallelism_three() {
    let p = project();
    set_workflow(&p, "barrier", "barrier.yaml", BARRIER, &[]);
    let dir = barrier_dir(&p);
    let record = run_ok(
        &p,
        &["barrier", "--parallelism", "3", "-a", &format!("dir={dir}")],
    );
    for name in ["b1", "b2", "b3"] {
        assert_eq!(step(&record, name)["state"], "Succeeded", "{record:#}");
    }
    let spans = intervals(&p, record["id"].as_str().unwrap());
    assert_eq!(spans.len(), 3);
    let max_start = spans.iter().map(|s| s.0).max().unwrap();
    let min_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(max_start < min_end, "all three ran at once: {spans:?}");
}

/// The barrier is a real check: with two slots for three parties it can never be met, so the
/// first step to give up fails the run.
#[test]
fn barrier_is_never_met_with_fewer_slots_than_parties() {
    let p = project();
    set_workflow(&p, "barrier", "barrier.yaml", BARRIER, &[]);
    let dir = barrier_dir(&p);
    let (code, record) = run(
        &p,
        &[
            "barrier",
            "--parallelism",
            "2",
            "-a",
            &format!("dir={dir}"),
            "-a",
            "wait=1",
        ],
    );
    assert_eq!(code, 1, "{record:#}");
    assert_eq!(record["state"], "Failed", "{record:#}");
    assert!(
        record.to_string().contains("of 3 started within"),
        "{record:#}"
    );
}

#[test]
fn parallelism_one_runs_steps_one_after_another() {
    let p = project();
    set_workflow(&p, "fan", "fan.yaml", FAN_OUT, &[]);
    let record = run_ok(&p, &["fan", "--parallelism", "1", "-a", "s=0.2"]);
    let spans = intervals(&p, record["id"].as_str().unwrap());
    assert_eq!(spans.len(), 3);
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs overlap: {spans:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Timeout and terminate
// ---------------------------------------------------------------------------------------------

#[test]
fn a_step_timeout_fails_the_step_and_stops_its_process() {
    let p = project();
    set_workflow(
        &p,
        "slow",
        "slow.yaml",
        "name: slow\nparams: [{name: pidfile}]\nsteps:\n  - {name: hang, function: steps, handler: steps:hang, params: {pidfile: '{{args.pidfile}}'}, timeout: 2s}\n",
        &[],
    );
    let pidfile = p.path().join("hang.pid");
    let (code, record) = run(
        &p,
        &["slow", "-a", &format!("pidfile={}", pidfile.display())],
    );
    assert_eq!(code, 1, "{record:#}");
    assert_eq!(record["state"], "Failed");
    let hang = step(&record, "hang");
    assert_eq!(hang["state"], "Failed");
    assert!(
        hang["error"].as_str().unwrap().contains("timed out"),
        "{hang}"
    );
    assert!(record["error"].as_str().unwrap().contains("step `hang`"));
    // The handler was running (it wrote its pid) and is stopped; its run ends aborted.
    let pid = read_pid(&pidfile);
    poll("the timed-out handler to exit", || !alive(pid));
    let id = record["id"].as_str().unwrap();
    poll("the step run to be recorded aborted", || {
        let runs = step_runs(&p, id);
        runs.len() == 1 && runs[0]["status"]["state"] == "aborted"
    });
    // The step links to that run although the attempt never reported it.
    assert_eq!(hang["run_uid"], step_runs(&p, id)[0]["metadata"]["uid"]);
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The children of process `pid` that exited and were not reaped (zombies).
fn zombie_children(pid: u32) -> Vec<i32> {
    let mut children = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        let listed = std::fs::read_to_string(path).unwrap_or_default();
        children.extend(listed.split_whitespace().map(|c| c.parse::<i32>().unwrap()));
    }
    children.retain(|child| !alive(*child) && Path::new(&format!("/proc/{child}")).exists());
    children
}

#[test]
fn runners_of_timed_out_steps_are_reaped_while_the_workflow_goes_on() {
    let p = project();
    set_workflow(
        &p,
        "gated",
        "gated.yaml",
        "name: gated\nparams: [{name: pids}, {name: gate}]\nsteps:\n  \
         - {name: t1, function: steps, handler: steps:hang, params: {pidfile: '{{args.pids}}-1'}, timeout: 1s}\n  \
         - {name: t2, function: steps, handler: steps:hang, params: {pidfile: '{{args.pids}}-2'}, timeout: 1s}\n  \
         - {name: gate, function: steps, handler: steps:wait_for, params: {path: '{{args.gate}}'}}\n",
        &[],
    );
    let (pids, gate) = (p.path().join("hang.pid"), p.path().join("gate"));
    let mut child = KillOnDrop(
        p.command(&[
            "run",
            "gated",
            "--parallelism",
            "3",
            "-a",
            &format!("pids={}", pids.display()),
            "-a",
            &format!("gate={}", gate.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    for n in [1, 2] {
        let pidfile = PathBuf::from(format!("{}-{n}", pids.display()));
        poll("a timed-out step's handler to start", || pidfile.exists());
        let pid = read_pid(&pidfile);
        poll("a timed-out step's handler to exit", || !alive(pid));
    }
    // Both runners stopped while the gate step still runs: none may linger as a zombie.
    poll("the stopped runners to be reaped", || {
        zombie_children(child.0.id()).is_empty()
    });
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the workflow ended early"
    );
    std::fs::write(&gate, "open").unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "the timed-out steps fail the workflow"
    );
}

#[test]
fn terminate_cancels_a_running_workflow() {
    let p = project();
    let (mut child, id, pidfile) = start_long_workflow(&p);
    // While it runs, the record already links the running step to its run.
    poll("the running step to link its run", || {
        let live = p.baton(&["workflows", "get", &id, "--json"]).json();
        step(&live, "hang")["run_uid"].is_string()
    });
    p.baton(&["workflows", "terminate", &id]).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`baton run` did not end after terminate");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["id"], id);
    assert_eq!(record["state"], "Canceled");
    assert_eq!(step(&record, "hang")["state"], "Canceled");
    assert_eq!(step(&record, "next")["state"], "Canceled");
    let pid = read_pid(&pidfile);
    poll("the terminated handler to exit", || !alive(pid));
    let stored = p.baton(&["workflows", "get", &id, "--json"]).json();
    assert_eq!(stored, record);
    poll("the step run to be recorded aborted", || {
        let runs = step_runs(&p, &id);
        runs.len() == 1 && runs[0]["status"]["state"] == "aborted"
    });
    assert_eq!(
        step(&record, "hang")["run_uid"],
        step_runs(&p, &id)[0]["metadata"]["uid"]
    );
    assert_eq!(step(&record, "next")["run_uid"], Value::Null);
    // Terminating an ended run is a no-op that says so.
    let again = p.baton(&["workflows", "terminate", &id]);
    assert_eq!(again.code, 0);
    assert!(again.stderr.contains("already ended"), "{}", again.stderr);
}

// ---------------------------------------------------------------------------------------------
// Engine strings and set-workflow validation
// ---------------------------------------------------------------------------------------------

fn simple_project() -> TestProject {
    let p = project();
    set_workflow(
        &p,
        "main",
        "main.yaml",
        "name: main\nsteps:\n  - {name: a, function: steps, params: {x: 1}}\n",
        &[],
    );
    p
}

#[test]
fn engine_strings_are_checked_by_run() {
    let p = simple_project();
    let stderr = run_refused(&p, &["main", "--engine", "bogus"], 2);
    assert!(
        stderr.contains("engine_kind=`bogus`")
            && stderr.contains("local, kfp, remote, remote:local, remote:kfp"),
        "{stderr}"
    );
    let stderr = run_refused(&p, &["main", "--engine", "remote", "--local"], 2);
    assert!(stderr.contains("remote:local"), "{stderr}");
    let stderr = run_refused(&p, &["main", "--engine", "kfp"], 2);
    assert!(
        stderr.contains("engine `kfp` is not available in this build"),
        "{stderr}"
    );
    // The remote engines need a server.
    for engine in ["remote:local", "remote:kfp"] {
        let stderr = run_refused(&p, &["main", "--engine", engine], 2);
        assert!(stderr.contains("none is given"), "{stderr}");
    }
    // `--local` turns the default kfp into local.
    let record = run_ok(&p, &["main", "--engine", "kfp", "--local"]);
    assert_eq!(record["engine"], "local");
}

#[test]
fn set_workflow_checks_engine_and_schedule() {
    let p = project();
    p.write(
        "w.yaml",
        "name: w\nsteps:\n  - {name: a, function: steps}\n",
    );
    let set = |extra: &[&str]| {
        let mut args = vec!["set-workflow", "--name", "w", "--path", "w.yaml"];
        args.extend_from_slice(extra);
        p.baton(&args)
    };
    let stderr = set(&["--schedule", "0 * * * *", "--engine", "local"]).fails(2);
    assert!(
        stderr.contains("'schedule' argument is not supported for 'local' engine."),
        "{stderr}"
    );
    let stderr = set(&["--schedule", "0 * * *"]).fails(2);
    assert!(
        stderr
            .contains("Wrong number of fields in crontab expression `0 * * *`; got 4, expected 5"),
        "{stderr}"
    );
    let stderr = set(&["--engine", "bogus"]).fails(2);
    assert!(stderr.contains("engine_kind=`bogus`"), "{stderr}");
    // Nothing was written by the refusals.
    let yaml = std::fs::read_to_string(p.path().join("project.yaml")).unwrap();
    assert!(!yaml.contains("w.yaml"), "{yaml}");
    // A valid schedule with a remote engine is kept.
    set(&["--schedule", "0 * * * *", "--engine", "remote"]).ok();
    let yaml = std::fs::read_to_string(p.path().join("project.yaml")).unwrap();
    assert!(yaml.contains("schedule: 0 * * * *"), "{yaml}");
}

#[test]
fn set_workflow_refuses_sources_that_are_not_workflow_files() {
    let p = project();
    // A function-typed code artifact.
    let stderr = p
        .baton(&[
            "set-workflow",
            "--name",
            "w",
            "--path",
            "store://artifacts/my-project/steps_code",
        ])
        .fails(2);
    assert!(
        stderr.contains("code_type='function'") && stderr.contains("expected 'workflow'"),
        "{stderr}"
    );
    // An archive logged as workflow code.
    p.write(
        "wf.zip",
        zip_bytes(&[("wf.py", "def pipeline():\n    pass\n")]),
    );
    p.log_code("wf_zip", "wf.zip", &["--code-type", "workflow"]);
    let stderr = p
        .baton(&[
            "set-workflow",
            "--name",
            "w",
            "--path",
            "store://artifacts/my-project/wf_zip",
        ])
        .fails(2);
    assert!(
        stderr.contains("resolves to the archive `wf.zip`")
            && stderr.contains("single .py, .yaml or .yml file"),
        "{stderr}"
    );
    // A local file that is not there.
    let stderr = p
        .baton(&["set-workflow", "--name", "w", "--path", "./nope.py"])
        .fails(2);
    assert!(
        stderr.contains("nope.py") && stderr.contains("non-existing file"),
        "{stderr}"
    );
    // A store artifact that does not exist.
    let stderr = p
        .baton(&[
            "set-workflow",
            "--name",
            "w",
            "--path",
            "store://artifacts/my-project/missing_wf",
        ])
        .fails(2);
    assert!(
        stderr.contains("Artifact `store://artifacts/my-project/missing_wf` not found"),
        "{stderr}"
    );
    let yaml = std::fs::read_to_string(p.path().join("project.yaml")).unwrap();
    assert!(!yaml.contains("workflows:\n- "), "{yaml}");
}

#[test]
fn a_local_workflow_file_runs_and_records_its_digest() {
    let p = project();
    p.write(
        "local.yaml",
        "name: local\nsteps:\n  - {name: a, function: steps, params: {x: local}}\n",
    );
    p.baton(&["set-workflow", "--name", "local", "--path", "local.yaml"])
        .ok();
    let record = run_ok(&p, &["local"]);
    assert_eq!(record["workflow"]["source"], "local.yaml");
    assert_eq!(record["workflow"]["uid"], Value::Null);
    assert_eq!(
        record["workflow"]["digest"],
        common::sha256(&std::fs::read(p.path().join("local.yaml")).unwrap())
    );
    assert_eq!(step(&record, "a")["outputs"]["value"], "local");
}

// ---------------------------------------------------------------------------------------------
// DAG validation at run time
// ---------------------------------------------------------------------------------------------

/// Points workflow `bad` at `yaml` and returns `baton run bad`'s stderr (exit 2, nothing run).
fn refused_yaml(yaml: &str) -> String {
    let p = project();
    set_workflow(&p, "bad", "bad.yaml", yaml, &[]);
    run_refused(&p, &["bad"], 2)
}

#[test]
fn a_cycle_is_refused_with_its_path() {
    let stderr = refused_yaml(
        "name: bad\nsteps:\n  - {name: a, function: steps, after: [c]}\n  - {name: b, function: steps, after: [a]}\n  - {name: c, function: steps, after: [b]}\n",
    );
    assert!(stderr.contains("cycle: a -> b -> c -> a"), "{stderr}");
}

#[test]
fn duplicate_step_names_are_refused() {
    let stderr = refused_yaml(
        "name: bad\nsteps:\n  - {name: a, function: steps}\n  - {name: a, function: steps}\n",
    );
    assert!(stderr.contains("duplicate step name `a`"), "{stderr}");
}

#[test]
fn an_unknown_function_is_refused() {
    let p = project();
    set_workflow(
        &p,
        "bad",
        "bad.py",
        "def pipeline():\n    mlrun.run_function('nosuch', handler='x:y')\n",
        &[],
    );
    // `mlrun` is not imported: the tracer must report that, not crash.
    let stderr = run_refused(&p, &["bad"], 2);
    assert!(stderr.contains("mlrun"), "{stderr}");
    set_workflow(
        &p,
        "bad",
        "bad.py",
        "import mlrun\n\ndef pipeline():\n    mlrun.run_function('nosuch', handler='x:y')\n",
        &[],
    );
    let stderr = run_refused(&p, &["bad"], 2);
    assert!(
        stderr.contains("unknown function `nosuch`") && stderr.contains("steps"),
        "{stderr}"
    );
}

#[test]
fn a_reference_to_an_undeclared_output_is_refused() {
    let stderr = refused_yaml(
        "name: bad\nsteps:\n  - {name: a, function: steps, outputs: [x]}\n  - {name: b, function: steps, params: {x: '{{steps.a.outputs.y}}'}}\n",
    );
    assert!(
        stderr.contains("step `b` references output `y` of step `a`"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_argument_reference_is_refused() {
    let stderr = refused_yaml(
        "name: bad\nparams: [{name: n, default: 1}]\nsteps:\n  - {name: a, function: steps, params: {x: '{{args.zzz}}'}}\n",
    );
    assert!(
        stderr.contains("unknown workflow argument `zzz`")
            && stderr.contains("workflow arguments: n"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Versions, graph, records
// ---------------------------------------------------------------------------------------------

#[test]
fn a_new_version_of_the_workflow_artifact_is_picked_up_by_the_next_run() {
    let p = project();
    let v1 = "name: v\nsteps:\n  - {name: a, function: steps, params: {x: one}}\n";
    set_workflow(&p, "v", "v.yaml", v1, &[]);
    let first = run_ok(&p, &["v"]);
    let uid1 = p.artifact("store://my-project/v_wf")["metadata"]["uid"].clone();
    assert_eq!(first["workflow"]["uid"], uid1);
    assert_eq!(step(&first, "a")["outputs"]["value"], "one");

    // Same key, new content: no set-workflow.
    let pinned = p.log_code("v_wf", "v.yaml", &["--code-type", "workflow"]);
    p.baton(&["set-workflow", "--name", "pinned", "--path", &pinned])
        .ok();
    let v2 = "name: v\nsteps:\n  - {name: a, function: steps, params: {x: two}}\n  - {name: b, function: steps, after: [a]}\n";
    p.write("v.yaml", v2);
    p.log_code("v_wf", "v.yaml", &["--code-type", "workflow"]);
    let uid2 = p.artifact("store://my-project/v_wf")["metadata"]["uid"].clone();
    assert_ne!(uid1, uid2);
    let second = run_ok(&p, &["v"]);
    assert_eq!(second["workflow"]["uid"], uid2);
    assert_eq!(second["workflow"]["digest"], common::sha256(v2.as_bytes()));
    assert_eq!(step(&second, "a")["outputs"]["value"], "two");
    assert_eq!(second["steps"].as_array().unwrap().len(), 2);
    // A URI naming one version keeps running that version.
    let old = run_ok(&p, &["pinned"]);
    assert_eq!(old["workflow"]["source"], pinned);
    assert_eq!(old["workflow"]["digest"], common::sha256(v1.as_bytes()));
    assert_eq!(step(&old, "a")["outputs"]["value"], "one");
}

/// a -> b (after), a -> c (data), b -> d (after and the condition's data edge, drawn once),
/// c -> d (after).
const DIAMOND: &str = "name: diamond\nsteps:\n  - {name: a, function: steps, outputs: [value]}\n  - {name: b, function: steps, after: [a], outputs: [value]}\n  - {name: c, function: steps, params: {x: '{{steps.a.outputs.value}}'}}\n  - {name: d, function: steps, after: [b, c], when: '{{steps.b.outputs.value}} > 1'}\n";

#[test]
fn graph_renders_mermaid_and_dot() {
    let p = project();
    set_workflow(&p, "diamond", "diamond.yaml", DIAMOND, &[]);
    let mermaid = p.baton(&["graph", "diamond"]).ok();
    assert_eq!(
        mermaid,
        "flowchart TD\n    s0[\"a\"]\n    s1[\"b\"]\n    s2[\"c\"]\n    s3[\"d<br/>when {{steps.b.outputs.value}} > 1\"]\n    s0 --> s1\n    s0 --> s2\n    s1 --> s3\n    s2 --> s3\n"
    );
    assert_eq!(
        p.baton(&["graph", "diamond", "--format", "mermaid"]).ok(),
        mermaid
    );
    let dot = p.baton(&["graph", "diamond", "--format", "dot"]).ok();
    assert_eq!(
        dot,
        "digraph \"diamond\" {\n    s0 [label=\"a\"];\n    s1 [label=\"b\"];\n    s2 [label=\"c\"];\n    s3 [label=\"d\\nwhen {{steps.b.outputs.value}} > 1\"];\n    s0 -> s1;\n    s0 -> s2;\n    s1 -> s3;\n    s2 -> s3;\n}\n"
    );
    let stderr = p.baton(&["graph", "nosuch"]).fails(2);
    assert!(
        stderr.contains("Workflow `nosuch` does not exist"),
        "{stderr}"
    );
}

#[test]
fn workflows_get_returns_the_record_run_printed() {
    let p = project();
    set_workflow(&p, "flow", "flow.py", FLOW_PY, &[]);
    let record = run_ok(&p, &["flow"]);
    let id = record["id"].as_str().unwrap();
    assert_eq!(p.baton(&["workflows", "get", id, "--json"]).json(), record);
    let listed = p.baton(&["workflows", "list", "--json"]).json();
    assert_eq!(listed, json!([record.clone()]));
    let table = p.baton(&["workflows", "list"]).ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[1].starts_with(id), "{table}");
    // Columns line up under their headers.
    for (header, value) in [
        ("STATE", "Succeeded"),
        ("ENGINE", "local"),
        ("STARTED", record["started"].as_str().unwrap()),
    ] {
        assert_eq!(
            lines[0].find(header),
            lines[1].find(value),
            "{header}:\n{table}"
        );
    }
    let stderr = p.baton(&["workflows", "get", "nosuch", "--json"]).fails(2);
    assert!(stderr.contains("nosuch"), "{stderr}");
}

#[test]
fn run_without_a_name_runs_the_only_workflow() {
    let p = simple_project();
    let record = run_ok(&p, &[]);
    assert_eq!(record["name"], "main");
    set_workflow(
        &p,
        "other",
        "other.yaml",
        "name: other\nsteps:\n  - {name: a, function: steps}\n",
        &[],
    );
    let stderr = run_refused_after(&p, &[], 2);
    assert!(
        stderr.contains("main") && stderr.contains("other"),
        "{stderr}"
    );
}

/// Like [`run_refused`] for a project that already has recorded runs.
fn run_refused_after(p: &TestProject, args: &[&str], code: i32) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    p.baton(&all).fails(code)
}

/// Starts `baton run long` (a step that hangs, then one after it) in the background and waits
/// until the run is recorded Running with its handler started; returns the `baton run` child,
/// the workflow run id and the file holding the handler's pid.
fn start_long_workflow(p: &TestProject) -> (std::process::Child, String, std::path::PathBuf) {
    start_long_workflow_with(p, "fork")
}

/// [`start_long_workflow`] with `--isolation ISOLATION`.
fn start_long_workflow_with(
    p: &TestProject,
    isolation: &str,
) -> (std::process::Child, String, std::path::PathBuf) {
    set_workflow(p, "long", "long.yaml", LONG, &[]);
    let pidfile = p.path().join("hang.pid");
    let arg = format!("pidfile={}", pidfile.display());
    let child = p
        .command(&[
            "run",
            "long",
            "-a",
            &arg,
            "--json",
            "--isolation",
            isolation,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    poll("the workflow to be running", || {
        let runs = p.baton(&["workflows", "list", "--json"]).json();
        match runs.as_array().unwrap().first() {
            Some(r) if r["state"] == "Running" && pidfile.exists() => {
                id = r["id"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });
    (child, id, pidfile)
}

const LONG: &str = "name: long\nparams: [{name: pidfile}]\nsteps:\n  - {name: hang, function: steps, handler: steps:hang, params: {pidfile: '{{args.pidfile}}'}}\n  - {name: next, function: steps, after: [hang]}\n";

#[test]
fn the_run_timeout_terminates_the_workflow() {
    let p = project();
    set_workflow(&p, "long", "long.yaml", LONG, &[]);
    let pidfile = p.path().join("hang.pid");
    let (code, record) = run(
        &p,
        &[
            "long",
            "--timeout",
            "2s",
            "-a",
            &format!("pidfile={}", pidfile.display()),
        ],
    );
    assert_eq!(code, 1, "{record:#}");
    assert_eq!(record["state"], "Canceled");
    assert_eq!(record["error"], "the run did not finish within 2s");
    assert_eq!(step(&record, "hang")["state"], "Canceled");
    assert_eq!(step(&record, "next")["state"], "Canceled");
    let pid = read_pid(&pidfile);
    poll("the handler to exit", || !alive(pid));
    let id = record["id"].as_str().unwrap();
    assert_eq!(p.baton(&["workflows", "get", id, "--json"]).json(), record);
}

#[test]
fn interrupting_baton_run_cancels_the_workflow() {
    let p = project();
    set_workflow(&p, "long", "long.yaml", LONG, &[]);
    let pidfile = p.path().join("hang.pid");
    let arg = format!("pidfile={}", pidfile.display());
    let child = p
        .command(&["run", "long", "-a", &arg, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    poll("the handler to start", || pidfile.exists());
    // SIGINT, as Ctrl-C sends.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["state"], "Canceled");
    let pid = read_pid(&pidfile);
    poll("the handler to exit", || !alive(pid));
}

#[test]
fn progress_lines_are_printed_unless_no_watch() {
    let p = project();
    set_workflow(&p, "fails", "fails.yaml", "name: fails\nsteps:\n  - {name: a, function: steps, handler: steps:boom}\n  - {name: b, function: steps, after: [a]}\n", &[]);
    let out = p.baton(&["run", "fails"]);
    assert_eq!(out.code, 1);
    // stdout holds only the run id; progress and outcome go to stderr.
    let id = out.stdout.trim();
    assert_eq!(id.len(), 32, "{}", out.stdout);
    for line in [
        "▶ a",
        "✗ a",
        "kaboom",
        "↷ b skipped: upstream step `a` failed",
    ] {
        assert!(out.stderr.contains(line), "no `{line}` in {}", out.stderr);
    }
    assert!(
        out.stderr.contains(&format!("Workflow run `{id}` Failed")),
        "{}",
        out.stderr
    );
    let quiet = p.baton(&["run", "fails", "--no-watch"]);
    assert_eq!(quiet.code, 1);
    assert!(!quiet.stderr.contains("▶ a"), "{}", quiet.stderr);
    assert!(quiet.stderr.contains("Failed"), "{}", quiet.stderr);
}

const TWO_HANDLERS: &str = "import mlrun\n\n\ndef kfpipeline(p=1):\n    mlrun.run_function('steps', name='from-kfpipeline', params={'x': p})\n\n\ndef nightly(day: str = 'mon', region='eu'):\n    funcs['steps'].as_step(name='report', params={'x': day + '-' + region})\n";

#[test]
fn set_workflow_handler_picks_the_pipeline_function() {
    let p = project();
    set_workflow(&p, "default", "two.py", TWO_HANDLERS, &[]);
    let record = run_ok(&p, &["default"]);
    assert_eq!(step(&record, "from-kfpipeline")["outputs"]["value"], 1);
    set_workflow(
        &p,
        "nightly",
        "two.py",
        TWO_HANDLERS,
        &["--handler", "nightly"],
    );
    let record = run_ok(&p, &["nightly", "-a", "day=tue"]);
    assert_eq!(record["steps"].as_array().unwrap().len(), 1);
    assert_eq!(step(&record, "report")["outputs"]["value"], "tue-eu");
    set_workflow(&p, "nope", "two.py", TWO_HANDLERS, &["--handler", "nope"]);
    let stderr = run_refused_after(&p, &["nope"], 2);
    assert!(stderr.contains("`nope`"), "{stderr}");
}

#[test]
fn an_args_schema_adds_defaults_and_requirements() {
    let p = project();
    p.write(
        "schema.yaml",
        "- {name: region, type: str, default: us, doc: where}\n- {name: day, type: str, required: true}\n",
    );
    set_workflow(
        &p,
        "nightly",
        "two.py",
        TWO_HANDLERS,
        &["--handler", "nightly", "--args-schema", "schema.yaml"],
    );
    // `day` has a default in the pipeline but the schema requires it.
    let stderr = run_refused(&p, &["nightly"], 2);
    assert!(
        stderr.contains("Workflow argument(s) day are required and were not specified"),
        "{stderr}"
    );
    // The schema's default wins over the pipeline's.
    let record = run_ok(&p, &["nightly", "-a", "day=wed"]);
    assert_eq!(record["args"], json!({"region": "us", "day": "wed"}));
    assert_eq!(step(&record, "report")["outputs"]["value"], "wed-us");
    // A malformed schema file is refused by set-workflow.
    p.write("bad-schema.yaml", "name: region\n");
    let stderr = p
        .baton(&[
            "set-workflow",
            "--name",
            "x",
            "--path",
            "two.py",
            "--args-schema",
            "bad-schema.yaml",
        ])
        .fails(2);
    assert!(stderr.contains("bad-schema.yaml"), "{stderr}");
}

#[test]
fn a_run_whose_driver_was_killed_is_reported_failed_not_running_forever() {
    let p = project();
    let (mut child, id, pidfile) = start_long_workflow(&p);
    let record = p.baton(&["workflows", "get", &id, "--json"]).json();
    assert_eq!(record["driver"]["pid"], child.id());
    // The driver dies without a chance to record anything; its lease expires unrenewed.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut settled = Value::Null;
    poll(
        "the run to be settled once the driver's lease expires",
        || {
            settled = p.baton(&["workflows", "get", &id, "--json"]).json();
            settled["state"] != "Running"
        },
    );
    assert_eq!(settled["state"], "Failed");
    let error = settled["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("pid {}", child.id()))
            && error.contains("exited before the run finished"),
        "{error}"
    );
    assert!(settled["finished"].is_string());
    // The orphaned handler is still ours to stop.
    let pid = read_pid(&pidfile);
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// The state of every run of workflow run `id`, by its `workflow-step` label.
fn step_run_states(p: &TestProject, id: &str) -> Vec<(String, String)> {
    let mut states: Vec<(String, String)> = step_runs(p, id)
        .iter()
        .map(|r| {
            (
                r["metadata"]["labels"]["workflow-step"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r["status"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    states.sort();
    states
}

#[test]
fn sigterm_and_sighup_to_baton_run_cancel_the_workflow_like_ctrl_c() {
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let p = project();
        let (child, id, pidfile) = start_long_workflow(&p);
        // Only the driver gets the signal (as from `timeout`, systemd or a closed terminal).
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "signal {signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let record: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(record["state"], "Canceled", "signal {signal}: {record:#}");
        assert_eq!(step(&record, "hang")["state"], "Canceled");
        assert_eq!(step(&record, "next")["state"], "Canceled");
        let pid = read_pid(&pidfile);
        poll("the handler to exit", || !alive(pid));
        assert_eq!(
            step_run_states(&p, &id),
            [("hang".to_string(), "aborted".to_string())],
            "signal {signal}"
        );
        assert_eq!(p.baton(&["workflows", "get", &id, "--json"]).json(), record);
    }
}

#[test]
fn killing_baton_run_with_sigkill_kills_its_steps_and_settles_every_record() {
    // A `baton runner` process survives its driver long enough to record its run `aborted`; a
    // runner inside the driver dies with it, and its run is settled `error` once its lease
    // expires (and the workflow's step shows it failed). Either way the handler dies at once.
    for (isolation, step_state, hang) in [
        ("process", "aborted", "Canceled"),
        ("fork", "error", "Failed"),
    ] {
        let p = project();
        let (mut child, id, pidfile) = start_long_workflow_with(&p, isolation);
        child.kill().unwrap();
        child.wait().unwrap();
        let pid = read_pid(&pidfile);
        poll("the handler of the killed driver to exit", || !alive(pid));
        poll("the step run to be settled", || {
            step_run_states(&p, &id) == [("hang".to_string(), step_state.to_string())]
        });
        let mut settled = Value::Null;
        poll(
            "the run to be settled once the driver's lease expires",
            || {
                settled = p.baton(&["workflows", "get", &id, "--json"]).json();
                settled["state"] != "Running"
            },
        );
        assert_eq!(settled["state"], "Failed", "{isolation}: {settled:#}");
        assert_eq!(step(&settled, "hang")["state"], hang, "{settled:#}");
        assert_eq!(step(&settled, "next")["state"], "Canceled", "{settled:#}");
        // Reading again changes nothing.
        assert_eq!(
            p.baton(&["workflows", "get", &id, "--json"]).json(),
            settled
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Retry from the stored record, by a new process
// ---------------------------------------------------------------------------------------------

const RETRIED: &str = "name: retried\nparams: [{name: marker}]\nsteps:\n  - {name: produce, function: steps, handler: steps:produce, params: {n: 4}, outputs: [count]}\n  - {name: flaky, function: steps, handler: steps:flaky, params: {marker: '{{args.marker}}'}, after: [produce]}\n  - {name: use, function: steps, handler: steps:echo, params: {x: '{{steps.produce.outputs.count}}'}, after: [flaky]}\n";

#[test]
fn a_failed_workflow_run_is_retried_by_a_new_process_reusing_what_succeeded() {
    let p = project();
    set_workflow(&p, "retried", "retried.yaml", RETRIED, &[]);
    let marker = p.path().join("marker");
    let (code, first) = run(
        &p,
        &["retried", "-a", &format!("marker={}", marker.display())],
    );
    assert_eq!(code, 1, "{first:#}");
    assert_eq!(first["state"], "Failed");
    assert_eq!(step(&first, "flaky")["state"], "Failed");
    assert_eq!(step(&first, "use")["state"], "Skipped");
    let first_id = first["id"].as_str().unwrap();

    // `baton workflows retry` is a new process: all it has is the stored record.
    let out = p.baton(&["workflows", "retry", first_id, "--json"]);
    let second: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    assert_eq!(out.code, 0, "{second:#}\n{}", out.stderr);
    assert_eq!(second["state"], "Succeeded", "{second:#}");
    assert_eq!(second["retry_of"], first_id);
    assert_ne!(second["id"], first["id"]);
    // produce succeeded before: kept with its outputs and run, not run again.
    assert_eq!(step(&second, "produce"), step(&first, "produce"));
    assert_eq!(step(&second, "use")["outputs"]["value"], 8);
    assert_eq!(step(&second, "flaky")["attempts"], 1);
    let second_id = second["id"].as_str().unwrap();
    let mut rerun: Vec<String> = step_runs(&p, second_id)
        .iter()
        .map(|r| {
            r["metadata"]["labels"]["workflow-step"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    rerun.sort();
    assert_eq!(rerun, ["flaky", "use"]);
    assert_eq!(
        p.baton(&["workflows", "get", second_id, "--json"]).json(),
        second
    );

    // A succeeded run has nothing to retry.
    let refused = p.baton(&["workflows", "retry", second_id]).fails(2);
    assert!(refused.contains("nothing to retry"), "{refused}");
}

// ---------------------------------------------------------------------------------------------
// Ordering after a condition group
// ---------------------------------------------------------------------------------------------

const AFTER_GROUP_PY: &str = include_str!("fixtures/cli_workflows/after_group.py");

#[test]
fn a_step_after_a_condition_group_starts_once_every_step_in_it_and_its_inner_group_ended() {
    let p = project();
    set_workflow(&p, "after-group", "after_group.py", AFTER_GROUP_PY, &[]);
    let record = run_ok(&p, &["after-group"]);
    for name in ["produce", "slow", "inner", "report"] {
        assert_eq!(step(&record, name)["state"], "Succeeded", "{record:#}");
    }
    assert_eq!(step(&record, "report")["outputs"]["value"], "done");
    // The step runs' own times: `report` started once both guarded steps (the outer group's
    // and the inner group's) had ended. Nothing else orders it: it has no data edge.
    let runs = step_runs(&p, record["id"].as_str().unwrap());
    let span = |name: &str| {
        let run = runs
            .iter()
            .find(|r| r["metadata"]["labels"]["workflow-step"] == name)
            .unwrap_or_else(|| panic!("no run of step `{name}`: {runs:#?}"));
        (
            time(&run["status"]["start_time"]),
            time(&run["status"]["end_time"]),
        )
    };
    let report = span("report");
    for before in ["slow", "inner"] {
        assert!(
            report.0 >= span(before).1,
            "`report` started before `{before}` ended: {runs:#?}"
        );
    }
    // The group's steps ran after their condition's producer.
    assert!(span("slow").0 >= span("produce").1, "{runs:#?}");
}

/// MLRun's `build_function` step on the local engine: it writes the function's build context
/// and outputs the image it names, which a later step can use; a deploy step is refused before
/// anything runs, naming the step and what to do instead.
#[test]
fn a_build_steps_image_output_feeds_a_later_step_and_deploy_steps_are_refused() {
    let p = project();
    set_workflow(
        &p,
        "build",
        "build.py",
        "import mlrun\n\
         def pipeline():\n    \
             builder = mlrun.build_function('steps')\n    \
             mlrun.run_function('steps', handler='steps:echo', params={'x': builder.outputs['image']}, outputs=['value'])\n",
        &[],
    );
    let record = run_ok(&p, &["build"]);
    let image = ".mlrun/func-my-project-steps:latest";
    assert_eq!(
        step(&record, "build-steps")["outputs"]["image"],
        image,
        "{record:#}"
    );
    assert_eq!(
        step(&record, "steps")["outputs"]["value"],
        image,
        "{record:#}"
    );
    assert!(p.path().join(".baton/builds/steps/Dockerfile").is_file());

    let p = project();
    set_workflow(
        &p,
        "deploy",
        "deploy.py",
        "import mlrun\ndef pipeline():\n    mlrun.deploy_function('steps')\n",
        &[],
    );
    let stderr = run_refused(&p, &["deploy"], 2);
    assert!(
        stderr.contains("Step `deploy-steps` deploys real-time function `steps`, which the local engine cannot do"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deploy the function before the run"),
        "{stderr}"
    );
}

#[test]
fn a_python_workflow_is_traced_by_the_warm_worker_that_then_forks_its_steps() {
    let p = project();
    let note = p.path().join("traced-by");
    let flow = format!(
        r#"
import os
import mlrun
from kfp import dsl

# Runs at trace time: who started the tracer.
with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
    worker = b"baton_zygote" in f.read()
with open({note:?}, "w") as out:
    out.write("%d %s" % (os.getppid(), worker))


@dsl.pipeline(name="lineage")
def pipeline():
    mlrun.run_function("steps", name="a", handler="steps:parent", outputs=["parent"])
"#,
        note = note.to_string_lossy()
    );
    set_workflow(&p, "lineage", "lineage.py", &flow, &[]);
    let record = run_ok(&p, &["lineage"]);
    let traced = std::fs::read_to_string(&note).unwrap();
    let (tracer_parent, forked) = traced.split_once(' ').unwrap();
    assert_eq!(
        forked, "True",
        "the tracer's parent is not the warm worker: {traced}"
    );
    assert_eq!(
        step(&record, "a")["outputs"]["parent"].to_string(),
        tracer_parent,
        "the step and the tracer have different parents: {record:#}"
    );
}
