//! Values that must not change without a word, and failures a retry cannot fix, through the real
//! `baton` binary with real Python handlers (issue 7, items 10-13, 15 and 17).

mod common;

use common::{step, TestProject};
use serde_json::{json, Value};

const VALUES_PY: &str = r#"
def huge(context):
    context.log_result("ok", 1)
    context.log_result("n", 10**400)
    deep = []
    for _ in range(200):
        deep = [deep]
    context.log_result("deep", deep)
    context.log_result("surrogate", "a\ud800b")
    return 2


def echo(n):
    return {"echo": n, "kind": type(n).__name__, "big": 2**64 + 1, "small": -(2**63)}


def value(context, x=None):
    context.log_result("value", x)
    context.log_result("kind", type(x).__name__)
"#;

/// A project with `values.py` logged as `values_code` and function `values` pointing at it.
fn project() -> TestProject {
    let p = TestProject::new();
    p.write("values.py", VALUES_PY);
    p.log_code("values_code", "values.py", &[]);
    p.set_store_function("values", "values_code", "values:value");
    p
}

/// `baton run-function ARGS --json`: exit code, stdout and stderr.
fn run_function(p: &TestProject, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["run-function"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = p.baton(&all);
    (out.code, out.stdout, out.stderr)
}

fn parse(stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"))
}

#[test]
fn a_result_json_cannot_hold_becomes_text_and_the_other_results_are_kept() {
    let p = project();
    let (code, stdout, stderr) = run_function(&p, &["values", "--handler", "values:huge"]);
    let run = parse(&stdout, &stderr);
    assert_eq!(code, 0, "{run:#}\n{stderr}");
    assert_eq!(run["status"]["state"], "completed", "{run:#}");
    let results = &run["status"]["results"];
    assert_eq!(results["ok"], 1);
    assert_eq!(results["return"], 2);
    assert_eq!(results["n"], json!(format!("1{}", "0".repeat(400))));
    let deep = results["deep"].as_str().expect("a too deep value is text");
    assert!(deep.starts_with("[[[["), "{deep}");
    assert_eq!(results["surrogate"], "a\\ud800b");
    let uid = run["metadata"]["uid"].as_str().unwrap();
    let log = p.baton(&["runs", "logs", uid]).ok();
    assert!(log.contains("'n'") && log.contains("'deep'"), "{log}");
}

#[test]
fn big_integers_keep_every_digit_in_params_and_results() {
    let p = project();
    let digits = "123456789012345678901234567890";
    let (code, stdout, stderr) = run_function(
        &p,
        &[
            "values",
            "--handler",
            "values:echo",
            "-p",
            &format!("n={digits}"),
        ],
    );
    let run = parse(&stdout, &stderr);
    assert_eq!(code, 0, "{run:#}\n{stderr}");
    assert!(
        stderr.contains("`n`") && stderr.contains(digits),
        "no warning: {stderr}"
    );
    for shown in [
        stdout.clone(),
        p.baton(&[
            "runs",
            "get",
            run["metadata"]["uid"].as_str().unwrap(),
            "--json",
        ])
        .ok(),
    ] {
        let run: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(run["spec"]["parameters"]["n"], digits, "{shown}");
        let ret = &run["status"]["results"]["return"];
        assert_eq!(ret["echo"], digits, "{shown}");
        assert_eq!(ret["big"], "18446744073709551617", "{shown}");
        // In range: still a number, exact.
        assert_eq!(ret["small"], json!(i64::MIN), "{shown}");
        assert!(!shown.contains("e+"), "a float crept in: {shown}");
    }
    let yaml = p
        .baton(&["runs", "get", run["metadata"]["uid"].as_str().unwrap()])
        .ok();
    assert!(
        yaml.contains(digits) && yaml.contains("18446744073709551617"),
        "{yaml}"
    );
}

#[test]
fn leading_zeros_stay_text_and_a_too_deep_param_is_refused() {
    let p = project();
    let (code, stdout, stderr) = run_function(&p, &["values", "-p", "x=01234"]);
    let run = parse(&stdout, &stderr);
    assert_eq!(code, 0, "{run:#}\n{stderr}");
    assert_eq!(run["spec"]["parameters"]["x"], "01234");
    assert_eq!(run["status"]["results"]["value"], "01234");
    assert_eq!(run["status"]["results"]["kind"], "str");

    let deep = format!("x={}{}", "[".repeat(200), "]".repeat(200));
    let out = p.baton(&["run-function", "values", "-p", &deep]);
    let stderr = out.fails(2);
    assert!(
        stderr.contains("`x`") && stderr.contains("200") && stderr.contains("100"),
        "{stderr}"
    );
    assert_eq!(
        p.baton(&["runs", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

const TYPED_FLOW: &str = r#"
import mlrun
from kfp import dsl


def pipeline(threshold: float = 0.5, label="none"):
    project = mlrun.get_current_project()
    score = project.run_function(
        "values", name="score", params={"x": 0.7}, outputs=["value"]
    )
    with dsl.Condition(score.outputs["value"] > threshold):
        project.run_function("values", name="guarded", params={"x": threshold})
    project.run_function("values", name="label", params={"x": label})
"#;

/// `project()` plus workflow `main` from `flow.py` (logged as a workflow artifact).
fn project_with_workflow(file: &str, text: &str) -> TestProject {
    let p = project();
    p.write(file, text);
    p.log_code("flow_code", file, &["--code-type", "workflow"]);
    p.baton(&[
        "set-workflow",
        "--name",
        "main",
        "--path",
        "store://artifacts/my-project/flow_code",
    ])
    .ok();
    p
}

/// `baton run main ARGS --json`: exit code, the record (or `null`) and stderr.
fn run_workflow(p: &TestProject, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["run", "main"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = p.baton(&all);
    let record = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    (out.code, record, out.stderr)
}

/// The results of the run a step of `record` recorded.
fn step_results(p: &TestProject, record: &Value, name: &str) -> Value {
    let uid = step(record, name)["run_uid"].as_str().unwrap().to_owned();
    p.baton(&["runs", "get", &uid, "--json"]).json()["status"]["results"].clone()
}

#[test]
fn workflow_arguments_are_coerced_to_their_declared_types_or_refused() {
    let p = project_with_workflow("flow.py", TYPED_FLOW);

    let (code, record, stderr) = run_workflow(&p, &["-a", "threshold=abc"]);
    assert_eq!(code, 2, "{record:#}\n{stderr}");
    assert!(
        stderr.contains("`threshold`") && stderr.contains("float") && stderr.contains("abc"),
        "{stderr}"
    );

    // An int where a float is declared is the float; text where text is declared stays text.
    let (code, record, stderr) = run_workflow(&p, &["-a", "threshold=1", "-a", "label=007"]);
    assert_eq!(code, 0, "{record:#}\n{stderr}");
    assert_eq!(record["args"]["threshold"], json!(1.0));
    assert_eq!(step(&record, "guarded")["state"], "Skipped");
    assert_eq!(step_results(&p, &record, "label")["value"], "007");

    let (code, record, stderr) = run_workflow(&p, &["-a", "threshold=0.25"]);
    assert_eq!(code, 0, "{record:#}\n{stderr}");
    let guarded = step_results(&p, &record, "guarded");
    assert_eq!(
        (&guarded["value"], &guarded["kind"]),
        (&json!(0.25), &json!("float"))
    );
}

#[test]
fn an_undeclared_workflow_argument_is_refused_unless_extra_args_are_allowed() {
    let p = project_with_workflow("flow.py", TYPED_FLOW);
    let (code, record, stderr) = run_workflow(&p, &["-a", "nope=1"]);
    assert_eq!(code, 2, "{record:#}\n{stderr}");
    assert!(
        stderr.contains("`nope`") && stderr.contains("threshold, label"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-extra-args"), "{stderr}");
    assert_eq!(p.baton(&["workflows", "list", "--json"]).json(), json!([]));

    let (code, record, stderr) = run_workflow(&p, &["-a", "nope=1", "--allow-extra-args"]);
    assert_eq!(code, 0, "{record:#}\n{stderr}");
    assert!(
        stderr.to_lowercase().contains("warn") && stderr.contains("`nope`"),
        "{stderr}"
    );
    assert_eq!(record["args"]["nope"], 1);
}

const MISSING_FLOW: &str = r#"
name: main
steps:
  - name: broken
    function: values
    handler: values:no_such_function
    retries: {limit: 3, backoff: 0s}
"#;

#[test]
fn a_failure_no_retry_can_fix_is_not_retried() {
    let p = project_with_workflow("flow.yaml", MISSING_FLOW);
    let (code, record, stderr) = run_workflow(&p, &[]);
    assert_eq!(code, 1, "{record:#}\n{stderr}");
    assert_eq!(record["state"], "Failed");
    let broken = step(&record, "broken");
    assert_eq!(broken["attempts"], 1, "{record:#}");
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.contains("no_such_function") && error.contains("not retried"),
        "{error}"
    );
    let uid = broken["run_uid"].as_str().unwrap();
    let run = p.baton(&["runs", "get", uid, "--json"]).json();
    assert_eq!(run["status"]["failure_kind"], "config", "{run:#}");
}

#[test]
fn a_retry_limit_above_the_cap_is_refused_naming_the_step() {
    let p = project_with_workflow(
        "flow.yaml",
        &MISSING_FLOW.replace("limit: 3", "limit: 4294967295"),
    );
    // `graph` builds the DAG without running anything.
    let stderr = p.baton(&["graph", "main"]).fails(2);
    assert!(
        stderr.contains("`broken`") && stderr.contains("4294967295") && stderr.contains("100"),
        "{stderr}"
    );
}

#[test]
fn an_empty_step_name_is_refused_naming_the_file() {
    let p = project_with_workflow(
        "flow.yaml",
        &MISSING_FLOW.replace("name: broken", "name: ''"),
    );
    let stderr = p.baton(&["graph", "main"]).fails(2);
    assert!(
        stderr.contains("empty") && stderr.contains("flow"),
        "{stderr}"
    );

    // `name=""` is MLRun's default (the function's name); a blank one is a mistake.
    let python = TYPED_FLOW.replace(r#"name="label""#, r#"name="  ""#);
    let p = project_with_workflow("flow.py", &python);
    let stderr = p.baton(&["graph", "main"]).fails(2);
    assert!(
        stderr.contains("blank") && stderr.contains("flow") && stderr.contains("line 13"),
        "{stderr}"
    );
}
