//! The KFP compiler against golden files, the DAG it came from, and the KFP tooling itself.
//!
//! - Golden specs: each workflow of `tests/fixtures/kfp/workflows/` compiles to exactly
//!   `tests/fixtures/kfp/golden/<name>.yaml`. Regenerate them with
//!   `BATON_UPDATE_GOLDEN=1 cargo test --test kfp_compile` and review the diff.
//! - Structure: the compiled tasks and their edges are the DAG's steps and edges.
//! - KFP itself: every compiled spec (the goldens, the workflows of the other tests' fixtures and
//!   the churn example, compiled through `baton compile`) passes `tests/kfp/validate_ir.py --sdk`
//!   (strict protobuf parse + graph rules + the KFP SDK loading it); `tests/kfp/mutate.py` shows
//!   broken variants are caught; `tests/kfp/diamond_sdk.py` compares the diamond with the SDK's
//!   own compilation. These need the venv of `tests/kfp/venv.sh` (kfp 2.17.3, cached outside the
//!   clone); a failure to make it fails the tests, with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use baton::kfp::{compile, to_yaml, CompileOptions};
use baton::model::FunctionEntry;
use baton::workflow::{load_workflow_file, Dag, DagCheck, LoadOptions};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kfp_fixtures() -> PathBuf {
    repo().join("tests/fixtures/kfp")
}

/// The workflows with golden specs, by name.
fn golden_workflows() -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(kfp_fixtures().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    found.sort();
    assert!(found.len() >= 6, "golden workflows: {found:?}");
    found
}

fn load(path: &Path) -> baton::Result<Dag> {
    let graph = load_workflow_file(path, &LoadOptions::new("main"))?;
    Dag::build(graph, &DagCheck::default())
}

/// Options with a plain `job` function for every function the steps name.
fn options(dag: &Dag) -> CompileOptions {
    let mut options = CompileOptions::new("kfp-test", "baton/runner:test");
    for step in dag.steps() {
        let entry: FunctionEntry = serde_json::from_value(json!({
            "name": step.function,
            "kind": "job",
            "url": format!("store://artifacts/kfp-test/{}_code", step.function),
        }))
        .unwrap();
        options.functions.insert(step.function.clone(), entry);
    }
    options
}

fn compile_file(path: &Path) -> baton::Result<Value> {
    let dag = load(path)?;
    compile(&dag, &options(&dag))
}

#[test]
fn golden_specs_match() {
    let update = std::env::var_os("BATON_UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (name, path) in golden_workflows() {
        let yaml = to_yaml(&compile_file(&path).unwrap());
        let golden = kfp_fixtures().join("golden").join(format!("{name}.yaml"));
        if update {
            std::fs::write(&golden, &yaml).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != yaml {
            stale.push(format!(
                "{name}: {} differs from the compiled spec:\n{yaml}",
                golden.display()
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nregenerate with BATON_UPDATE_GOLDEN=1 cargo test --test kfp_compile",
        stale.join("\n")
    );
}

/// The leaf tasks of a compiled spec by display name, each with the display names of the tasks
/// it waits for (a condition task's dependencies count for the step inside it).
fn compiled_edges(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    fn leaves(spec: &Value, dag: &Value, key: &str) -> Vec<String> {
        let task = &dag["tasks"][key];
        let callee = &spec["components"][task["componentRef"]["name"].as_str().unwrap()];
        match callee.get("dag") {
            Some(inner) => inner["tasks"]
                .as_object()
                .unwrap()
                .keys()
                .flat_map(|k| leaves(spec, inner, k))
                .collect(),
            None => vec![task["taskInfo"]["name"].as_str().unwrap().to_owned()],
        }
    }
    fn walk(
        spec: &Value,
        dag: &Value,
        outer: &BTreeSet<String>,
        out: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        for (key, task) in dag["tasks"].as_object().unwrap() {
            let mut deps = outer.clone();
            for dep in task["dependentTasks"].as_array().into_iter().flatten() {
                deps.extend(leaves(spec, dag, dep.as_str().unwrap()));
            }
            let callee = &spec["components"][task["componentRef"]["name"].as_str().unwrap()];
            match callee.get("dag") {
                Some(inner) => walk(spec, inner, &deps, out),
                None => {
                    let name = task["taskInfo"]["name"].as_str().unwrap().to_owned();
                    assert!(out.insert(name, deps).is_none(), "{key} twice");
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(spec, &spec["root"]["dag"], &BTreeSet::new(), &mut out);
    out
}

fn dag_edges(dag: &Dag) -> BTreeMap<String, BTreeSet<String>> {
    (0..dag.len())
        .map(|i| {
            let deps = dag
                .predecessors(i)
                .map(|j| dag.step(j).name.clone())
                .collect();
            (dag.step(i).name.clone(), deps)
        })
        .collect()
}

#[test]
fn compiled_tasks_and_edges_are_the_dags_steps_and_edges() {
    let mut files: Vec<PathBuf> = golden_workflows().into_iter().map(|(_, p)| p).collect();
    files.extend(other_test_workflows());
    let mut checked = 0;
    for path in files {
        let Ok(dag) = load(&path) else { continue };
        let Ok(spec) = compile(&dag, &options(&dag)) else {
            continue;
        };
        assert_eq!(compiled_edges(&spec), dag_edges(&dag), "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} workflows checked");
}

/// The workflow files of the other tests' fixtures.
fn other_test_workflows() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "tests/fixtures/workflows",
        "tests/fixtures/workflows/with_helper",
        "tests/fixtures/cli_workflows",
        "tests/fixtures/mlrun_workflows",
    ] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let stem = path.file_stem().unwrap().to_string_lossy();
            // Helper modules imported by the workflows are not workflows.
            if matches!(ext, "py" | "yaml" | "yml")
                && !matches!(&*stem, "steps" | "steps_lib" | "handlers")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The interpreter of the KFP venv; panics with the reason when it cannot be made.
fn kfp_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let script = repo().join("tests/kfp/venv.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "cannot make the KFP venv with {} (needed to validate compiled specs):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Runs a script of `tests/kfp/` with the KFP venv; returns its stdout, panicking with its
/// output when it fails.
fn run_kfp_script(script: &str, args: &[&Path]) -> String {
    let out = Command::new(kfp_python())
        .arg(repo().join("tests/kfp").join(script))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Compiles the goldens' workflows and the other tests' workflows into `dir`; returns the files.
/// A workflow that does not load is skipped (some fixtures are broken on purpose); one that loads
/// must compile, unless it has a build or deploy step. What was left out is said on stderr.
#[allow(clippy::print_stderr)]
fn compile_all_into(dir: &Path) -> Vec<PathBuf> {
    let mut written = Vec::new();
    let goldens = golden_workflows().into_iter().map(|(_, p)| p);
    for path in goldens.chain(other_test_workflows()) {
        let dag = match load(&path) {
            Ok(dag) => dag,
            Err(e) => {
                eprintln!("not compiled, does not load: {}: {e}", path.display());
                continue;
            }
        };
        let spec = match compile(&dag, &options(&dag)) {
            Ok(spec) => spec,
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("which the kfp engine cannot run"),
                    "{}: {e}",
                    path.display()
                );
                eprintln!("not compiled, refused: {}: {e}", path.display());
                continue;
            }
        };
        let parent = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        let file = dir.join(format!(
            "{parent}-{}.yaml",
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&file, to_yaml(&spec)).unwrap();
        written.push(file);
    }
    written
}

/// The churn example compiled through the CLI, in a temporary project set up as
/// `examples/churn/run.sh` does.
fn compile_churn(dir: &Path) -> PathBuf {
    let work = tempfile::tempdir().unwrap();
    let example = repo().join("examples/churn");
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    copy(&example.join("src"), work.path());
    copy(&example.join("workflow.py"), work.path());
    let zip = Command::new("python3")
        .args([
            "-m",
            "zipfile",
            "-c",
            "../../trainer.zip",
            "trainer.py",
            "utils.py",
        ])
        .current_dir(work.path().join("src/trainer"))
        .status()
        .unwrap();
    assert!(zip.success());
    let out = dir.join("churn.yaml");
    let steps: Vec<Vec<String>> = [
        "init --name churn",
        "log-code prep_code --local-path src/prep.py",
        "log-code evaluate_code --local-path src/evaluate.py",
        "log-code trainer_code --local-path trainer.zip",
        "log-code churn_workflow --local-path workflow.py --code-type workflow",
        "set-function --name prep --func store://artifacts/churn/prep_code --handler prep:main",
        "set-function --name evaluate --func store://artifacts/churn/evaluate_code --handler evaluate:pick",
        "set-function --name trainer --func store://artifacts/churn/trainer_code --handler trainer:train",
        "set-workflow --name main --path store://artifacts/churn/churn_workflow",
    ]
    .iter()
    .map(|s| s.split(' ').map(str::to_owned).collect())
    .chain([vec![
        "compile".to_owned(),
        "main".to_owned(),
        "-a".to_owned(),
        "threshold=0.8".to_owned(),
        "-o".to_owned(),
        out.to_string_lossy().into_owned(),
    ]])
    .collect();
    for args in steps {
        let result = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(&args)
            .current_dir(work.path())
            .env("BATON_CACHE_DIR", work.path().join("cache"))
            .env_remove("BATON_API")
            .env_remove("MLRUN_DBPATH")
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "baton {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let spec: Value = serde_yaml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // `-a threshold=0.8` became the parameter's default; the condition reads it.
    assert_eq!(
        spec["root"]["inputDefinitions"]["parameters"]["threshold"]["defaultValue"],
        json!(0.8)
    );
    let cond = &spec["root"]["dag"]["tasks"]["condition-1"]["triggerPolicy"]["condition"];
    assert!(
        cond.as_str()
            .unwrap()
            .contains("pipelinechannel--threshold"),
        "{cond}"
    );
    out
}

#[test]
fn compiled_specs_pass_the_kfp_validator_and_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = compile_all_into(dir.path());
    assert!(files.len() >= 10, "only {} specs compiled", files.len());
    files.push(compile_churn(dir.path()));
    let args: Vec<&Path> = std::iter::once(Path::new("--sdk"))
        .chain(files.iter().map(PathBuf::as_path))
        .collect();
    let out = run_kfp_script("validate_ir.py", &args);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("OK: ")).count(),
        files.len(),
        "{out}"
    );
}

#[test]
fn the_validator_catches_broken_specs() {
    let dir = tempfile::tempdir().unwrap();
    let goldens: Vec<PathBuf> = golden_workflows()
        .into_iter()
        .map(|(name, _)| kfp_fixtures().join("golden").join(format!("{name}.yaml")))
        .collect();
    let out = run_kfp_script(
        "mutate.py",
        &goldens.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );
    assert!(!out.contains("MISSED"), "{out}");
    // And the validator's command line reports a broken file with exit 1.
    let broken = dir.path().join("broken.yaml");
    let mut spec: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&goldens[0]).unwrap()).unwrap();
    spec["schemaVersion"] = json!("2.0.0");
    std::fs::write(&broken, serde_yaml::to_string(&spec).unwrap()).unwrap();
    let status = Command::new(kfp_python())
        .arg(repo().join("tests/kfp/validate_ir.py"))
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("ERROR: schemaVersion: '2.0.0'"), "{stdout}");
}

#[test]
fn the_diamond_has_the_structure_the_kfp_sdk_compiles() {
    let golden = kfp_fixtures().join("golden/diamond.yaml");
    let out = run_kfp_script("diamond_sdk.py", &[&golden]);
    assert!(
        out.contains("same structure: 5 tasks, 2 parameters"),
        "{out}"
    );
}
