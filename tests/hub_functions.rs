//! `hub://` functions, resolved from a hub source the test builds in MLRun's hub layout
//! (`<hub>/functions/master/<name>/<tag>/src/function.yaml`): from `BATON_HUB` or the project's
//! `hub` setting, with the code inline (base64) or in the `spec.command` file beside it. Without
//! a source the step fails when it runs, naming the function and both settings.

mod common;

use std::path::Path;

use base64::Engine as _;
use common::{step, Run, TestProject};
use serde_json::Value;

const DESCRIBE: &str =
    "def describe(context, rows=3):\n    context.log_result('summary', 'rows=%d' % rows)\n";
const SCALE: &str = "def scale(context, x):\n    context.log_result('scaled', x * 10)\n";

/// A hub with `describe_data` (tag `latest`, code inline) and `scale` (tag `1.0.0`, code in
/// `scale.py` beside its function.yaml).
fn build_hub(root: &Path) {
    let item = |name: &str, tag: &str, yaml: String| {
        let dir = root.join(format!("functions/master/{name}/{tag}/src"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("function.yaml"), yaml).unwrap();
        dir
    };
    let code = base64::engine::general_purpose::STANDARD.encode(DESCRIBE);
    item(
        "describe_data",
        "latest",
        format!(
            "kind: job\nmetadata:\n  name: describe-data\n  tag: ''\nspec:\n  command: ''\n  \
             default_handler: describe\n  image: mlrun/mlrun\n  build:\n    functionSourceCode: {code}\n"
        ),
    );
    let dir = item(
        "scale",
        "1.0.0",
        "kind: job\nmetadata:\n  name: scale\nspec:\n  command: scale.py\n  default_handler: scale\n"
            .to_string(),
    );
    std::fs::write(dir.join("scale.py"), SCALE).unwrap();
}

const WORKFLOW: &str = r#"
import mlrun
from kfp import dsl


@dsl.pipeline(name="hub")
def pipeline(rows: int = 5):
    described = mlrun.run_function("hub://describe_data", params={"rows": rows}, outputs=["summary"])
    mlrun.run_function("hub://default/scale:1.0.0", params={"x": 4}, outputs=["scaled"]).after(described)
"#;

fn project() -> TestProject {
    let p = TestProject::new();
    p.write("hub_wf.py", WORKFLOW);
    p.baton(&["set-workflow", "--name", "main", "--path", "./hub_wf.py"])
        .ok();
    build_hub(&p.path().join("hub"));
    p
}

fn run(p: &TestProject, hub: Option<&Path>) -> (i32, Value, String) {
    let mut cmd = p.command(&["run", "main", "--json"]);
    if let Some(hub) = hub {
        cmd.env("BATON_HUB", hub);
    }
    let out = Run::from(cmd.output().unwrap());
    let record = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    (out.code, record, out.stderr)
}

#[test]
fn hub_functions_run_from_the_hub_that_baton_hub_names() {
    let p = project();
    let (code, record, stderr) = run(&p, Some(&p.path().join("hub")));
    assert_eq!(code, 0, "{record:#}\n{stderr}");
    assert_eq!(
        step(&record, "describe-data")["outputs"]["summary"],
        "rows=5"
    );
    assert_eq!(step(&record, "scale")["outputs"]["scaled"], 40);
    // The run records the function as the hub defines it, its code fetched into the project.
    let uid = step(&record, "scale")["run_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let run = p.baton(&["runs", "get", &uid, "--json"]).json();
    let function = &run["spec"]["function_snapshot"]["function"];
    assert_eq!(function["name"], "scale");
    assert_eq!(function["tag"], "1.0.0");
    assert!(function["url"]
        .as_str()
        .unwrap()
        .ends_with(".baton/hub/scale/1.0.0/scale.py"));
}

#[test]
fn the_project_hub_setting_is_a_hub_source_too() {
    let p = project();
    let file = p.path().join("project.yaml");
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    yaml["spec"]["hub"] =
        serde_yaml::Value::from(format!("file://{}", p.path().join("hub").display()));
    std::fs::write(&file, serde_yaml::to_string(&yaml).unwrap()).unwrap();
    let (code, record, stderr) = run(&p, None);
    assert_eq!(code, 0, "{record:#}\n{stderr}");
    assert_eq!(step(&record, "scale")["outputs"]["scaled"], 40);
    // run-function takes a hub function too.
    let out = p
        .command(&[
            "run-function",
            "hub://describe_data",
            "-p",
            "rows=2",
            "--json",
        ])
        .output()
        .unwrap();
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"]["results"]["summary"], "rows=2");
}

#[test]
fn without_a_hub_source_the_step_fails_naming_the_function_and_the_setting() {
    let p = project();
    let (code, record, _) = run(&p, None);
    assert_eq!(code, 1, "{record:#}");
    let error = step(&record, "describe-data")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("Function `hub://describe_data` comes from a function hub, but no hub source is configured"),
        "{error}"
    );
    assert!(
        error.contains("BATON_HUB") && error.contains("`hub:`"),
        "{error}"
    );
    assert_eq!(step(&record, "scale")["state"], "Skipped", "{record:#}");
}

#[test]
fn a_function_the_hub_lacks_is_not_found_naming_the_file() {
    let p = project();
    p.write(
        "hub_wf.py",
        "import mlrun\n\ndef pipeline():\n    mlrun.run_function('hub://nope:2.0')\n",
    );
    let (code, record, _) = run(&p, Some(&p.path().join("hub")));
    assert_eq!(code, 1, "{record:#}");
    let error = step(&record, "nope")["error"].as_str().unwrap();
    assert!(
        error.contains("Hub function `hub://nope:2.0` not found: cannot read `")
            && error.contains("/functions/master/nope/2.0/src/function.yaml"),
        "{error}"
    );
}
