//! A workflow whose steps wait for a file (the gate), so a test or a bench holds it running as
//! long as it needs: project `my-project` with function `gate` and workflow `gated` (`hold`,
//! then `after`), on the embedded database or on a server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::{poll, Run, TestProject};

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

/// The gated project, on the server at `api` if given.
pub struct Gated {
    /// The project folder.
    pub project: TestProject,
    api: Option<String>,
    /// The file whose existence lets the steps finish.
    pub gate: PathBuf,
}

impl Gated {
    /// Sets the project up (code artifacts for the function and the workflow).
    pub fn new(api: Option<&str>) -> Gated {
        let project = TestProject::new();
        project.write("gate.py", GATE);
        project.write("gated.yaml", GATED);
        let gate = project.path().join("gate");
        let gated = Gated {
            project,
            api: api.map(str::to_string),
            gate,
        };
        for args in [
            &["log-code", "gate_code", "--local-path", "gate.py"][..],
            &[
                "set-function",
                "--name",
                "gate",
                "--func",
                "store://artifacts/my-project/gate_code",
                "--handler",
                "gate:wait",
            ],
            &[
                "log-code",
                "gated",
                "--local-path",
                "gated.yaml",
                "--code-type",
                "workflow",
            ],
            &[
                "set-workflow",
                "--name",
                "gated",
                "--path",
                "store://artifacts/my-project/gated",
            ],
        ] {
            gated.baton(args).ok();
        }
        gated
    }

    /// `baton ARGS` in the project, against the server if there is one.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.project.command(args);
        if let Some(api) = &self.api {
            command.env("BATON_API", api);
        }
        command
    }

    /// Runs `baton ARGS` to its end.
    pub fn baton(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// Starts `baton run gated` (on the server's local engine when there is a server) and
    /// returns it with the run's id once its first step runs.
    pub fn start(&self) -> (Running, String) {
        let gate = format!("gate={}", self.gate.display());
        let mut args = vec!["run", "gated", "--no-watch", "-a", &gate];
        if self.api.is_some() {
            args.extend(["--engine", "remote:local"]);
        }
        let child = self
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = Running(child);
        let mut id = String::new();
        poll("the first step runs", || {
            let runs = self.baton(&["workflows", "list", "--json"]).json();
            let Some([run]) = runs.as_array().map(Vec::as_slice) else {
                return false;
            };
            id = run["id"].as_str().unwrap().to_string();
            run["steps"][0]["state"] == "Running" && run["steps"][0]["run_uid"].is_string()
        });
        (running, id)
    }

    /// Workflow run `id`'s record.
    pub fn record(&self, id: &str) -> Value {
        self.baton(&["workflows", "get", id, "--json"]).json()
    }

    /// Lets every step finish.
    pub fn open(&self) {
        std::fs::write(&self.gate, "").unwrap();
    }
}

/// A `baton run`, killed and reaped when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
