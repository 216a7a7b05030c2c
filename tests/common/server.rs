//! A real `baton server` on a loopback port for the integration tests, and the MLRun-shaped
//! records a test stores through it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

/// A `baton server` child process; killed (SIGKILL) and reaped when dropped, so a failing test
/// never leaves it running.
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The server's data folder.
    pub data: PathBuf,
    /// Where its stderr goes.
    pub log: PathBuf,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl TestServer {
    /// A server on a free port over a new data folder kept in `keep` (so a restarted server
    /// finds it), with extra arguments.
    pub fn start_in(data: &Path, extra: &[&str]) -> TestServer {
        TestServer::start_with_env(data, extra, &[])
    }

    /// [`TestServer::start_in`] with extra environment variables for the server.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        let log = data.with_extension("log");
        let mut command = Command::new(super::baton_bin());
        command
            .args(["server", "--port", "0", "--data-dir"])
            .arg(data)
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("BATON_LOG")
            .env_remove("BATON_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = command.spawn().expect("baton server starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "unexpected first line `{line}`; server log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        let token = extra
            .iter()
            .position(|a| *a == "--token")
            .map(|i| extra[i + 1].to_string());
        TestServer {
            child: Some(child),
            url,
            data: data.to_path_buf(),
            log,
            token,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Waits for the server to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        self.child.take().expect("running").wait().unwrap().code()
    }

    /// Sends `signal` and waits for the server to exit; returns its exit code.
    pub fn stop_with(&mut self, signal: i32) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        child.wait().unwrap().code()
    }

    /// A request with the server's token, if it has one.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A request without any token.
    pub fn anonymous(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// Sends a request and returns its status and body as JSON (`Null` when not JSON).
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            // Like MLRun's client: JSON bytes without a Content-Type.
            request = request.body(body.to_string());
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET` that must succeed; returns the body.
    #[track_caller]
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Creates project `name`.
    pub fn create_project(&self, name: &str) {
        let (status, body) = self.call(
            reqwest::Method::POST,
            "/api/v1/projects",
            Some(&json!({"kind": "project", "metadata": {"name": name}, "spec": {}, "status": {}})),
        );
        assert_eq!(status, 201, "{body}");
    }

    /// Writes `text` where MLRun's client would (under the data folder) and stores the code
    /// artifact record `key` pointing at it; returns its store URI.
    pub fn log_code(
        &self,
        project: &str,
        key: &str,
        file: &str,
        text: &str,
        code_type: &str,
    ) -> String {
        let target = self.data.join("client-files").join(key).join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, text).unwrap();
        let (status, body) = self.call(
            reqwest::Method::PUT,
            &format!("/api/v2/projects/{project}/artifacts/{key}?tree=tree-{key}"),
            Some(&json!({
                "kind": "code",
                "metadata": {"key": key, "project": project, "tree": format!("tree-{key}")},
                "spec": {"target_path": target, "src_path": format!("./{file}"), "code_type": code_type},
                "status": {"state": "created"},
            })),
        );
        assert_eq!(status, 200, "{body}");
        format!("store://artifacts/{project}/{key}")
    }

    /// Stores job function `name` whose source is `source`; returns the status and body.
    pub fn store_function(
        &self,
        project: &str,
        name: &str,
        source: &str,
        handler: &str,
    ) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/functions/{name}?versioned=True"),
            Some(&json!({
                "kind": "job",
                "metadata": {"name": name, "project": project, "tag": "latest"},
                "spec": {"image": "", "default_handler": handler, "build": {"source": source, "load_source_on_run": true}},
            })),
        )
    }

    /// Submits a run of function `name` with `params` under the client's `uid`.
    pub fn submit_job(&self, project: &str, name: &str, uid: &str, params: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "/api/v1/submit_job",
            Some(&json!({"task": {
                "metadata": {"name": format!("{name}-main"), "project": project, "uid": uid},
                "spec": {"function": format!("{project}/{name}@hash"), "parameters": params},
                "status": {"state": "created"},
            }})),
        )
    }

    /// Polls run `uid` until its state is final; returns the run.
    #[track_caller]
    pub fn wait_run(&self, project: &str, uid: &str) -> Value {
        let mut run = Value::Null;
        super::poll(&format!("run {uid} ends"), || {
            run = self.get(&format!("/api/v1/projects/{project}/runs/{uid}"))["data"].clone();
            !matches!(run["status"]["state"].as_str(), Some("created" | "running"))
        });
        run
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A data folder for servers, removed at the end of the test.
pub fn data_dir() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// `baton ARGS` in project `p`, against `server` (`BATON_API`).
pub fn api(p: &super::TestProject, server: &TestServer, args: &[&str]) -> super::Run {
    super::Run::from(
        p.command(args)
            .env("BATON_API", &server.url)
            .output()
            .unwrap(),
    )
}
