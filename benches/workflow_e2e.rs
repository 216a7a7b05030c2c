//! A 50-step workflow of trivial Python handlers, end to end through `baton run --json
//! --no-watch`: a chain (each step after the previous one) and a fan-out (50 independent steps at
//! the default parallelism, the number of CPUs), each with `--isolation fork` (a warm Python
//! worker forks each step) and `--isolation process` (a `baton runner` and a fresh Python per
//! step), against a single `baton run-function` of the same handler and a bare `os.fork()` of the
//! same interpreter, measured in the same run.
//!
//! Run with `cargo bench --bench workflow_e2e` (`BATON_BENCH_REPEAT=N` changes the number of
//! rounds, default 3). Everything uses `BATON_PYTHON` set to the real interpreter behind `python3`
//! (or to `$BATON_BENCH_PYTHON`, to compare interpreters). Each round runs, in turn: the baseline 3
//! times, 200 bare forks, the chain and the fan-out on both transports, and, when
//! `BATON_BENCH_MLRUN_PYTHON` names the interpreter of an MLRun venv with kfp (`bash
//! tests/mlrun/venv.sh kfp18`), MLRun's own `local` engine on the same chain and fan-out
//! (`benches/mlrun_local_e2e.py`), each a whole process. Rows are medians over rounds. The per-step
//! breakdown comes from the timestamps the engine (step started/finished) and the runner (run
//! start_time/end_time) record.
//!
//! The dispatcher's own in-process cost per step, without any process, is measured by
//! `cargo bench --bench dispatcher` (not run here).
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{median, ms, real_python, rounds};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baton::db::Db;
use baton::project::Project;
use chrono::{DateTime, Utc};
use common::TestProject;
use serde_json::Value;

const STEPS: usize = 50;
const BASELINE_PER_ROUND: usize = 3;

/// The graph-form YAML of a workflow of `steps` steps; `chain` makes each step run after the
/// previous.
fn workflow_yaml(name: &str, chain: bool, steps: usize) -> String {
    let mut yaml = format!("name: {name}\nsteps:\n");
    for i in 0..steps {
        yaml.push_str(&format!(
            "  - name: s{i:02}\n    function: triv\n    handler: triv:main\n"
        ));
        if chain && i > 0 {
            yaml.push_str(&format!("    after: [s{:02}]\n", i - 1));
        }
    }
    yaml
}

/// A project with the trivial handler as a store:// code artifact (function `triv`) and the
/// workflows `chain` and `fan` (50 steps) and `wide` (a fan-out of `wide` steps), logged as
/// workflow code artifacts.
fn project(wide: usize) -> TestProject {
    let p = TestProject::with_trivial_function();
    for (name, chain, steps) in [
        ("chain", true, STEPS),
        ("fan", false, STEPS),
        ("wide", false, wide),
    ] {
        let file = format!("{name}.yaml");
        p.write(&file, workflow_yaml(name, chain, steps));
        let key = format!("{name}_wf");
        p.log_code(&key, &file, &["--code-type", "workflow"]);
        p.baton(&[
            "set-workflow",
            "--name",
            name,
            "--path",
            &format!("store://artifacts/my-project/{key}"),
        ])
        .ok();
    }
    p
}

/// Runs `baton ARGS` in the project (with `BATON_PYTHON` when given), checks it succeeded, and
/// returns the elapsed time and stdout parsed as JSON.
fn timed(p: &TestProject, args: &[&str], python: Option<&Path>) -> (Duration, Value) {
    let mut cmd = p.command(args);
    if let Some(python) = python {
        cmd.env("BATON_PYTHON", python);
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "`baton {}` failed ({})\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`baton {}` printed no JSON ({e}): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (elapsed, json)
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
        .parse()
        .unwrap()
}

fn span(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap() as f64 / 1e3
}

/// Per-step timings of one workflow run, from the engine's and the runner's timestamps (ms).
#[derive(Default)]
struct Breakdown {
    /// Engine: step started .. finished.
    step: Vec<f64>,
    /// Step started .. the runner marked its run running (submit, spawn the runner, its
    /// start-up, database open, run read).
    before_runner: Vec<f64>,
    /// The runner's run start_time .. end_time (code cache, Python, bootstrap, handler).
    in_runner: Vec<f64>,
    /// The run's end_time .. step finished (runner exit, wait, read the run back).
    after_runner: Vec<f64>,
    /// Chain only: previous step finished .. this step started (the dispatcher).
    gap: Vec<f64>,
    /// Workflow record started .. first step started, and last step finished .. record finished.
    edges: Vec<f64>,
    /// The wall time of `baton run` outside the workflow record's started .. finished: process
    /// start, project and workflow loading, DAG building, printing, the database's checkpoint.
    outside: Vec<f64>,
}

impl Breakdown {
    fn add(
        &mut self,
        rt: &tokio::runtime::Runtime,
        project: &Project,
        db: &dyn Db,
        wf: &Value,
        wall: Duration,
    ) {
        assert_eq!(wf["state"], "Succeeded", "{wf}");
        let steps = wf["steps"].as_array().unwrap();
        assert_eq!(steps.len(), STEPS);
        let mut first = None;
        let mut last = None;
        let mut previous_finished: Option<DateTime<Utc>> = None;
        let chain = wf["name"] == "chain";
        for step in steps {
            assert_eq!(step["state"], "Succeeded", "{step}");
            assert_eq!(step["outputs"]["return"], 1, "{step}");
            let (started, finished) = (at(&step["started"]), at(&step["finished"]));
            let uid = step["run_uid"].as_str().unwrap();
            let run = rt.block_on(db.read_run(project.name(), uid)).unwrap();
            let run_start: DateTime<Utc> = run.status.start_time.unwrap().parse().unwrap();
            let run_end: DateTime<Utc> = run.status.end_time.unwrap().parse().unwrap();
            self.step.push(span(started, finished));
            self.before_runner.push(span(started, run_start));
            self.in_runner.push(span(run_start, run_end));
            self.after_runner.push(span(run_end, finished));
            if let (true, Some(prev)) = (chain, previous_finished) {
                self.gap.push(span(prev, started));
            }
            previous_finished = Some(finished);
            first = Some(first.map_or(started, |f: DateTime<Utc>| f.min(started)));
            last = Some(last.map_or(finished, |l: DateTime<Utc>| l.max(finished)));
        }
        self.edges.push(
            span(at(&wf["started"]), first.unwrap()) + span(last.unwrap(), at(&wf["finished"])),
        );
        self.outside
            .push(ms(wall) - span(at(&wf["started"]), at(&wf["finished"])));
    }
}

/// One workflow row: the wall time of `baton run` per round, and its step breakdown.
struct WorkflowRow {
    name: &'static str,
    isolation: &'static str,
    totals: Vec<Duration>,
    breakdown: Breakdown,
}

/// Median microseconds of a bare `os.fork()` (the child `os._exit(0)`, the parent `waitpid`) in
/// `python`, over 200 forks: the floor under any fork transport.
fn bare_fork_us(python: &Path) -> f64 {
    let script = "import os, time\nds = []\nfor _ in range(200):\n    t = time.perf_counter()\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n    ds.append(time.perf_counter() - t)\nds.sort()\nprint(ds[len(ds) // 2] * 1e6)\n";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// One whole-process run of MLRun's `local` engine on the same workflow (`shape` is `chain` or
/// `fan`), with `python` from the MLRun venv; returns its wall time.
fn mlrun_local(python: &Path, shape: &str) -> Duration {
    let work = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/mlrun_local_e2e.py"))
        .arg(shape)
        .arg(STEPS.to_string())
        .current_dir(work.path())
        .env("PYTHONWARNINGS", "ignore")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("MLRUN_") || name.starts_with("V3IO_") {
            cmd.env_remove(&*name);
        }
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let json: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "MLRun local ({shape}) printed no result ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(json["state"], "succeeded", "MLRun local ({shape}): {json}");
    elapsed
}

/// The processes of the tree rooted at `root` (itself included), from `/proc/*/stat`.
fn process_tree(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// Total proportional set size of `pids` in KiB (shared pages split between their sharers, so
/// forked children count only what they copied), from `/proc/<pid>/smaps_rollup`.
fn pss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|text| {
            let line = text.lines().find(|l| l.starts_with("Pss:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// Runs `baton ARGS` in the project and samples the memory of its process tree every 5 ms;
/// returns the peak total PSS (MiB) and the most processes seen at once.
fn peak_memory(p: &TestProject, args: &[&str], python: &Path) -> (f64, usize) {
    let mut child = p
        .command(args)
        .env("BATON_PYTHON", python)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (mut peak, mut most) = (0u64, 0usize);
    while child.try_wait().unwrap().is_none() {
        let tree = process_tree(child.id());
        peak = peak.max(pss_kib(&tree));
        most = most.max(tree.len());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.wait().unwrap().success(),
        "`baton {}` failed",
        args.join(" ")
    );
    (peak as f64 / 1024.0, most)
}

fn main() {
    let repeat = rounds("BATON_BENCH_REPEAT", 3);
    let wide = if support::benchmarking() { 1000 } else { 20 };
    let p = project(wide);
    let real = real_python();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let project = Project::load(p.path()).unwrap();
    let db = project.open_db().unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mlrun = std::env::var_os("BATON_BENCH_MLRUN_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let python = Some(real.as_path());

    // Warm-up: fills the code cache and the page cache.
    timed(&p, &["run-function", "triv", "--json"], python);
    timed(&p, &["run", "chain", "--json", "--no-watch"], python);

    let mut baseline: Vec<Duration> = Vec::new();
    let mut forks: Vec<f64> = Vec::new();
    let mut mlrun_totals: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut rows: Vec<WorkflowRow> = [
        ("chain", "fork"),
        ("chain", "process"),
        ("fan", "fork"),
        ("fan", "process"),
    ]
    .into_iter()
    .map(|(name, isolation)| WorkflowRow {
        name,
        isolation,
        totals: Vec::new(),
        breakdown: Breakdown::default(),
    })
    .collect();
    for _ in 0..repeat {
        for _ in 0..BASELINE_PER_ROUND {
            let (d, run) = timed(&p, &["run-function", "triv", "--json"], python);
            assert_eq!(run["status"]["state"], "completed", "{run}");
            baseline.push(d);
        }
        forks.push(bare_fork_us(&real));
        for row in &mut rows {
            let (d, wf) = timed(
                &p,
                &[
                    "run",
                    row.name,
                    "--json",
                    "--no-watch",
                    "--isolation",
                    row.isolation,
                ],
                python,
            );
            row.totals.push(d);
            row.breakdown.add(&rt, &project, &db, &wf, d);
        }
        if let Some(mlrun) = &mlrun {
            for (i, shape) in ["chain", "fan"].into_iter().enumerate() {
                mlrun_totals[i].push(mlrun_local(mlrun, shape));
            }
        }
    }

    let base = median(baseline.clone());
    let fork_us = median(forks.clone());
    println!(
        "workflow_e2e: {STEPS} steps of `def main(): return 1` (store:// code artifact, warm \
         cache), `baton run --json --no-watch --isolation fork|process` with the real \
         interpreter; parallelism {cpus} (CPUs); median of {repeat} rounds, baseline median of {}",
        repeat * BASELINE_PER_ROUND
    );
    println!("real interpreter: {}", real.display());
    println!("bare os.fork() + _exit + waitpid in that interpreter: {fork_us:.0} us (median)");
    println!(
        "{:<34} {:>9} {:>12} {:>14}",
        "what", "total ms", "ms per step", "x run-function"
    );
    println!(
        "{:<34} {:>9.1} {:>12.1} {:>14.2}",
        "baseline: run-function (process)",
        ms(base),
        ms(base),
        1.0
    );
    let mut totals = std::collections::BTreeMap::new();
    for row in &rows {
        let total = median(row.totals.clone());
        totals.insert((row.name, row.isolation), total);
        let per_step = total / STEPS as u32;
        println!(
            "{:<34} {:>9.1} {:>12.2} {:>14.3}",
            format!("{} of 50 ({})", row.name, row.isolation),
            ms(total),
            ms(per_step),
            per_step.as_secs_f64() / base.as_secs_f64()
        );
    }
    for (i, shape) in ["chain", "fan"].into_iter().enumerate() {
        if !mlrun_totals[i].is_empty() {
            let total = median(mlrun_totals[i].clone());
            println!(
                "{:<34} {:>9.1} {:>12.2} {:>14.3}",
                format!("MLRun local, {shape} of 50"),
                ms(total),
                ms(total / STEPS as u32),
                (total / STEPS as u32).as_secs_f64() / base.as_secs_f64()
            );
        }
    }

    println!();
    println!("per-step overhead (median engine step started..finished, ms), and ratios:");
    for row in rows.iter().filter(|r| r.name == "chain") {
        println!(
            "  chain step ({:<7}) {:>8.2} ms  = {:>6.1} x bare fork",
            row.isolation,
            median(row.breakdown.step.clone()),
            median(row.breakdown.step.clone()) * 1e3 / fork_us
        );
    }
    for name in ["chain", "fan"] {
        let (f, pr) = (totals[&(name, "fork")], totals[&(name, "process")]);
        println!(
            "  {name}: process / fork = {:.1} x (whole `baton run`)",
            pr.as_secs_f64() / f.as_secs_f64()
        );
    }
    for (i, name) in ["chain", "fan"].into_iter().enumerate() {
        if !mlrun_totals[i].is_empty() {
            let m = median(mlrun_totals[i].clone());
            let f = totals[&(name, "fork")];
            println!(
                "  {name}: MLRun local / baton fork = {:.1} x (whole process each)",
                m.as_secs_f64() / f.as_secs_f64()
            );
        }
    }
    if mlrun.is_none() {
        println!("  (set BATON_BENCH_MLRUN_PYTHON to the MLRun venv's python to compare with MLRun local)");
    }

    println!();
    println!("per-step breakdown, medians over all steps of all rounds (ms):");
    println!(
        "{:<22} {:>8} {:>14} {:>10} {:>13} {:>10} {:>10} {:>10}",
        "workflow",
        "step",
        "before runner",
        "in runner",
        "after runner",
        "gap",
        "head+tail",
        "outside"
    );
    for row in &rows {
        let b = &row.breakdown;
        let gap = if b.gap.is_empty() {
            "-".to_string()
        } else {
            format!("{:.3}", median(b.gap.clone()))
        };
        println!(
            "{:<22} {:>8.2} {:>14.2} {:>10.2} {:>13.2} {:>10} {:>10.1} {:>10.1}",
            format!("{} ({})", row.name, row.isolation),
            median(b.step.clone()),
            median(b.before_runner.clone()),
            median(b.in_runner.clone()),
            median(b.after_runner.clone()),
            gap,
            median(b.edges.clone()),
            median(b.outside.clone()),
        );
    }
    println!(
        "dispatcher in-process cost per step: see `cargo bench --bench dispatcher` (microseconds)"
    );

    println!();
    let (one, _) = peak_memory(&p, &["run-function", "triv", "--json"], &real);
    let start = Instant::now();
    let (peak, most) = peak_memory(&p, &["run", "wide", "--json", "--no-watch"], &real);
    println!(
        "fan-out of {wide} (fork): {:.1} s, peak memory of the process tree {peak:.1} MiB PSS \
         ({most} processes at most) = {:.1} x one run-function's tree ({one:.1} MiB)",
        start.elapsed().as_secs_f64(),
        peak / one
    );
}
