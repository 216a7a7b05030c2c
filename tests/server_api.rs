//! `baton server` over HTTP: MLRun's routes, auth, bad input, and what a run leaves behind.

mod common;

use common::server::{data_dir, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const MY_FUNC: &str = "def main(p1):\n    print('hello', p1)\n    return p1 * 2\n";

const SLEEPER: &str = "import time\n\ndef main(seconds=60):\n    print('sleeping', flush=True)\n    time.sleep(seconds)\n";

/// The MLRun error class a body's `detail` names.
fn detail(body: &Value) -> &str {
    body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail in {body}"))
}

#[test]
fn a_job_runs_on_the_server_under_the_clients_uid_with_logs_and_outputs() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    server.create_project("p");
    let source = server.log_code("p", "my_func_code", "my_func.py", MY_FUNC, "function");
    let (status, body) = server.store_function("p", "my-func", &source, "my_func:main");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hash_key"].as_str().unwrap().len(), 40, "{body}");
    let funcs = server.get("/api/v1/projects/p/functions")["funcs"].clone();
    assert_eq!(funcs[0]["name"], "my-func", "{funcs}");
    assert_eq!(funcs[0]["url"], source.as_str(), "{funcs}");

    let (status, body) = server.submit_job("p", "my-func", "c0ffee01", json!({"p1": 5}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["metadata"]["uid"], "c0ffee01");
    let run = server.wait_run("p", "c0ffee01");
    assert_eq!(run["status"]["state"], "completed", "{run}");
    assert_eq!(run["status"]["results"], json!({"return": 10}));

    let response = server
        .request(
            Method::GET,
            "/api/v1/projects/p/logs/c0ffee01?offset=0&size=1048576",
        )
        .send()
        .unwrap();
    assert_eq!(response.headers()["x-mlrun-run-state"], "completed");
    let log = response.text().unwrap();
    assert!(log.contains("hello 5"), "{log}");
    // The client advances its offset by what it got; past the end there is nothing more.
    let rest = server
        .request(
            Method::GET,
            &format!(
                "/api/v1/projects/p/logs/c0ffee01?offset={}&size=100",
                log.len()
            ),
        )
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(rest, "");

    // The same uid again is a conflict, not a second record.
    let (status, body) = server.submit_job("p", "my-func", "c0ffee01", json!({"p1": 1}));
    assert_eq!(status, 409, "{body}");
}

#[test]
fn role_checks_refuse_a_workflow_artifact_as_a_function_and_the_reverse() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    server.create_project("p");
    let workflow = server.log_code(
        "p",
        "wf_code",
        "wf.yaml",
        "name: w\nsteps: []\n",
        "workflow",
    );
    let function = server.log_code("p", "fn_code", "my_func.py", MY_FUNC, "function");

    let (status, body) = server.store_function("p", "bad", &workflow, "wf:main");
    assert_eq!(status, 400, "{body}");
    assert!(
        detail(&body).starts_with("MLRunInvalidArgumentError("),
        "{body}"
    );
    assert!(detail(&body).contains("workflow"), "{body}");

    let (status, body) = server.call(
        Method::POST,
        "/api/v1/projects/p/workflows/bad_wf/submit",
        Some(&json!({"spec": {"name": "bad_wf", "engine": "local", "path": function, "args": {}}})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(detail(&body).contains("code_type"), "{body}");
    assert!(detail(&body).contains("function"), "{body}");
}

#[test]
fn every_route_but_healthz_needs_the_token_and_it_never_leaks() {
    let token = "s3cretToken";
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &["--token", token, "-v"]);
    let routes: &[(Method, &str)] = &[
        (Method::GET, "/api/v1/client-spec"),
        (Method::GET, "/api/v1/projects"),
        (Method::POST, "/api/v1/projects"),
        (Method::GET, "/api/v1/projects/p"),
        (Method::PUT, "/api/v1/projects/p"),
        (Method::PUT, "/api/v2/projects/p/artifacts/k"),
        (Method::GET, "/api/v2/projects/p/artifacts/k"),
        (Method::GET, "/api/v1/build/status"),
        (Method::GET, "/api/v1/projects/p/functions"),
        (Method::POST, "/api/v1/projects/p/functions/f"),
        (Method::GET, "/api/v1/projects/p/functions/f"),
        (Method::POST, "/api/v1/submit_job"),
        (Method::GET, "/api/v1/projects/p/runs"),
        (Method::GET, "/api/v1/projects/p/runs/u"),
        (Method::GET, "/api/v1/projects/p/logs/u"),
        (Method::POST, "/api/v1/projects/p/workflows/w/submit"),
        (Method::GET, "/api/v1/projects/p/workflows/w/runs/r"),
        (Method::GET, "/api/v1/projects/p/pipelines/r"),
        (
            Method::POST,
            "/api/v1/projects/p/pipelines/r/push-notifications",
        ),
        (Method::POST, "/api/baton/v1/engine/runs"),
        (Method::GET, "/api/baton/v1/engine/runs/r"),
        (Method::GET, "/api/baton/v1/engine/runs/r/events"),
        (Method::POST, "/api/baton/v1/engine/runs/r/terminate"),
        (Method::POST, "/api/baton/v1/projects/p/workflows/w/runs"),
        (Method::GET, "/api/baton/v1/projects/p/workflow-runs/r"),
        (
            Method::POST,
            "/api/baton/v1/projects/p/workflow-runs/r/retry",
        ),
        (
            Method::POST,
            "/api/baton/v1/projects/p/workflow-runs/r/terminate",
        ),
        (Method::GET, "/api/v1/no-such-route"),
    ];
    for (method, path) in routes {
        let missing = server.anonymous(method.clone(), path).send().unwrap();
        assert_eq!(missing.status(), 401, "{method} {path} without a token");
        let body: Value = missing.json().unwrap();
        assert!(
            detail(&body).starts_with("MLRunUnauthorizedError"),
            "{body}"
        );
        let wrong = server
            .anonymous(method.clone(), path)
            .bearer_auth("s3cretTokem")
            .send()
            .unwrap();
        assert_eq!(wrong.status(), 401, "{method} {path} with a wrong token");
        assert!(!wrong.text().unwrap().contains(token));
        let right = server
            .request(method.clone(), path)
            .body("{}")
            .send()
            .unwrap();
        assert_ne!(right.status(), 401, "{method} {path} with the token");
    }
    let health = server.anonymous(Method::GET, "/healthz").send().unwrap();
    assert_eq!(health.status(), 200);
    // Requests were traced, and the token is in no line of the log.
    let log = server.log_text();
    assert!(log.contains("/api/v1/client-spec"), "{log}");
    assert!(!log.contains(token), "{log}");
}

#[test]
fn bad_input_is_a_4xx_naming_what_to_fix_and_stores_nothing() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &["--body-limit", "4096"]);
    server.create_project("p");

    // Malformed JSON, and a field of the wrong type, named by its path.
    let (status, body) = server.call(Method::POST, "/api/v1/projects", None);
    assert_eq!(status, 400, "{body}");
    let response = server
        .request(Method::POST, "/api/v1/projects")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().unwrap();
    assert!(detail(&body).contains("Malformed JSON body"), "{body}");
    let (status, body) = server.call(
        Method::POST,
        "/api/v1/projects",
        Some(&json!({"kind": "project", "metadata": {"name": 5}, "spec": {}})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(detail(&body).contains("`metadata.name`"), "{body}");

    // Over the body limit.
    let big = json!({"kind": "project", "metadata": {"name": "big"}, "spec": {"description": "x".repeat(10_000)}});
    let (status, body) = server.call(Method::POST, "/api/v1/projects", Some(&big));
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        server.call(Method::GET, "/api/v1/projects/big", None).0,
        404
    );

    // Unknown projects and names that would leave the data folder.
    let (status, body) = server.call(Method::GET, "/api/v1/projects/nope", None);
    assert_eq!(status, 404, "{body}");
    assert!(detail(&body).contains("Project `nope` not found"), "{body}");
    for path in [
        "/api/v1/projects/..%2F..%2Fetc",
        "/api/v2/projects/p/artifacts/..%2Fescape?tree=t",
    ] {
        let (status, body) = server.call(Method::GET, path, None);
        assert_eq!(status, 400, "{path}: {body}");
    }
    // URL libraries fold `..` away; a raw request still carries it.
    let raw = raw_get(&server.url, "/api/v1/projects/..");
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    let (status, body) = server.call(
        Method::PUT,
        "/api/v2/projects/p/artifacts/..%2Fx?tree=t",
        Some(&json!({"kind": "code", "metadata": {"key": "../x"}, "spec": {"target_path": "/etc/passwd"}})),
    );
    assert_eq!(status, 400, "{body}");

    // A record whose payload is missing is refused whole: nothing is stored.
    let (status, body) = server.call(
        Method::PUT,
        "/api/v2/projects/p/artifacts/ghost?tree=t",
        Some(&json!({"kind": "code", "metadata": {"key": "ghost"}, "spec": {"target_path": data.join("nowhere.py")}})),
    );
    assert_eq!(status, 404, "{body}");
    assert!(detail(&body).contains("nowhere.py"), "{body}");
    assert_eq!(
        server
            .call(Method::GET, "/api/v2/projects/p/artifacts/ghost", None)
            .0,
        404
    );

    // A job without a function, a run of an unknown function.
    let (status, body) = server.call(
        Method::POST,
        "/api/v1/submit_job",
        Some(&json!({"task": {"metadata": {"project": "p"}, "spec": {}}})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(detail(&body).contains("task.spec.function"), "{body}");
    let (status, body) = server.submit_job("p", "ghost", "u1", json!({}));
    assert_eq!(status, 404, "{body}");
    assert_eq!(server.get("/api/v1/projects/p/runs")["runs"], json!([]));

    // An unknown route: MLRun's error body, 404.
    let (status, body) = server.call(Method::GET, "/api/v1/what", None);
    assert_eq!(status, 404);
    assert!(
        detail(&body).contains("No route `GET /api/v1/what`"),
        "{body}"
    );
}

/// A GET sent as typed, with no URL normalisation; returns the whole answer.
fn raw_get(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The parent process of `pid` (from `/proc/<pid>/stat`).
fn parent_of(pid: i64) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The parent process of the handlers of two jobs on a server started with `args` (returned
/// with its folder).
fn job_handler_parents(args: &[&str]) -> (tempfile::TempDir, TestServer, Vec<i64>) {
    let (dir, data) = data_dir();
    let server = TestServer::start_in(&data, args);
    server.create_project("p");
    let source = server.log_code(
        "p",
        "parent_code",
        "parent.py",
        "import os\n\ndef main():\n    return os.getppid()\n",
        "function",
    );
    assert_eq!(
        server
            .store_function("p", "parent", &source, "parent:main")
            .0,
        200
    );
    let parents = ["job00001", "job00002"]
        .into_iter()
        .map(|uid| {
            assert_eq!(server.submit_job("p", "parent", uid, json!({})).0, 200);
            let run = server.wait_run("p", uid);
            assert_eq!(run["status"]["state"], "completed", "{run}");
            run["status"]["results"]["return"].as_i64().unwrap()
        })
        .collect();
    (dir, server, parents)
}

#[test]
fn jobs_are_forked_by_the_servers_warm_worker_unless_isolation_is_process() {
    let (_dir, server, parents) = job_handler_parents(&[]);
    assert_eq!(parents[0], parents[1], "two workers: {parents:?}");
    assert_eq!(parent_of(parents[0]), i64::from(server.pid()));

    // Each handler is the child of its own `baton runner`, gone once the run ended.
    let (_dir, server, parents) = job_handler_parents(&["--isolation", "process"]);
    assert_ne!(parents[0], parents[1]);
    assert!(
        parents.iter().all(|&p| p != i64::from(server.pid())),
        "{parents:?}"
    );
}

#[test]
fn sigterm_stops_the_server_and_records_its_running_job_aborted() {
    let (_dir, data) = data_dir();
    let mut server = TestServer::start_in(&data, &[]);
    server.create_project("p");
    let source = server.log_code("p", "sleeper_code", "sleeper.py", SLEEPER, "function");
    assert_eq!(
        server
            .store_function("p", "sleeper", &source, "sleeper:main")
            .0,
        200
    );
    assert_eq!(
        server.submit_job("p", "sleeper", "sleepy1", json!({})).0,
        200
    );
    common::poll("the handler runs", || {
        let log = server
            .request(Method::GET, "/api/v1/projects/p/logs/sleepy1")
            .send()
            .unwrap()
            .text()
            .unwrap();
        log.contains("sleeping")
    });
    assert_eq!(server.stop_with(libc::SIGTERM), Some(0));

    // Nothing of the run is left running, and its record says how it ended.
    let again = TestServer::start_in(&data, &[]);
    let run = again.get("/api/v1/projects/p/runs/sleepy1")["data"].clone();
    assert_eq!(run["status"]["state"], "aborted", "{run}");
}

/// MLRun's client pins the tree it chose in the URI it hands out; logging identical code again
/// under a new tree keeps the version (and its first tree), and the new URI still resolves.
#[test]
fn identical_code_logged_again_under_a_new_tree_resolves_by_uid() {
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    server.create_project("p");
    server.log_code("p", "my_func_code", "my_func.py", MY_FUNC, "function");
    let target = data.join("client-files/my_func_code/my_func.py");
    let (status, again) = server.call(
        Method::PUT,
        "/api/v2/projects/p/artifacts/my_func_code?tree=second-tree",
        Some(&json!({
            "kind": "code",
            "metadata": {"key": "my_func_code", "project": "p", "tree": "second-tree"},
            "spec": {"target_path": target, "src_path": "./my_func.py", "code_type": "function"},
        })),
    );
    assert_eq!(status, 200, "{again}");
    let uid = again["metadata"]["uid"].as_str().unwrap();
    let pinned = format!("store://artifacts/p/my_func_code#0@second-tree^{uid}");
    assert_eq!(
        server
            .store_function("p", "my-func", &pinned, "my_func:main")
            .0,
        200
    );
    assert_eq!(
        server
            .submit_job("p", "my-func", "again01", json!({"p1": 2}))
            .0,
        200
    );
    let run = server.wait_run("p", "again01");
    assert_eq!(run["status"]["state"], "completed", "{run}");
    assert_eq!(run["status"]["results"]["return"], 4);
}

/// `--max-workers 1`: a second job waits, recorded `created`, until the first has ended.
#[test]
fn jobs_beyond_max_workers_wait_as_created_until_a_worker_is_free() {
    let (dir, data) = data_dir();
    let server = TestServer::start_in(&data, &["--max-workers", "1"]);
    server.create_project("p");
    let waiter = "import os, time\n\ndef main(flag):\n    print('waiting', flush=True)\n    while not os.path.exists(flag):\n        time.sleep(0.02)\n    return 'done'\n";
    let source = server.log_code("p", "waiter_code", "waiter.py", waiter, "function");
    assert_eq!(
        server
            .store_function("p", "waiter", &source, "waiter:main")
            .0,
        200
    );
    let flag = dir.path().join("go");
    let params = json!({"flag": flag});
    assert_eq!(
        server
            .submit_job("p", "waiter", "first01", params.clone())
            .0,
        200
    );
    common::poll("the first job runs", || {
        let log = server
            .request(Method::GET, "/api/v1/projects/p/logs/first01")
            .send()
            .unwrap()
            .text()
            .unwrap();
        log.contains("waiting")
    });
    assert_eq!(server.submit_job("p", "waiter", "second1", params).0, 200);
    // The only worker is busy: the second job has not started, however long it waits.
    for _ in 0..10 {
        let second = server.get("/api/v1/projects/p/runs/second1")["data"].clone();
        assert_eq!(second["status"]["state"], "created", "{second}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(&flag, "").unwrap();
    for uid in ["first01", "second1"] {
        let run = server.wait_run("p", uid);
        assert_eq!(run["status"]["state"], "completed", "{run}");
    }
}
