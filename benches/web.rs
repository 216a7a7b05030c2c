//! The web pages of `baton server`, measured against the server's own JSON of the same run:
//!
//! - **first render**: a workflow run page of 50 and 1,000 steps (all ended, layers of ten, each
//!   step after two of the layer above, every tenth guarded by a condition), loaded in headless
//!   Chromium: time to first contentful paint and to the load event, against the same browser
//!   loading the run's JSON (`GET /api/baton/v1/projects/{p}/workflow-runs/{id}`, what
//!   `baton workflows get --json` reads);
//! - **server time and page weight**: the run page's HTML as the server answers it (time to the
//!   last byte, and bytes, plain and gzipped as browsers get it) against that JSON (plain: the
//!   API does not compress);
//! - **memory while 20 pages follow one live run**: the server's resident memory with 20 event
//!   streams open on a running workflow, against the same server with the run going and no
//!   page open.
//!
//! Run with `cargo bench --bench web` (`BATON_BENCH_RUNS=N` rounds, default 9). Without
//! `--bench` (`cargo test --all-targets`) it does one round of each as a smoke test.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::engine::{StepState, StepStatus, WorkflowState};
use baton::model::{ResolvedCodeRecord, WorkflowRunRecord};
use common::browser::Browser;
use common::gated::Gated;
use common::server::{data_dir, TestServer};
use serde_json::json;
use support::{median, ms, rounds};

const PROJECT: &str = "bench";
const FOLLOWERS: usize = 20;

/// A finished run of `n` steps in layers of ten.
fn record(id: &str, n: usize) -> WorkflowRunRecord {
    let mut graph = Vec::new();
    let mut steps = Vec::new();
    for i in 0..n {
        let name = format!("step-{i:04}");
        let mut node = json!({"name": name, "function": "triv", "outputs": ["score"]});
        if i >= 10 {
            let layer = i / 10 * 10;
            let a = format!("step-{:04}", layer - 10 + i % 10);
            let b = format!("step-{:04}", layer - 10 + (i + 3) % 10);
            node["after"] = json!([a, b]);
            if i % 10 == 0 {
                node["when"] = json!(format!("{{{{steps.{a}.outputs.score}}}} > 0.5"));
            }
        }
        graph.push(node);
        let mut step = StepStatus::pending(name);
        step.state = StepState::Succeeded;
        step.attempts = 1;
        step.started = "2026-01-01T00:00:00Z".parse().ok();
        step.finished = "2026-01-01T00:00:01.5Z".parse().ok();
        step.run_uid = Some(format!("{i:032x}"));
        step.outputs.insert("score".into(), json!(0.75));
        steps.push(step);
    }
    WorkflowRunRecord {
        id: id.into(),
        project: PROJECT.into(),
        name: "grid".into(),
        engine: "local".into(),
        state: WorkflowState::Succeeded,
        args: serde_json::Map::new(),
        workflow: ResolvedCodeRecord {
            source: "store://artifacts/bench/grid".into(),
            uid: Some("0".repeat(40)),
            digest: format!("sha256:{}", "0".repeat(64)),
        },
        steps,
        error: None,
        started: "2026-01-01T00:00:00Z".into(),
        finished: Some("2026-01-01T00:01:00Z".into()),
        driver: None,
        graph: Some(json!({"name": "grid", "steps": graph})),
        retry_of: None,
        labels: Default::default(),
    }
}

/// Stores `run` in the server's database of project `bench`.
fn store(server: &TestServer, run: &WorkflowRunRecord) {
    let project =
        baton::project::Project::load(&server.data.join("projects").join(PROJECT)).unwrap();
    let db: Arc<dyn baton::db::Db> = Arc::new(project.open_db().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(db.store_workflow_run(run)).unwrap();
}

/// Time to the last byte and size of `GET url`, as sent (gzipped when `gzip`).
fn fetch(http: &reqwest::blocking::Client, url: &str, gzip: bool) -> (Duration, usize) {
    let start = Instant::now();
    let mut request = http.get(url);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let body = request.send().unwrap().bytes().unwrap();
    (start.elapsed(), body.len())
}

/// First contentful paint and load event of `url` in the browser, in ms.
fn render(browser: &Browser, url: &str) -> (f64, f64) {
    browser.goto("about:blank");
    browser.goto(url);
    browser.wait_for(
        "the load event and the first paint",
        "return performance.timing.loadEventEnd > 0 \
         && performance.getEntriesByName('first-contentful-paint').length > 0",
    );
    let paint = browser.eval(
        "const p = performance.getEntriesByName('first-contentful-paint')[0]; \
         return [p ? p.startTime : -1, performance.timing.loadEventEnd - performance.timing.navigationStart];",
    );
    (paint[0].as_f64().unwrap(), paint[1].as_f64().unwrap())
}

fn page_rows(server: &TestServer, browser: &Browser, n: usize, runs: usize) {
    let id = format!("grid{n}");
    store(server, &record(&id, n));
    let page = format!("{}/projects/{PROJECT}/workflow-runs/{id}", server.url);
    let json = format!(
        "{}/api/baton/v1/projects/{PROJECT}/workflow-runs/{id}",
        server.url
    );
    let http = reqwest::blocking::Client::new();
    let html = http.get(&page).send().unwrap().text().unwrap();
    assert_eq!(
        html.matches("<g class=\"node").count(),
        n,
        "every step drawn"
    );
    let (mut page_fcp, mut page_load, mut json_fcp, mut json_load) =
        (vec![], vec![], vec![], vec![]);
    let (mut page_ms, mut json_ms) = (vec![], vec![]);
    let (mut page_bytes, mut page_gzip, mut json_bytes) = (0, 0, 0);
    for round in 0..runs + 1 {
        let (p, pb) = fetch(&http, &page, false);
        let (j, jb) = fetch(&http, &json, false);
        page_gzip = fetch(&http, &page, true).1;
        let (pf, pl) = render(browser, &page);
        let (jf, jl) = render(browser, &json);
        if round == 0 {
            continue; // warm-up
        }
        (page_bytes, json_bytes) = (pb, jb);
        page_ms.push(ms(p));
        json_ms.push(ms(j));
        page_fcp.push(pf);
        page_load.push(pl);
        json_fcp.push(jf);
        json_load.push(jl);
    }
    let row = |what: &str, page: f64, json: f64, unit: &str| {
        println!(
            "| {n} | {what} | {page:.1} {unit} | {json:.1} {unit} | {:.2} |",
            page / json
        );
    };
    row(
        "first contentful paint",
        median(page_fcp),
        median(json_fcp),
        "ms",
    );
    row("load event", median(page_load), median(json_load), "ms");
    row(
        "server, to last byte",
        median(page_ms),
        median(json_ms),
        "ms",
    );
    row(
        "weight",
        page_bytes as f64 / 1024.0,
        json_bytes as f64 / 1024.0,
        "KiB",
    );
    row(
        "weight, gzipped as browsers get it",
        page_gzip as f64 / 1024.0,
        json_bytes as f64 / 1024.0,
        "KiB",
    );
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn memory_rows(server: &TestServer) {
    let gated = Gated::new(Some(&server.url));
    let (_run, id) = gated.start();
    std::thread::sleep(Duration::from_millis(500));
    let alone = rss_kib(server.pid());
    let url = format!(
        "{}/projects/my-project/workflow-runs/{id}/events",
        server.url
    );
    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut response = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap()
                    .get(url)
                    .send()
                    .unwrap();
                let mut text = String::new();
                let mut buf = [0u8; 4096];
                while !text.contains("\"ended\":true") {
                    let n = response.read(&mut buf).unwrap();
                    assert!(n > 0, "the stream ended before the run: {text}");
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                text
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let following = rss_kib(server.pid());
    gated.open();
    for follower in followers {
        let text = follower.join().unwrap();
        assert!(text.contains(r#""i":1,"state":"succeeded""#), "{text}");
    }
    println!(
        "| {FOLLOWERS} pages following one live run | {:.1} MiB | {:.1} MiB (no page) | {:.2} ({:.0} KiB per page) |",
        following as f64 / 1024.0,
        alone as f64 / 1024.0,
        following as f64 / alone as f64,
        following.saturating_sub(alone) as f64 / FOLLOWERS as f64
    );
}

fn main() {
    let runs = rounds("BATON_BENCH_RUNS", 9);
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    server.create_project(PROJECT);
    let browser = Browser::start();
    println!("| steps | measure | run page | run JSON (baseline) | ratio |");
    println!("|---|---|---|---|---|");
    for n in [50, 1000] {
        page_rows(&server, &browser, n, runs);
    }
    drop(browser);
    println!();
    println!("| measure | server RSS | baseline | ratio |");
    println!("|---|---|---|---|");
    memory_rows(&server);
}
