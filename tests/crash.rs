//! Crash tests: `baton run`, one step's runner or one step's handler is killed with SIGINT,
//! SIGTERM, SIGHUP or SIGKILL at a random point of a three-step workflow whose handlers sleep
//! and start a grandchild. Afterwards no process of the run may be alive, every record must be
//! terminal and agree with the others, and the database must pass `PRAGMA integrity_check`.
//!
//! The random point (which step, how long after its handler started) comes from a seeded
//! generator: set `BATON_CRASH_SEED` to replay a failure (the seed is in every message). What is
//! asserted never depends on timing: "eventually dead" and "eventually settled" are polled with
//! a generous deadline.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{alive, poll, stat_fields, TestProject};

const STEPS: &str = "import os, subprocess, time\n\n\ndef work(context, dir, name, seconds=1.0):\n    \"\"\"Starts a grandchild, writes `<pid> <runner pid> <pgid> <grandchild pid>`, sleeps.\"\"\"\n    grandchild = subprocess.Popen(['sleep', '30'])\n    path = os.path.join(dir, name)\n    with open(path + '.tmp', 'w') as out:\n        out.write('%d %d %d %d' % (os.getpid(), os.getppid(), os.getpgrp(), grandchild.pid))\n    os.replace(path + '.tmp', path)\n    time.sleep(seconds)\n    context.log_result('done', name)\n";

const FLOW: &str = "name: chain\nparams: [{name: dir}]\nsteps:\n  - {name: s1, function: steps, params: {dir: '{{args.dir}}', name: s1, seconds: 0.6}}\n  - {name: s2, function: steps, params: {dir: '{{args.dir}}', name: s2, seconds: 0.6}, after: [s1]}\n  - {name: s3, function: steps, params: {dir: '{{args.dir}}', name: s3, seconds: 0.6}, after: [s2]}\n";

const STEP_NAMES: [&str; 3] = ["s1", "s2", "s3"];

const SIGNALS: [(i32, &str); 4] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGKILL, "SIGKILL"),
];

/// What gets the signal.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The `baton run` process.
    Driver,
    /// The `baton runner` of the chosen step.
    Runner,
    /// The Python handler of the chosen step.
    Handler,
}

/// A small deterministic generator (xorshift64*), so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn seed(default: u64) -> u64 {
    std::env::var("BATON_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn project() -> TestProject {
    let p = TestProject::new();
    p.write("steps.py", STEPS);
    p.log_code("steps_code", "steps.py", &[]);
    p.set_store_function("steps", "steps_code", "steps:work");
    p.write("chain.yaml", FLOW);
    p.log_code("chain_wf", "chain.yaml", &["--code-type", "workflow"]);
    p.baton(&[
        "set-workflow",
        "--name",
        "chain",
        "--path",
        "store://artifacts/my-project/chain_wf",
    ])
    .ok();
    p
}

/// The live (not zombie) processes whose process group is `pgid`, from `/proc`.
fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|f| {
                !matches!(f[0].as_str(), "Z" | "X") && f[2].parse::<i32>().ok() == Some(pgid)
            })
        })
        .collect()
}

/// The pids a step's handler wrote: (handler, runner, handler's group, grandchild).
fn step_pids(dir: &Path, step: &str) -> Option<[i32; 4]> {
    let text = std::fs::read_to_string(dir.join(step)).ok()?;
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    Some([pids[0], pids[1], pids[2], pids[3]])
}

fn start(p: &TestProject, dir: &Path) -> Child {
    let arg = format!("dir={}", dir.display());
    p.command(&["run", "chain", "-a", &arg, "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group, as a shell job: the driver and its runners share it.
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Waits (at most 30 s) for the driver to exit on its own.
fn wait_for_exit(child: &mut Child, case: &str) {
    poll(&format!("`baton run` to exit ({case})"), || {
        child.try_wait().unwrap().is_some()
    });
}

/// Whether a step's state agrees with the state its run ended in.
fn agree(step_state: &str, run_state: &str) -> bool {
    matches!(
        (step_state, run_state),
        ("Succeeded", "completed") | ("Failed", "error" | "aborted") | ("Canceled", "aborted")
    )
}

/// Whether every record of workflow run `id` is terminal; panics when they disagree.
fn settled(p: &TestProject, id: &str, case: &str) -> bool {
    let record = p.baton(&["workflows", "get", id, "--json"]).json();
    let state = record["state"].as_str().unwrap();
    if !matches!(state, "Succeeded" | "Failed" | "Canceled") {
        return false;
    }
    let steps = record["steps"].as_array().unwrap();
    if steps.iter().any(|s| {
        !matches!(
            s["state"].as_str().unwrap(),
            "Succeeded" | "Failed" | "Skipped" | "Canceled"
        )
    }) {
        return false;
    }
    let label = format!("workflow={id}");
    let runs = p
        .baton(&["runs", "list", "--label", &label, "--json"])
        .json();
    let runs = runs.as_array().unwrap();
    if runs.iter().any(|r| {
        !matches!(
            r["status"]["state"].as_str().unwrap(),
            "completed" | "error" | "aborted"
        )
    }) {
        return false;
    }
    // Settled: now everything must agree.
    let all_succeeded = steps.iter().all(|s| s["state"] == "Succeeded");
    assert_eq!(
        state == "Succeeded",
        all_succeeded,
        "{case}: workflow state vs its steps: {record:#}"
    );
    for step in steps {
        let step_state = step["state"].as_str().unwrap();
        match step["run_uid"].as_str() {
            Some(uid) => {
                let run = p.baton(&["runs", "get", uid, "--json"]).json();
                let run_state = run["status"]["state"].as_str().unwrap();
                assert!(
                    agree(step_state, run_state),
                    "{case}: step `{}` is {step_state} but its run `{uid}` is {run_state}: {record:#}\n{run:#}",
                    step["name"]
                );
            }
            None => assert!(
                matches!(step_state, "Skipped" | "Canceled"),
                "{case}: step `{}` is {step_state} without a run: {record:#}",
                step["name"]
            ),
        }
    }
    // Every run recorded for the workflow belongs to one of its steps.
    for run in runs {
        let uid = &run["metadata"]["uid"];
        assert!(
            steps.iter().any(|s| &s["run_uid"] == uid),
            "{case}: run {uid} is linked to no step: {record:#}"
        );
    }
    true
}

fn integrity_check(p: &TestProject) {
    let db = rusqlite::Connection::open(p.path().join(".baton").join("baton.db")).unwrap();
    let result: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(result, "ok");
}

/// Runs the workflow once per signal, killing `target` at a random point, then checks the
/// aftermath.
fn crash(target: Target, default_seed: u64) {
    let seed = seed(default_seed);
    let mut rng = Rng(seed | 1);
    let p = project();
    for (signal, signal_name) in SIGNALS {
        let step = STEP_NAMES[rng.below(STEP_NAMES.len() as u64) as usize];
        let delay = Duration::from_millis(rng.below(400));
        let case =
            format!("{target:?} killed by {signal_name} {delay:?} into step {step} (seed {seed})");
        let dir = tempfile::TempDir::new().unwrap();
        let mut driver = start(&p, dir.path());
        let driver_pid = driver.id() as i32;
        poll(&format!("step {step} to start ({case})"), || {
            step_pids(dir.path(), step).is_some()
        });
        std::thread::sleep(delay);
        let [handler, runner, _, _] = step_pids(dir.path(), step).unwrap();
        let victim = match target {
            Target::Driver => driver_pid,
            Target::Runner => runner,
            Target::Handler => handler,
        };
        // The victim may have ended on its own meanwhile (a short step); that is fine.
        unsafe {
            libc::kill(victim, signal);
        }
        wait_for_exit(&mut driver, &case);
        let id = {
            let runs = p.baton(&["workflows", "list", "--json"]).json();
            runs[0]["id"].as_str().unwrap().to_string()
        };
        // No process of the run is left: every handler, runner and grandchild the handlers
        // reported, their process groups, and the driver's group.
        let mut groups = vec![driver_pid];
        for name in STEP_NAMES {
            if let Some(pids) = step_pids(dir.path(), name) {
                for pid in [pids[0], pids[1], pids[3]] {
                    poll(
                        &format!("process {pid} of step {name} to die ({case})"),
                        || !alive(pid),
                    );
                }
                groups.push(pids[2]);
            }
        }
        for pgid in groups {
            poll(
                &format!("process group {pgid} to be empty ({case})"),
                || group_members(pgid).is_empty(),
            );
        }
        poll(&format!("the records to settle ({case})"), || {
            settled(&p, &id, &case)
        });
        integrity_check(&p);
    }
}

#[test]
fn killing_baton_run_with_any_signal_leaves_no_process_and_agreeing_records() {
    crash(Target::Driver, 0x5eed_0001);
}

#[test]
fn killing_a_runner_with_any_signal_leaves_no_process_and_agreeing_records() {
    crash(Target::Runner, 0x5eed_0002);
}

#[test]
fn killing_a_handler_with_any_signal_leaves_no_process_and_agreeing_records() {
    crash(Target::Handler, 0x5eed_0003);
}

#[test]
fn a_run_whose_caller_and_runner_are_both_killed_is_settled_not_left_running() {
    let p = project();
    let dir = tempfile::TempDir::new().unwrap();
    let arg = format!("dir={}", dir.path().display());
    let mut caller = p
        .command(&[
            "run-function",
            "steps",
            "-p",
            &arg,
            "-p",
            "name=solo",
            "-p",
            "seconds=60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group, as a shell job: `run-function` and its runner share it.
        .process_group(0)
        .spawn()
        .unwrap();
    poll("the handler to start", || {
        step_pids(dir.path(), "solo").is_some()
    });
    let [handler, runner, _, grandchild] = step_pids(dir.path(), "solo").unwrap();
    let uid = p.baton(&["runs", "list", "--json"]).json()[0]["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    // SAFETY: kill(2) on the process group this test created.
    unsafe { libc::kill(-(caller.id() as i32), libc::SIGKILL) };
    caller.wait().unwrap();
    poll("the runner, the handler and its child to die", || {
        !alive(runner) && !alive(handler) && !alive(grandchild)
    });
    // Nobody is left to record the run: its runner's lease runs out and a reader settles it.
    poll("the run to be settled", || {
        p.baton(&["runs", "get", &uid, "--json"]).json()["status"]["state"] != "running"
    });
    let run = p.baton(&["runs", "get", &uid, "--json"]).json();
    assert_eq!(run["status"]["state"], "error", "{run:#}");
    assert!(
        run["status"]["error"]
            .as_str()
            .unwrap()
            .contains("runner stopped"),
        "{run:#}"
    );
    integrity_check(&p);
}
