//! The overhead of `baton run-function` on a trivial handler (`def main(): return 1`) with a warm
//! code cache, against starting a bare Python interpreter, broken down by process.
//!
//! Run with `cargo bench --bench run_overhead` (`BATON_BENCH_RUNS=N` changes the sample count,
//! default 15). Every command is run once per round, round after round, so that load from other
//! processes on the machine spreads evenly over all rows; each row is the median of its samples,
//! after warm-up rounds that also fill the code cache. See `benches/README.md` for what each row
//! and each derived figure means.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{median, ms, real_python, rounds};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use baton::launcher::{self, RunRequest};
use baton::project::Project;
use chrono::DateTime;
use common::{baton_bin, TestProject};
use serde_json::{json, Value};

/// The bootstrap `baton runner` hands to Python, run here on its own for the breakdown.
const BOOTSTRAP: &str = include_str!("../src/runner/python/bootstrap.py");
const WARMUP: usize = 3;

/// One measured command: a label, how to build it, and a check of its output.
struct Row {
    key: &'static str,
    label: String,
    make: Box<dyn Fn(usize) -> Command>,
    samples: Vec<Duration>,
    /// Run-function rows keep their `--json` output to read the runner's own timestamps.
    outputs: Vec<Value>,
    json: bool,
}

impl Row {
    fn new(key: &'static str, label: String, make: impl Fn(usize) -> Command + 'static) -> Row {
        Row {
            key,
            label,
            make: Box::new(make),
            samples: Vec::new(),
            outputs: Vec::new(),
            json: false,
        }
    }

    fn json(mut self) -> Row {
        self.json = true;
        self
    }

    /// Runs the command once (sample `i`), checks it succeeded, and records its time.
    fn sample(&mut self, i: usize, record: bool) {
        let mut cmd = (self.make)(i);
        let start = Instant::now();
        let out = cmd.output().unwrap();
        let elapsed = start.elapsed();
        check(&self.label, &out);
        if record {
            self.samples.push(elapsed);
            if self.json {
                self.outputs
                    .push(serde_json::from_slice(&out.stdout).unwrap());
            }
        }
    }

    fn median(&self) -> Duration {
        median(self.samples.clone())
    }
}

#[track_caller]
fn check(label: &str, out: &Output) {
    assert!(
        out.status.success(),
        "`{label}` failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where `python3` resolves on PATH, for the table heading.
fn which_python3() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "?".into())
}

/// Records `n` runs of `triv` as `created` (what `run-function` does before starting the
/// runner), so `baton runner UID` can be timed on its own.
fn submit_runs(root: &Path, n: usize) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let project = Project::load(root).unwrap();
    let db = project.open_db().unwrap();
    (0..n)
        .map(|_| {
            let request = RunRequest {
                function: "triv".into(),
                ..RunRequest::default()
            };
            rt.block_on(launcher::submit(&project, &db, request))
                .unwrap()
                .metadata
                .uid
        })
        .collect()
}

/// A bootstrap request for the trivial handler in `code_dir`, as `baton runner` writes it.
fn bootstrap_request(dir: &Path, code_dir: &Path) -> PathBuf {
    let request = json!({
        "protocol": 1,
        "code_dir": code_dir,
        "module": "triv",
        "function": "main",
        "params": {},
        "inputs": {},
        "context": {
            "uid": "bench",
            "name": "triv-main",
            "project": "my-project",
            "artifact_path": dir.join("artifacts"),
            "labels": {},
        },
        "result_path": dir.join("result.json"),
    });
    let path = dir.join("request.json");
    std::fs::write(&path, serde_json::to_vec(&request).unwrap()).unwrap();
    path
}

/// Milliseconds between two RFC 3339 timestamps of a run record.
fn span_ms(run: &Value, from: &str, to: &str) -> f64 {
    let at = |k: &str| {
        DateTime::parse_from_rfc3339(run["status"][k].as_str().unwrap_or_else(|| panic!("{k}")))
            .unwrap()
    };
    (at(to) - at(from)).num_microseconds().unwrap() as f64 / 1e3
}

fn main() {
    let runs = rounds("BATON_BENCH_RUNS", 15);
    let p = TestProject::with_trivial_function();
    let root = p.path().to_path_buf();
    let real = real_python();
    let bootstrap_python = std::env::var_os("BATON_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let scratch = tempfile::tempdir().unwrap();
    let code_dir = scratch.path().join("code");
    std::fs::create_dir_all(&code_dir).unwrap();
    std::fs::write(code_dir.join("triv.py"), common::TRIVIAL_HANDLER).unwrap();
    let request = bootstrap_request(scratch.path(), &code_dir);
    let runner_uids = submit_runs(&root, runs + WARMUP);

    let mut rows = vec![
        Row::new("a", "python3 -c pass".into(), |_| {
            let mut c = Command::new("python3");
            c.args(["-c", "pass"]);
            c
        }),
        Row::new(
            "b",
            format!(
                "{} -c pass (bootstrap interpreter)",
                bootstrap_python.display()
            ),
            {
                let py = bootstrap_python.clone();
                move |_| {
                    let mut c = Command::new(&py);
                    c.args(["-c", "pass"]);
                    c
                }
            },
        ),
        Row::new("b_real", format!("{} -c pass (real)", real.display()), {
            let py = real.clone();
            move |_| {
                let mut c = Command::new(&py);
                c.args(["-c", "pass"]);
                c
            }
        }),
        Row::new(
            "boot",
            "real python -u -c <bootstrap> request.json".into(),
            {
                let (py, request, code_dir) = (real.clone(), request.clone(), code_dir.clone());
                move |_| {
                    let mut c = Command::new(&py);
                    c.args(["-u", "-c", BOOTSTRAP])
                        .arg(&request)
                        .current_dir(&code_dir);
                    c
                }
            },
        ),
        Row::new(
            "b_nosite",
            "real python -S -c pass (no site import)".into(),
            {
                let py = real.clone();
                move |_| {
                    let mut c = Command::new(&py);
                    c.args(["-S", "-c", "pass"]);
                    c
                }
            },
        ),
        Row::new("c", "baton --version".into(), |_| {
            let mut c = Command::new(baton_bin());
            c.arg("--version");
            c
        }),
        Row::new("d", "baton runs list".into(), {
            let root = root.clone();
            move |_| {
                let mut c = Command::new(baton_bin());
                c.args(["runs", "list"]).current_dir(&root);
                c
            }
        }),
        Row::new("runner", "baton runner UID (BATON_PYTHON=real)".into(), {
            let (root, real) = (root.clone(), real.clone());
            move |i| {
                let mut c = Command::new(baton_bin());
                c.args(["runner", &runner_uids[i]])
                    .current_dir(&root)
                    .env("BATON_PYTHON", &real);
                c
            }
        }),
        Row::new(
            "e",
            format!("baton run-function ({})", bootstrap_python.display()),
            {
                let root = root.clone();
                move |_| {
                    let mut c = Command::new(baton_bin());
                    c.args(["run-function", "triv", "--json"])
                        .current_dir(&root);
                    c
                }
            },
        )
        .json(),
        Row::new("e_real", "baton run-function (BATON_PYTHON=real)".into(), {
            let (root, real) = (root.clone(), real.clone());
            move |_| {
                let mut c = Command::new(baton_bin());
                c.args(["run-function", "triv", "--json"])
                    .current_dir(&root)
                    .env("BATON_PYTHON", &real);
                c
            }
        })
        .json(),
    ];
    // Every baton command uses the project's isolated cache and no progress drawing.
    let cache = p.cache.path().to_path_buf();
    for row in &mut rows {
        let make = std::mem::replace(&mut row.make, Box::new(|_| unreachable!()));
        let cache = cache.clone();
        row.make = Box::new(move |i| {
            let mut c = make(i);
            c.env("BATON_CACHE_DIR", &cache)
                .env("BATON_NO_PROGRESS", "1")
                .env_remove("BATON_LOG");
            c
        });
    }

    for round in 0..WARMUP + runs {
        for row in &mut rows {
            row.sample(round, round >= WARMUP);
        }
    }
    let result: Value =
        serde_json::from_slice(&std::fs::read(scratch.path().join("result.json")).unwrap())
            .unwrap();
    assert_eq!(result["state"], "completed", "bootstrap result: {result}");
    assert_eq!(result["results"]["return"], 1, "bootstrap result: {result}");

    let m: BTreeMap<&str, Duration> = rows.iter().map(|r| (r.key, r.median())).collect();
    let a = m["a"];
    println!(
        "run_overhead: `def main(): return 1` from a store:// code artifact, warm cache; \
         median of {runs} interleaved rounds after {WARMUP} warm-up rounds"
    );
    println!(
        "python3 on PATH: {}; real interpreter: {}",
        which_python3(),
        real.display()
    );
    println!("{:<7} {:<62} {:>9} {:>8}", "row", "command", "ms", "x (a)");
    for row in &rows {
        let d = m[row.key];
        println!(
            "{:<7} {:<62} {:>9.1} {:>8.2}",
            row.key,
            row.label,
            ms(d),
            d.as_secs_f64() / a.as_secs_f64()
        );
    }

    // Inside the runner: the run record's start_time (the runner has opened the database and
    // marked the run running) to end_time (the handler's result is in).
    let inside = |key: &str| {
        let row = rows.iter().find(|r| r.key == key).unwrap();
        median(
            row.outputs
                .iter()
                .map(|run| span_ms(run, "start_time", "end_time"))
                .collect(),
        )
    };
    let d = |k: &str| ms(m[k]);
    println!();
    println!("derived (ms, from the medians above):");
    let lines = [
        ("pyenv shim (a - b_real)", d("a") - d("b_real")),
        (
            "site import of this interpreter (b_real - b_nosite)",
            d("b_real") - d("b_nosite"),
        ),
        (
            "bootstrap: imports + handler + result file (boot - b_real)",
            d("boot") - d("b_real"),
        ),
        (
            "runner, Rust side: start, db, code cache, spawn (runner - boot)",
            d("runner") - d("boot"),
        ),
        (
            "launcher: CLI, submit, start runner, wait, print (e_real - runner)",
            d("e_real") - d("runner"),
        ),
        (
            "run-function overhead over bare python (e_real - b_real)",
            d("e_real") - d("b_real"),
        ),
        (
            "run-function overhead over python3 -c pass (e - a)",
            d("e") - d("a"),
        ),
        (
            "run record start_time..end_time, run-function (python3)",
            inside("e"),
        ),
        (
            "run record start_time..end_time, run-function (real)",
            inside("e_real"),
        ),
    ];
    for (what, v) in lines {
        println!("  {what:<68} {v:>7.1}");
    }
    println!(
        "ratio run-function / python3 -c pass = {:.2}; with BATON_PYTHON=real, / real python = {:.2}",
        m["e"].as_secs_f64() / a.as_secs_f64(),
        m["e_real"].as_secs_f64() / m["b_real"].as_secs_f64()
    );
}
