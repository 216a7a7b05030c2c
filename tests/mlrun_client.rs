//! The spec's snippets run by the real MLRun client (`mlrun==1.12.1`, in a virtual environment
//! that `tests/mlrun/venv.sh` creates once, outside the clone) against a real `baton server`.
//! Each Python module in `tests/mlrun/` runs in its own process (`import mlrun` reads the
//! server's client spec once per process) and starts its own server; one test here per module,
//! so a failure names the topic.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A module taking longer than this is killed (with its server) and fails.
const MODULE_TIMEOUT: Duration = Duration::from_secs(300);

/// Every Python module of the suite; `every_module_is_run` keeps this list complete.
const MODULES: &[&str] = &[
    "test_auth",
    "test_jobs",
    "test_log_code",
    "test_profiles",
    "test_roles",
    "test_schedules",
    "test_workflows",
];

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mlrun")
}

/// The venv's interpreter, made on first use. A venv that cannot be made fails the test.
fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = PYTHON.get_or_init(|| {
        let out = Command::new("bash")
            .arg(suite_dir().join("venv.sh"))
            .output()
            .map_err(|e| format!("cannot run bash tests/mlrun/venv.sh: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "tests/mlrun/venv.sh failed ({}):\n{stderr}",
                out.status
            ));
        }
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !path.is_file() {
            return Err(format!(
                "tests/mlrun/venv.sh printed `{}`, which is not a file\n{stderr}",
                path.display()
            ));
        }
        Ok(path)
    });
    match made {
        Ok(path) => path,
        Err(reason) => panic!("no MLRun client to test with: {reason}"),
    }
}

/// Runs one module with `python -m unittest` and fails with its output unless it passes.
fn run_module(module: &str) {
    let python = python();
    let out_dir = tempfile::tempdir().expect("temporary folder");
    let log_path = out_dir.path().join("output.txt");
    let log = File::create(&log_path).expect("output file");
    let mut cmd = Command::new(python);
    cmd.args(["-m", "unittest", "-v", module])
        .current_dir(suite_dir())
        .env("BATON_BIN", env!("CARGO_BIN_EXE_baton"))
        .env("PYTHONWARNINGS", "ignore")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("BATON_TOKEN")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("output file"))
        .stderr(log)
        // Its own process group, so a timeout can stop the servers it started too.
        .process_group(0);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("MLRUN_") || name.starts_with("V3IO_") {
            cmd.env_remove(&*name);
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python") {
            break Some(status);
        }
        if started.elapsed() > MODULE_TIMEOUT {
            // SAFETY: kill(2) on the process group this test created; no memory is involved.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            child.wait().expect("wait for python");
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut output = String::new();
    File::open(&log_path)
        .and_then(|mut f| f.read_to_string(&mut output))
        .expect("read the module's output");
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("tests/mlrun/{module}.py failed ({s}):\n{output}"),
        None => panic!(
            "tests/mlrun/{module}.py took more than {} s and was killed:\n{output}",
            MODULE_TIMEOUT.as_secs()
        ),
    }
}

#[test]
fn every_module_is_run() {
    let mut found: Vec<String> = std::fs::read_dir(suite_dir())
        .expect("tests/mlrun")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let module = name.strip_suffix(".py")?;
            module.starts_with("test_").then(|| module.to_owned())
        })
        .collect();
    found.sort();
    assert_eq!(
        found, MODULES,
        "give each tests/mlrun/test_*.py a #[test] here"
    );
}

#[test]
fn auth() {
    run_module("test_auth");
}

#[test]
fn jobs() {
    run_module("test_jobs");
}

#[test]
fn log_code() {
    run_module("test_log_code");
}

#[test]
fn profiles() {
    run_module("test_profiles");
}

#[test]
fn roles() {
    run_module("test_roles");
}

#[test]
fn schedules() {
    run_module("test_schedules");
}

#[test]
fn workflows() {
    run_module("test_workflows");
}
