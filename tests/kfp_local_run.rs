//! A compiled pipeline runs: `baton compile` emits the spec, and `tests/kfp/run_locally.py`
//! executes it the way KFP's driver and launcher would (tasks in dependency order, inputs
//! resolved, placeholders substituted, outputs read from the files the steps wrote, condition
//! sub-DAGs entered when their CEL trigger holds), each step a real `baton runner --kfp` that
//! records its run on a real `baton server`. So what the compiler emits and what the pod runner
//! accepts fit together, outputs and conditions included.

mod common;

use std::process::Command;

use common::server::{data_dir, TestServer};
use common::{Run, TestProject};
use serde_json::Value;

const STEPS: &str = r#"def produce(n):
    return {"count": n * 10, "label": "good" if n > 1 else "bad"}

def double(x):
    return 2 * int(x)

def describe(model, score):
    return "%s:%s" % (model, score)

def score(context, x):
    context.log_result("score", x * 10)
"#;

const FLOW: &str = "name: flow
params:
  - {name: n, type: int, default: 2}
  - {name: threshold, type: float, default: 15}
steps:
  - name: produce
    function: steps
    handler: steps:produce
    params: {n: \"{{args.n}}\"}
    outputs: [return]
  - name: twice
    function: steps
    handler: steps:double
    params: {x: \"{{args.n}}\"}
    outputs: [return]
  - name: again
    function: steps
    handler: steps:double
    params: {x: \"{{steps.twice.outputs.return}}\"}
    outputs: [return]
  - name: publish
    function: steps
    handler: steps:describe
    params: {model: \"m-{{args.n}}\", score: \"{{steps.again.outputs.return}}\"}
    outputs: [return]
    when: \"{{steps.again.outputs.return}} > {{args.threshold}}\"
";

/// Compiles `flow` in a project on `server` and runs it locally with `args`; returns the
/// driver's report.
fn compile_and_run(server: &TestServer, dir: &std::path::Path, args: &[&str]) -> Value {
    compile_and_run_flow(server, dir, FLOW, args)
}

/// Like [`compile_and_run`], for the workflow `flow`.
fn compile_and_run_flow(
    server: &TestServer,
    dir: &std::path::Path,
    flow: &str,
    args: &[&str],
) -> Value {
    let p = TestProject::new();
    p.write("steps.py", STEPS);
    p.write("flow.yaml", flow);
    let api = |args: &[&str]| {
        Run::from(
            p.command(args)
                .env("BATON_API", &server.url)
                .output()
                .unwrap(),
        )
    };
    api(&["log-code", "steps_code", "--local-path", "steps.py"]).ok();
    api(&[
        "log-code",
        "flow",
        "--local-path",
        "flow.yaml",
        "--code-type",
        "workflow",
    ])
    .ok();
    api(&[
        "set-function",
        "--name",
        "steps",
        "--func",
        "store://artifacts/my-project/steps_code",
        "--handler",
        "steps:produce",
    ])
    .ok();
    api(&[
        "set-workflow",
        "--name",
        "flow",
        "--path",
        "store://artifacts/my-project/flow",
    ])
    .ok();
    let spec = dir.join("flow.json");
    api(&["compile", "flow", "-o", spec.to_str().unwrap()]).ok();
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kfp/run_locally.py");
    let out = Run::from(
        Command::new("python3")
            .arg(driver)
            .arg(&spec)
            .arg(common::baton_bin())
            .arg(dir.join("pods"))
            .args(args)
            .env("BATON_CACHE_DIR", p.cache.path())
            .env_remove("BATON_API")
            .output()
            .unwrap(),
    )
    .ok();
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_compiled_pipeline_passes_outputs_and_takes_its_condition() {
    let (dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let report = compile_and_run(&server, dir.path(), &["n=3"]);
    let tasks = &report["tasks"];
    // Outputs are JSON text: a dict stays a dict, numbers stay numbers.
    let produced: Value =
        serde_json::from_str(tasks["produce"]["outputs"]["return"].as_str().unwrap()).unwrap();
    assert_eq!(produced, serde_json::json!({"count": 30, "label": "good"}));
    assert_eq!(tasks["twice"]["outputs"]["return"], "6");
    assert_eq!(tasks["again"]["outputs"]["return"], "12");
    // 12 > 15 is false: the condition's sub-DAG is skipped, as KFP reports it, and the
    // conditional step never ran.
    assert_eq!(tasks["condition-1"]["state"], "SKIPPED", "{report:#}");
    assert!(tasks.get("publish").is_none(), "{report:#}");

    // Every step that ran recorded its run on the server under the pipeline's job id.
    let runs = server.get("/api/v1/projects/my-project/runs?label=workflow%3Dlocal-run-0001");
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"]["state"] == "completed"));
}

#[test]
fn a_true_condition_runs_its_step_with_text_built_from_references() {
    let (dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let report = compile_and_run(&server, dir.path(), &["n=5"]);
    let tasks = &report["tasks"];
    assert_eq!(tasks["again"]["outputs"]["return"], "20");
    assert_eq!(tasks["publish"]["state"], "SUCCEEDED", "{report:#}");
    assert_eq!(tasks["publish"]["outputs"]["return"], "\"m-5:20\"");
}

/// A hyper-parameter step in a pod: the compiled command hands the runner its hyperparameters,
/// the runner runs the iterations, and the step's outputs are the best iteration's.
#[test]
fn a_compiled_hyper_parameter_step_outputs_its_best_iteration() {
    let (dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let flow = "name: flow
steps:
  - name: tune
    function: steps
    handler: steps:score
    hyperparams: {x: [1, 3, 2]}
    hyper_param_options: {selector: max.score}
    outputs: [score, best_iteration]
";
    let report = compile_and_run_flow(&server, dir.path(), flow, &[]);
    let tune = &report["tasks"]["tune"];
    assert_eq!(tune["state"], "SUCCEEDED", "{report:#}");
    assert_eq!(tune["outputs"]["best_iteration"], "2");
    assert_eq!(tune["outputs"]["score"], "30");
    let runs = server.get("/api/v1/projects/my-project/runs?label=workflow%3Dlocal-run-0001");
    let mut iterations: Vec<u64> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["iteration"].as_u64().unwrap())
        .collect();
    iterations.sort();
    assert_eq!(iterations, [0, 1, 2, 3]);
}
