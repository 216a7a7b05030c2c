//! Hyper-parameter runs as MLRun's local runtime does them, through the real `baton` binary and
//! real Python handlers: `run-function --hyperparam` and `run_function(hyperparams=...)` in a
//! workflow. Each iteration is a child run (`<uid>-<n>`, `metadata.iteration = n`, label
//! `parent-run=<uid>`); the parent keeps the best iteration's results plus `best_iteration`, and
//! the summary table as `status.iterations` and the `iteration_results` artifact.

mod common;

use baton::workflow::{load_workflow_file, LoadOptions};
use chrono::DateTime;
use common::{step, TestProject};
use serde_json::{json, Value};

const TRAIN: &str = include_str!("fixtures/hyper/train.py");

/// A project with `trainer` running `train.py` (handler `train`).
fn project() -> TestProject {
    let p = TestProject::new();
    p.write("train.py", TRAIN);
    p.baton(&[
        "set-function",
        "--name",
        "trainer",
        "--func",
        "./train.py",
        "--handler",
        "train",
    ])
    .ok();
    p
}

/// `baton run-function trainer ARGS --json`: the exit code and the parent run.
fn run(p: &TestProject, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["run-function", "trainer"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = p.baton(&all);
    let run = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    (out.code, run)
}

/// The iterations of run `uid`, by iteration number.
fn iterations(p: &TestProject, uid: &str) -> Vec<Value> {
    let label = format!("parent-run={uid}");
    let runs = p
        .baton(&["runs", "list", "--label", &label, "--json"])
        .json();
    let mut runs = runs.as_array().unwrap().clone();
    runs.sort_by_key(|r| r["metadata"]["iteration"].as_u64());
    runs
}

/// (iteration, state, params picked out by `keys`) of each iteration.
fn summary(runs: &[Value], keys: &[&str]) -> Vec<Value> {
    runs.iter()
        .map(|r| {
            let params: Vec<&Value> = keys.iter().map(|k| &r["spec"]["parameters"][k]).collect();
            json!([r["metadata"]["iteration"], r["status"]["state"], params])
        })
        .collect()
}

fn uid(run: &Value) -> &str {
    run["metadata"]["uid"].as_str().unwrap()
}

#[test]
fn grid_runs_every_combination_as_child_runs_and_the_parent_keeps_the_best() {
    let p = project();
    let (code, parent) = run(
        &p,
        &[
            "-p",
            "note=fixed",
            "-x",
            "lr=[0.01, 0.1]",
            "-x",
            "depth=[1, 2]",
            "--selector",
            "max.accuracy",
        ],
    );
    assert_eq!(code, 0, "{parent:#}");
    assert_eq!(parent["status"]["state"], "completed");
    assert_eq!(parent["metadata"]["iteration"], 0);
    let children = iterations(&p, uid(&parent));
    // The first hyperparameter varies fastest; every child keeps the run's other params.
    assert_eq!(
        summary(&children, &["lr", "depth", "note"]),
        [
            json!([1, "completed", [0.01, 1, "fixed"]]),
            json!([2, "completed", [0.1, 1, "fixed"]]),
            json!([3, "completed", [0.01, 2, "fixed"]]),
            json!([4, "completed", [0.1, 2, "fixed"]]),
        ]
    );
    for (n, child) in children.iter().enumerate() {
        assert_eq!(
            child["metadata"]["uid"],
            format!("{}-{}", uid(&parent), n + 1)
        );
        assert!(child["spec"].get("hyperparams").is_none(), "{child:#}");
    }
    // Best: iteration 2 (lr 0.1, depth 1); its results and artifacts are the parent's.
    assert_eq!(
        parent["status"]["results"],
        json!({"best_iteration": 2, "accuracy": 0.99, "loss": 0.1})
    );
    let artifacts = parent["status"]["artifacts"].as_array().unwrap();
    let model = artifacts.iter().find(|a| a["key"] == "model").unwrap();
    let model_text = std::fs::read_to_string(model["target_path"].as_str().unwrap()).unwrap();
    assert_eq!(model_text, "model lr=0.1 depth=1");
    // The summary table, in MLRun's column order, and the same as a CSV artifact.
    assert_eq!(
        parent["status"]["iterations"],
        json!([
            [
                "state",
                "iter",
                "param.note",
                "param.lr",
                "param.depth",
                "output.accuracy",
                "output.loss"
            ],
            ["completed", 1, "fixed", 0.01, 1, 0.9, 0.01],
            ["completed", 2, "fixed", 0.1, 1, 0.99, 0.1],
            ["completed", 3, "fixed", 0.01, 2, 0.89, 0.02],
            ["completed", 4, "fixed", 0.1, 2, 0.98, 0.2],
        ])
    );
    let table = artifacts
        .iter()
        .find(|a| a["key"] == "iteration_results")
        .unwrap();
    let csv = std::fs::read_to_string(table["target_path"].as_str().unwrap()).unwrap();
    assert_eq!(
        csv,
        "state,iter,param.note,param.lr,param.depth,output.accuracy,output.loss\n\
         completed,1,fixed,0.01,1,0.9,0.01\ncompleted,2,fixed,0.1,1,0.99,0.1\n\
         completed,3,fixed,0.01,2,0.89,0.02\ncompleted,4,fixed,0.1,2,0.98,0.2\n"
    );
    // Each iteration has its own log.
    let log = p.baton(&["runs", "logs", uid(&children[0])]).ok();
    assert!(!log.contains("Traceback"), "{log}");
}

#[test]
fn list_zips_the_values_and_min_selects_the_lowest() {
    let p = project();
    let options = r#"{"strategy": "list", "selector": "min.loss"}"#;
    let (code, parent) = run(
        &p,
        &[
            "-x",
            "lr=[0.3, 0.1, 0.2]",
            "-x",
            "depth=[1, 3, 1]",
            "--hyper-param-options",
            options,
        ],
    );
    assert_eq!(code, 0, "{parent:#}");
    assert_eq!(
        summary(&iterations(&p, uid(&parent)), &["lr", "depth"]),
        [
            json!([1, "completed", [0.3, 1]]),
            json!([2, "completed", [0.1, 3]]),
            json!([3, "completed", [0.2, 1]]),
        ]
    );
    assert_eq!(parent["status"]["results"]["best_iteration"], 3);
    assert_eq!(parent["status"]["results"]["loss"], 0.2);
}

#[test]
fn random_draws_max_iterations_parameter_sets_from_the_lists() {
    let p = project();
    let (code, parent) = run(
        &p,
        &[
            "-x",
            "lr=[0.01, 0.1, 0.2]",
            "-x",
            "depth=[1, 2]",
            "--hyper-param-strategy",
            "random",
            "--hyper-param-options",
            r#"{"max_iterations": 5}"#,
        ],
    );
    assert_eq!(code, 0, "{parent:#}");
    let children = iterations(&p, uid(&parent));
    assert_eq!(children.len(), 5);
    for child in &children {
        let params = &child["spec"]["parameters"];
        assert!(
            [0.01, 0.1, 0.2].contains(&params["lr"].as_f64().unwrap()),
            "{params}"
        );
        assert!(
            [1, 2].contains(&params["depth"].as_i64().unwrap()),
            "{params}"
        );
    }
    // Without a selector no iteration is the best: the parent has no results (MLRun's rule).
    assert_eq!(parent["status"]["results"], json!({}));
    assert_eq!(parent["status"]["iterations"].as_array().unwrap().len(), 6);
}

#[test]
fn a_stop_condition_ends_the_run_after_the_first_iteration_that_meets_it() {
    let p = project();
    let options = r#"{"stop_condition": "accuracy >= 0.95 and loss < 1"}"#;
    let (code, parent) = run(
        &p,
        &[
            "-x",
            "lr=[0.01, 0.1, 0.2, 0.3]",
            "--selector",
            "accuracy",
            "--hyper-param-options",
            options,
        ],
    );
    assert_eq!(code, 0, "{parent:#}");
    let children = iterations(&p, uid(&parent));
    assert_eq!(
        summary(&children, &["lr"]),
        [
            json!([1, "completed", [0.01]]),
            json!([2, "completed", [0.1]])
        ]
    );
    assert_eq!(parent["status"]["results"]["best_iteration"], 2);
    let log = p.baton(&["runs", "logs", uid(&parent)]).ok();
    assert!(
        log.contains("the stop condition `accuracy >= 0.95 and loss < 1` held on iteration 2"),
        "{log}"
    );
}

#[test]
fn a_stop_condition_that_cannot_be_evaluated_fails_the_run_naming_it() {
    let p = project();
    let (code, parent) = run(
        &p,
        &[
            "-x",
            "lr=[0.01, 0.1]",
            "--hyper-param-options",
            r#"{"stop_condition": "f1 > 0.5"}"#,
        ],
    );
    assert_eq!(code, 1, "{parent:#}");
    assert_eq!(parent["status"]["state"], "error");
    assert_eq!(
        parent["status"]["error"],
        "the stop condition `f1 > 0.5` could not be evaluated on iteration 1: NameError: name 'f1' is not defined"
    );
    assert_eq!(iterations(&p, uid(&parent)).len(), 1);
}

#[test]
fn a_failing_iteration_within_max_errors_lets_the_others_run_and_fails_the_parent() {
    let p = project();
    let (code, parent) = run(
        &p,
        &[
            "-x",
            "lr=[0.01, 0.5, 0.1, 0.2]",
            "--selector",
            "max.accuracy",
            "--hyper-param-options",
            r#"{"max_errors": 1}"#,
        ],
    );
    assert_eq!(code, 1, "{parent:#}");
    let children = iterations(&p, uid(&parent));
    assert_eq!(
        summary(&children, &["lr"]),
        [
            json!([1, "completed", [0.01]]),
            json!([2, "error", [0.5]]),
            json!([3, "completed", [0.1]]),
            json!([4, "completed", [0.2]]),
        ]
    );
    assert_eq!(children[1]["status"]["error"], "ValueError: lr too big");
    // MLRun: any failed iteration fails the parent, which still names the best one.
    assert_eq!(parent["status"]["state"], "error");
    let error = parent["status"]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "1 of 4 iterations failed; iteration 2 (run `{}-2`): ValueError: lr too big",
            uid(&parent)
        )),
        "{error}"
    );
    assert_eq!(parent["status"]["results"]["best_iteration"], 3);
    assert_eq!(parent["status"]["iterations"][2][0], "error");
}

#[test]
fn more_failures_than_max_errors_stop_new_iterations() {
    let p = project();
    let (code, parent) = run(
        &p,
        &[
            "-x",
            "lr=[0.5, 0.5, 0.1, 0.2]",
            "--hyper-param-options",
            r#"{"max_errors": 1}"#,
        ],
    );
    assert_eq!(code, 1, "{parent:#}");
    assert_eq!(
        summary(&iterations(&p, uid(&parent)), &["lr"]),
        [json!([1, "error", [0.5]]), json!([2, "error", [0.5]])]
    );
    let log = p.baton(&["runs", "logs", uid(&parent)]).ok();
    assert!(
        log.contains("no more iterations: 2 iterations failed"),
        "{log}"
    );
}

/// Concurrency without a timing assumption: no iteration can finish before all three started.
#[test]
fn parallel_runs_overlap_their_iterations() {
    let p = project();
    let dir = p.path().join("barrier");
    std::fs::create_dir(&dir).unwrap();
    let folder = format!("folder={}", dir.display());
    let (code, parent) = run(
        &p,
        &[
            "--handler",
            "barrier",
            "-p",
            &folder,
            "-p",
            "parties=3",
            "-x",
            "name=[\"a\", \"b\", \"c\"]",
            "--hyper-param-options",
            r#"{"parallel_runs": 3}"#,
        ],
    );
    assert_eq!(code, 0, "{parent:#}");
    let spans: Vec<_> = iterations(&p, uid(&parent))
        .iter()
        .map(|r| {
            let time =
                |k: &str| DateTime::parse_from_rfc3339(r["status"][k].as_str().unwrap()).unwrap();
            (time("start_time"), time("end_time"))
        })
        .collect();
    assert_eq!(spans.len(), 3);
    let last_start = spans.iter().map(|s| s.0).max().unwrap();
    let first_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(last_start < first_end, "all three ran at once: {spans:?}");
}

#[test]
fn bad_hyper_parameter_input_is_refused_at_submit_naming_the_field() {
    let p = project();
    let cases: [(&[&str], &str); 5] = [
        (
            &["-x", "lr=0.1"],
            "Hyperparameter `lr` is `0.1`, not a list of values",
        ),
        (
            &["-x", "lr=[1]", "--hyper-param-strategy", "bayes"],
            "Illegal hyper-parameter strategy `bayes`; use one of: grid, list, random",
        ),
        (
            &[
                "-x",
                "lr=[1]",
                "--hyper-param-options",
                r#"{"max_iterations": 3}"#,
            ],
            "`max_iterations` is only valid with strategy `random`",
        ),
        (
            &["-x", "lr=[1]", "--selector", "best.accuracy"],
            "Illegal iteration selector `best.accuracy`",
        ),
        (
            &[
                "-x",
                "lr=[1, 2]",
                "-x",
                "depth=[1]",
                "--hyper-param-strategy",
                "list",
            ],
            "hyperparameter `lr` has 2 values, `depth` has 1",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["run-function", "trainer"];
        all.extend_from_slice(args);
        let stderr = p.baton(&all).fails(2);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert_eq!(
        p.baton(&["runs", "list", "--json"]).json(),
        json!([]),
        "a refused run is not recorded"
    );
}

// ---------------------------------------------------------------------------------------------
// From workflows
// ---------------------------------------------------------------------------------------------

const TUNE_WORKFLOW: &str = r#"
from kfp import dsl
import mlrun
from mlrun.model import HyperParamOptions


@dsl.pipeline(name="tune")
def kfpipeline():
    tune = mlrun.run_function(
        "trainer",
        hyperparams={"lr": [0.01, 0.1, 0.3], "depth": [1, 2]},
        hyper_param_options=HyperParamOptions(selector="max.accuracy", parallel_runs=2),
        outputs=["accuracy", "best_iteration"],
    )
    listed = mlrun.run_function(
        "trainer",
        name="listed",
        hyperparams={"lr": [0.2, 0.1]},
        hyper_param_options={"strategy": "list", "stop_condition": "accuracy > 0.9"},
        selector="min.loss",
        outputs=["loss"],
    )
    mlrun.run_function(
        "trainer",
        name="report",
        handler="echo",
        params={"x": tune.outputs["accuracy"]},
        inputs={"table": tune.outputs["iteration_results"]},
    ).after(listed)
"#;

#[test]
fn workflow_steps_run_hyperparameters_and_later_steps_read_the_best() {
    let p = project();
    p.write("tune.py", TUNE_WORKFLOW);
    p.baton(&["set-workflow", "--name", "tune", "--path", "./tune.py"])
        .ok();
    let graph = load_workflow_file(&p.path().join("tune.py"), &LoadOptions::new("tune")).unwrap();
    assert_eq!(
        serde_json::to_value(&graph.steps[0]).unwrap(),
        json!({
            "name": "trainer",
            "function": "trainer",
            "outputs": ["accuracy", "best_iteration", "iteration_results"],
            "action": "run",
            "hyperparams": {"lr": [0.01, 0.1, 0.3], "depth": [1, 2]},
            "hyper_param_options": {"selector": "max.accuracy", "parallel_runs": 2},
        })
    );
    let out = p.baton(&["run", "tune", "--json"]);
    let record: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(record["state"], "Succeeded", "{record:#}\n{}", out.stderr);
    let tune = step(&record, "trainer");
    assert_eq!(tune["outputs"]["best_iteration"], 2);
    assert_eq!(tune["outputs"]["accuracy"], 0.99);
    let listed = step(&record, "listed");
    // The list stops after its second pair (accuracy 0.99 > 0.9); min.loss picks it.
    assert_eq!(listed["outputs"]["loss"], 0.1);
    let report = step(&record, "report");
    assert_eq!(report["outputs"]["value"], 0.99);
}

#[test]
fn workflow_hyperparameters_that_are_not_known_at_load_time_are_refused() {
    let p = project();
    let cases = [
        (
            "def pipeline(top: float = 0.3):\n    funcs['trainer'].as_step(hyperparams={'lr': [0.1, top]})\n",
            "a pipeline placeholder in `hyperparams` of step `trainer` is not supported in a baton workflow",
            "hyperparameter values must be known when the workflow is loaded",
        ),
        (
            "from mlrun.model import HyperParamOptions\ndef pipeline():\n    funcs['trainer'].as_step(hyper_param_options=HyperParamOptions(selector='max.a'))\n",
            "`hyper_param_options` without `hyperparams` for step `trainer` is not supported in a baton workflow",
            "add `hyperparams={...}`",
        ),
        (
            "def pipeline():\n    funcs['trainer'].as_step(hyperparams={'lr': [1]}, hyper_param_options={'selektor': 'max.a'})\n",
            "`hyper_param_options` key `selektor` for step `trainer` is not supported in a baton workflow",
            "use the fields of HyperParamOptions",
        ),
    ];
    for (source, message, hint) in cases {
        p.write("bad.py", source);
        let err =
            load_workflow_file(&p.path().join("bad.py"), &LoadOptions::new("bad")).unwrap_err();
        assert!(err.to_string().ends_with(message), "{err}");
        assert!(
            err.hint().unwrap_or_default().contains(hint),
            "{err}: {:?}",
            err.hint()
        );
    }
    // What the tracer lets through is checked when the graph is built, naming the step.
    p.write(
        "strategy.py",
        "def pipeline():\n    funcs['trainer'].as_step(hyperparams={'lr': [1]}, hyper_param_options={'strategy': 'bayes'})\n",
    );
    p.baton(&[
        "set-workflow",
        "--name",
        "strategy",
        "--path",
        "./strategy.py",
    ])
    .ok();
    let stderr = p.baton(&["run", "strategy"]).fails(2);
    assert!(
        stderr.contains("step `trainer`: Illegal hyper-parameter strategy `bayes`; use one of: grid, list, random"),
        "{stderr}"
    );
}

/// Ctrl-C while iterations run: the parent and its running iterations are recorded `aborted`,
/// their handlers killed, and no iteration is left `running`.
#[test]
fn an_aborted_run_aborts_its_running_iterations_and_kills_their_handlers() {
    use std::os::unix::process::CommandExt;

    let p = project();
    let dir = p.path().join("pids");
    std::fs::create_dir(&dir).unwrap();
    let folder = format!("folder={}", dir.display());
    let mut child = p
        .command(&[
            "run-function",
            "trainer",
            "--handler",
            "hang",
            "-p",
            &folder,
            "-x",
            "name=[\"a\", \"b\", \"c\"]",
            "--hyper-param-options",
            r#"{"parallel_runs": 2}"#,
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let read_pid = |name: &str| {
        std::fs::read_to_string(dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|t| t.parse::<i32>().ok())
    };
    common::poll("both running iterations started", || {
        read_pid("a").is_some() && read_pid("b").is_some()
    });
    let pids = [read_pid("a").unwrap(), read_pid("b").unwrap()];
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGINT);
    }
    assert_eq!(child.wait().unwrap().code(), Some(1));
    let runs = p.baton(&["runs", "list", "--json"]).json();
    let runs = runs.as_array().unwrap();
    let states: Vec<(u64, &str)> = {
        let mut all: Vec<_> = runs
            .iter()
            .map(|r| {
                (
                    r["metadata"]["iteration"].as_u64().unwrap(),
                    r["status"]["state"].as_str().unwrap(),
                )
            })
            .collect();
        all.sort();
        all
    };
    assert_eq!(states, [(0, "aborted"), (1, "aborted"), (2, "aborted")]);
    for pid in pids {
        common::poll("the iteration's handler was killed", || !common::alive(pid));
    }
}

#[test]
fn iterations_fork_from_one_warm_worker_that_ends_with_the_run() {
    let p = project();
    let (code, parent) = run(&p, &["--handler", "train:lineage", "-x", "x=[1, 2, 3, 4]"]);
    assert_eq!(code, 0, "{parent}");
    let runs = iterations(&p, uid(&parent));
    assert_eq!(runs.len(), 4);
    let parents: std::collections::BTreeSet<u64> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["status"]["results"]["forked"], json!(true), "{r}");
            r["status"]["results"]["parent"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        parents.len(),
        1,
        "one worker forks every iteration: {parents:?}"
    );
    let worker = parents.into_iter().next().unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{worker}/cmdline")).exists()
            || !std::fs::read_to_string(format!("/proc/{worker}/cmdline"))
                .unwrap_or_default()
                .contains("baton_zygote"),
        "the worker {worker} outlived its run"
    );
}
