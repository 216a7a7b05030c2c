//! A 50-step chain of trivial steps through the real MLRun client (`mlrun==1.12.1`):
//! `project.run(engine="remote:local")` against a `baton server`, and the same workflow with
//! `engine="local"` in MLRun itself (no server), measured in the same rounds.
//!
//! Run with `cargo bench --bench mlrun_remote` (`BATON_BENCH_REPEAT=N` rounds, default 3). Each
//! round runs `benches/mlrun_remote.py` once per engine, each in a new process and a new work
//! folder, with the interpreter of the MLRun venv. MLRun's local engine imports the workflow's
//! `from kfp import dsl`, which the plain client does not install, so the venv is the one
//! `tests/mlrun/venv.sh kfp18` makes (`mlrun[kfp18]`); both engines use it. Rows are medians
//! over rounds: the wall time of `project.run(...)`, of the whole process, and, for the server,
//! its own record of the workflow run (started to finished).
//!
//! Without `--bench` (`cargo test --all-targets`) it runs a 3-step chain once per engine if the
//! venv already exists, and otherwise says so and skips.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{benchmarking, median, real_python, rounds};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::server::{data_dir, TestServer};
use serde_json::Value;

const FLAVOUR: &str = "kfp18";

fn venv_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mlrun/venv.sh")
}

/// The venv's interpreter: made by `venv.sh` when benchmarking; when smoke-testing, only if it
/// exists already (`None` otherwise).
fn python() -> Option<PathBuf> {
    let mut cmd = Command::new("bash");
    cmd.arg(venv_script()).arg(FLAVOUR);
    if !benchmarking() {
        cmd.env("BATON_MLRUN_VENV_NO_INSTALL", "1");
    }
    let out = cmd.stderr(Stdio::inherit()).output().unwrap();
    if !out.status.success() {
        assert!(
            !benchmarking(),
            "tests/mlrun/venv.sh {FLAVOUR} failed ({})",
            out.status
        );
        return None;
    }
    Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
}

/// One measured process: its JSON line and its wall time in seconds.
struct Sample {
    out: Value,
    process_s: f64,
}

/// Runs the script for `engine` in a new work folder; the remote engine talks to `server`.
fn sample(
    python: &Path,
    engine: &str,
    steps: usize,
    project: &str,
    server: Option<&TestServer>,
) -> Sample {
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/mlrun_remote.py"))
        .arg(engine)
        .arg(steps.to_string())
        .arg(project)
        .current_dir(work.path())
        .env("PYTHONWARNINGS", "ignore")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    // Only this bench's MLRun settings.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("MLRUN_") || name.starts_with("V3IO_") {
            cmd.env_remove(&*name);
        }
    }
    if let Some(server) = server {
        cmd.env("MLRUN_DBPATH", &server.url);
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let process_s = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fail = |why: &str| -> ! {
        panic!(
            "{engine}: {why} ({})\nstdout: {stdout}\nstderr: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            server
                .map(|s| format!("\nserver log:\n{}", s.log_text()))
                .unwrap_or_default()
        )
    };
    if !out.status.success() {
        fail("the script failed");
    }
    let Some(out) = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
    else {
        fail("no JSON line on stdout")
    };
    if out.get("error").is_some()
        || out["state"].as_str().map(str::to_lowercase).as_deref() != Some("succeeded")
    {
        fail("the workflow did not succeed");
    }
    if server.is_some() {
        let record = &out["server"];
        if record["state"] != "succeeded"
            || record["succeeded"] != steps
            || record["last_return"] != steps
        {
            fail("the server's record is not a succeeded run of every step, the last returning their number");
        }
    }
    Sample { out, process_s }
}

fn main() {
    let Some(python) = python() else {
        println!(
            "mlrun_remote: skipped, the MLRun venv with kfp does not exist yet \
             (`bash tests/mlrun/venv.sh {FLAVOUR}` makes it; `cargo bench --bench mlrun_remote` too)"
        );
        return;
    };
    let steps = if benchmarking() { 50 } else { 3 };
    let repeat = rounds("BATON_BENCH_REPEAT", 3);
    // The server's steps use the real interpreter behind `python3`, not a pyenv shim.
    if std::env::var_os("BATON_PYTHON").is_none_or(|v| v.is_empty()) {
        std::env::set_var("BATON_PYTHON", real_python());
    }
    let scratch = tempfile::tempdir().unwrap();
    std::env::set_var("BATON_CACHE_DIR", scratch.path().join("server-cache"));
    let (_keep, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);

    let mut local = Vec::new();
    let mut remote = Vec::new();
    for round in 0..repeat {
        // A project per round: re-logging the same code under a new tree in a project that
        // already has it leaves the server's record on the first tree, and the function's
        // `store://...#0@tree^uid` source then names no artifact.
        let project = format!("bench-{round}");
        local.push(sample(&python, "local", steps, &project, None));
        remote.push(sample(
            &python,
            "remote:local",
            steps,
            &project,
            Some(&server),
        ));
    }
    drop(server);

    let f = |samples: &[Sample], get: &dyn Fn(&Sample) -> f64| {
        median(samples.iter().map(get).collect::<Vec<f64>>())
    };
    let run_s = |s: &Sample| s.out["run_s"].as_f64().unwrap();
    let process_s = |s: &Sample| s.process_s;
    let import_s = |s: &Sample| s.out["import_s"].as_f64().unwrap();
    let setup_s = |s: &Sample| s.out["setup_s"].as_f64().unwrap();
    let server_s = |s: &Sample| s.out["server"]["duration_s"].as_f64().unwrap();

    println!(
        "mlrun_remote: chain of {steps} steps (`def main(x=0): return x + 1`) through mlrun 1.12.1 \
         ({}); median of {repeat} rounds",
        python.display()
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "engine", "run s", "process s", "import s", "setup s", "server s"
    );
    let (lr, lp) = (f(&local, &run_s), f(&local, &process_s));
    let (rr, rp) = (f(&remote, &run_s), f(&remote, &process_s));
    println!(
        "{:<44} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10}",
        "baseline: local (MLRun in-process, no server)",
        lr,
        lp,
        f(&local, &import_s),
        f(&local, &setup_s),
        "-"
    );
    let rs = f(&remote, &server_s);
    println!(
        "{:<44} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
        "remote:local on baton server",
        rr,
        rp,
        f(&remote, &import_s),
        f(&remote, &setup_s),
        rs
    );
    println!(
        "ratio remote:local / local: project.run {:.2}, process {:.2}; \
         server's own run / local project.run {:.2}",
        rr / lr,
        rp / lp,
        rs / lr
    );
    println!(
        "per step: local {:.1} ms, remote:local {:.1} ms (server record {:.1} ms)",
        lr * 1e3 / steps as f64,
        rr * 1e3 / steps as f64,
        rs * 1e3 / steps as f64
    );
    let step_ms = |s: &Sample| s.out["server"]["step_ms_median"].as_f64().unwrap();
    let gap_ms = |s: &Sample| s.out["server"]["gap_ms_median"].as_f64().unwrap();
    println!(
        "server record, medians: a step {:.1} ms (its runner process, Python and the handler), \
         gap between chained steps {:.3} ms; watch loop and client outside it: {:.2} s",
        f(&remote, &step_ms),
        f(&remote, &gap_ms),
        rr - rs
    );
}
