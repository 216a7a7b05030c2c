//! The fork transport's guarantees against a real Python (`$BATON_PYTHON`, else `python3`): a
//! handler that crashes its process fails only its own run, a dead worker fails its in-flight
//! runs with a clear reason and is replaced, no zombie is left, and each interpreter has its own
//! worker. (Every handler behaviour runs on both transports in `tests/runner_handlers.rs`.)

#![cfg(target_os = "linux")]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton::runner::{
    ContextSettings, ForkServer, HandlerOutcome, HandlerRequest, PythonRunner, RunState,
};
use common::{alive, poll, stat_fields};
use serde_json::{json, Map};

struct Fixture {
    dir: tempfile::TempDir,
    fork: ForkServer,
    python: PathBuf,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("code")).unwrap();
        let python = PythonRunner::from_env().resolve_executable().await.unwrap();
        Fixture {
            dir,
            fork: ForkServer::new(),
            python,
        }
    }

    fn runner(&self, python: &Path) -> PythonRunner {
        PythonRunner::new(python).with_fork_server(self.fork.clone())
    }

    fn write(&self, rel: &str, text: &str) {
        fs::write(self.dir.path().join("code").join(rel), text).unwrap();
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("run.log")
    }

    fn request(&self, handler: &str, params: serde_json::Value) -> HandlerRequest {
        HandlerRequest {
            code_dir: self.dir.path().join("code"),
            handler: handler.into(),
            params: params.as_object().cloned().unwrap_or_else(Map::new),
            inputs: BTreeMap::new(),
            context: ContextSettings {
                artifact_path: self.dir.path().join("artifacts"),
                ..ContextSettings::default()
            },
            code_source: None,
            stop_condition: None,
            env: Default::default(),
            keep_bytecode: false,
        }
    }

    async fn call(&self, handler: &str) -> baton::Result<HandlerOutcome> {
        self.runner(&self.python)
            .run(&self.request(handler, json!({})), &self.log())
            .await
    }

    fn worker(&self) -> u32 {
        self.fork.worker_pid(&self.python).expect("a live worker")
    }
}

/// The children of `pid` (from `/proc/*/stat`), with their state.
fn children(pid: u32) -> Vec<(i32, String)> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| {
            let f = stat_fields(p)?;
            (f[1] == pid.to_string()).then(|| (p, f[0].clone()))
        })
        .collect()
}

fn zombies_of(pid: u32) -> Vec<i32> {
    children(pid)
        .into_iter()
        .filter(|(_, state)| state == "Z")
        .map(|(p, _)| p)
        .collect()
}

#[tokio::test]
async fn a_crashing_handler_fails_only_its_run_and_the_worker_carries_on() {
    let fx = Fixture::new().await;
    fx.write(
        "h.py",
        "import ctypes, os, threading, time\n\n\
         def ok():\n    return 'fine'\n\n\
         def segfault():\n    ctypes.string_at(0)\n\n\
         def exits():\n    os._exit(3)\n\n\
         def threads():\n    threading.Thread(target=time.sleep, args=(3600,)).start()\n    return os.getpid()\n",
    );
    assert_eq!(
        fx.call("h:ok").await.unwrap().results["return"],
        json!("fine")
    );
    let worker = fx.worker();

    let err = fx.call("h:segfault").await.unwrap_err();
    assert!(err.to_string().contains("killed by signal 11"), "{err}");
    let err = fx.call("h:exits").await.unwrap_err();
    assert!(err.to_string().contains("exit status 3"), "{err}");
    // A thread left running does not keep the run (or its process) alive.
    let out = fx.call("h:threads").await.unwrap();
    let threads_pid = out.results["return"].as_i64().unwrap() as i32;

    assert_eq!(fx.call("h:ok").await.unwrap().state, RunState::Completed);
    assert_eq!(fx.worker(), worker, "the worker was replaced");
    // A run ends once its output and result are in; the worker reaps the child right after.
    // What is left is at most the spare it forked ahead for the next run, idle.
    poll("the worker reaps every run's child", || {
        let left = children(worker);
        left.len() <= 1
            && left
                .iter()
                .all(|(p, state)| *p != threads_pid && state == "S")
    });
    poll("no zombie child of this process", || {
        zombies_of(std::process::id()).is_empty()
    });
}

// Multi-threaded: `poll` blocks its thread while the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_worker_fails_its_running_handler_with_a_reason_and_is_replaced() {
    let fx = Fixture::new().await;
    let barrier = fx.dir.path().join("started");
    fx.write(
        "h.py",
        "import os, subprocess, sys, time\n\n\
         def ok():\n    return 1\n\n\
         def hang(barrier):\n    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])\n    \
         with open(barrier + '.tmp', 'w') as f:\n        f.write('%d %d' % (os.getpid(), child.pid))\n    \
         os.replace(barrier + '.tmp', barrier)\n    time.sleep(3600)\n",
    );
    fx.call("h:ok").await.unwrap();
    let worker = fx.worker();
    let runner = fx.runner(&fx.python);
    let req = fx.request("h:hang", json!({"barrier": barrier.to_string_lossy()}));
    let log = fx.log();
    let run = tokio::spawn(async move { runner.run(&req, &log).await });
    poll("the handler to start", || barrier.exists());
    let pids: Vec<i32> = fs::read_to_string(&barrier)
        .unwrap()
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();

    // SAFETY: kill(2) of the worker this test started.
    assert_eq!(unsafe { libc::kill(worker as i32, libc::SIGKILL) }, 0);
    let err = run.await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("warm Python worker") && text.contains("died") && text.contains("h:hang"),
        "{text}"
    );
    // The handler and its subprocess die with their run (through the watch pipe).
    poll("the orphaned handler and its subprocess to die", || {
        pids.iter().all(|&p| !alive(p))
    });

    assert_eq!(fx.call("h:ok").await.unwrap().state, RunState::Completed);
    assert_ne!(fx.worker(), worker, "the dead worker was not replaced");
    poll("no zombie child of this process", || {
        zombies_of(std::process::id()).is_empty()
    });
}

/// The worker's one idle child (its spare), once it has forked it.
fn spare_of(worker: u32) -> i32 {
    let mut spare = 0;
    poll("the worker to fork its spare", || {
        let left = children(worker);
        spare = left.first().map_or(0, |(p, _)| *p);
        left.len() == 1 && left[0].1 == "S"
    });
    spare
}

// Multi-threaded: `poll` blocks its thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_to_the_spare_forked_ahead_and_a_spare_dies_with_its_worker() {
    let fx = Fixture::new().await;
    fx.write("h.py", "import os\n\ndef pid():\n    return os.getpid()\n");
    fx.call("h:pid").await.unwrap();
    let worker = fx.worker();

    let spare = spare_of(worker);
    let out = fx.call("h:pid").await.unwrap();
    assert_eq!(
        out.results["return"],
        json!(spare),
        "the run was not handed to the spare"
    );

    // The next spare is forked once the worker is idle; it leaves when its worker is gone.
    let next = spare_of(worker);
    assert_ne!(next, spare);
    // SAFETY: kill(2) of the worker this test started.
    assert_eq!(unsafe { libc::kill(worker as i32, libc::SIGKILL) }, 0);
    poll("the dead worker's spare to leave", || !alive(next));
    fx.call("h:pid").await.unwrap();
    assert_ne!(fx.worker(), worker, "the dead worker was not replaced");
    poll("no zombie child of this process", || {
        zombies_of(std::process::id()).is_empty()
    });
}

#[tokio::test]
async fn each_interpreter_has_its_own_worker() {
    let fx = Fixture::new().await;
    fx.write(
        "h.py",
        "import sys\n\ndef main():\n    return sys.argv[0]\n",
    );
    let other = fx.dir.path().join("bin").join("python3");
    fs::create_dir(other.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&fx.python, &other).unwrap();
    let out = fx
        .runner(&other)
        .run(&fx.request("h:main", json!({})), &fx.log())
        .await;
    assert_eq!(out.unwrap().state, RunState::Completed);
    fx.call("h:main").await.unwrap();
    let (a, b) = (fx.fork.worker_pid(&other).unwrap(), fx.worker());
    assert_ne!(a, b);
    assert!(fs::read_link(format!("/proc/{a}/exe")).is_ok());

    // Dropping the server stops its workers, and they are reaped.
    drop(fx.fork);
    poll("the workers to exit", || {
        !alive(a as i32) && !alive(b as i32)
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
}
