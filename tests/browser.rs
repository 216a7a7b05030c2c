//! The run pages in real headless Chromium (Debian's `chromium` and `chromium-driver`): the
//! churn example's run page, a live step update without a reload, a step's log page, and
//! terminate from the page. The churn test also takes the README's screenshot of the run page:
//! into `target/run-page.png` always, and into `docs/run-page.png` with
//! `BATON_UPDATE_SCREENSHOT=1`.

mod common;

use std::path::Path;

use common::browser::{Browser, Ui};
use common::gated::Gated;
use common::server::{data_dir, TestServer};
use common::TestProject;
use serde_json::Value;

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

#[test]
fn a_running_workflow_page_updates_its_steps_and_log_live_without_a_reload() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let browser = Browser::start();
    let state = |i: usize| format!("return document.querySelector('#node-{i} .word').textContent");

    let gated = Gated::new(Some(&server.url));
    let (_run, id) = gated.start();
    browser.goto(&format!(
        "{}/projects/my-project/workflow-runs/{id}",
        server.url
    ));
    assert_eq!(browser.eval(&state(0)), "running");
    // Marks this document: a reload would lose the mark.
    browser.eval("window.batonMark = 42; return null;");
    gated.open();
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

    // A running step's log page tails the handler's output live.
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let gated = Gated::new(Some(&server.url));
    let (_run, id) = gated.start();
    let uid = gated.record(&id)["steps"][0]["run_uid"]
        .as_str()
        .unwrap()
        .to_string();
    browser.goto(&format!("{}/projects/my-project/runs/{uid}", server.url));
    let log_has = |text: &str| {
        format!("return document.getElementById('log').textContent.includes('{text}')")
    };
    browser.wait_for("the handler's first line", &log_has("waiting for the gate"));
    browser.eval("window.batonMark = 7; return null;");
    gated.open();
    browser.wait_for("the handler's last line", &log_has("the gate opened"));
    assert_eq!(
        browser.eval("return window.batonMark"),
        7,
        "the page was reloaded"
    );
}

#[test]
fn terminate_from_the_page_cancels_a_running_workflow() {
    let gated = Gated::new(None);
    let (mut run, id) = gated.start();
    let ui = Ui::start(gated.project.path());
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
    assert_eq!(gated.record(&id)["state"], "Canceled");
}
