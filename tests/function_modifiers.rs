//! Function objects in a pipeline: MLRun's modifiers called on a function inside the workflow
//! (`set_env`, `set_envs`, `with_requests`, `with_limits`, `with_node_selection`,
//! `apply(<mount helper>)`) become step-level overrides, recorded on the step and on its run's
//! function snapshot. The local engine sets the variables and warns once about the rest; the KFP
//! compiler's side is checked in `tests/kfp_compile.rs` (golden `modifiers`) and its unit tests.

mod common;

use baton::workflow::{load_workflow_file, LoadOptions};
use common::{step, TestProject};
use serde_json::{json, Value};

const PROBE: &str = include_str!("fixtures/modifiers/probe.py");
const WORKFLOW: &str = include_str!("fixtures/modifiers/workflow.py");

/// A project with functions `probe` and `other` (both run `probe.py`) and the workflow.
fn project() -> TestProject {
    let p = TestProject::new();
    p.write("probe.py", PROBE);
    p.write("workflow.py", WORKFLOW);
    for name in ["probe", "other"] {
        p.baton(&[
            "set-function",
            "--name",
            name,
            "--func",
            "./probe.py",
            "--handler",
            "probe",
        ])
        .ok();
    }
    p.baton(&["set-workflow", "--name", "main", "--path", "./workflow.py"])
        .ok();
    p
}

#[test]
fn modifiers_on_a_function_object_become_overrides_of_the_steps_run_from_it() {
    let p = project();
    let graph =
        load_workflow_file(&p.path().join("workflow.py"), &LoadOptions::new("main")).unwrap();
    let steps = serde_json::to_value(&graph.steps).unwrap();
    assert_eq!(
        steps,
        json!([
            {"name": "before", "function": "probe", "outputs": ["mode"], "action": "run"},
            {
                "name": "tuned",
                "function": "probe",
                "outputs": ["mode", "level"],
                "after": ["before"],
                "action": "run",
                "overrides": {
                    "env": {"LEVEL": "3", "MODE": "fast"},
                    "requests": {"cpu": "1", "memory": "1G"},
                    "limits": {"memory": "2G"},
                    "mounts": [{"helper": "mount_pvc", "pvc_name": "data", "volume_mount_path": "/data"}],
                },
            },
            {"name": "other", "function": "other", "after": ["tuned"], "action": "run"},
        ])
    );
}

#[test]
fn the_local_engine_sets_the_variables_and_warns_once_about_the_rest() {
    let p = project();
    let out = p.baton(&["run", "main", "--json"]);
    let record: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(record["state"], "Succeeded", "{record:#}\n{}", out.stderr);
    assert_eq!(step(&record, "before")["outputs"]["mode"], Value::Null);
    assert_eq!(step(&record, "tuned")["outputs"]["mode"], "fast");
    assert_eq!(step(&record, "tuned")["outputs"]["level"], "3");
    assert_eq!(step(&record, "other")["outputs"]["mode"], Value::Null);
    let warning = "the local engine cannot enforce what these steps ask of their functions, so \
                   they run without it: `tuned` (resource requests, resource limits, volume mounts)";
    assert_eq!(out.stderr.matches(warning).count(), 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("cannot enforce").count(),
        1,
        "{}",
        out.stderr
    );
    // The overrides are on the step run's function snapshot, not in the project.
    let uid = step(&record, "tuned")["run_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let run = p.baton(&["runs", "get", &uid, "--json"]).json();
    assert_eq!(
        run["spec"]["function_snapshot"]["overrides"]["env"],
        json!({"LEVEL": "3", "MODE": "fast"})
    );
    let project_yaml = std::fs::read_to_string(p.path().join("project.yaml")).unwrap();
    assert!(!project_yaml.contains("MODE"), "{project_yaml}");
}

#[test]
fn modifiers_baton_cannot_honour_are_refused_naming_the_construct_and_the_hint() {
    let p = project();
    let cases = [
        (
            "fn.with_priority_class('high')",
            "`.with_priority_class` on function `probe` is not supported in a baton workflow",
            "baton knows these modifiers: with_requests, with_limits, set_env",
        ),
        (
            "fn.apply(lambda f: f)",
            "on function `probe` is not supported in a baton workflow",
            "baton knows MLRun's mount helpers: auto_mount, mount_configmap, mount_pvc",
        ),
        (
            "fn.set_env('TOKEN', value_from={'secretKeyRef': {}})",
            "`set_env('TOKEN', value_from=...)` on function `probe` is not supported in a baton workflow",
            "set a plain value",
        ),
        (
            "fn.with_node_selection(tolerations=[])",
            "`with_node_selection(tolerations=...)` on function `probe` is not supported in a baton workflow",
            "select nodes by labels with `node_selector={...}`",
        ),
        (
            "fn.set_env('MODE', mode)",
            "a pipeline placeholder in `set_env('MODE')` of function `probe` is not supported in a baton workflow",
            "values of function modifiers must be known when the workflow is loaded",
        ),
        (
            "fn.set_envs(file_path='.env')",
            "`set_envs(file_path=...)` on function `probe` is not supported in a baton workflow",
            "pass the variables as `env_vars={...}`",
        ),
    ];
    for (line, message, hint) in cases {
        let source = format!(
            "import mlrun\n\ndef pipeline(mode='fast'):\n    fn = mlrun.get_current_project().get_function('probe')\n    {line}\n    mlrun.run_function(fn)\n"
        );
        p.write("bad.py", &source);
        let err =
            load_workflow_file(&p.path().join("bad.py"), &LoadOptions::new("bad")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 5: "), "{line}: {text}");
        assert!(text.ends_with(message), "{line}: {text}");
        assert!(
            err.hint().unwrap_or_default().contains(hint),
            "{line}: {:?}",
            err.hint()
        );
    }
}
