//! A corpus of workflow files written the way MLRun's docs and system tests write them
//! (`tests/fixtures/mlrun_workflows/NN_*.py`). Each traces to exactly the graph beside it
//! (`NN_*.graph.json`: steps, edges, conditions, params), and each runs end to end on the local
//! engine with the small handlers of `handlers.py`, its step results checked. The deploy step of
//! `06_build_and_deploy` is swapped for a job (the local engine cannot deploy): the test runs
//! the traced graph with that one step changed, as a YAML workflow.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use baton::workflow::{load_workflow_file, LoadOptions, StepAction, TraceProject, WorkflowGraph};
use common::{step, Run, TestProject};
use serde_json::{json, Value};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlrun_workflows")
}

/// The corpus workflows, by file stem.
fn workflows() -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|s| s != "handlers")
        .collect();
    stems.sort();
    stems
}

/// The project params the corpus sees (`get_param`, `spec.params`).
fn project_params() -> serde_json::Map<String, Value> {
    json!({"label": "species", "threshold": 0.7})
        .as_object()
        .unwrap()
        .clone()
}

const DESCRIBE_HUB_CODE: &str = "def describe(context, table=None, label_column='label'):\n    \
    rows = len(table.get(encoding='utf-8').splitlines()) - 1 if table is not None else 0\n    \
    context.log_result('described_rows', rows)\n    context.log_result('label', label_column)\n";

/// A project with the corpus's functions (all running `handlers.py`), its params, and a hub
/// holding `describe`.
fn project() -> TestProject {
    let p = TestProject::new();
    p.write(
        "handlers.py",
        std::fs::read(corpus().join("handlers.py")).unwrap(),
    );
    for (name, handler) in [
        ("gen-iris", "gen_data"),
        ("trainer", "train"),
        ("evaluator", "evaluate"),
        ("echo", "echo"),
        ("func-1", "echo"),
        ("func-2", "echo"),
        ("serve-test", "serve_test"),
    ] {
        p.baton(&[
            "set-function",
            "--name",
            name,
            "--func",
            "./handlers.py",
            "--handler",
            handler,
        ])
        .ok();
    }
    let file = p.path().join("project.yaml");
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    yaml["spec"]["params"] = serde_yaml::to_value(project_params()).unwrap();
    std::fs::write(&file, serde_yaml::to_string(&yaml).unwrap()).unwrap();
    let code = base64::engine::general_purpose::STANDARD.encode(DESCRIBE_HUB_CODE);
    p.write(
        "hub/functions/master/describe/latest/src/function.yaml",
        format!(
            "kind: job\nmetadata:\n  name: describe\nspec:\n  default_handler: describe\n  \
             build:\n    functionSourceCode: {code}\n"
        ),
    );
    p
}

fn load(path: &Path) -> WorkflowGraph {
    let options = LoadOptions::new("main").with_project(TraceProject {
        name: "my-project".into(),
        params: project_params(),
    });
    load_workflow_file(path, &options)
        .unwrap_or_else(|e| panic!("{}: {e} ({:?})", path.display(), e.hint()))
}

#[test]
fn the_corpus_has_at_least_ten_workflows_with_their_graphs() {
    let stems = workflows();
    assert!(stems.len() >= 10, "{stems:?}");
    for stem in stems {
        assert!(
            corpus().join(format!("{stem}.graph.json")).is_file(),
            "{stem} has no expected graph"
        );
    }
}

#[test]
fn every_corpus_workflow_traces_to_exactly_its_graph() {
    for stem in workflows() {
        let got = load(&corpus().join(format!("{stem}.py")));
        let text = std::fs::read_to_string(corpus().join(format!("{stem}.graph.json"))).unwrap();
        let want: WorkflowGraph = serde_json::from_str(&text).unwrap();
        assert_eq!(
            got,
            want,
            "{stem}: traced\n{}",
            serde_json::to_string_pretty(&got).unwrap()
        );
    }
}

/// Runs workflow file `file` (in the project folder) as `name` with `args`; returns the record.
fn run(p: &TestProject, name: &str, file: &str, args: &[&str]) -> Value {
    p.baton(&["set-workflow", "--name", name, "--path", file])
        .ok();
    let mut all = vec!["run", name, "--json"];
    all.extend_from_slice(args);
    let out = Run::from(
        p.command(&all)
            .env("BATON_HUB", p.path().join("hub"))
            .output()
            .unwrap(),
    );
    let record: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    assert_eq!(out.code, 0, "{name}: {record:#}\n{}", out.stderr);
    assert_eq!(record["state"], "Succeeded", "{name}: {record:#}");
    record
}

/// Asserts each (step, state, outputs) of `record`; `outputs` lists only the keys checked.
#[track_caller]
fn expect(name: &str, record: &Value, steps: &[(&str, &str, Value)]) {
    let all = record["steps"].as_array().unwrap();
    assert_eq!(all.len(), steps.len(), "{name}: {record:#}");
    for (step_name, state, outputs) in steps {
        let got = step(record, step_name);
        assert_eq!(got["state"], *state, "{name}/{step_name}: {got:#}");
        for (key, value) in outputs.as_object().unwrap() {
            assert_eq!(
                got["outputs"][key], *value,
                "{name}/{step_name}/{key}: {got:#}"
            );
        }
    }
}

/// The graph of `06_build_and_deploy` with its deploy step run as the job `serve-test`.
fn swap_deploy_for_a_job(graph: &mut WorkflowGraph) {
    for step in graph.steps.iter_mut() {
        if step.action == StepAction::Deploy {
            step.action = StepAction::Run;
            step.function = "serve-test".into();
        }
    }
}

#[test]
fn every_corpus_workflow_runs_on_the_local_engine_with_its_results() {
    let p = project();
    let ok = "Succeeded";
    let skipped = "Skipped";
    for stem in workflows() {
        let name = stem.replace('_', "-");
        let file = format!("./{stem}.py");
        p.write(
            &format!("{stem}.py"),
            std::fs::read(corpus().join(format!("{stem}.py"))).unwrap(),
        );
        let record = if stem == "06_build_and_deploy" {
            let mut graph = load(&p.path().join(&file));
            swap_deploy_for_a_job(&mut graph);
            p.write("06_swapped.yaml", serde_yaml::to_string(&graph).unwrap());
            run(&p, &name, "./06_swapped.yaml", &[])
        } else if stem == "05_condition_group_after" {
            run(&p, &name, &file, &["-a", "build=1"])
        } else {
            run(&p, &name, &file, &[])
        };
        match stem.as_str() {
            "01_docs_kfpipeline" => expect(
                &stem,
                &record,
                &[
                    ("get-data", ok, json!({"rows": 6})),
                    ("train", ok, json!({"accuracy": 0.99})),
                    (
                        "test",
                        ok,
                        json!({"passed": true, "model_text": "model lr=0.1 depth=1"}),
                    ),
                ],
            ),
            "02_run_function_chain" => expect(
                &stem,
                &record,
                &[
                    ("gen-iris", ok, json!({"rows": 3})),
                    ("trainer", ok, json!({"accuracy": 0.98, "rows_seen": 3})),
                    ("evaluator", ok, json!({"passed": true})),
                ],
            ),
            "03_pipeline_context" => expect(
                &stem,
                &record,
                &[
                    (
                        "echo",
                        ok,
                        json!({"x": "store://artifacts/my-project/data", "y": "species"}),
                    ),
                    ("echo-default", ok, json!({"x": "fallback"})),
                ],
            ),
            "04_conditions" => expect(
                &stem,
                &record,
                &[
                    ("trainer", ok, json!({"accuracy": 0.99})),
                    ("good", ok, json!({"x": "deploy"})),
                    ("great", ok, json!({"x": "celebrate"})),
                    ("bad", skipped, json!({})),
                ],
            ),
            // The group ran (build=1), and the step ordered after it ran after both its steps
            // (checked below).
            "05_condition_group_after" => {
                expect(
                    &stem,
                    &record,
                    &[
                        (
                            "build-trainer",
                            ok,
                            json!({"image": ".mlrun/func-my-project-trainer:latest"}),
                        ),
                        ("announce", ok, json!({"x": "built"})),
                        ("trainer", ok, json!({"accuracy": 0.89})),
                    ],
                );
                let time = |step_name: &str, key: &str| {
                    chrono::DateTime::parse_from_rfc3339(
                        step(&record, step_name)[key].as_str().unwrap(),
                    )
                    .unwrap()
                };
                for before in ["build-trainer", "announce"] {
                    assert!(
                        time("trainer", "started") >= time(before, "finished"),
                        "{record:#}"
                    );
                }
            }
            "06_build_and_deploy" => expect(
                &stem,
                &record,
                &[
                    (
                        "build-gen-iris",
                        ok,
                        json!({"image": ".mlrun/func-my-project-gen-iris:latest"}),
                    ),
                    ("gen-iris", ok, json!({"rows": 2})),
                    ("trainer", ok, json!({"rows_seen": 2})),
                    (
                        "deploy-serving",
                        ok,
                        json!({"endpoint": "http://serving.local/iris"}),
                    ),
                    (
                        "test-endpoint",
                        ok,
                        json!({"endpoint": "http://serving.local/iris"}),
                    ),
                ],
            ),
            "07_hyperparams" => expect(
                &stem,
                &record,
                &[
                    ("tune", ok, json!({"best_iteration": 2, "accuracy": 0.99})),
                    ("sweep", ok, json!({"best_iteration": 2, "accuracy": 0.99})),
                    ("evaluator", ok, json!({"passed": true})),
                ],
            ),
            "08_function_objects" => expect(
                &stem,
                &record,
                &[
                    ("func-1", ok, json!({"mode": "objects", "x": 1})),
                    ("func-2", ok, json!({"x": "objects", "mode": null})),
                ],
            ),
            "09_hub" => expect(
                &stem,
                &record,
                &[
                    ("gen-iris", ok, json!({"rows": 5})),
                    (
                        "describe",
                        ok,
                        json!({"described_rows": 5, "label": "label"}),
                    ),
                ],
            ),
            "10_fan_out_in" => expect(
                &stem,
                &record,
                &[
                    ("left", ok, json!({"x": 1})),
                    ("right", ok, json!({"x": "two"})),
                    ("join", ok, json!({"x": 1, "y": "two"})),
                ],
            ),
            "11_current_project" => expect(
                &stem,
                &record,
                &[
                    ("gen-iris", ok, json!({"rows": 2})),
                    ("echo", ok, json!({"x": "my-project-x", "y": 0.7})),
                ],
            ),
            other => panic!("no expected results for corpus workflow `{other}`"),
        }
    }
}
