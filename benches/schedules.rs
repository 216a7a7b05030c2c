//! `baton server`'s scheduler:
//!
//! - fire lag: 1,000 schedules due in the same minute (`M H * * *`, one workflow each); for
//!   every fire, the time from its due time to its workflow run's start (the run record's
//!   `started`), p50/p99/max; against the baseline of starting the same workflow directly
//!   (`POST /api/baton/v1/projects/{p}/workflows/{name}/runs`, the path every fire takes),
//!   measured in the same run. The workflow has no steps, so the figure is the scheduler's and
//!   the run start's, not Python's;
//! - memory: the server's resident set with 100,000 stored schedules queued, against the same
//!   server with none.
//!
//! Run with `cargo bench --bench schedules` (`BATON_BENCH_SCHEDULES=N`, default 1000;
//! `BATON_BENCH_STORED=N`, default 100000). Without `--bench` it fires 20 and stores 1,000.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use common::server::{data_dir, TestServer};
use common::TestProject;
use serde_json::{json, Value};
use support::{benchmarking, median, ms, rounds};

use baton::schedule::{Catchup, Overlap};
use baton::server::schedules::store::{ScheduleSpec, ScheduleStore};

const EMPTY: &str = "name: empty\nsteps: []\n";
const BASELINE_ROUNDS: usize = 15;

/// A project on `server` with workflow `empty` (a code artifact); the first schedule,
/// `empty`, is stored through the CLI (which sends the project's definition along).
fn project_on(server: &TestServer, cron: &str) -> TestProject {
    let p = TestProject::new();
    p.write("empty.yaml", EMPTY);
    let baton = |args: &[&str]| {
        common::Run::from(
            p.command(args)
                .env("BATON_API", &server.url)
                .output()
                .unwrap(),
        )
        .ok()
    };
    baton(&[
        "log-code",
        "empty",
        "--local-path",
        "empty.yaml",
        "--code-type",
        "workflow",
    ]);
    baton(&[
        "set-workflow",
        "--name",
        "empty",
        "--path",
        "store://artifacts/my-project/empty",
    ]);
    baton(&["run", "empty", "--schedule", cron]);
    p
}

/// The project's workflow runs.
fn workflow_runs(server: &TestServer) -> Vec<Value> {
    server
        .get("/api/baton/v1/projects/my-project/db/workflow-runs")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn fire_lag(count: usize) {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &["--schedule-min-interval", "0"]);
    // Due at the first minute boundary at least 40 s away, so every schedule is stored before.
    let now = Utc::now() + chrono::Duration::seconds(40);
    let due: DateTime<Utc> =
        now.with_second(0).unwrap().with_nanosecond(0).unwrap() + chrono::Duration::minutes(1);
    let cron = format!("{} {} * * *", due.minute(), due.hour());
    let _project = project_on(&server, &cron);

    // The baseline: the same workflow started directly, one at a time.
    let mut baseline = Vec::new();
    for _ in 0..rounds("BATON_BENCH_RUNS", BASELINE_ROUNDS) {
        let started = Instant::now();
        let (status, body) = server.call(
            reqwest::Method::POST,
            "/api/baton/v1/projects/my-project/workflows/empty/runs",
            Some(&json!({})),
        );
        assert_eq!(status, 200, "{body}");
        baseline.push(ms(started.elapsed()));
    }
    let baseline = median(baseline);

    let storing = Instant::now();
    for i in 1..count {
        let body = json!({"name": format!("s{i:05}"), "workflow": "empty", "schedule": cron});
        let (status, answer) = server.call(
            reqwest::Method::POST,
            "/api/baton/v1/projects/my-project/schedules",
            Some(&body),
        );
        assert_eq!(status, 201, "{answer}");
    }
    let stored_in = storing.elapsed();
    assert!(
        Utc::now() < due,
        "storing {count} schedules took past their due time"
    );

    let deadline = Instant::now() + Duration::from_secs(120) + (due - Utc::now()).to_std().unwrap();
    let lags = loop {
        let fired: Vec<f64> = workflow_runs(&server)
            .iter()
            .filter(|r| r["labels"]["mlrun/schedule-name"].is_string())
            .map(|r| {
                let started: DateTime<Utc> = r["started"].as_str().unwrap().parse().unwrap();
                ms((started - due).to_std().unwrap_or_default())
            })
            .collect();
        if fired.len() >= count {
            break fired;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} fired",
            fired.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut lags = lags;
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99, max) = (
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags[lags.len() - 1],
    );
    println!(
        "fire lag: {count} schedules due at {due} (stored in {:.0} ms)",
        ms(stored_in)
    );
    println!("what                                                      ms   x baseline");
    println!("baseline: start the workflow directly (median of {BASELINE_ROUNDS})  {baseline:8.1}   {:10.2}", 1.0);
    for (name, value) in [
        ("fire lag p50", p50),
        ("fire lag p99", p99),
        ("fire lag max (the last fire)", max),
    ] {
        println!("{name:<58}{value:8.1}   {:10.2}", value / baseline);
    }
    println!(
        "per fire after the first: {:.2} ms ({:.2} x baseline)",
        (max - lags[0]) / (count.max(2) - 1) as f64,
        (max - lags[0]) / (count.max(2) - 1) as f64 / baseline
    );
}

/// The server's resident set (VmRSS) in bytes, once it stopped growing.
fn settled_rss(pid: i32) -> u64 {
    let read = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap()
            .to_string();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let now = read();
        if now.abs_diff(last) < 256 * 1024 {
            return now;
        }
        last = now;
    }
}

fn memory(stored: usize) {
    let (_empty_dir, empty) = data_dir();
    std::fs::create_dir_all(&empty).unwrap();
    let baseline_server = TestServer::start_in(&empty, &[]);
    let baseline = settled_rss(baseline_server.pid());
    drop(baseline_server);

    let (_dir, data) = data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let writing = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = ScheduleStore::open(&data.join("schedules.db")).unwrap();
        let now = Utc::now();
        // Due in about twelve hours: none fires while the server is measured.
        let hour = (now.hour() + 12) % 24;
        for i in 0..stored {
            let spec = ScheduleSpec {
                workflow: "main".into(),
                schedule: format!("{} {hour} * * *", i % 60),
                timezone: "UTC".into(),
                overlap: Overlap::Skip,
                catchup: Catchup::Latest,
                catchup_window_s: 86400,
                concurrency_limit: 1,
                args: Default::default(),
                engine: None,
            };
            store
                .put(&format!("p{}", i % 100), &format!("s{i:06}"), &spec, now)
                .await
                .unwrap();
        }
    });
    drop(runtime);
    let written = writing.elapsed();
    let starting = Instant::now();
    let server = TestServer::start_in(&data, &[]);
    let loaded = settled_rss(server.pid());
    let settled_in = starting.elapsed();
    let per = (loaded.saturating_sub(baseline)) as f64 / stored as f64;
    println!();
    println!("memory: {stored} stored schedules (written in {:.1} s; the server settled {:.1} s after start)", written.as_secs_f64(), settled_in.as_secs_f64());
    println!("what                                        MiB   x baseline");
    println!(
        "baseline: a server with no schedules   {:9.1}   {:10.2}",
        baseline as f64 / 1048576.0,
        1.0
    );
    println!(
        "a server with {stored} schedules {:9.1}   {:10.2}",
        loaded as f64 / 1048576.0,
        loaded as f64 / baseline as f64
    );
    println!("per schedule: {per:.0} bytes");
}

fn main() {
    let (fires, stored) = if benchmarking() {
        (1000, 100_000)
    } else {
        (20, 1000)
    };
    let fires = std::env::var("BATON_BENCH_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(fires);
    let stored = std::env::var("BATON_BENCH_STORED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(stored);
    fire_lag(fires);
    memory(stored);
}
