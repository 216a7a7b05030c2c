//! Every construct the workflow tracer still refuses, with the hint it gives: a refusal names
//! the construct and the line, and says what to write instead. (Refusals of hyperparameters and
//! function modifiers are in `tests/hyperparams.rs` and `tests/function_modifiers.rs`; the
//! local engine's refusal of deploy steps is in `tests/workflows.rs`; the KFP compiler's in its
//! unit tests.)

use baton::error::ErrorKind;
use baton::workflow::{load_workflow_file, LoadOptions};

/// (source, line, construct as the message names it, a part of the hint).
const CASES: &[(&str, u32, &str, &str)] = &[
    (
        "from kfp import dsl\ndef pipeline():\n    with dsl.ExitHandler(None):\n        pass\n",
        3,
        "`kfp.dsl.ExitHandler`",
        "in a workflow, `kfp.dsl` offers: Condition, If, pipeline",
    ),
    (
        "from mlrun import get_dataitem\n",
        1,
        "`mlrun.get_dataitem`",
        "in a workflow, `mlrun` offers: auto_mount, build_function, deploy_function",
    ),
    (
        "from mlrun.platforms import auto_mount\n",
        1,
        "`import mlrun.platforms`",
        "a workflow can import: kfp, kfp.dsl, mlrun, mlrun.model, mlrun.projects, mlrun.runtimes, mlrun.runtimes.mounts",
    ),
    (
        "import mlrun\ndef pipeline():\n    mlrun.run_function('f', schedule='0 * * * *')\n",
        3,
        "`run_function(schedule=...)`",
        "schedule the whole workflow instead of one step",
    ),
    (
        "import mlrun\ndef pipeline():\n    mlrun.run_function('f', artifact_path='/tmp')\n",
        3,
        "`run_function(artifact_path=...)`",
        "`run_function` takes: function, handler, name, params, hyperparams, hyper_param_options, inputs, outputs, selector",
    ),
    (
        "import mlrun\ndef pipeline():\n    mlrun.run_function('f', returns=['x'])\n",
        3,
        "`run_function(returns=...)`",
        "declare output keys with `outputs=[...]`",
    ),
    (
        "import mlrun\ndef pipeline():\n    mlrun.run_function('f', retry=2)\n",
        3,
        "`run_function(retry=...)`",
        "use `step.set_retry(n)` on the returned step",
    ),
    (
        "def pipeline():\n    funcs['f'].as_step(paramz={'a': 1})\n",
        2,
        "`as_step(paramz=...)`: unknown argument `paramz`",
        "`as_step` takes: handler, name, params, hyperparams, selector, hyper_param_options, inputs, outputs",
    ),
    (
        "def pipeline():\n    s = funcs['f'].as_step()\n    s.apply(None)\n",
        3,
        "`.apply` on step `f`",
        "a step has `.outputs[\"key\"]`, `.after(...)`, `.set_retry(n)` and `.set_timeout(seconds)`",
    ),
    (
        "def pipeline():\n    funcs['f'].as_step().set_retry(2, policy='Always')\n",
        2,
        "`set_retry(policy=...)` on step `f`",
        "use `set_retry(num_retries, backoff_duration=...)`",
    ),
    (
        "def pipeline():\n    funcs.keys()\n",
        2,
        "`funcs.keys`",
        "use `funcs[\"name\"]`",
    ),
    (
        "def pipeline():\n    for f in funcs:\n        pass\n",
        2,
        "iterating over `funcs`",
        "which functions exist is checked when the workflow runs",
    ),
    (
        "def pipeline():\n    this_project.set_function('f.py')\n",
        2,
        "`project.set_function`",
        "a workflow's project has name, spec.params, get_param, get_artifact_uri, get_function",
    ),
    (
        "def pipeline():\n    this_project.spec.functions\n",
        2,
        "`project.spec.functions`",
        "a workflow reads `project.spec.params`",
    ),
    (
        "def pipeline():\n    this_project.get_function('f', sync=True)\n",
        2,
        "`project.get_function()` with arguments other than the name",
        "pass only the name",
    ),
    (
        "def pipeline(x: int = 1):\n    funcs['f'].as_step(params={'y': x + 1})\n",
        2,
        "arithmetic on pipeline placeholder `{{args.x}}`",
        "Guard the steps with `with dsl.Condition(<placeholder> <op> <value>):` instead",
    ),
    (
        "def pipeline(x: int = 1):\n    if x:\n        funcs['f'].as_step()\n",
        2,
        "using pipeline placeholder `{{args.x}}` as a Python truth value",
        "a Python `if` would pick one branch at load time",
    ),
    (
        "def pipeline(x: float = 1.0):\n    funcs['f'].as_step(params={'y': f'{x:.2f}'})\n",
        2,
        "formatting pipeline placeholder `{{args.x}}` with `:.2f`",
        "format the value in the step's handler",
    ),
    (
        "import mlrun\ndef pipeline():\n    mlrun.run_function()\n",
        3,
        "`run_function()` without a function",
        "name it: `run_function(\"name\", ...)`",
    ),
    (
        "from kfp import dsl\ndef pipeline(x: int = 1):\n    c = dsl.Condition(x > 1)\n    with c:\n        pass\n    with c:\n        pass\n",
        6,
        "entering the same `dsl.Condition` group twice",
        "open a new `with dsl.Condition(...)` block",
    ),
];

#[test]
fn each_refusal_names_the_construct_its_line_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    for (source, line, construct, hint) in CASES {
        let path = dir.path().join("wf.py");
        std::fs::write(&path, source).unwrap();
        let err = load_workflow_file(&path, &LoadOptions::new("main"))
            .expect_err("the workflow should be refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "workflow `{}` line {line}: {construct} is not supported in a baton workflow",
                path.display()
            ),
            "{source}"
        );
        let got = err.hint().unwrap_or_default();
        assert!(got.contains(hint), "{construct}: hint {got:?}");
    }
}
