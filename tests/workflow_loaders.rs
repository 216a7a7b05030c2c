//! The workflow loaders against real files: Python workflows traced by a real Python 3 process
//! (`python3` or `$BATON_PYTHON`), YAML workflows parsed into the graph form.

use std::path::{Path, PathBuf};

use baton::error::ErrorKind;
use baton::workflow::{load_workflow_file, LoadOptions, TraceProject, WorkflowGraph};
use baton::Error;
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/workflows")
        .join(name)
}

fn graph(value: serde_json::Value) -> WorkflowGraph {
    serde_json::from_value(value).expect("expected graph is well formed")
}

fn load(path: &Path) -> WorkflowGraph {
    load_workflow_file(path, &LoadOptions::new("main"))
        .unwrap_or_else(|e| panic!("loading {}: {e} ({:?})", path.display(), e.hint()))
}

/// Writes `source` as `name` into a fresh folder; the folder lives as long as the returned guard.
fn write_workflow(name: &str, source: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, source).unwrap();
    (dir, path)
}

/// The InvalidArgument message (and hint) of loading `source` as a Python workflow.
fn python_error(source: &str) -> (String, PathBuf, Option<String>) {
    let (_dir, path) = write_workflow("wf.py", source);
    let err = load_workflow_file(&path, &LoadOptions::new("main"))
        .expect_err("the workflow should not load");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    (err.to_string(), path, err.hint().map(str::to_string))
}

/// Asserts the error of `source` is "workflow `<path>` line <line>: <message>".
fn assert_python_error(source: &str, line: u32, message: &str) {
    let (got, path, _) = python_error(source);
    assert_eq!(
        got,
        format!("workflow `{}` line {line}: {message}", path.display())
    );
}

#[test]
fn mlrun_workflow_becomes_the_whole_graph() {
    let expected = graph(json!({
        "name": "main",
        "params": [
            {"name": "source_url"},
            {"name": "rows_min", "default": 10, "type": "int"},
            {"name": "mode", "default": "fast", "type": "str"},
            {"name": "opt", "default": null},
        ],
        "steps": [
            {"name": "ingest", "function": "ingest", "params": {"url": "{{args.source_url}}"},
             "outputs": ["dataset", "rows"]},
            {"name": "prep", "function": "prep", "handler": "prep:main",
             "params": {"label": "run-{{args.mode}}-{{steps.ingest.outputs.rows}}",
                        "mode": "{{args.mode}}", "n": 3},
             "inputs": {"table": "{{steps.ingest.outputs.dataset}}"},
             "outputs": ["clean"]},
            {"name": "train", "function": "train",
             "params": {"data": "{{steps.prep.outputs.clean}}"},
             "when": "{{steps.ingest.outputs.rows}} > {{args.rows_min}}"},
            {"name": "train-2", "function": "train", "params": {"x": "a{{args.source_url}}"},
             "after": ["train"],
             "when": "{{steps.ingest.outputs.rows}} > {{args.rows_min}} and {{args.mode}} == \"fast\""},
            {"name": "build-serving", "function": "serving", "action": "build", "outputs": ["image"]},
            {"name": "deploy-serving", "function": "serving", "action": "deploy", "outputs": ["endpoint"],
             "after": ["build-serving", "train"], "retries": {"limit": 2, "backoff": "5s"}},
        ],
    }));
    let got = load(&fixture("mlrun_full.py"));
    assert_eq!(got, expected);
    // A None default is a default (optional parameter), not a missing one (required).
    assert_eq!(got.params[0].default, None);
    assert_eq!(got.params[3].default, Some(serde_json::Value::Null));
}

#[test]
fn pipeline_is_the_fallback_handler() {
    let got = load(&fixture("pipeline_only.py"));
    assert_eq!(
        got,
        graph(json!({"name": "main", "steps": [{"name": "only", "function": "only"}]}))
    );
}

#[test]
fn kfpipeline_wins_over_pipeline() {
    let got = load(&fixture("two_handlers.py"));
    assert_eq!(
        got,
        graph(json!({
            "name": "main",
            "params": [{"name": "p", "default": 1, "type": "int"}],
            "steps": [{"name": "from-kfpipeline", "function": "from-kfpipeline",
                       "params": {"p": "{{args.p}}"}}],
        }))
    );
}

#[test]
fn explicit_handler_is_called() {
    let opts = LoadOptions::new("nightly-run").with_handler("nightly");
    let got = load_workflow_file(&fixture("two_handlers.py"), &opts).unwrap();
    assert_eq!(
        got,
        graph(json!({
            "name": "nightly-run",
            "params": [{"name": "day", "default": "mon", "type": "str"}],
            "steps": [{"name": "report", "function": "report", "params": {"day": "{{args.day}}"}}],
        }))
    );
}

#[test]
fn explicit_handler_that_does_not_exist_is_an_error() {
    let path = fixture("two_handlers.py");
    let err =
        load_workflow_file(&path, &LoadOptions::new("main").with_handler("weekly")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        format!(
            "workflow `{}`: 'workflow_handler' `weekly` is not defined in the workflow .py file",
            path.display()
        )
    );
}

#[test]
fn missing_handler_is_mlruns_error() {
    let path = fixture("no_handler.py");
    let err = load_workflow_file(&path, &LoadOptions::new("main")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        format!(
            "workflow `{}`: 'workflow_handler' is not defined. Either provide it as set_workflow \
             argument, or include a function named 'kfpipeline' or 'pipeline' in your workflow \
             .py file",
            path.display()
        )
    );
}

#[test]
fn repeated_step_names_get_kfp_suffixes() {
    let (_dir, path) = write_workflow(
        "wf.py",
        r#"
def kfpipeline():
    a = this_project.run_function("train")
    this_project.run_function("train")
    this_project.run_function("other", name="train-2")
    funcs["train"].as_step(outputs=["m"]).after(a)
"#,
    );
    let got = load(&path);
    let names: Vec<&str> = got.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["train", "train-2", "train-2-2", "train-3"]);
    assert_eq!(got.steps[3].after, ["train"]);
    assert_eq!(got.steps[3].outputs, ["m"]);
}

#[test]
fn required_and_defaulted_pipeline_parameters() {
    let (_dir, path) = write_workflow(
        "wf.py",
        r#"
import mlrun
def pipeline(model_name, epochs=5, ratio=0.5, tags=["a", "b"], *args, **kwargs):
    mlrun.run_function("train", params={"model": model_name, "epochs": epochs, "cfg": {"r": ratio, "tags": tags}})
"#,
    );
    assert_eq!(
        load(&path),
        graph(json!({
            "name": "main",
            "params": [
                {"name": "model_name"},
                {"name": "epochs", "default": 5, "type": "int"},
                {"name": "ratio", "default": 0.5, "type": "float"},
                {"name": "tags", "default": ["a", "b"], "type": "list"},
            ],
            "steps": [{"name": "train", "function": "train", "params": {
                "model": "{{args.model_name}}", "epochs": "{{args.epochs}}",
                "cfg": {"r": "{{args.ratio}}", "tags": "{{args.tags}}"}}}],
        }))
    );
}

#[test]
fn conditions_quote_strings_and_accept_literals_on_either_side() {
    let (_dir, path) = write_workflow(
        "wf.py",
        r#"
from kfp import dsl
import kfp
def kfpipeline(env="dev"):
    check = funcs["check"].as_step(outputs=["ok"])
    with kfp.dsl.Condition(check.outputs["ok"] == True, name="ok"):
        with dsl.Condition("prod" != env):
            funcs["ship"].as_step()
    funcs["after-all"].as_step()
"#,
    );
    let got = load(&path);
    assert_eq!(
        got.steps[1].when.as_deref(),
        Some("{{steps.check.outputs.ok}} == true and {{args.env}} != \"prod\"")
    );
    assert_eq!(
        got.steps[2].when, None,
        "a step after the `with` block is unconditional"
    );
}

#[test]
fn user_output_on_stdout_does_not_disturb_the_result() {
    let (_dir, path) = write_workflow(
        "wf.py",
        r#"
import sys
print('{"graph": "not this"}')
def pipeline():
    print("hello")
    sys.stdout.write("{")
    this_project.run_function("a")
"#,
    );
    assert_eq!(
        load(&path),
        graph(json!({"name": "main", "steps": [{"name": "a", "function": "a"}]}))
    );
}

#[test]
fn unsupported_constructs_name_the_construct_and_line() {
    let cases: &[(&str, u32, &str)] = &[
        (
            "from kfp import dsl\ndef pipeline():\n    with dsl.ParallelFor([1, 2]):\n        pass\n",
            3,
            "`kfp.dsl.ParallelFor` is not supported in a baton workflow",
        ),
        (
            "import mlrun\n\ndef pipeline():\n    s = mlrun.run_function('a')\n    mlrun.get_dataitem('x')\n",
            5,
            "`mlrun.get_dataitem` is not supported in a baton workflow",
        ),
        (
            "from kfp import dsl\ndef pipeline():\n    e = mlrun_exit = funcs['cleanup'].as_step()\n    with dsl.ExitHandler(e):\n        pass\n",
            4,
            "`kfp.dsl.ExitHandler` is not supported in a baton workflow",
        ),
        (
            "from mlrun import get_dataitem\n",
            1,
            "`mlrun.get_dataitem` is not supported in a baton workflow",
        ),
        (
            "import mlrun\nfrom mlrun.platforms import auto_mount\n",
            2,
            "`import mlrun.platforms` is not supported in a baton workflow",
        ),
        (
            "import mlrun\ndef pipeline():\n    mlrun.run_function('train',\n        schedule='0 * * * *')\n",
            3,
            "`run_function(schedule=...)` is not supported in a baton workflow",
        ),
        (
            "def pipeline():\n    this_project.run_function('train', artifact_path='/tmp/x')\n",
            2,
            "`run_function(artifact_path=...)` is not supported in a baton workflow",
        ),
        (
            "def pipeline():\n    funcs['train'].as_step(paramz={'a': 1})\n",
            2,
            "`as_step(paramz=...)`: unknown argument `paramz` is not supported in a baton workflow",
        ),
        (
            "def pipeline():\n    s = funcs['train'].as_step()\n    s.apply(None)\n",
            3,
            "`.apply` on step `train` is not supported in a baton workflow",
        ),
        (
            "def pipeline():\n    s = funcs['train'].as_step()\n    funcs['b'].as_step(params={'x': s.output})\n",
            3,
            "`.output` on step `train` is not supported in a baton workflow",
        ),
        (
            "def pipeline():\n    f = funcs.get('train', None)\n",
            2,
            "`funcs.get(key, default)` is not supported in a baton workflow",
        ),
        (
            "def pipeline():\n    this_project.build_function('img', requirements=['pandas'])\n",
            2,
            "`build_function(requirements=...)` is not supported in a baton workflow",
        ),
        (
            "def pipeline():\n    this_project.set_secrets({})\n",
            2,
            "`project.set_secrets` is not supported in a baton workflow",
        ),
    ];
    for (source, line, message) in cases {
        assert_python_error(source, *line, message);
    }
}

#[test]
fn placeholder_in_python_control_flow_is_refused() {
    let cases: &[(&str, u32, &str)] = &[
        (
            "def pipeline():\n    s = funcs['check'].as_step(outputs=['rows'])\n\n    if s.outputs['rows'] > 0:\n        funcs['train'].as_step()\n",
            4,
            "using the comparison `{{steps.check.outputs.rows}} > 0` in Python control flow is not supported in a baton workflow",
        ),
        (
            "def pipeline(flag=False):\n    if flag:\n        funcs['train'].as_step()\n",
            2,
            "using pipeline placeholder `{{args.flag}}` as a Python truth value is not supported in a baton workflow",
        ),
        (
            "def pipeline(n=1):\n    funcs['train'].as_step(params={'n': n + 1})\n",
            2,
            "arithmetic on pipeline placeholder `{{args.n}}` is not supported in a baton workflow",
        ),
        (
            "from kfp import dsl\ndef pipeline(n=1):\n    with dsl.Condition(n):\n        pass\n",
            3,
            "`dsl.Condition({{args.n}})`: the condition must compare a pipeline placeholder with a value is not supported in a baton workflow",
        ),
    ];
    for (source, line, message) in cases {
        assert_python_error(source, *line, message);
    }
}

#[test]
fn refusal_swallowed_by_user_code_is_still_reported() {
    assert_python_error(
        "from kfp import dsl\ndef pipeline():\n    try:\n        dsl.ParallelFor([1])\n    except Exception:\n        pass\n    funcs['a'].as_step()\n",
        4,
        "`kfp.dsl.ParallelFor` is not supported in a baton workflow",
    );
}

#[test]
fn user_exceptions_surface_with_message_and_line() {
    assert_python_error(
        "import mlrun\n\ndef pipeline():\n    mlrun.run_function('a')\n    raise ValueError('bad config')\n",
        5,
        "workflow `pipeline` raised ValueError: bad config",
    );
    assert_python_error(
        "x = 1\nraise RuntimeError('at import')\n",
        2,
        "importing the workflow failed: RuntimeError: at import",
    );
    assert_python_error(
        "import os\nimport not_a_module_baton_knows\n",
        2,
        "importing the workflow failed: ModuleNotFoundError: No module named 'not_a_module_baton_knows'",
    );
    // `funcs` exists only inside the handler, as in MLRun.
    assert_python_error(
        "f = funcs['a']\n",
        1,
        "importing the workflow failed: NameError: name 'funcs' is not defined",
    );
}

#[test]
fn syntax_errors_surface_with_line() {
    let (message, path, hint) = python_error("import mlrun\n\ndef pipeline(:\n    pass\n");
    assert_eq!(
        message,
        format!(
            "workflow `{}` line 3: syntax error: invalid syntax",
            path.display()
        )
    );
    assert_eq!(hint.as_deref(), Some("fix the Python syntax"));
}

#[test]
fn missing_interpreter_names_baton_python() {
    let mut opts = LoadOptions::new("main");
    opts.python = PathBuf::from("/nonexistent/baton-python3");
    let err = load_workflow_file(&fixture("pipeline_only.py"), &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Runtime);
    let message = err.to_string();
    assert!(
        message.starts_with("cannot start the Python interpreter `/nonexistent/baton-python3`")
            && message.contains("`BATON_PYTHON`"),
        "{message}"
    );
}

#[test]
fn unknown_extension_lists_the_valid_ones() {
    let (_dir, path) = write_workflow("wf.json", "{}");
    let err = load_workflow_file(&path, &LoadOptions::new("main")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.hint(),
        Some("a workflow file ends in `.py`, `.yaml` or `.yml`")
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let path = fixture("does_not_exist.py");
    let err = load_workflow_file(&path, &LoadOptions::new("main")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("does_not_exist.py"), "{err}");
}

#[test]
fn yaml_workflow_loads_and_round_trips() {
    let expected = graph(json!({
        "name": "main",
        "params": [
            {"name": "source_url"},
            {"name": "rows_min", "default": 10},
            {"name": "opt", "default": null},
        ],
        "steps": [
            {"name": "ingest", "function": "ingest", "params": {"url": "{{args.source_url}}"},
             "outputs": ["dataset", "rows"]},
            {"name": "prep", "function": "prep", "handler": "prep:main",
             "params": {"label": "run-{{steps.ingest.outputs.rows}}", "n": 3,
                        "flags": ["a", "b"], "nested": {"k": 1.5}},
             "inputs": {"table": "{{steps.ingest.outputs.dataset}}"},
             "outputs": ["clean"], "after": ["ingest"]},
            {"name": "train", "function": "train",
             "params": {"data": "{{steps.prep.outputs.clean}}"},
             "when": "{{steps.ingest.outputs.rows}} > {{args.rows_min}}",
             "retries": {"limit": 2, "backoff": "5s"}, "timeout": "10m"},
            {"name": "build-serving", "function": "serving", "action": "build"},
            {"name": "deploy-serving", "function": "serving", "action": "deploy",
             "after": ["build-serving", "train"]},
        ],
    }));
    let got = load(&fixture("mlrun_full.yaml"));
    assert_eq!(got, expected);
    assert_eq!(
        got.steps[2].timeout,
        Some(std::time::Duration::from_secs(600))
    );
    assert_eq!(got.params[2].default, Some(serde_json::Value::Null));
    // Written back and read again, the graph is unchanged.
    let (_dir, path) = write_workflow("again.yaml", &serde_yaml::to_string(&got).unwrap());
    assert_eq!(load(&path), expected);
}

#[test]
fn yaml_without_name_takes_the_workflow_name() {
    let got =
        load_workflow_file(&fixture("nameless.yml"), &LoadOptions::new("registered")).unwrap();
    assert_eq!(
        got,
        graph(json!({"name": "registered", "steps": [{"name": "only", "function": "only"}]}))
    );
}

#[test]
fn yaml_unknown_field_names_the_field_and_line() {
    let (_dir, path) = write_workflow(
        "wf.yaml",
        "name: main\nsteps:\n  - name: a\n    function: f\n    retry: 3\n",
    );
    let err = load_workflow_file(&path, &LoadOptions::new("main")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("invalid workflow `{}`: ", path.display()))
            && message.contains("unknown field `retry`")
            && message.contains("line 5 column 5"),
        "{message}"
    );
    assert!(err.hint().unwrap().contains("`retries`"));
}

#[test]
fn yaml_bad_duration_says_how_to_write_one() {
    let (_dir, path) = write_workflow(
        "wf.yaml",
        "steps:\n  - name: a\n    function: f\n    timeout: ten minutes\n",
    );
    let err = load_workflow_file(&path, &LoadOptions::new("main")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let message = err.to_string();
    assert!(
        message.contains("steps[0]: invalid duration `ten minutes`")
            && message.contains("use e.g. `30s`, `10m`")
            // serde_yaml places errors raised inside a value at the start of its step.
            && message.ends_with("at line 2 column 5"),
        "{message}"
    );
}

#[test]
fn empty_yaml_is_an_error() {
    let (_dir, path) = write_workflow("wf.yaml", "\n");
    let err = load_workflow_file(&path, &LoadOptions::new("main")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("workflow `{}` is empty", path.display())
    );
}

#[test]
fn other_supported_forms_and_helper_modules() {
    let got = load(&fixture("with_helper/workflow.py"));
    assert_eq!(
        got,
        graph(json!({
            "name": "main",
            "params": [{"name": "data"}, {"name": "slow", "default": 1.5, "type": "float"}],
            "steps": [
                {"name": "prep-step", "function": "prep", "handler": "prep:main",
                 "outputs": ["out"]},
                {"name": "train", "function": "train",
                 "params": {"data": "{{steps.prep-step.outputs.out}}"}, "outputs": ["model"]},
                {"name": "evaluate", "function": "evaluate", "handler": "ev:main",
                 "params": {"m": "{{steps.train.outputs.model}}", "slow": "{{args.slow}}"},
                 "timeout": "1s 500ms"},
                {"name": "build-img", "function": "img", "action": "build", "outputs": ["image"],
                 "retries": {"limit": 1, "backoff": "90s"}},
                {"name": "deploy-api", "function": "api", "action": "deploy", "outputs": ["endpoint"],
                 "timeout": "1h 30m"},
            ],
        }))
    );
}

#[test]
fn refusal_in_a_helper_module_names_that_file() {
    let path = fixture("with_helper/workflow.py");
    let err =
        load_workflow_file(&path, &LoadOptions::new("main").with_handler("broken")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let helper = std::path::absolute(fixture("with_helper/steps_lib.py")).unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` line 10 (loading workflow `{}`): `mlrun.new_task` is not supported in a baton \
             workflow",
            helper.display(),
            path.display()
        )
    );
}

#[test]
fn refusals_carry_a_hint_when_there_is_a_standard_fix() {
    let (_, _, hint) = python_error("def pipeline(x=1):\n    if x > 2:\n        pass\n");
    assert!(hint.unwrap().contains("dsl.Condition"));
    let (_, _, hint) =
        python_error("def pipeline():\n    this_project.run_function('a', schedule='0 * * * *')\n");
    assert_eq!(
        hint.as_deref(),
        Some("schedule the whole workflow instead of one step")
    );
}

#[test]
fn unserializable_default_points_at_the_handler() {
    assert_python_error(
        "import datetime\n\ndef pipeline(day=datetime.date(2024, 1, 1)):\n    pass\n",
        3,
        "a `date` value in the default of parameter `day` is not supported in a baton workflow",
    );
}

#[test]
fn unreadable_duration_is_an_invalid_argument() {
    let (message, path, _) =
        python_error("def pipeline():\n    funcs['a'].as_step().set_timeout('soon')\n");
    assert!(
        message.starts_with(&format!(
            "workflow `{}`: the traced graph is invalid: invalid duration `soon`",
            path.display()
        )),
        "{message}"
    );
}

#[test]
fn mlrun_default_values_do_not_count_as_unsupported_arguments() {
    let (_dir, path) = write_workflow(
        "wf.py",
        "def pipeline():\n    funcs['a'].as_step(selector='', workdir='', image='', hyperparams={}, \
         watch=False, labels={'k': 'v'})\n",
    );
    assert_eq!(
        load(&path),
        graph(json!({"name": "main", "steps": [{"name": "a", "function": "a"}]}))
    );
}

#[test]
fn a_workflow_that_never_finishes_loading_is_killed_and_named() {
    let (_dir, path) = write_workflow(
        "wf.py",
        "import time\n\ndef pipeline():\n    time.sleep(600)\n",
    );
    let mut opts = LoadOptions::new("main");
    opts.timeout = std::time::Duration::from_millis(1500);
    let started = std::time::Instant::now();
    let err = load_workflow_file(&path, &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "workflow `{}` did not finish loading within 1s 500ms",
            path.display()
        )
    );
    assert!(err.hint().unwrap().contains("must not wait"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "killed, not waited out"
    );
}

#[test]
fn a_chatty_workflow_does_not_stall_the_tracer() {
    // More output than a pipe holds: the tracer's output goes to files, so it cannot block.
    let (_dir, path) = write_workflow(
        "wf.py",
        "import sys\nprint('x' * 1_000_000)\nsys.stderr.write('y' * 1_000_000)\n\ndef pipeline():\n    pass\n",
    );
    let graph = load(&path);
    assert!(graph.steps.is_empty());
}

#[test]
fn annotations_become_parameter_types() {
    let (_dir, path) = write_workflow(
        "wf.py",
        r#"
import typing
import mlrun
def pipeline(threshold: float = 0.5, n: int = 1, name: str = "x", opt: typing.Optional[int] = None, tags: list = [], plain=3):
    mlrun.run_function("train", params={"t": threshold, "n": n, "name": name, "opt": opt, "tags": tags, "plain": plain})
"#,
    );
    let params = serde_json::to_value(load(&path).params).unwrap();
    assert_eq!(
        params,
        json!([
            {"name": "threshold", "default": 0.5, "type": "float"},
            {"name": "n", "default": 1, "type": "int"},
            {"name": "name", "default": "x", "type": "str"},
            {"name": "opt", "default": null, "type": "Optional[int]"},
            {"name": "tags", "default": [], "type": "list"},
            {"name": "plain", "default": 3, "type": "int"},
        ])
    );
    let (_dir, path) = write_workflow(
        "wf.yaml",
        "params: [{name: t, type: float, default: 1}]\nsteps: [{name: a, function: f}]\n",
    );
    assert_eq!(load(&path).params[0].kind.as_deref(), Some("float"));
}

#[test]
fn an_empty_step_name_is_refused_naming_the_file() {
    let (_dir, path) = write_workflow(
        "wf.yaml",
        "steps: [{name: a, function: f}, {name: ' ', function: f}]\n",
    );
    let err = load_workflow_file(&path, &LoadOptions::new("main")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        format!("workflow `{}`: step 2 has an empty name", path.display())
    );
    assert_python_error(
        "import mlrun\ndef pipeline():\n    mlrun.run_function('f', name='')\n    mlrun.run_function('f', name=' ')\n",
        4,
        "step name ' ' is blank",
    );
}

#[test]
fn steps_run_after_condition_groups_and_their_inner_groups() {
    let when_enough = "{{steps.ingest.outputs.rows}} > {{args.min_rows}}";
    let when_deploying =
        "{{steps.ingest.outputs.rows}} > {{args.min_rows}} and {{args.deploy}} == \"yes\"";
    assert_eq!(
        load(&fixture("after_condition_group.py")),
        graph(json!({
            "name": "main",
            "params": [
                {"name": "min_rows", "default": 10, "type": "int"},
                {"name": "deploy", "default": "yes", "type": "str"},
            ],
            "steps": [
                {"name": "ingest", "function": "ingest", "outputs": ["rows"]},
                {"name": "train", "function": "train",
                 "params": {"rows": "{{steps.ingest.outputs.rows}}"}, "outputs": ["model"],
                 "when": when_enough},
                {"name": "deploy-serving", "function": "serving", "action": "deploy", "outputs": ["endpoint"],
                 "when": when_deploying},
                {"name": "test", "function": "tester",
                 "params": {"model": "{{steps.train.outputs.model}}"}, "when": when_deploying},
                // After the outer group: its own step and those of its inner group.
                {"name": "report", "function": "report",
                 "after": ["train", "deploy-serving", "test"]},
                // After the inner group only, then a plain step.
                {"name": "notify", "function": "notify",
                 "after": ["deploy-serving", "test", "ingest"]},
            ],
        }))
    );
}

#[test]
fn after_a_condition_group_with_the_decorator_forms_and_imports_kfp_offers() {
    // `import kfp.dsl`, `from kfp.dsl import ...`, decorators with and without arguments, and
    // an unannotated `bool` default compared in a group that a later step runs after.
    let (_dir, path) = write_workflow(
        "wf.py",
        r#"
import kfp.dsl
from kfp.dsl import Condition, If
from kfp import dsl
import mlrun

@kfp.dsl.pipeline(name="x", description="y")
def other():
    pass

@dsl.pipeline
def kfpipeline(flag=True):
    first = mlrun.run_function("first")
    with Condition(flag == True) as group:
        mlrun.run_function("guarded")
    with If(first.outputs["n"] != 0) as empty:
        pass
    mlrun.run_function("last").after(group, first, empty)
"#,
    );
    assert_eq!(
        load(&path),
        graph(json!({
            "name": "main",
            "params": [{"name": "flag", "default": true, "type": "bool"}],
            "steps": [
                {"name": "first", "function": "first"},
                {"name": "guarded", "function": "guarded", "when": "{{args.flag}} == true"},
                {"name": "last", "function": "last", "after": ["guarded", "first"]},
            ],
        }))
    );
}

#[test]
fn after_a_condition_group_that_is_still_open_is_refused_with_its_line() {
    assert_python_error(
        "from kfp import dsl\nimport mlrun\ndef pipeline(x=1):\n    with dsl.Condition(x > 1) as c:\n        mlrun.run_function('a').after(c)\n",
        5,
        "`.after()` on step `a` with the `dsl.Condition` group it is inside is not supported \
         in a baton workflow",
    );
    assert_python_error(
        "from kfp import dsl\nimport mlrun\ndef pipeline(x=1):\n    c = dsl.If(x > 1)\n    mlrun.run_function('a').after(c)\n",
        5,
        "`.after()` on step `a` with a `dsl.If` that was never entered is not supported in a \
         baton workflow",
    );
    let (message, _, hint) =
        python_error("import mlrun\ndef pipeline():\n    mlrun.run_function('a').after('b')\n");
    assert!(
        message.ends_with("line 3: `.after('b')` on step `a` is not supported in a baton workflow"),
        "{message}"
    );
    assert!(hint.unwrap().contains("dsl.Condition(...) as group"));
}

#[test]
fn placeholders_steps_and_outputs_render_readably_at_trace_time() {
    assert_eq!(
        load(&fixture("trace_time_python.py")),
        graph(json!({
            "name": "main",
            "params": [
                {"name": "model_name", "default": "iris", "type": "str"},
                {"name": "epochs", "default": 5, "type": "int"},
            ],
            "steps": [
                {"name": "train", "function": "train", "params": {"epochs": "{{args.epochs}}"},
                 "outputs": ["model", "accuracy"]},
                {"name": "serve", "function": "serve", "params": {
                    "model": "{{steps.train.outputs.model}}",
                    "tag": "{{args.model_name}}-v{{args.epochs}}",
                    "note": "<step train> gives {'model': '{{steps.train.outputs.model}}', \
                             'accuracy': '{{steps.train.outputs.accuracy}}'}",
                }},
            ],
        }))
    );
}

/// A workflow reads its project the ways MLRun's docs show: `pipeline_context.project` at module
/// level, `get_param` with a default, `get_artifact_uri`, `spec.params` and `name`; what the
/// project knows at trace time becomes constants in the graph.
#[test]
fn the_project_inside_a_workflow_gives_its_name_params_and_artifact_uris() {
    let (_dir, path) = write_workflow(
        "wf.py",
        r#"
import mlrun
from kfp import dsl

project = mlrun.projects.pipeline_context.project

@dsl.pipeline(name="uses-project")
def kfpipeline(rounds=2):
    this = mlrun.get_current_project()
    project.run_function("train", params={
        "label": project.get_param("label", "label"),
        "missing": project.get_param("nope", 7),
        "data": project.get_artifact_uri("data"),
        "model": this.get_artifact_uri("clf", category="model", tag="v2"),
        "lr": project.spec.params["lr"],
        "owner": this.name,
        "rounds": rounds,
    })
"#,
    );
    let options = LoadOptions::new("main").with_project(TraceProject {
        name: "demo".into(),
        params: serde_json::from_value(json!({"label": "target", "lr": 0.1})).unwrap(),
    });
    let traced = load_workflow_file(&path, &options).unwrap();
    assert_eq!(
        traced,
        graph(json!({
            "name": "main",
            "params": [{"name": "rounds", "default": 2, "type": "int"}],
            "steps": [{"name": "train", "function": "train", "params": {
                "label": "target",
                "missing": 7,
                "data": "store://artifacts/demo/data",
                "model": "store://models/demo/clf:v2",
                "lr": 0.1,
                "owner": "demo",
                "rounds": "{{args.rounds}}",
            }}],
        }))
    );
    // An unknown category is refused with the ones there are.
    let (_dir, path) = write_workflow(
        "wf.py",
        "import mlrun\ndef pipeline():\n    mlrun.get_current_project().get_artifact_uri('k', category='plot')\n",
    );
    let err = load_workflow_file(&path, &options).unwrap_err();
    assert!(err.to_string().contains("category='plot'"), "{err}");
    assert_eq!(err.hint(), Some("use one of: artifact, dataset, model"));
}
