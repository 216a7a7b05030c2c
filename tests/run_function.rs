//! Functions from code artifacts and the runner that pulls code at runtime: real Python
//! handlers, run for real through `baton run-function`.

mod common;

use common::{alive, poll, tar_gz_bytes, zip_bytes, TestProject};
use serde_json::{json, Value};

const MY_FUNC: &str = "def main(p1):\n    print('p1 is', p1)\n    return p1 * 2\n";
const TRAINER: &str = "import utils\n\ndef main(context, lr=0.1):\n    context.log_result('score', utils.score(lr))\n";
const UTILS: &str = "def score(lr):\n    return round(1 - lr, 3)\n";

/// A project with `my_func_code` logged from `my_func.py` and `my-func` pointing at it.
fn project_with_function() -> TestProject {
    let p = TestProject::new();
    p.write("my_func.py", MY_FUNC);
    p.log_code("my_func_code", "./my_func.py", &[]);
    // The long form, so tests can check the URI is stored exactly as given.
    p.baton(&[
        "set-function",
        "--name",
        "my_func",
        "--func",
        "store://artifacts/my-project/my_func_code",
        "--handler",
        "my_func:main",
    ])
    .ok();
    p
}

fn run_json(p: &TestProject, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["run-function"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = p.baton(&all);
    let value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    (out.code, value)
}

#[test]
fn a_single_file_artifact_runs_with_a_typed_parameter() {
    let p = project_with_function();
    let (code, run) = run_json(&p, &["my-func", "-p", "p1=5"]);
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["status"]["state"], "completed");
    assert_eq!(run["status"]["results"]["return"], 10);
    assert_eq!(run["spec"]["parameters"]["p1"], 5);
    // The run records exactly which artifact version and payload it used.
    let artifact = p.artifact("store://my-project/my_func_code");
    assert_eq!(run["status"]["code"]["uid"], artifact["metadata"]["uid"]);
    assert_eq!(run["status"]["code"]["digest"], artifact["spec"]["digest"]);
    assert_eq!(
        run["status"]["code"]["source"],
        "store://artifacts/my-project/my_func_code"
    );
    // stdout of the handler is in the run's log.
    let uid = run["metadata"]["uid"].as_str().unwrap();
    let log = p.baton(&["runs", "logs", uid]).ok();
    assert!(log.contains("p1 is 5"), "{log}");
}

#[test]
fn the_stored_uri_is_kept_as_given_in_project_yaml() {
    let p = project_with_function();
    let yaml = std::fs::read_to_string(p.path().join("project.yaml")).unwrap();
    assert!(
        yaml.contains("url: store://artifacts/my-project/my_func_code\n"),
        "{yaml}"
    );
    assert!(yaml.contains("name: my-func"), "{yaml}");
    assert!(yaml.contains("handler: my_func:main"), "{yaml}");
}

#[test]
fn parameters_are_json_typed() {
    let p = TestProject::new();
    p.write(
        "types.py",
        "def main(n, x, flag, cfg, s):\n    return {'n': type(n).__name__, 'x': type(x).__name__, 'flag': type(flag).__name__, 'cfg': cfg['a'], 's': s}\n",
    );
    p.log_code("types_code", "types.py", &[]);
    p.set_store_function("types", "types_code", "types:main");
    let (code, run) = run_json(
        &p,
        &[
            "types",
            "-p",
            "n=5",
            "-p",
            "x=0.5",
            "-p",
            "flag=true",
            "-p",
            r#"cfg={"a":1}"#,
            "-p",
            "s=hello",
        ],
    );
    assert_eq!(code, 0, "{run}");
    assert_eq!(
        run["status"]["results"]["return"],
        json!({"n": "int", "x": "float", "flag": "bool", "cfg": 1, "s": "hello"})
    );
}

#[test]
fn an_inline_body_artifact_runs_as_a_module_named_after_the_key() {
    let p = TestProject::new();
    p.baton(&[
        "log-code",
        "inline_code",
        "--body",
        "def main():\n    return 'ok'\n",
    ])
    .ok();
    p.set_store_function("inline", "inline_code", "inline_code:main");
    let (code, run) = run_json(&p, &["inline"]);
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["status"]["results"]["return"], "ok");
}

fn run_archive(name: &str, bytes: Vec<u8>) {
    let p = TestProject::new();
    p.write(name, bytes);
    p.log_code("my_pkg_code", name, &[]);
    p.set_store_function("trainer", "my_pkg_code", "trainer:main");
    let (code, run) = run_json(&p, &["trainer", "-p", "lr=0.25"]);
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["status"]["results"]["score"], 0.75);
}

#[test]
fn a_zip_archive_runs_a_module_inside_it_that_imports_a_sibling() {
    run_archive(
        "my_pkg.zip",
        zip_bytes(&[("trainer.py", TRAINER), ("utils.py", UTILS)]),
    );
}

#[test]
fn a_tar_gz_archive_runs_a_module_inside_it_that_imports_a_sibling() {
    run_archive(
        "my_pkg.tar.gz",
        tar_gz_bytes(&[("trainer.py", TRAINER), ("utils.py", UTILS)]),
    );
}

#[test]
fn the_archive_name_is_not_a_module() {
    let p = TestProject::new();
    p.write(
        "my_pkg.zip",
        zip_bytes(&[("trainer.py", TRAINER), ("utils.py", UTILS)]),
    );
    p.log_code("my_pkg_code", "my_pkg.zip", &[]);
    p.set_store_function("trainer", "my_pkg_code", "my_pkg:main");
    let (code, run) = run_json(&p, &["trainer"]);
    assert_eq!(code, 1);
    assert_eq!(run["status"]["state"], "error");
    let error = run["status"]["error"].as_str().unwrap();
    assert!(error.contains("my_pkg"), "{error}");
    assert!(
        error.contains("trainer") && error.contains("utils"),
        "lists the modules: {error}"
    );
}

#[test]
fn a_context_handler_logs_results_and_an_artifact() {
    let p = TestProject::new();
    p.write(
        "ctx.py",
        "def main(context, n=2):\n    context.log_result('double', n * 2)\n    context.log_results({'a': 1, 'b': 'x'})\n    context.log_artifact('report', body='hello report', format='txt')\n    context.logger.info('logged %s', n)\n",
    );
    p.log_code("ctx_code", "ctx.py", &[]);
    p.set_store_function("ctx", "ctx_code", "ctx:main");
    let (code, run) = run_json(&p, &["ctx", "-p", "n=4"]);
    assert_eq!(code, 0, "{run}");
    assert_eq!(
        run["status"]["results"],
        json!({"double": 8, "a": 1, "b": "x"})
    );
    let artifacts = run["status"]["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0]["key"], "report");
    let target = artifacts[0]["target_path"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(target).unwrap(), "hello report");
    assert!(
        target.starts_with(p.path().join(".baton/artifacts").to_str().unwrap()),
        "{target}"
    );
}

#[test]
fn a_handler_that_raises_ends_in_error_with_the_traceback_in_the_log() {
    let p = TestProject::new();
    p.write(
        "boom.py",
        "def main():\n    raise ValueError('bad input 42')\n",
    );
    p.log_code("boom_code", "boom.py", &[]);
    p.set_store_function("boom", "boom_code", "boom:main");
    let (code, run) = run_json(&p, &["boom"]);
    assert_eq!(code, 1);
    assert_eq!(run["status"]["state"], "error");
    assert!(run["status"]["error"]
        .as_str()
        .unwrap()
        .contains("bad input 42"));
    let log = p
        .baton(&["runs", "logs", run["metadata"]["uid"].as_str().unwrap()])
        .ok();
    assert!(
        log.contains("Traceback") && log.contains("ValueError: bad input 42"),
        "{log}"
    );
}

#[test]
fn a_missing_module_lists_the_modules_the_payload_has() {
    let p = project_with_function();
    let (code, run) = run_json(&p, &["my-func", "--handler", "nope:main", "-p", "p1=1"]);
    assert_eq!(code, 1);
    let error = run["status"]["error"].as_str().unwrap();
    assert!(
        error.contains("nope") && error.contains("my_func"),
        "{error}"
    );
}

#[test]
fn a_missing_function_is_named() {
    let p = project_with_function();
    let (code, run) = run_json(&p, &["my-func", "--handler", "my_func:train", "-p", "p1=1"]);
    assert_eq!(code, 1);
    let error = run["status"]["error"].as_str().unwrap();
    assert!(
        error.contains("train") && error.contains("my_func"),
        "{error}"
    );
}

#[test]
fn a_workflow_artifact_is_refused_as_a_function_source() {
    let p = TestProject::new();
    p.write("my_workflow.py", "def pipeline():\n    pass\n");
    p.log_code(
        "my_workflow_code",
        "my_workflow.py",
        &["--code-type", "workflow"],
    );
    let err = p
        .baton(&[
            "set-function",
            "--name",
            "bad",
            "--func",
            "store://artifacts/my-project/my_workflow_code",
            "--kind",
            "job",
            "--handler",
            "my_workflow:main",
        ])
        .fails(2);
    assert!(
        err.contains("Source `store://artifacts/my-project/my_workflow_code` resolves to artifact `my_workflow_code` with code_type='workflow'; expected 'function'"),
        "{err}"
    );
    assert!(!std::fs::read_to_string(p.path().join("project.yaml"))
        .unwrap()
        .contains("bad"));
}

#[test]
fn a_run_is_refused_at_submit_when_the_artifact_became_a_workflow() {
    let p = project_with_function();
    // A new version of the same key is typed as a workflow: the next run is refused before any
    // runner starts.
    p.write("my_func.py", "def pipeline():\n    pass\n");
    p.log_code("my_func_code", "./my_func.py", &["--code-type", "workflow"]);
    let err = p.baton(&["run-function", "my-func", "-p", "p1=1"]).fails(2);
    assert!(
        err.contains("code_type='workflow'; expected 'function'"),
        "{err}"
    );
    assert_eq!(p.baton(&["runs", "list", "--json"]).json(), json!([]));
}

#[test]
fn a_handler_without_colon_is_refused_with_the_rule() {
    let p = TestProject::new();
    p.write("my_func.py", MY_FUNC);
    p.log_code("my_func_code", "my_func.py", &[]);
    let err = p
        .baton(&[
            "set-function",
            "--name",
            "f",
            "--func",
            "store://my-project/my_func_code",
            "--handler",
            "main",
        ])
        .fails(2);
    assert!(
        err.contains("Handler `main` must have the form `module:function` (required for source `store://my-project/my_func_code`"),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("my_func:main"),
        "{err}"
    );
    let err = p
        .baton(&[
            "set-function",
            "--name",
            "f",
            "--func",
            "store://my-project/my_func_code",
        ])
        .fails(2);
    assert!(err.contains("A handler is required for source"), "{err}");
}

#[test]
fn set_function_checks_the_artifact_and_the_kind() {
    let p = TestProject::new();
    let err = p
        .baton(&[
            "set-function",
            "--name",
            "f",
            "--func",
            "store://my-project/nope",
            "--handler",
            "a:b",
        ])
        .fails(2);
    assert!(
        err.contains("Artifact `store://artifacts/my-project/nope` not found"),
        "{err}"
    );
    let err = p
        .baton(&[
            "set-function",
            "--name",
            "f",
            "--func",
            "x.py",
            "--kind",
            "spark",
        ])
        .fails(2);
    assert!(err.contains("Unsupported function kind `spark`"), "{err}");
    let err = p
        .baton(&[
            "set-function",
            "--name",
            "f",
            "--func",
            "missing.py",
            "--handler",
            "main",
        ])
        .fails(2);
    assert!(
        err.contains("Function source `missing.py` does not exist"),
        "{err}"
    );
}

#[test]
fn local_python_files_and_archives_are_sources_too() {
    let p = TestProject::new();
    p.write("src/my_func.py", MY_FUNC);
    p.write(
        "pkg.tar.gz",
        tar_gz_bytes(&[("trainer.py", TRAINER), ("utils.py", UTILS)]),
    );
    p.baton(&[
        "set-function",
        "--name",
        "plain",
        "--func",
        "src/my_func.py",
        "--handler",
        "main",
    ])
    .ok();
    p.baton(&[
        "set-function",
        "--name",
        "arch",
        "--func",
        "pkg.tar.gz",
        "--handler",
        "trainer:main",
    ])
    .ok();
    let (code, run) = run_json(&p, &["plain", "-p", "p1=21"]);
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["status"]["results"]["return"], 42);
    let (code, run) = run_json(&p, &["arch"]);
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["status"]["results"]["score"], 0.9);
}

#[test]
fn a_new_artifact_version_is_picked_up_by_the_next_run_without_a_rebuild() {
    let p = project_with_function();
    let (_, first) = run_json(&p, &["my-func", "-p", "p1=5"]);
    assert_eq!(first["status"]["results"]["return"], 10);
    p.write("my_func.py", "def main(p1):\n    return p1 * 3\n");
    p.log_code("my_func_code", "./my_func.py", &[]);
    let get = p.baton(&["functions", "get", "my-func", "--json"]).json();
    assert_eq!(
        get["build_required"], false,
        "a code-only change of a job needs no rebuild"
    );
    let (_, second) = run_json(&p, &["my-func", "-p", "p1=5"]);
    assert_eq!(second["status"]["results"]["return"], 15);
    assert_ne!(
        first["status"]["code"]["uid"],
        second["status"]["code"]["uid"]
    );
}

#[test]
fn artifact_requirements_merge_and_changes_mark_build_required() {
    let p = TestProject::new();
    p.write("my_func.py", MY_FUNC);
    p.log_code(
        "my_func_code",
        "my_func.py",
        &["--requirement", "Pandas>=2.0", "--requirement", "numpy"],
    );
    p.baton(&[
        "set-function",
        "--name",
        "f",
        "--func",
        "store://my-project/my_func_code",
        "--handler",
        "my_func:main",
        "--requirement",
        "pandas==2.1",
        "--requirement",
        "requests",
    ])
    .ok();
    let get = p.baton(&["functions", "get", "f", "--json"]).json();
    assert_eq!(
        get["effective_build"]["requirements"],
        json!(["pandas==2.1", "numpy", "requests"])
    );
    assert_eq!(get["build_required"], true, "never built");

    let out = p.baton(&["build", "f"]).ok();
    let dir = std::path::PathBuf::from(out.trim());
    assert_eq!(
        std::fs::read_to_string(dir.join("requirements.txt")).unwrap(),
        "pandas==2.1\nnumpy\nrequests\n"
    );
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("pip install --no-cache-dir -r /tmp/requirements.txt"),
        "{dockerfile}"
    );
    assert!(
        !dir.join("code").exists(),
        "a job pulls its code at start-up"
    );
    assert_eq!(
        p.baton(&["functions", "get", "f", "--json"]).json()["build_required"],
        false
    );

    // A code-only change keeps the build; a requirements change needs a rebuild, which is only
    // reported (and warned about on run), never done automatically.
    p.write("my_func.py", "def main(p1):\n    return 0\n");
    p.log_code(
        "my_func_code",
        "my_func.py",
        &["--requirement", "Pandas>=2.0", "--requirement", "numpy"],
    );
    assert_eq!(
        p.baton(&["functions", "get", "f", "--json"]).json()["build_required"],
        false
    );
    p.log_code(
        "my_func_code",
        "my_func.py",
        &["--requirement", "Pandas>=2.0", "--requirement", "scipy"],
    );
    assert_eq!(
        p.baton(&["functions", "get", "f", "--json"]).json()["build_required"],
        true
    );
    let run = p.baton(&["run-function", "f", "-p", "p1=1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: Function `f` requires a build"),
        "{}",
        run.stderr
    );
    assert_eq!(
        p.baton(&["functions", "get", "f", "--json"]).json()["build_required"],
        true
    );
}

#[test]
fn nuclio_functions_pull_at_build_time_unless_load_source_on_run() {
    let p = TestProject::new();
    p.write("my_func.py", MY_FUNC);
    p.log_code("my_func_code", "my_func.py", &[]);
    p.baton(&[
        "set-function",
        "--name",
        "rt",
        "--func",
        "store://my-project/my_func_code",
        "--kind",
        "nuclio",
        "--handler",
        "my_func:main",
    ])
    .ok();
    p.baton(&[
        "set-function",
        "--name",
        "rt-pull",
        "--func",
        "store://my-project/my_func_code",
        "--kind",
        "nuclio",
        "--handler",
        "my_func:main",
        "--load-source-on-run",
    ])
    .ok();

    let baked = p.baton(&["functions", "get", "rt", "--json"]).json();
    assert_eq!(baked["effective_build"]["load_source_on_run"], false);
    assert_eq!(baked["build_required"], true);
    let pulled = p.baton(&["functions", "get", "rt-pull", "--json"]).json();
    assert_eq!(pulled["effective_build"]["load_source_on_run"], true);
    assert_eq!(pulled["build_required"], false);

    let dir = std::path::PathBuf::from(p.baton(&["build", "rt"]).ok().trim());
    assert_eq!(
        std::fs::read_to_string(dir.join("code/my_func.py")).unwrap(),
        MY_FUNC
    );
    assert!(std::fs::read_to_string(dir.join("Dockerfile"))
        .unwrap()
        .contains("COPY code/ /home/mlrun_code/"));
    assert_eq!(
        p.baton(&["functions", "get", "rt", "--json"]).json()["build_required"],
        false
    );
    // Code baked in at build time: a code change is a build-configuration change.
    p.write("my_func.py", "def main(p1):\n    return 1\n");
    p.log_code("my_func_code", "my_func.py", &[]);
    assert_eq!(
        p.baton(&["functions", "get", "rt", "--json"]).json()["build_required"],
        true
    );
    assert_eq!(
        p.baton(&["functions", "get", "rt-pull", "--json"]).json()["build_required"],
        false
    );
}

#[test]
fn runs_are_listed_and_fetched_by_uid() {
    let p = project_with_function();
    let (_, run) = run_json(&p, &["my-func", "-p", "p1=2"]);
    let uid = run["metadata"]["uid"].as_str().unwrap();
    let got = p.baton(&["runs", "get", uid, "--json"]).json();
    assert_eq!(got, run);
    let list = p.baton(&["runs", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["metadata"]["labels"]["kind"], "job");
    let followed = p.baton(&["runs", "logs", uid, "--follow"]).ok();
    assert!(followed.contains("p1 is 2"), "{followed}");
    let err = p.baton(&["runs", "get", "nope"]).fails(2);
    assert!(
        err.contains("Run `nope` not found in project `my-project`"),
        "{err}"
    );
    let err = p.baton(&["run-function", "nope"]).fails(2);
    assert!(
        err.contains("Function `nope` does not exist in project `my-project` (functions: my-func)"),
        "{err}"
    );
}

#[test]
fn ctrl_c_aborts_the_run_kills_the_handler_and_records_it() {
    use std::os::unix::process::CommandExt;

    let p = TestProject::new();
    p.write(
        "slow.py",
        "import os, time\n\ndef main(pidfile):\n    open(pidfile, 'w').write(str(os.getpid()))\n    time.sleep(60)\n",
    );
    p.log_code("slow_code", "slow.py", &[]);
    p.set_store_function("slow", "slow_code", "slow:main");
    let pidfile = p.path().join("handler.pid");
    let param = format!("pidfile={}", pidfile.display());
    // Its own process group, like a terminal's foreground job.
    let mut child = p
        .command(&["run-function", "slow", "-p", &param, "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut handler_pid = None;
    for _ in 0..600 {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.parse::<i32>().ok())
        {
            handler_pid = Some(pid);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let handler_pid = handler_pid.expect("the handler started");
    let running = p.baton(&["runs", "list", "--json"]).json();
    assert_eq!(running[0]["status"]["state"], "running");
    assert!(running[0]["status"]["start_time"].is_string());
    assert!(
        running[0]["status"]["code"]["digest"].is_string(),
        "code resolved before the handler ran"
    );

    // Ctrl-C: SIGINT to the foreground group (the CLI and its runner).
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let uid = running[0]["metadata"]["uid"].as_str().unwrap();
    let run = p.baton(&["runs", "get", uid, "--json"]).json();
    assert_eq!(run["status"]["state"], "aborted");
    assert!(run["status"]["end_time"].is_string());
    let mut alive = true;
    for _ in 0..200 {
        alive = unsafe { libc::kill(handler_pid, 0) } == 0;
        if !alive {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(!alive, "the handler process {handler_pid} was killed");
}

/// The parent of process `pid`, from `/proc/PID/stat`.
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The `baton-run-*` scratch folders in `dir`.
fn scratch_folders(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("baton-run-"))
        })
        .collect();
    found.sort();
    found
}

/// A handler that writes its pid and its scratch folder (`<pid> <folder>`) to `pidfile`, then
/// sleeps.
const SLOW_REPORTING_SCRATCH: &str = "import os, sys, time\n\ndef main(pidfile):\n    with open(pidfile + '.tmp', 'w') as f:\n        f.write('%d %s' % (os.getpid(), os.path.dirname(sys.argv[1])))\n    os.replace(pidfile + '.tmp', pidfile)\n    time.sleep(60)\n    return 'finished'\n";

#[test]
fn killing_a_runner_kills_its_handler_and_the_next_run_cleans_its_scratch_folder() {
    let p = TestProject::new();
    let tmp = tempfile::TempDir::new().unwrap();
    p.write("slow.py", SLOW_REPORTING_SCRATCH);
    p.log_code("slow_code", "slow.py", &[]);
    p.set_store_function("slow", "slow_code", "slow:main");
    p.write("quick.py", "def main():\n    return 1\n");
    p.log_code("quick_code", "quick.py", &[]);
    p.set_store_function("quick", "quick_code", "quick:main");
    let pidfile = p.path().join("handler.pid");
    let param = format!("pidfile={}", pidfile.display());
    let child = p
        .command(&["run-function", "slow", "-p", &param, "--json"])
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    poll("the handler to start", || pidfile.exists());
    let text = std::fs::read_to_string(&pidfile).unwrap();
    let (pid, scratch) = text.split_once(' ').unwrap();
    let handler: i32 = pid.parse().unwrap();
    let scratch = std::path::PathBuf::from(scratch);
    let runner = parent_of(handler);
    assert_ne!(
        runner,
        child.id() as i32,
        "the handler runs under the runner"
    );
    unsafe {
        libc::kill(runner, libc::SIGKILL);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"]["state"], "error");
    poll("the handler of the killed runner to die", || {
        !alive(handler)
    });
    assert!(
        !scratch.join("result.json").exists(),
        "the handler never reported"
    );
    // The next run on this machine removes the folder its dead owner left.
    let (code, _) = {
        let out = p
            .command(&["run-function", "quick", "--json"])
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        (out.status.code(), out)
    };
    assert_eq!(code, Some(0));
    assert!(!scratch.exists(), "{} was left behind", scratch.display());
    assert_eq!(
        scratch_folders(tmp.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

/// The warm worker of `baton run` sweeps as the cold path does: a scratch folder whose owner is
/// gone (its lock free, a pid inside) is removed by the next run.
#[test]
fn a_workflow_run_on_warm_workers_removes_the_scratch_folder_a_dead_owner_left() {
    let p = TestProject::with_trivial_function();
    p.write(
        "wf.yaml",
        "name: wf\nsteps:\n  - name: only\n    function: triv\n",
    );
    p.log_code("wf_code", "wf.yaml", &["--code-type", "workflow"]);
    p.baton(&[
        "set-workflow",
        "--name",
        "wf",
        "--path",
        "store://artifacts/my-project/wf_code",
    ])
    .ok();
    let tmp = tempfile::TempDir::new().unwrap();
    let stale = tmp.path().join("baton-run-gone");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("owner.lock"), "4194303").unwrap();
    let out = p
        .command(&["run", "wf", "--json", "--isolation", "fork"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    common::Run::from(out).ok();
    assert!(!stale.exists(), "{} was left behind", stale.display());
}

#[test]
fn a_completed_run_leaves_no_process_of_its_handler_behind() {
    let p = TestProject::new();
    p.write(
        "spawner.py",
        "import os, subprocess, time\n\ndef main(pidfile):\n    child = subprocess.Popen(['sleep', '45'])\n    pid = os.fork()\n    if pid == 0:\n        time.sleep(45)\n        os._exit(0)\n    with open(pidfile, 'w') as f:\n        f.write('%d %d' % (child.pid, pid))\n    return 'started'\n",
    );
    p.log_code("spawner_code", "spawner.py", &[]);
    p.set_store_function("spawner", "spawner_code", "spawner:main");
    let pidfile = p.path().join("children.pid");
    let param = format!("pidfile={}", pidfile.display());
    let (code, run) = run_json(&p, &["spawner", "-p", &param]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"]["state"], "completed");
    let text = std::fs::read_to_string(&pidfile).unwrap();
    for pid in text.split_whitespace() {
        let pid: i32 = pid.parse().unwrap();
        poll("the handler's children to be killed", || !alive(pid));
    }
}

#[test]
fn the_scratch_folder_and_the_request_are_private_to_the_user() {
    let p = TestProject::new();
    p.write(
        "modes.py",
        "import os, sys\n\ndef main(secret):\n    request = sys.argv[1]\n    folder = os.stat(os.path.dirname(request)).st_mode & 0o777\n    return '%o %o' % (folder, os.stat(request).st_mode & 0o777)\n",
    );
    p.log_code("modes_code", "modes.py", &[]);
    p.set_store_function("modes", "modes_code", "modes:main");
    let (code, run) = run_json(&p, &["modes", "-p", "secret=hunter2"]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"]["results"]["return"], "700 600");
}

#[test]
fn a_recorded_run_is_executed_by_a_runner_started_outside_the_project() {
    let p = project_with_function();
    // Record the run the way `run-function` does, without starting it.
    let project = baton::project::Project::load(p.path()).unwrap();
    let db = project.open_db().unwrap();
    let request = baton::launcher::RunRequest {
        function: "my-func".into(),
        params: serde_json::Map::from_iter([("p1".to_string(), json!(21))]),
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = rt
        .block_on(baton::launcher::submit(&project, &db, request))
        .unwrap();
    let uid = run.metadata.uid.clone();
    let snapshot = &run.spec.function_snapshot.as_ref().unwrap();
    assert!(
        snapshot.pinned.is_some(),
        "the store source is pinned at submit"
    );
    drop((db, project));

    // A later edit of project.yaml must not change what this run executes.
    let yaml = std::fs::read_to_string(p.path().join("project.yaml")).unwrap();
    std::fs::write(
        p.path().join("project.yaml"),
        yaml.replace("my_func:main", "nope:main"),
    )
    .unwrap();

    let elsewhere = tempfile::TempDir::new().unwrap();
    let db_path = p.path().join(".baton/baton.db");
    common::Run::from(
        std::process::Command::new(common::baton_bin())
            .args(["runner", &uid, "--project", "my-project", "--db"])
            .arg(&db_path)
            .current_dir(elsewhere.path())
            .env("BATON_CACHE_DIR", p.cache.path())
            .output()
            .unwrap(),
    )
    .ok();
    let run = p.baton(&["runs", "get", &uid, "--json"]).json();
    assert_eq!(run["status"]["state"], "completed", "{run:#}");
    assert_eq!(run["status"]["results"]["return"], 42);
    // Nothing was written where the runner was started.
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    // The log went beside the database.
    let log = std::fs::read_to_string(p.path().join(format!(".baton/logs/{uid}.log"))).unwrap();
    assert!(log.contains("p1 is 21"), "{log}");
}

/// The `*.pyc` files under `dir`.
fn compiled_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "pyc") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_cached_module_is_compiled_once_and_a_projects_own_module_follows_dontwritebytecode() {
    let p = TestProject::with_trivial_function();
    p.write("own.py", "def main():\n    return 2\n");
    p.baton(&[
        "set-function",
        "--name",
        "own",
        "--func",
        "./own.py",
        "--handler",
        "main",
    ])
    .ok();
    for function in ["triv", "own"] {
        let mut run = p.command(&["run-function", function, "--json"]);
        run.env("PYTHONDONTWRITEBYTECODE", "1");
        common::Run::from(run.output().unwrap()).ok();
    }
    // The store:// code lives in baton's cache, which keeps its compiled code...
    let cached = compiled_files(&p.cache.path().join("code"));
    assert!(
        cached.iter().any(|f| f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("triv.")),
        "no compiled code kept for the cached module: {cached:?}"
    );
    // ... while the project's own file is left as PYTHONDONTWRITEBYTECODE asks.
    assert_eq!(compiled_files(p.path()), Vec::<std::path::PathBuf>::new());
}
