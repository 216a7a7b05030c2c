//! `baton server` running MLRun jobs of a trivial handler (`def main(): return 1`), as MLRun's
//! client submits them (`POST /api/v1/submit_job`, then `GET .../runs/{uid}`):
//!
//! - throughput: N submissions from a few client threads at once; the rate at which the server
//!   accepts them (answers 200), and the time until every run has completed (the server runs
//!   them `--max-workers` at a time, by default the number of CPUs);
//! - latency: jobs submitted one at a time, each polled every 2 ms until `completed`, against
//!   `baton run-function triv` in a project folder, measured in the same rounds.
//!
//! Run with `cargo bench --bench server_jobs` (`BATON_BENCH_JOBS=N` submissions, default 200;
//! `BATON_BENCH_RUNS=N` latency rounds, default 15). Both sides use the real interpreter behind
//! `python3` (`BATON_PYTHON`, unless already set), so a pyenv shim does not weigh on every job.
//! Without `--bench` (`cargo test --all-targets`) it runs a handful of jobs and one round.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{benchmarking, median, ms, real_python, rounds};

use std::thread;
use std::time::{Duration, Instant};

use chrono::DateTime;
use common::server::{data_dir, TestServer};
use common::TestProject;
use reqwest::blocking::Client;
use serde_json::{json, Value};

const PROJECT: &str = "bench";
/// Client threads submitting at once.
const CLIENTS: usize = 4;
/// How often a client polls a run it waits for.
const POLL: Duration = Duration::from_millis(2);
const WARMUP: usize = 2;

/// A server with project `bench` and job function `triv` from a code artifact.
fn server(data: &std::path::Path) -> TestServer {
    let server = TestServer::start_in(data, &[]);
    server.create_project(PROJECT);
    let source = server.log_code(
        PROJECT,
        "triv_code",
        "triv.py",
        common::TRIVIAL_HANDLER,
        "function",
    );
    let (status, body) = server.store_function(PROJECT, "triv", &source, "triv:main");
    assert_eq!(status, 200, "storing function triv: {body}");
    server
}

/// A client uid, as MLRun's client makes one.
fn new_uid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The body of `submit_job` for a run of `triv` under `uid`.
fn task(uid: &str) -> String {
    json!({"task": {
        "metadata": {"name": "triv-main", "project": PROJECT, "uid": uid},
        "spec": {"function": format!("{PROJECT}/triv@hash"), "parameters": {}},
        "status": {"state": "created"},
    }})
    .to_string()
}

fn submit(http: &Client, url: &str, uid: &str) {
    let response = http
        .post(format!("{url}/api/v1/submit_job"))
        .header("content-type", "application/json")
        .body(task(uid))
        .send()
        .unwrap();
    let status = response.status();
    assert_eq!(
        status,
        200,
        "submit_job {uid}: {}",
        response.text().unwrap()
    );
}

/// Polls run `uid` every `every` until it has ended; returns it, which must have completed.
fn wait_completed(http: &Client, url: &str, uid: &str, every: Duration) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let run: Value = http
            .get(format!("{url}/api/v1/projects/{PROJECT}/runs/{uid}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let run = run["data"].clone();
        match run["status"]["state"].as_str() {
            Some("created" | "running") => {}
            Some("completed") => {
                assert_eq!(run["status"]["results"]["return"], 1, "run {uid}: {run}");
                return run;
            }
            _ => panic!("run {uid} did not complete: {run}"),
        }
        assert!(Instant::now() < deadline, "run {uid} still not done");
        thread::sleep(every);
    }
}

/// Milliseconds between two RFC 3339 timestamps of a run record's status.
fn span_ms(run: &Value, from: &str, to: &str) -> f64 {
    let at = |k: &str| {
        DateTime::parse_from_rfc3339(run["status"][k].as_str().unwrap_or_else(|| panic!("{k}")))
            .unwrap()
    };
    (at(to) - at(from)).num_microseconds().unwrap() as f64 / 1e3
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// What the throughput part measured.
struct Throughput {
    jobs: usize,
    accepted: Duration,
    completed: Duration,
}

/// Submits `jobs` runs from `CLIENTS` threads at once, then waits for all of them.
fn throughput(server: &TestServer, jobs: usize) -> Throughput {
    let url = server.url.clone();
    let uids: Vec<String> = (0..jobs).map(|_| new_uid()).collect();
    let start = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mine: Vec<String> = uids.iter().skip(c).step_by(CLIENTS).cloned().collect();
            let url = url.clone();
            thread::spawn(move || {
                let http = client();
                for uid in &mine {
                    submit(&http, &url, uid);
                }
                Instant::now()
            })
        })
        .collect();
    let accepted = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap()
        - start;
    // Runs start in submission order, so waiting in that order finds most of them done.
    let http = client();
    for uid in &uids {
        wait_completed(&http, &url, uid, Duration::from_millis(20));
    }
    Throughput {
        jobs,
        accepted,
        completed: start.elapsed(),
    }
}

fn main() {
    // Both sides run Python the same way: the real interpreter, not a pyenv shim.
    if std::env::var_os("BATON_PYTHON").is_none_or(|v| v.is_empty()) {
        std::env::set_var("BATON_PYTHON", real_python());
    }
    let python = std::env::var("BATON_PYTHON").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    // The server's code cache, away from the user's.
    std::env::set_var("BATON_CACHE_DIR", scratch.path().join("server-cache"));
    let jobs = if benchmarking() {
        rounds("BATON_BENCH_JOBS", 200)
    } else {
        4
    };
    let runs = rounds("BATON_BENCH_RUNS", 15);
    let warmup = if benchmarking() { WARMUP } else { 0 };
    let workers = thread::available_parallelism().map_or(2, |n| n.get());

    let (_keep, data) = data_dir();
    let server = server(&data);
    let p = TestProject::with_trivial_function();
    let http = client();

    // Latency: one job at a time, interleaved with run-function; the first rounds warm the
    // code caches (the server's and the project's).
    let mut job = Vec::new();
    let mut job_inside = Vec::new();
    let mut local = Vec::new();
    let mut local_inside = Vec::new();
    for round in 0..warmup + runs {
        let uid = new_uid();
        let start = Instant::now();
        submit(&http, &server.url, &uid);
        let run = wait_completed(&http, &server.url, &uid, POLL);
        let elapsed = start.elapsed();

        let start_local = Instant::now();
        let out = p
            .command(&["run-function", "triv", "--json"])
            .output()
            .unwrap();
        let elapsed_local = start_local.elapsed();
        let out = common::Run::from(out).json();
        assert_eq!(out["status"]["results"]["return"], 1, "{out}");
        if round >= warmup {
            job.push(elapsed);
            job_inside.push(span_ms(&run, "start_time", "end_time"));
            local.push(elapsed_local);
            local_inside.push(span_ms(&out, "start_time", "end_time"));
        }
    }

    let t = throughput(&server, jobs);
    drop(server);

    let (job, local) = (median(job), median(local));
    let (job_inside, local_inside) = (median(job_inside), median(local_inside));
    let base = ms(local);
    println!(
        "server_jobs: `def main(): return 1` as MLRun jobs on `baton server` ({workers} workers), \
         BATON_PYTHON={python}"
    );
    println!();
    println!("latency, one job at a time; median of {runs} interleaved rounds after {warmup} warm-up rounds");
    println!(
        "{:<58} {:>9} {:>10} {:>14}",
        "what", "ms", "x baseline", "runner ms"
    );
    println!(
        "{:<58} {:>9.1} {:>10.2} {:>14.1}",
        "baseline: baton run-function triv (project folder)", base, 1.0, local_inside
    );
    println!(
        "{:<58} {:>9.1} {:>10.2} {:>14.1}",
        "server: submit_job -> completed (polled every 2 ms)",
        ms(job),
        ms(job) / base,
        job_inside
    );
    println!(
        "  server latency - run-function: {:.1} ms (runner ms = the run record's start_time..end_time)",
        ms(job) - base
    );
    println!(
        "  outside the runner's record: server {:.1} ms, run-function {:.1} ms",
        ms(job) - job_inside,
        base - local_inside
    );
    println!();
    let per_job = ms(t.completed) / t.jobs as f64;
    println!(
        "throughput: {} jobs from {CLIENTS} client threads at once",
        t.jobs
    );
    println!(
        "  accepted (200) in {:.1} ms: {:.0} jobs/s, {:.2} ms per submission",
        ms(t.accepted),
        t.jobs as f64 / t.accepted.as_secs_f64(),
        ms(t.accepted) / t.jobs as f64
    );
    println!(
        "  all completed in {:.1} ms: {:.1} jobs/s, {:.1} ms per job = {:.2} x run-function \
         ({:.2} x run-function / {workers} workers)",
        ms(t.completed),
        t.jobs as f64 / t.completed.as_secs_f64(),
        per_job,
        per_job / base,
        per_job / (base / workers as f64)
    );
}
