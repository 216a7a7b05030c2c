//! The runner against a real Python interpreter (`$BATON_PYTHON`, else `python3`): handlers
//! written into temporary code folders, run through the bootstrap, outcomes and logs checked.
//! Every handler test runs on both transports (`isolation::process` and `isolation::fork`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton::error::ErrorKind;
use baton::runner::{
    parse_param, ContextSettings, ForkServer, HandlerOutcome, HandlerRequest, Isolation,
    PythonRunner, RunState,
};
use serde_json::{json, Map, Value};

/// A temporary folder with `code/` (the payload), `artifacts/` and `run.log`.
struct Fixture {
    dir: tempfile::TempDir,
    /// The warm workers of the fork transport, shared by the fixture's runs.
    fork: ForkServer,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("code")).unwrap();
        Fixture {
            dir,
            fork: ForkServer::new(),
        }
    }

    fn code(&self) -> PathBuf {
        self.dir.path().join("code")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("run.log")
    }

    fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Writes `text` at `rel` inside the code folder.
    fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.code().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    fn request(&self, handler: &str) -> HandlerRequest {
        HandlerRequest {
            code_dir: self.code(),
            handler: handler.to_owned(),
            params: Map::new(),
            inputs: BTreeMap::new(),
            context: ContextSettings {
                uid: "uid-1".into(),
                name: "train".into(),
                project: "demo".into(),
                artifact_path: self.dir.path().join("artifacts"),
                labels: BTreeMap::from([("owner".to_owned(), "ana".to_owned())]),
            },
            code_source: None,
            stop_condition: None,
            env: Default::default(),
            keep_bytecode: false,
        }
    }

    /// The runner of the current test's transport, with `$BATON_PYTHON` (else `python3`).
    fn runner(&self) -> PythonRunner {
        self.with_transport(PythonRunner::from_env())
    }

    /// The runner of the current test's transport, with the interpreter `python`.
    fn runner_for(&self, python: &str) -> PythonRunner {
        self.with_transport(PythonRunner::new(python))
    }

    fn with_transport(&self, runner: PythonRunner) -> PythonRunner {
        match ISOLATION.try_with(|i| *i).unwrap_or_default() {
            Isolation::Process => runner,
            Isolation::Fork => runner.with_fork_server(self.fork.clone()),
        }
    }

    async fn run(&self, req: &HandlerRequest) -> HandlerOutcome {
        self.runner()
            .run(req, &self.log())
            .await
            .unwrap_or_else(|e| panic!("runner failed: {e}\nlog:\n{}", self.log_text()))
    }

    /// Runs `handler` with the given params.
    async fn call(&self, handler: &str, params: Value) -> HandlerOutcome {
        let mut req = self.request(handler);
        req.params = params.as_object().cloned().unwrap_or_default();
        self.run(&req).await
    }
}

fn completed(outcome: &HandlerOutcome, log: &str) {
    assert_eq!(
        outcome.state,
        RunState::Completed,
        "error: {:?}\nlog:\n{log}",
        outcome.error
    );
}

fn error_of(outcome: &HandlerOutcome) -> &str {
    assert_eq!(outcome.state, RunState::Error, "{outcome:?}");
    outcome.error.as_deref().unwrap()
}

/// Whether `pid` is gone: no such process, or a zombie waiting to be reaped (it runs no code).
#[cfg(target_os = "linux")]
/// Whether every process of `pids` is gone within 10 s.
async fn all_gone_soon(pids: &[u32]) -> bool {
    for _ in 0..500 {
        if pids.iter().all(|&p| process_gone(p)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => {
            matches!(stat.rsplit(')').next().map(str::trim_start), Some(s) if s.starts_with('Z') || s.starts_with('X'))
        }
    }
}

#[test]
fn parse_param_types_cli_values() {
    let cases: &[(&str, Value)] = &[
        ("5", json!(5)),
        ("-3", json!(-3)),
        ("18446744073709551615", json!(18446744073709551615u64)),
        ("0.5", json!(0.5)),
        ("1e3", json!(1000.0)),
        ("true", json!(true)),
        ("True", json!(true)),
        ("false", json!(false)),
        ("False", json!(false)),
        ("null", json!(null)),
        ("None", json!(null)),
        ("{\"a\": [1, 2]}", json!({"a": [1, 2]})),
        ("[1, \"x\"]", json!([1, "x"])),
        ("\"5\"", json!("5")),
        ("{not json", json!("{not json")),
        ("inf", json!("inf")),
        ("nan", json!("nan")),
        ("1.2.3", json!("1.2.3")),
        ("hello", json!("hello")),
        ("", json!("")),
        ("s3://bucket/key", json!("s3://bucket/key")),
    ];
    for (text, expected) in cases {
        assert_eq!(
            &parse_param(text).unwrap(),
            expected,
            "parse_param({text:?})"
        );
    }
}

/// Each test runs on both transports, a fresh process and a fork of a warm worker: the module
/// `NAME` holds `NAME::process` and `NAME::fork`.
macro_rules! on_both_transports {
    ($($(#[$attr:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            #[tokio::test]
            async fn process() {
                ISOLATION.scope(Isolation::Process, async $body).await
            }

            $(#[$attr])*
            #[tokio::test]
            async fn fork() {
                ISOLATION.scope(Isolation::Fork, async $body).await
            }
        }
    )*};
}

tokio::task_local! {
    /// The transport the current test runs on.
    static ISOLATION: Isolation;
}

on_both_transports! {
    async fn single_file_handler_gets_a_typed_param() {
        let fx = Fixture::new();
        fx.write(
            "my_func.py",
            "def main(x):\n    assert isinstance(x, int), type(x)\n    return x * 2\n",
        );
        let out = fx
            .call("my_func:main", json!({"x": parse_param("21").unwrap()}))
            .await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!(42));
    }

    async fn package_init_is_a_module() {
        let fx = Fixture::new();
        fx.write("pkg/__init__.py", "def main():\n    return 'from init'\n");
        let out = fx.call("pkg:main", json!({})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!("from init"));
    }

    async fn dotted_module_maps_to_sub_folders_with_relative_imports() {
        let fx = Fixture::new();
        fx.write("pkg/__init__.py", "")
            .write("pkg/helpers.py", "FACTOR = 3\n")
            .write(
                "pkg/trainer.py",
                "from .helpers import FACTOR\n\ndef main(n=2):\n    return n * FACTOR\n",
            );
        let out = fx.call("pkg.trainer:main", json!({})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!(6));
    }

    async fn a_module_imports_its_sibling_and_runs_in_the_code_folder() {
        let fx = Fixture::new();
        fx.write("utils.py", "def double(v):\n    return v * 2\n")
            .write("data.txt", "abc")
            .write(
                "trainer.py",
                "import utils\n\ndef main(v):\n    return utils.double(v) + open('data.txt').read()\n",
            );
        let out = fx.call("trainer:main", json!({"v": "x"})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!("xxabc"));
    }

    async fn a_dashed_module_name_loads_by_path() {
        let fx = Fixture::new();
        fx.write("my-code.py", "def handler():\n    return 'dashed'\n");
        let out = fx.call("my-code:handler", json!({})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!("dashed"));
    }

    async fn a_module_named_like_a_stdlib_module_the_bootstrap_uses_is_the_payloads() {
        let fx = Fixture::new();
        fx.write("json.py", "def main():\n    return 'user json'\n");
        let out = fx.call("json:main", json!({})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!("user json"));
    }

    async fn payload_files_named_like_lazily_imported_stdlib_modules_do_not_break_reporting() {
        let fx = Fixture::new();
        for name in ["traceback", "logging", "urllib", "tempfile"] {
            fx.write(
                &format!("{name}.py"),
                "raise RuntimeError('payload module imported')\n",
            );
        }
        fx.write(
            "h.py",
            "def main(context, data):\n    context.logger.info('logged %s', data.local())\n    raise ValueError('bad')\n",
        );
        let mut req = fx.request("h:main");
        req.inputs.insert("data".into(), "file:///tmp/x.csv".into());
        let out = fx.run(&req).await;
        assert_eq!(error_of(&out), "ValueError: bad");
        let log = fx.log_text();
        assert!(log.contains("logged /tmp/x.csv"), "{log}");
        assert!(log.contains("Traceback (most recent call last)"), "{log}");
        assert!(!log.contains("payload module imported"), "{log}");
    }

    async fn context_logs_results_and_artifacts() {
        let fx = Fixture::new();
        fx.write("report.txt", "local file body");
        fx.write("sub/inner.txt", "inner");
        fx.write(
            "steps.py",
            r#"
import decimal

def main(context, rate, note="n"):
    assert context.get_param("rate") == rate == 0.5
    assert context.get_param("missing", 7) == 7
    assert context.parameters == {"rate": 0.5}
    assert (context.uid, context.name, context.project) == ("uid-1", "train", "demo")
    assert context.labels == {"owner": "ana"}
    context.logger.info("logging from the handler")
    context.log_result("accuracy", 0.9)
    context.log_result("odd", decimal.Decimal("1.5"))
    context.log_results({"nested": {"a": [1, decimal.Decimal("2")]}, "flag": True})
    a = context.log_artifact("model", body=b"weights", format="bin")
    context.log_artifact("report", local_path="report.txt")
    context.log_artifact(key="tree", local_path="sub")
    assert a.target_path.endswith("model.bin")
"#,
        );
        let out = fx.call("steps:main", json!({"rate": 0.5})).await;
        let log = fx.log_text();
        completed(&out, &log);
        assert_eq!(out.results["accuracy"], json!(0.9));
        assert_eq!(out.results["odd"], json!("1.5"));
        assert_eq!(out.results["nested"], json!({"a": [1, "2"]}));
        assert_eq!(out.results["flag"], json!(true));
        assert!(!out.results.contains_key("return"));
        assert!(log.contains("logging from the handler"), "{log}");

        let artifacts = fx.dir.path().join("artifacts");
        let keys: Vec<_> = out.artifacts.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["model", "report", "tree"]);
        assert_eq!(
            fs::read_to_string(artifacts.join("tree/inner.txt")).unwrap(),
            "inner"
        );
        assert_eq!(
            Path::new(&out.artifacts[0].target_path),
            artifacts.join("model.bin")
        );
        assert_eq!(out.artifacts[0].format.as_deref(), Some("bin"));
        assert_eq!(fs::read(artifacts.join("model.bin")).unwrap(), b"weights");
        assert_eq!(
            Path::new(&out.artifacts[1].target_path),
            artifacts.join("report.txt")
        );
        assert_eq!(
            fs::read_to_string(artifacts.join("report.txt")).unwrap(),
            "local file body"
        );
    }

    async fn artifact_keys_and_formats_cannot_escape_the_artifact_path() {
        let fx = Fixture::new();
        fx.write(
            "h.py",
            "def key(context):\n    context.log_artifact('../evil', body='x')\n\ndef fmt(context):\n    context.log_artifact('k', body='x', format='/../../evil')\n",
        );
        let out = fx.call("h:key", json!({})).await;
        assert!(
            error_of(&out).contains("without path separators"),
            "{out:?}"
        );
        let out = fx.call("h:fmt", json!({})).await;
        assert!(
            error_of(&out).contains("must not contain path separators"),
            "{out:?}"
        );
        assert!(!fx.dir.path().join("evil").exists());
    }

    async fn log_results_refuses_a_list_and_keeps_earlier_results() {
        let fx = Fixture::new();
        fx.write(
            "h.py",
            "def main(context):\n    context.log_result('before', 1)\n    context.log_results([1, 2])\n",
        );
        let out = fx.call("h:main", json!({})).await;
        assert!(
            error_of(&out).contains("Results must be in the form of dict"),
            "{out:?}"
        );
        assert_eq!(out.results["before"], json!(1));
    }

    async fn truthy_returns_are_recorded_and_falsy_ones_are_not() {
        let fx = Fixture::new();
        fx.write(
            "r.py",
            "def main(v):\n    return v\n\ndef obj():\n    return object.__new__(type('Thing', (), {'__str__': lambda s: 'a thing'}))\n",
        );
        for falsy in [json!(0), json!(""), json!([]), json!(false), json!(null)] {
            let out = fx.call("r:main", json!({"v": falsy.clone()})).await;
            completed(&out, &fx.log_text());
            assert!(out.results.is_empty(), "{falsy} was recorded: {out:?}");
        }
        for truthy in [
            json!(1),
            json!("s"),
            json!([0]),
            json!({"k": 1}),
            json!(true),
        ] {
            let out = fx.call("r:main", json!({"v": truthy.clone()})).await;
            assert_eq!(out.results["return"], truthy);
        }
        let out = fx.call("r:obj", json!({})).await;
        assert_eq!(out.results["return"], json!("a thing"));
    }

    async fn async_handlers_are_awaited() {
        let fx = Fixture::new();
        fx.write(
            "a.py",
            "import asyncio\n\nasync def main(context, n):\n    await asyncio.sleep(0)\n    context.log_result('seen', n)\n    return n + 1\n",
        );
        let out = fx.call("a:main", json!({"n": 1})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["seen"], json!(1));
        assert_eq!(out.results["return"], json!(2));
    }

    async fn generator_handlers_are_refused() {
        let fx = Fixture::new();
        fx.write(
            "g.py",
            "def f():\n    yield 1\n\nasync def af():\n    yield 1\n",
        );
        let out = fx.call("g:f", json!({})).await;
        assert!(
            error_of(&out).starts_with("Handler 'f' returned a generator"),
            "{out:?}"
        );
        let out = fx.call("g:af", json!({})).await;
        assert!(
            error_of(&out).starts_with("Handler 'af' returned a generator"),
            "{out:?}"
        );
    }

    async fn a_raising_handler_is_an_error_with_its_traceback_in_the_log() {
        let fx = Fixture::new();
        fx.write(
            "boom.py",
            "def inner():\n    raise KeyError('missing-thing')\n\ndef main():\n    inner()\n",
        );
        let out = fx.call("boom:main", json!({})).await;
        assert_eq!(error_of(&out), "KeyError: 'missing-thing'");
        let log = fx.log_text();
        assert!(log.contains("Traceback (most recent call last)"), "{log}");
        assert!(log.contains("in inner"), "{log}");
    }

    async fn sys_exit_zero_completes_and_nonzero_is_an_error() {
        let fx = Fixture::new();
        fx.write(
            "h.py",
            "import sys\n\ndef main(context, code):\n    context.log_result('before', 1)\n    sys.exit(code)\n",
        );
        let out = fx.call("h:main", json!({"code": 0})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["before"], json!(1));
        let out = fx.call("h:main", json!({"code": 3})).await;
        assert_eq!(error_of(&out), "Handler called sys.exit(3)");
        assert_eq!(out.results["before"], json!(1));
    }

    async fn a_missing_module_lists_what_the_payload_contains() {
        let fx = Fixture::new();
        fx.write("zeta.py", "")
            .write("alpha.py", "")
            .write("pkg/__init__.py", "")
            .write("notes.txt", "")
            .write("empty/readme.md", "");
        let out = fx.call("trainer:main", json!({})).await;
        let err = error_of(&out);
        assert!(err.contains("Module 'trainer' not found"), "{err}");
        assert!(err.ends_with("it contains: alpha, pkg, zeta"), "{err}");
    }

    async fn a_missing_function_names_the_module_and_its_public_callables() {
        let fx = Fixture::new();
        fx.write(
            "trainer.py",
            "from pathlib import Path\n\ndef train(): pass\n\ndef _private(): pass\n\nclass Model: pass\n\nVALUE = 3\n",
        );
        let out = fx.call("trainer:main", json!({})).await;
        let err = error_of(&out);
        assert!(
            err.starts_with("Function 'main' not found in module 'trainer'"),
            "{err}"
        );
        assert!(err.ends_with("its public callables: Model, train"), "{err}");
    }

    async fn a_module_that_fails_to_import_says_so() {
        let fx = Fixture::new();
        fx.write("trainer.py", "import not_installed_anywhere_xyz\n");
        let out = fx.call("trainer:main", json!({})).await;
        let err = error_of(&out);
        assert!(err.contains("Failed to import module 'trainer'"), "{err}");
        assert!(err.contains("not_installed_anywhere_xyz"), "{err}");
    }

    async fn a_missing_required_param_is_named_and_unknown_params_are_ignored() {
        let fx = Fixture::new();
        fx.write("h.py", "def main(a, b, c=3):\n    return a + b + c\n");
        let out = fx.call("h:main", json!({"a": 1, "zz": 9})).await;
        let err = error_of(&out);
        assert!(
            err.contains("Handler 'main' needs a value for parameter 'b'"),
            "{err}"
        );
        assert!(err.contains("given: a, zz"), "{err}");

        let out = fx.call("h:main", json!({"a": 1, "b": 2, "zz": 9})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!(6));
        assert!(
            fx.log_text()
                .contains("takes no parameter named 'zz'; ignored"),
            "{}",
            fx.log_text()
        );
    }

    async fn parameters_bind_by_kind_for_plain_decorated_and_callable_handlers() {
        let fx = Fixture::new();
        fx.write(
            "h.py",
            r#"
import functools

def shapes(a, /, b, c=3, *rest, d, e=5, **more):
    return [a, b, c, list(rest), d, e, sorted(more)]

def traced(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return ["wrapped", fn(*args, **kwargs)]
    return wrapper

@traced
def decorated(x, y=2):
    return x + y

class Callable:
    def __call__(self, context, n):
        return n * 2

instance = Callable()
"#,
        );
        let out = fx
            .call("h:shapes", json!({"a": 1, "b": 2, "d": 4, "z": 9}))
            .await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!([1, 2, 3, [], 4, 5, ["z"]]));
        // Through `__wrapped__`, as inspect.signature reads it: `x` binds by name, and `zz`,
        // which the wrapper's `**kwargs` would pass on, is ignored.
        let out = fx.call("h:decorated", json!({"x": 40, "zz": 1})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!(["wrapped", 42]));
        let out = fx.call("h:instance", json!({"n": 21})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["return"], json!(42));
    }

    async fn kwargs_receive_the_remaining_params_and_inputs() {
        let fx = Fixture::new();
        let data = fx.dir.path().join("in.txt");
        fs::write(&data, "payload").unwrap();
        fx.write(
            "h.py",
            "def main(a, **kwargs):\n    return {'a': a, 'keys': sorted(kwargs), 'data': kwargs['data'].get().decode()}\n",
        );
        let mut req = fx.request("h:main");
        req.params = json!({"a": 1, "b": 2}).as_object().cloned().unwrap();
        req.inputs
            .insert("data".into(), data.to_string_lossy().into_owned());
        let out = fx.run(&req).await;
        completed(&out, &fx.log_text());
        assert_eq!(
            out.results["return"],
            json!({"a": 1, "keys": ["b", "data"], "data": "payload"})
        );
    }

    async fn inputs_bind_by_name_as_data_items() {
        let fx = Fixture::new();
        let data = fx.dir.path().join("table.csv");
        fs::write(&data, "a,b\n1,2\n").unwrap();
        fx.write(
            "h.py",
            r#"
def main(context, plain, url, as_path="default"):
    assert context.get_input("plain").url == plain.url
    return {
        "plain_local": plain.local(),
        "plain_body": plain.get().decode(),
        "url": url.url,
        "url_local": url.local(),
        "url_body": url.get(encoding="utf-8"),
        "as_path": as_path,
    }
"#,
        );
        let mut req = fx.request("h:main");
        let path = data.to_string_lossy().into_owned();
        let file_url = url::Url::from_file_path(&data).unwrap().to_string();
        req.inputs.insert("plain".into(), path.clone());
        req.inputs.insert("url".into(), file_url.clone());
        req.inputs.insert("as_path".into(), path.clone());
        let out = fx.run(&req).await;
        completed(&out, &fx.log_text());
        assert_eq!(
            out.results["return"],
            json!({
                "plain_local": path,
                "plain_body": "a,b\n1,2\n",
                "url": file_url,
                "url_local": path,
                "url_body": "a,b\n1,2\n",
                "as_path": path,
            })
        );
    }

    async fn relative_input_paths_are_taken_from_the_callers_directory() {
        let fx = Fixture::new();
        fx.write("h.py", "def main(data):\n    return data.local()\n");
        let mut req = fx.request("h:main");
        req.inputs.insert("data".into(), "some/rel.txt".into());
        let out = fx.run(&req).await;
        let expected = std::env::current_dir().unwrap().join("some/rel.txt");
        assert_eq!(out.results["return"], json!(expected.to_string_lossy()));
    }

    async fn stdout_and_stderr_both_land_in_the_log_in_order_and_are_appended() {
        let fx = Fixture::new();
        fs::write(fx.log(), "earlier line\n").unwrap();
        fx.write(
            "h.py",
            "import sys\n\ndef main():\n    print('out-1')\n    print('err-1', file=sys.stderr)\n    print('out-2')\n",
        );
        let out = fx.call("h:main", json!({})).await;
        completed(&out, &fx.log_text());
        assert_eq!(fx.log_text(), "earlier line\nout-1\nerr-1\nout-2\n");
    }

    async fn a_handler_without_colon_is_refused_before_spawning() {
        let fx = Fixture::new();
        let err = fx.runner_for("/nonexistent/python")
            .run(&fx.request("main"), &fx.log())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.hint().unwrap().contains("`my_func:main`"), "{err:?}");
        assert!(
            !fx.log().exists(),
            "the log was opened: a process was started"
        );
    }

    async fn a_missing_code_folder_is_not_found() {
        let fx = Fixture::new();
        let mut req = fx.request("h:main");
        req.code_dir = fx.dir.path().join("nope");
        let err = fx.runner()
            .run(&req, &fx.log())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("nope"), "{err}");
    }

    async fn a_process_that_dies_without_a_result_is_a_runtime_error_pointing_at_the_log() {
        let fx = Fixture::new();
        fx.write(
            "h.py",
            "import os\n\ndef main():\n    print('about to die', flush=True)\n    os._exit(7)\n",
        );
        let err = fx.runner()
            .run(&fx.request("h:main"), &fx.log())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime);
        let text = err.to_string();
        assert!(text.contains("exit status 7"), "{text}");
        assert!(text.contains(&*fx.log().to_string_lossy()), "{text}");
        assert!(fx.log_text().contains("about to die"));
    }

    async fn an_interpreter_that_cannot_start_is_a_runtime_error() {
        let fx = Fixture::new();
        fx.write("h.py", "def main(): pass\n");
        let err = fx.runner_for("/nonexistent/python3")
            .run(&fx.request("h:main"), &fx.log())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime);
        assert!(err.to_string().contains("/nonexistent/python3"), "{err}");
    }


    #[cfg(target_os = "linux")]
    async fn dropping_the_run_kills_the_handler_and_its_subprocesses() {
        let fx = Fixture::new();
        let pids = fx.dir.path().join("pids");
        fx.write(
            "sleepy.py",
            r#"
import os, subprocess, sys, time

def main(pids):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(pids + ".tmp", "w") as f:
        f.write("%d %d" % (os.getpid(), child.pid))
    os.replace(pids + ".tmp", pids)
    time.sleep(60)
"#,
        );
        let mut req = fx.request("sleepy:main");
        req.params
            .insert("pids".into(), json!(pids.to_string_lossy()));
        let runner = fx.runner();
        let log = fx.log();
        // Boxed so that `drop(run)` really drops the future (a pinned-on-stack one would live on).
        let mut run = Box::pin(runner.run(&req, &log));

        let mut written = None;
        for _ in 0..1000 {
            tokio::select! {
                out = &mut run => panic!("the handler finished early: {out:?}\n{}", fx.log_text()),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if let Ok(text) = fs::read_to_string(&pids) {
                written = Some(text);
                break;
            }
        }
        let written = written.expect("the handler never wrote its pids");
        let pids: Vec<u32> = written.split(' ').map(|p| p.parse().unwrap()).collect();
        assert!(pids.iter().all(|&p| !process_gone(p)), "not running yet");

        drop(run);

        if all_gone_soon(&pids).await {
            return;
        }
        let stats: Vec<_> = pids
            .iter()
            .map(|p| fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default())
            .collect();
        panic!("processes {pids:?} survived the dropped run: {stats:?}");
    }


    #[cfg(target_os = "linux")]
    async fn a_subprocess_a_completed_handler_leaves_behind_dies_with_the_run() {
        let fx = Fixture::new();
        let pids = fx.dir.path().join("pids");
        // Its output is not the log's pipe, so the run has its whole output and result while
        // the subprocess still lives.
        fx.write(
            "leaver.py",
            r#"
import subprocess, sys

def main(pids):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(pids, "w") as f:
        f.write(str(child.pid))
    print("left", child.pid)
"#,
        );
        let mut req = fx.request("leaver:main");
        req.params
            .insert("pids".into(), json!(pids.to_string_lossy()));
        let outcome = fx.run(&req).await;
        completed(&outcome, &fx.log_text());
        let pid: u32 = fs::read_to_string(&pids).unwrap().parse().unwrap();
        assert!(fx.log_text().contains(&format!("left {pid}")), "{}", fx.log_text());
        assert!(
            all_gone_soon(&[pid]).await,
            "subprocess {pid} outlived its completed run"
        );
    }

    async fn failures_no_retry_can_fix_are_classified_as_config() {
        use baton::model::run::FailureKind;
        let fx = Fixture::new();
        fx.write(
            "steps.py",
            "def needs(x):\n    return x\n\ndef boom():\n    raise ValueError('no')\n",
        );
        for (handler, kind) in [
            ("missing:main", FailureKind::Config),
            ("steps:absent", FailureKind::Config),
            ("steps:needs", FailureKind::Config),
            ("steps:boom", FailureKind::Handler),
        ] {
            let out = fx.call(handler, json!({})).await;
            error_of(&out);
            assert_eq!(out.failure_kind, Some(kind), "{handler}: {out:?}");
        }
        let out = fx.call("steps:needs", json!({"x": 1})).await;
        assert_eq!(out.failure_kind, None, "{out:?}");
    }

    async fn results_json_cannot_hold_exactly_become_text_with_a_warning() {
        let fx = Fixture::new();
        fx.write(
            "big.py",
            "def main(context):\n    context.log_result('ok', 2**64 - 1)\n    context.log_result('neg', -2**63)\n    context.log_result('big', 2**64)\n    return {'huge': 10**5000}\n",
        );
        let out = fx.call("big:main", json!({})).await;
        completed(&out, &fx.log_text());
        assert_eq!(out.results["ok"], json!(u64::MAX));
        assert_eq!(out.results["neg"], json!(i64::MIN));
        assert_eq!(out.results["big"], json!("18446744073709551616"));
        let huge = out.results["return"]["huge"].as_str().unwrap();
        assert!(
            huge.starts_with("1000") || huge.starts_with("<int"),
            "{huge}"
        );
        let log = fx.log_text();
        assert!(
            log.contains("result 'big'") && log.contains("64-bit"),
            "{log}"
        );
    }
}
