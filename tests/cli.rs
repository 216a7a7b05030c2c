//! The command line itself: the version, logs, and the example project that README's first
//! command runs. Help on every command is snapshotted in `tests/snapshots.rs`.

mod common;

use common::{set_up_churn, TestProject};

#[test]
fn version_is_printed() {
    let out = TestProject::empty().baton(&["--version"]).ok();
    assert_eq!(out.trim(), format!("baton {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn verbose_flags_and_baton_log_turn_on_logs() {
    let p = TestProject::new();
    p.write("f.py", "x = 1\n");
    let uri = p.log_code("k", "f.py", &[]);
    let quiet = p.baton(&["artifacts", "pull", &uri]);
    assert!(!quiet.stderr.contains("DEBUG"), "{}", quiet.stderr);
    let verbose = p.baton(&["-vv", "artifacts", "pull", &uri]);
    assert!(
        verbose.stderr.contains("DEBUG") && verbose.stderr.contains("code cache"),
        "{}",
        verbose.stderr
    );
    let by_env = p
        .command(&["artifacts", "pull", &uri])
        .env("BATON_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&by_env.stderr);
    assert!(
        stderr.contains("DEBUG") && stderr.contains("code cache"),
        "{stderr}"
    );
}

#[test]
fn commands_that_rewrite_an_mlrun_project_keep_its_unknown_fields() {
    let p = TestProject::empty();
    p.write(
        "project.yaml",
        "kind: project\nmetadata:\n  name: from-mlrun\n  labels:\n    team: ml\nspec:\n  functions: []\n  workflows: []\n  source: git://github.com/x/y\n  params:\n    lr: 0.1\n  artifact_path: v3io:///projects/{{run.project}}/artifacts\nstatus:\n  state: online\n",
    );
    p.write("my_func.py", "def main():\n    return 1\n");
    p.baton(&[
        "set-function",
        "--name",
        "f",
        "--func",
        "my_func.py",
        "--handler",
        "main",
    ])
    .ok();
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(p.path().join("project.yaml")).unwrap())
            .unwrap();
    assert_eq!(yaml["metadata"]["labels"]["team"], "ml");
    assert_eq!(yaml["spec"]["source"], "git://github.com/x/y");
    assert_eq!(yaml["spec"]["params"]["lr"], 0.1);
    assert_eq!(
        yaml["spec"]["artifact_path"],
        "v3io:///projects/{{run.project}}/artifacts"
    );
    assert_eq!(yaml["spec"]["functions"][0]["name"], "f");
}

#[test]
fn run_function_passes_inputs_relative_to_the_context_folder() {
    let p = TestProject::new();
    p.write("data/table.csv", "a,b\n1,2\n3,4\n");
    p.write(
        "count.py",
        "def main(table):\n    return len(open(table.local()).read().splitlines())\n",
    );
    p.log_code("count_code", "count.py", &[]);
    p.set_store_function("count", "count_code", "count:main");
    let run = p
        .baton(&[
            "run-function",
            "count",
            "--input",
            "table=data/table.csv",
            "--json",
        ])
        .json();
    assert_eq!(run["status"]["state"], "completed", "{run}");
    assert_eq!(run["status"]["results"]["return"], 3);
    assert_eq!(run["spec"]["inputs"]["table"], "data/table.csv");
}

/// README's first command runs `examples/churn`; this runs the same steps with the debug binary.
#[test]
fn the_churn_example_runs_end_to_end() {
    let p = TestProject::empty();
    p.baton(&["init", "--name", "churn"]).ok();
    set_up_churn(&p, |args| p.baton(args));
    let record = p.baton(&["run", "main", "--json"]).json();
    assert_eq!(record["state"], "Succeeded", "{record}");
    let states: Vec<(String, String)> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        "prep",
        "train-linear",
        "train-tree",
        "train-forest",
        "evaluate",
        "publish",
    ]
    .iter()
    .map(|n| (n.to_string(), "Succeeded".to_string()))
    .collect();
    assert_eq!(states, expected);
    // A high threshold makes the condition false: publish is skipped.
    let record = p
        .baton(&["run", "main", "-a", "threshold=0.99", "--json"])
        .json();
    assert_eq!(record["state"], "Succeeded");
    let publish = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "publish")
        .unwrap();
    assert_eq!(publish["state"], "Skipped");
}

/// `baton run` on a terminal redraws a tree of steps in place; `BATON_NO_PROGRESS` (and any
/// non-terminal stderr) gives plain lines instead. `script` provides the pseudo-terminal.
#[test]
fn progress_is_a_tree_redrawn_in_place_on_a_terminal() {
    let p = TestProject::new();
    p.write("f.py", "def main(x=1):\n    return x\n");
    p.log_code("f_code", "f.py", &[]);
    p.set_store_function("f", "f_code", "f:main");
    p.write(
        "w.yaml",
        "name: w\nsteps:\n  - {name: a, function: f}\n  - {name: b, function: f, after: [a]}\n",
    );
    p.baton(&["set-workflow", "--name", "w", "--path", "w.yaml"])
        .ok();
    let on_terminal = |no_progress: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.args([
            "-qec",
            &format!("{} run w", common::baton_bin()),
            "/dev/null",
        ])
        .current_dir(p.path())
        .env("BATON_CACHE_DIR", p.cache.path())
        .env_remove("BATON_NO_PROGRESS");
        if no_progress {
            cmd.env("BATON_NO_PROGRESS", "1");
        }
        let out = cmd
            .output()
            .expect("`script` (util-linux) runs the command on a pseudo-terminal");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    let live = on_terminal(false);
    // indicatif redraws the rows in place: up a line, clear it.
    assert!(
        live.contains("\x1b[1A\x1b[2K"),
        "the two rows are redrawn in place: {live:?}"
    );
    // The final tree, left as plain lines once the live one is cleared: `a` at the root, `b`
    // indented under it, both done.
    let last: Vec<&str> = live
        .rsplit("\x1b[2K")
        .next()
        .unwrap()
        .lines()
        .take(2)
        .collect();
    assert!(last[0].starts_with("✓ a "), "{last:?}");
    assert!(last[1].starts_with("  ✓ b "), "{last:?}");

    let plain = on_terminal(true);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(
        plain.contains("▶ a\n") && plain.contains("✓ b"),
        "{plain:?}"
    );
}

#[test]
fn functions_list_shows_a_function_whose_artifact_is_gone_with_its_problem() {
    let p = TestProject::new();
    p.write("f.py", "def main():\n    return 1\n");
    p.log_code("f_code", "f.py", &[]);
    p.set_store_function("good", "f_code", "f:main");
    p.set_store_function("broken", "f_code", "f:main");
    // A hand edit points `broken` at an artifact that was never logged.
    let yaml = std::fs::read_to_string(p.path().join("project.yaml")).unwrap();
    let (head, tail) = yaml.split_at(yaml.find("name: broken").unwrap());
    let tail = tail.replacen("store://my-project/f_code", "store://my-project/gone", 1);
    std::fs::write(p.path().join("project.yaml"), format!("{head}{tail}")).unwrap();

    let listed = p.baton(&["functions", "list", "--json"]);
    assert!(
        listed.stderr.contains("Function `broken`"),
        "{}",
        listed.stderr
    );
    let listed = listed.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["good", "broken"]);
    assert!(listed[0].get("problem").is_none(), "{listed}");
    assert!(
        listed[1]["problem"].as_str().unwrap().contains("gone"),
        "{listed}"
    );
    let table = p.baton(&["functions", "list"]).ok();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("broken") && l.contains("unknown")),
        "{table}"
    );
}
