//! Scheduled workflow runs on a real `baton server`, through the CLI: storing schedules (and
//! every kind of bad input named), list/pause/resume/delete, trigger and backfill running the
//! newest workflow version with the schedule's label, a cron fire on the real clock, and
//! exactly-once fires across a server stopped right after recording a fire and across kill -9
//! at random points of a busy schedule.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::server::{api, data_dir, TestServer};
use common::{poll, TestProject};
use serde_json::Value;

const HELLO_V1: &str = "name: hello
steps:
  - name: greet
    function: triv
    handler: triv:main
";

const HELLO_V2: &str = "name: hello
steps:
  - name: greet-again
    function: triv
    handler: triv:main
";

/// A project on the server with function `triv` and workflow `hello` (a code artifact).
fn project_on(server: &TestServer) -> TestProject {
    let p = TestProject::new();
    p.write("triv.py", common::TRIVIAL_HANDLER);
    p.write("hello.yaml", HELLO_V1);
    api(
        &p,
        server,
        &["log-code", "triv_code", "--local-path", "triv.py"],
    )
    .ok();
    log_workflow(&p, server);
    api(
        &p,
        server,
        &[
            "set-function",
            "--name",
            "triv",
            "--func",
            "store://artifacts/my-project/triv_code",
            "--handler",
            "triv:main",
        ],
    )
    .ok();
    api(
        &p,
        server,
        &[
            "set-workflow",
            "--name",
            "hello",
            "--path",
            "store://artifacts/my-project/hello",
        ],
    )
    .ok();
    p
}

/// Logs `hello.yaml` as a new version of workflow artifact `hello`.
fn log_workflow(p: &TestProject, server: &TestServer) {
    api(
        p,
        server,
        &[
            "log-code",
            "hello",
            "--local-path",
            "hello.yaml",
            "--code-type",
            "workflow",
        ],
    )
    .ok();
}

/// The schedule's fires, newest first (`schedules get --json`).
fn fires(p: &TestProject, server: &TestServer, name: &str) -> Vec<Value> {
    let detail = api(
        p,
        server,
        &["schedules", "get", name, "--fires", "1000", "--json"],
    )
    .json();
    detail["fires"].as_array().unwrap().clone()
}

/// The project's workflow runs (`workflows list --json`).
fn workflow_runs(p: &TestProject, server: &TestServer) -> Vec<Value> {
    api(p, server, &["workflows", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until every workflow run of the project ended.
fn all_runs_end(p: &TestProject, server: &TestServer) {
    poll("every workflow run ends", || {
        workflow_runs(p, server).iter().all(|r| {
            matches!(
                r["state"].as_str(),
                Some("Succeeded" | "Failed" | "Canceled")
            )
        })
    });
}

#[test]
fn schedules_are_stored_listed_paused_and_deleted_and_bad_input_names_the_field() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let p = project_on(&server);
    let schedule = |args: &[&str]| api(&p, &server, &[&["run", "hello"], args].concat());

    let err = schedule(&["--schedule", "*/5 * * * *"]).fails(2);
    assert!(
        err.contains("Cron trigger too frequent. no more than one job per 10 minutes is allowed"),
        "MLRun's minimum interval: {err}"
    );
    let err = schedule(&["--schedule", "61 * * * *"]).fails(2);
    assert!(
        err.contains("schedule:") && err.contains("minute `61`"),
        "{err}"
    );
    let err = schedule(&["--schedule", "0 3 * * *", "--timezone", "Mars/Olympus"]).fails(2);
    assert!(
        err.contains("timezone: unknown time zone `Mars/Olympus`"),
        "{err}"
    );
    let err = schedule(&["--schedule", "0 3 * * *", "--overlap", "sometimes"]).fails(2);
    assert!(err.contains("overlap: unknown policy `sometimes`"), "{err}");
    let err = schedule(&["--schedule", "0 3 * * *", "--engine", "remote:local"]).fails(2);
    assert!(
        err.contains("'schedule' argument is not supported for 'local' engine."),
        "{err}"
    );
    let err = schedule(&["--schedule", "0 3 * * *", "--engine", "remote:kfp"]).fails(2);
    assert!(
        err.contains("engine: this server has no KFP engine"),
        "{err}"
    );
    let err = api(&p, &server, &["run", "nope", "--schedule", "0 3 * * *"]).fails(2);
    assert!(err.contains("workflow:") && err.contains("nope"), "{err}");
    let err = p
        .baton(&["run", "hello", "--schedule", "0 3 * * *"])
        .fails(2);
    assert!(err.contains("Schedules live on a baton server"), "{err}");
    let err = api(&p, &server, &["schedules", "list"]).ok();
    assert!(!err.contains("hello"), "nothing was stored: {err}");

    let record = schedule(&[
        "--schedule",
        "30 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--overlap",
        "buffer-one",
        "--catchup",
        "all",
        "--json",
    ])
    .json();
    assert_eq!(record["schedule"], "30 2 * * *");
    assert_eq!(record["timezone"], "Europe/Berlin");
    assert_eq!(record["overlap"], "buffer-one");
    assert_eq!(record["catchup"], "all");
    assert!(
        record["next_fire"].as_str().unwrap().ends_with(":30:00Z"),
        "{record:#}"
    );
    // The same name again updates it.
    schedule(&["--schedule", "0 4 * * *"]).ok();
    let listed = api(&p, &server, &["schedules", "list", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["schedule"], "0 4 * * *");
    let table = api(&p, &server, &["schedules", "list"]).ok();
    assert!(
        table.contains("NEXT FIRE") && table.contains("LAST STATE"),
        "{table}"
    );

    let backfill = |from: &str, to: &str| {
        let args = ["schedules", "backfill", "hello", "--from", from, "--to", to];
        api(&p, &server, &args).fails(2)
    };
    let err = backfill("2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z");
    assert!(
        err.contains("to:") && err.contains("in the future"),
        "{err}"
    );
    let err = backfill("2020-01-01T00:00:00Z", "2020-06-01T00:00:00Z");
    assert!(
        err.contains("from:") && err.contains("longer than the 31 days"),
        "{err}"
    );

    api(
        &p,
        &server,
        &["schedules", "pause", "hello", "--note", "disk full"],
    )
    .ok();
    let paused = api(&p, &server, &["schedules", "get", "hello", "--json"]).json();
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["note"], "disk full");
    assert!(paused.get("next_fire").is_none(), "{paused:#}");
    assert!(api(&p, &server, &["schedules", "list"])
        .ok()
        .contains("yes: disk full"));
    api(&p, &server, &["schedules", "resume", "hello"]).ok();
    let resumed = api(&p, &server, &["schedules", "get", "hello", "--json"]).json();
    assert_eq!(resumed["paused"], false);

    api(&p, &server, &["schedules", "delete", "hello"]).ok();
    let err = api(&p, &server, &["schedules", "get", "hello"]).fails(2);
    assert!(err.contains("Schedule `hello` not found"), "{err}");
}

#[test]
fn a_fire_runs_the_newest_workflow_version_labelled_with_its_schedule() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let p = project_on(&server);
    api(&p, &server, &["run", "hello", "--schedule", "0 3 * * *"]).ok();

    api(&p, &server, &["schedules", "trigger", "hello"]).ok();
    poll("the first fire's run", || {
        workflow_runs(&p, &server).len() == 1
    });
    all_runs_end(&p, &server);
    p.write("hello.yaml", HELLO_V2);
    log_workflow(&p, &server);
    api(&p, &server, &["schedules", "trigger", "hello"]).ok();
    poll("the second fire's run", || {
        workflow_runs(&p, &server).len() == 2
    });
    all_runs_end(&p, &server);

    let runs = workflow_runs(&p, &server);
    for run in &runs {
        assert_eq!(run["state"], "Succeeded", "{run:#}");
        assert_eq!(run["labels"]["mlrun/schedule-name"], "hello", "{run:#}");
    }
    // Newest first: the second fire ran the second version of the artifact.
    assert_eq!(runs[0]["steps"][0]["name"], "greet-again");
    assert_eq!(runs[1]["steps"][0]["name"], "greet");
    assert_ne!(runs[0]["workflow"]["uid"], runs[1]["workflow"]["uid"]);
    // Step runs carry the schedule's label too.
    let step_runs = api(&p, &server, &["runs", "list", "--json"]).json();
    for run in step_runs.as_array().unwrap() {
        assert_eq!(
            run["metadata"]["labels"]["mlrun/schedule-name"], "hello",
            "{run:#}"
        );
    }
    let fires = fires(&p, &server, "hello");
    assert_eq!(fires.len(), 2);
    assert!(
        fires
            .iter()
            .all(|f| f["cause"] == "trigger" && f["state"] == "ended"),
        "{fires:#?}"
    );
    let listed = api(&p, &server, &["schedules", "list"]).ok();
    assert!(listed.contains("ended: Succeeded"), "{listed}");
}

#[test]
fn a_cron_fire_comes_on_the_real_clock() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &["--schedule-min-interval", "0"]);
    let p = project_on(&server);
    api(&p, &server, &["run", "hello", "--schedule", "* * * * *"]).ok();
    // The next minute boundary is at most a minute away.
    let deadline = Instant::now() + Duration::from_secs(90);
    while workflow_runs(&p, &server).is_empty() {
        assert!(Instant::now() < deadline, "no fire within 90 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    let fire = &fires(&p, &server, "hello")[0];
    assert_eq!(fire["cause"], "schedule");
    assert!(
        fire["scheduled"].as_str().unwrap().ends_with(":00Z"),
        "{fire:#}"
    );
    all_runs_end(&p, &server);
}

#[test]
fn a_fire_recorded_right_before_the_server_stopped_runs_exactly_once_after_restart() {
    let (_dir, data) = data_dir();
    let mut server =
        TestServer::start_with_env(&data, &[], &[("BATON_TEST_FAULT", "after-fire-recorded")]);
    let p = project_on(&server);
    api(&p, &server, &["run", "hello", "--schedule", "0 3 * * *"]).ok();
    // The trigger is recorded; the server exits as the fire is about to start.
    let _ = api(&p, &server, &["schedules", "trigger", "hello"]);
    assert_eq!(server.wait_exit(), Some(70));

    for _ in 0..2 {
        let mut restarted = TestServer::start_in(&data, &[]);
        poll("the fire is started", || {
            fires(&p, &restarted, "hello")
                .iter()
                .all(|f| f["state"] == "started" || f["state"] == "ended")
        });
        all_runs_end(&p, &restarted);
        let runs = workflow_runs(&p, &restarted);
        assert_eq!(runs.len(), 1, "{runs:#?}");
        assert_eq!(runs[0]["state"], "Succeeded");
        let fire = &fires(&p, &restarted, "hello")[0];
        assert_eq!(fire["run_id"], runs[0]["id"]);
        restarted.stop_with(libc::SIGTERM);
    }
}

/// A small deterministic generator for the kill points (seeded from the clock, printed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn kill_9_at_random_points_of_a_busy_schedule_fires_each_time_exactly_once() {
    let (_dir, data) = data_dir();
    let flags = ["--schedule-min-interval", "0"];
    let server = TestServer::start_in(&data, &flags);
    let p = project_on(&server);
    api(
        &p,
        &server,
        &[
            "run",
            "hello",
            "--schedule",
            "* * * * *",
            "--overlap",
            "allow-all",
            "--catchup",
            "all",
        ],
    )
    .ok();
    let now = chrono::Utc::now();
    let now = now - chrono::Duration::seconds(now.timestamp() % 60);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut random = Lcg(seed);
    let mut server = server;
    let mut times = BTreeSet::new();
    // Five rounds: ten past minutes backfilled (ten fires at once), the server killed at a
    // random point while it starts them, and started again.
    for round in 0..5 {
        let from = (now - chrono::Duration::minutes(60 - 10 * round)).to_rfc3339();
        let to = (now - chrono::Duration::minutes(51 - 10 * round)).to_rfc3339();
        let backfilled = api(
            &p,
            &server,
            &[
                "schedules",
                "backfill",
                "hello",
                "--from",
                &from,
                "--to",
                &to,
            ],
        )
        .ok();
        assert_eq!(backfilled.lines().count(), 10, "{backfilled}");
        times.extend(backfilled.lines().map(str::to_string));
        std::thread::sleep(Duration::from_millis(random.below(600)));
        server.stop_with(libc::SIGKILL);
        server = TestServer::start_in(&data, &flags);
    }

    // Once things settle, every backfilled time has one fire with one run.
    poll("no fire is pending", || {
        fires(&p, &server, "hello")
            .iter()
            .all(|f| !matches!(f["state"].as_str(), Some("pending" | "buffered")))
    });
    let fires = fires(&p, &server, "hello");
    let by_time: BTreeMap<String, &Value> = fires
        .iter()
        .filter(|f| f["cause"] == "backfill")
        .map(|f| (f["scheduled"].as_str().unwrap().to_string(), f))
        .collect();
    assert_eq!(by_time.keys().cloned().collect::<BTreeSet<_>>(), times);

    // Every workflow run a fire started, found by its fire label: on its record, or on its
    // step runs when the server died before the record was stored.
    let mut runs_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for run in workflow_runs(&p, &server) {
        if let Some(fire) = run["labels"]["baton/schedule-fire"].as_str() {
            runs_of
                .entry(fire.to_string())
                .or_default()
                .insert(run["id"].as_str().unwrap().to_string());
        }
    }
    let step_runs = api(&p, &server, &["runs", "list", "--json"]).json();
    for run in step_runs.as_array().unwrap() {
        let labels = &run["metadata"]["labels"];
        if let Some(fire) = labels["baton/schedule-fire"].as_str() {
            runs_of
                .entry(fire.to_string())
                .or_default()
                .insert(labels["workflow"].as_str().unwrap().to_string());
        }
    }
    for fire in by_time.values() {
        let key = fire["scheduled_ms"].to_string();
        let runs = runs_of.get(&key).cloned().unwrap_or_default();
        let run_id = fire["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no run: {fire:#}"));
        assert_eq!(
            runs,
            BTreeSet::from([run_id.to_string()]),
            "kill points seeded with {seed}: {fire:#}"
        );
    }
    assert_eq!(
        runs_of.len(),
        by_time.len()
            + fires
                .iter()
                .filter(|f| f["cause"] != "backfill" && f["run_id"].is_string())
                .count(),
        "no run without its fire"
    );
}
