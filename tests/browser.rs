//! The run pages in real headless Chromium (Debian's `chromium` and `chromium-driver`): the
//! churn example's run page, a live step update without a reload, a step's log page, and
//! terminate from the page. The churn test also takes the README's screenshot of the run page:
//! into `target/run-page.png` always, and into `docs/run-page.png` with
//! `BATON_UPDATE_SCREENSHOT=1`.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};

use common::browser::{Browser, Ui};
use common::server::{data_dir, TestServer};
use common::{poll, Run, TestProject};
use serde_json::Value;

const GATE: &str = r#"import os, time

def wait(gate):
    print("waiting for the gate", flush=True)
    while not os.path.exists(gate):
        time.sleep(0.05)
    print("the gate opened", flush=True)
    return "ok"
"#;

const GATED: &str = "name: gated
params:
  - {name: gate}
steps:
  - name: hold
    function: gate
    handler: gate:wait
    params: {gate: \"{{args.gate}}\"}
  - name: after
    function: gate
    handler: gate:wait
    params: {gate: \"{{args.gate}}\"}
    after: [hold]
";

/// A project set up like `examples/churn/run.sh`, its workflow run once.
fn churn_project() -> (TestProject, String) {
    let p = TestProject::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/churn");
    for file in ["workflow.py", "src/prep.py", "src/evaluate.py"] {
        p.write(file, std::fs::read(example.join(file)).unwrap());
    }
    let read =
        |name: &str| std::fs::read_to_string(example.join("src/trainer").join(name)).unwrap();
    let zip = common::zip_bytes(&[
        ("trainer.py", &read("trainer.py")),
        ("utils.py", &read("utils.py")),
    ]);
    p.write("trainer.zip", zip);
    for (key, path, extra) in [
        ("prep_code", "src/prep.py", None),
        ("evaluate_code", "src/evaluate.py", None),
        ("trainer_code", "trainer.zip", None),
        ("churn_workflow", "workflow.py", Some("workflow")),
    ] {
        let extra: Vec<&str> = extra.map(|t| vec!["--code-type", t]).unwrap_or_default();
        p.log_code(key, path, &extra);
    }
    p.set_store_function("prep", "prep_code", "prep:main");
    p.set_store_function("evaluate", "evaluate_code", "evaluate:pick");
    p.set_store_function("trainer", "trainer_code", "trainer:train");
    p.baton(&[
        "set-workflow",
        "--name",
        "main",
        "--path",
        "store://artifacts/my-project/churn_workflow",
    ])
    .ok();
    let id = p
        .baton(&["run", "main", "--no-watch"])
        .ok()
        .trim()
        .to_string();
    (p, id)
}

/// Texts of every element matching `selector`, as a JSON array.
fn texts(selector: &str) -> String {
    format!("return [...document.querySelectorAll('{selector}')].map(e => e.textContent);")
}

#[test]
fn the_churn_run_page_shows_six_steps_with_final_states_and_the_condition() {
    let (p, id) = churn_project();
    let ui = Ui::start(p.path());
    let browser = Browser::start();
    browser.goto(&format!("{}projects/my-project/workflow-runs/{id}", ui.url));
    let names = browser.eval(&texts("#dag .node .name"));
    assert_eq!(
        names,
        serde_json::json!([
            "prep",
            "train-linear",
            "train-tree",
            "train-forest",
            "evaluate",
            "publish"
        ])
    );
    let states = browser.eval(&texts("#dag .node .word"));
    assert_eq!(states, serde_json::json!(vec!["succeeded"; 6]));
    let conditions = browser.eval(&texts("#dag .node .cond"));
    assert_eq!(
        conditions,
        serde_json::json!(["if evaluate.best_score > threshold"])
    );
    assert_eq!(
        browser.eval("return document.querySelector('#run-state .word').textContent"),
        "succeeded"
    );
    // Laid out in layers: the three trainers side by side, below prep and above evaluate.
    let ys = browser.eval(
        "return [...document.querySelectorAll('#dag .node')].map(n => n.getBoundingClientRect().top);",
    );
    let ys: Vec<f64> = ys
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        ys[0] < ys[1] && ys[1] == ys[2] && ys[2] == ys[3] && ys[3] < ys[4] && ys[4] < ys[5],
        "{ys:?}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    browser.screenshot(&root.join("target/run-page.png"));
    let png = std::fs::read(root.join("target/run-page.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    if std::env::var_os("BATON_UPDATE_SCREENSHOT").is_some() {
        browser.screenshot(&root.join("docs/run-page.png"));
    }

    // Each box links to its step's run, whose page shows the handler's log.
    browser.click("#node-0 a");
    browser.wait_for(
        "the step's run page",
        "return document.getElementById('log') !== null",
    );
    let log = browser.eval("return document.getElementById('log').textContent");
    assert!(
        log.as_str().unwrap().contains("prepared 1000 rows"),
        "{log}"
    );
    let params = browser.eval(&texts("table.kv th"));
    assert!(
        params.as_array().unwrap().contains(&Value::from("rows")),
        "{params}"
    );
}

/// `baton ARGS` in the project, against the server.
fn api(p: &TestProject, server: &TestServer, args: &[&str]) -> Run {
    Run::from(
        p.command(args)
            .env("BATON_API", &server.url)
            .output()
            .unwrap(),
    )
}

/// A project with function `gate` and workflow `gated`, whose steps wait for a file.
fn gated_project(on: Option<&TestServer>) -> TestProject {
    let p = TestProject::new();
    p.write("gate.py", GATE);
    p.write("gated.yaml", GATED);
    let baton = |args: &[&str]| match on {
        Some(server) => api(&p, server, args),
        None => p.baton(args),
    };
    baton(&["log-code", "gate_code", "--local-path", "gate.py"]).ok();
    baton(&[
        "set-function",
        "--name",
        "gate",
        "--func",
        "store://artifacts/my-project/gate_code",
        "--handler",
        "gate:wait",
    ])
    .ok();
    baton(&[
        "log-code",
        "gated",
        "--local-path",
        "gated.yaml",
        "--code-type",
        "workflow",
    ])
    .ok();
    baton(&[
        "set-workflow",
        "--name",
        "gated",
        "--path",
        "store://artifacts/my-project/gated",
    ])
    .ok();
    p
}

/// A `baton run` child, killed and reaped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The id of the project's only workflow run, once its first step runs and logs.
fn running_id(workflows: impl Fn() -> Value) -> String {
    let mut id = String::new();
    poll("the first step runs", || {
        let runs = workflows();
        let Some([run]) = runs.as_array().map(Vec::as_slice) else {
            return false;
        };
        id = run["id"].as_str().unwrap().to_string();
        run["steps"][0]["state"] == "Running" && run["steps"][0]["run_uid"].is_string()
    });
    id
}

#[test]
fn a_running_workflow_page_updates_its_steps_and_log_live_without_a_reload() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let p = gated_project(Some(&server));
    let gate = p.path().join("gate");
    let run = Running(
        p.command(&[
            "run",
            "gated",
            "--engine",
            "remote:local",
            "--no-watch",
            "-a",
            &format!("gate={}", gate.display()),
        ])
        .env("BATON_API", &server.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let id = running_id(|| api(&p, &server, &["workflows", "list", "--json"]).json());
    let browser = Browser::start();
    let page = format!("{}/projects/my-project/workflow-runs/{id}", server.url);
    browser.goto(&page);
    let state = |i: usize| format!("return document.querySelector('#node-{i} .word').textContent");
    assert_eq!(browser.eval(&state(0)), "running");
    // Marks this document: a reload would lose the mark.
    browser.eval("window.batonMark = 42; return null;");
    std::fs::write(&gate, "").unwrap();
    browser.wait_for(
        "the first step to succeed",
        &format!("{} === 'succeeded'", state(0)),
    );
    browser.wait_for(
        "the run to succeed",
        "return document.querySelector('#run-state .word').textContent === 'succeeded'",
    );
    assert_eq!(browser.eval(&state(1)), "succeeded");
    assert_eq!(
        browser.eval("return window.batonMark"),
        42,
        "the page was reloaded"
    );
    drop(run);

    // A step's log page tails the handler's output live.
    let (_dir2, data2) = data_dir();
    let server2 = TestServer::start_in(&data2, &[]);
    let p2 = gated_project(Some(&server2));
    let gate2 = p2.path().join("gate");
    let _run2 = Running(
        p2.command(&[
            "run",
            "gated",
            "--engine",
            "remote:local",
            "--no-watch",
            "-a",
            &format!("gate={}", gate2.display()),
        ])
        .env("BATON_API", &server2.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let id2 = running_id(|| api(&p2, &server2, &["workflows", "list", "--json"]).json());
    let rec = api(&p2, &server2, &["workflows", "get", &id2, "--json"]).json();
    let uid = rec["steps"][0]["run_uid"].as_str().unwrap().to_string();
    browser.goto(&format!("{}/projects/my-project/runs/{uid}", server2.url));
    browser.wait_for(
        "the handler's first line",
        "return document.getElementById('log').textContent.includes('waiting for the gate')",
    );
    browser.eval("window.batonMark = 7; return null;");
    std::fs::write(&gate2, "").unwrap();
    browser.wait_for(
        "the handler's last line",
        "return document.getElementById('log').textContent.includes('the gate opened')",
    );
    assert_eq!(
        browser.eval("return window.batonMark"),
        7,
        "the page was reloaded"
    );
}

#[test]
fn terminate_from_the_page_cancels_a_running_workflow() {
    let p = gated_project(None);
    let gate = p.path().join("never");
    let mut run = Running(
        p.command(&[
            "run",
            "gated",
            "--no-watch",
            "-a",
            &format!("gate={}", gate.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let id = running_id(|| p.baton(&["workflows", "list", "--json"]).json());
    let ui = Ui::start(p.path());
    let browser = Browser::start();
    browser.goto(&format!("{}projects/my-project/workflow-runs/{id}", ui.url));
    assert_eq!(
        browser.eval("return document.getElementById('retry').hidden"),
        true
    );
    browser.click("#terminate button");
    browser.wait_for(
        "the run to be canceled",
        "return document.querySelector('#run-state .word').textContent === 'canceled'",
    );
    assert_eq!(
        browser.eval("return document.querySelector('#node-0 .word').textContent"),
        "canceled"
    );
    assert_eq!(
        browser.eval("return document.getElementById('retry').hidden"),
        false
    );
    let status = run.0.wait().unwrap();
    assert_eq!(status.code(), Some(1), "a canceled run exits 1");
    let record = p.baton(&["workflows", "get", &id, "--json"]).json();
    assert_eq!(record["state"], "Canceled");
}
