//! Snapshots of what people read: `--help` of every command, the list tables, and the errors
//! for representative bad input. Each snapshot is the exit code, stdout and stderr of one real
//! `baton` invocation, kept under `tests/snapshots/`.
//!
//! Snapshots must not depend on the machine or the moment: the project and cache folders become
//! `[PROJECT]` and `[CACHE]`, and [`redact`] replaces times, uids and hashes with placeholders
//! as wide as the values, so the table columns around them line up as they did on the terminal.
//! Help is rendered at a fixed width (`COLUMNS`).
//!
//! To review a change: `INSTA_UPDATE=always cargo test --test snapshots`, then `git diff
//! tests/snapshots` (or `cargo insta review`, with cargo-insta installed). Under `CI=true` a
//! mismatch or a missing snapshot fails the test.

mod common;

use common::{Run, TestProject};

/// Volatile values and their placeholders, replaced in this order (longer hex runs first,
/// so a shorter pattern never matches inside a longer value).
const VOLATILE: &[(&str, &str)] = &[
    (
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
        "TIME",
    ),
    (r"\b[0-9a-f]{64}\b", "SHA256"),
    (r"\b[0-9a-f]{40}\b", "ARTIFACT_UID"),
    (r"\b[0-9a-f]{32}\b", "ID"),
    (r"\b[0-9a-f]{12}\b", "UID12"),
];

/// Replaces every volatile value with its placeholder, padded to the value's own width
/// (`[TIME                     ]`), so a table's columns line up in the snapshot as they did
/// on the terminal.
fn redact(text: &str) -> String {
    VOLATILE
        .iter()
        .fold(text.to_string(), |text, (pattern, name)| {
            regex::Regex::new(pattern)
                .unwrap()
                .replace_all(&text, |found: &regex::Captures| {
                    let inside = found[0].len().saturating_sub(2);
                    format!("[{name:<inside$}]")
                })
                .into_owned()
        })
}

/// Renders one invocation as the snapshot text: exit code, stdout, stderr, with the test's
/// folders and every volatile value replaced by placeholders.
fn render(p: &TestProject, run: Run) -> String {
    let text = format!(
        "exit_code: {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
        run.code, run.stdout, run.stderr
    );
    redact(
        &text
            .replace(&p.cache.path().display().to_string(), "[CACHE]")
            .replace(&p.path().display().to_string(), "[PROJECT]"),
    )
}

/// insta's settings for one snapshot: named files under `tests/snapshots/`, described by the
/// command line.
fn settings(args: &[&str]) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_description(format!("baton {}", args.join(" ")));
    settings.set_omit_expression(true);
    settings
}

/// Runs `baton ARGS` in `p` and checks its output against the snapshot `name`.
fn snapshot(name: &str, p: &TestProject, args: &[&str]) {
    let text = render(p, p.baton(args));
    settings(args).bind(|| insta::assert_snapshot!(name, text));
}

/// The subcommands listed under `Commands:` in a help text (without clap's own `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A wrapped description continues on a line indented further than the names.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// `--help` of every command and subcommand, found by walking the help itself, so a new
/// command gets a snapshot (and fails CI until its snapshot is committed).
#[test]
fn help_of_every_command_matches_its_snapshot() {
    let p = TestProject::empty();
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let mut cmd = p.command(&args);
        cmd.env("COLUMNS", "100");
        let output = cmd.output().unwrap();
        let help = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{path:?}: {help}");
        let name = if path.is_empty() {
            "help_baton".to_string()
        } else {
            format!("help_baton_{}", path.join("_").replace('-', "_"))
        };
        settings(&args).bind(|| insta::assert_snapshot!(name, help));
        seen += 1;
        for sub in subcommands(&help) {
            let mut next = path.clone();
            next.push(sub);
            pending.push(next);
        }
    }
    // The walk reached the subcommands: 12 commands and 11 subcommands besides `baton`.
    assert!(seen >= 24, "only {seen} help texts found");
}

/// A project with one function, two versions of its code, one run, and one workflow run.
fn listed_project() -> TestProject {
    let p = TestProject::new();
    p.write("f.py", "def main():\n    return {\"answer\": 42}\n");
    p.log_code("f_code", "f.py", &["--tag", "v1"]);
    p.write("f.py", "def main():\n    return {\"answer\": 43}\n");
    p.log_code("f_code", "f.py", &[]);
    p.set_store_function("f", "f_code", "f:main");
    p.baton(&["run-function", "f"]).ok();
    p.write(
        "flow.yaml",
        "name: flow\nsteps:\n  - {name: only, function: f}\n",
    );
    p.baton(&["set-workflow", "--name", "flow", "--path", "flow.yaml"])
        .ok();
    p.baton(&["run", "flow"]).ok();
    p
}

/// The list tables: the same columns in the same order, lined up, with no trailing blanks.
#[test]
fn list_tables_match_their_snapshots() {
    let p = listed_project();
    snapshot("table_artifacts_list", &p, &["artifacts", "list"]);
    snapshot("table_functions_list", &p, &["functions", "list"]);
    snapshot("table_runs_list", &p, &["runs", "list"]);
    snapshot("table_workflows_list", &p, &["workflows", "list"]);
    for table in [
        p.baton(&["artifacts", "list"]).ok(),
        p.baton(&["runs", "list"]).ok(),
    ] {
        assert!(table.lines().all(|l| l == l.trim_end()), "{table:?}");
    }
}

/// Empty lists print the header row alone.
#[test]
fn empty_list_tables_match_their_snapshots() {
    let p = TestProject::new();
    snapshot("table_runs_list_empty", &p, &["runs", "list"]);
    snapshot("table_workflows_list_empty", &p, &["workflows", "list"]);
}

/// What a user sees for representative bad input: the message, its hint, and exit code 2.
#[test]
fn errors_for_bad_input_match_their_snapshots() {
    let p = TestProject::new();
    p.write("f.py", "def main():\n    return 1\n");
    p.log_code("f_code", "f.py", &[]);
    p.set_store_function("f", "f_code", "f:main");
    p.write("w.yaml", "name: w\nsteps:\n  - {name: a, function: f}\n");
    fn set_workflow<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["set-workflow", "--name", "w", "--path", "w.yaml"];
        args.extend_from_slice(extra);
        args
    }
    snapshot(
        "error_malformed_store_uri",
        &p,
        &["artifacts", "get", "store://my-project/f_code#1^a^b"],
    );
    snapshot(
        "error_store_uri_without_key",
        &p,
        &["artifacts", "get", "store://"],
    );
    snapshot(
        "error_unknown_artifact",
        &p,
        &["artifacts", "get", "store://my-project/gone"],
    );
    snapshot("error_unknown_function", &p, &["run-function", "nope"]);
    snapshot(
        "error_unknown_engine",
        &p,
        &set_workflow(&["--engine", "bogus"]),
    );
    snapshot(
        "error_cron_field_out_of_range",
        &p,
        &set_workflow(&["--schedule", "0 99 * * *"]),
    );
    snapshot(
        "error_cron_macro",
        &p,
        &set_workflow(&["--schedule", "@hourly"]),
    );
    snapshot(
        "error_missing_workflow_file",
        &p,
        &["set-workflow", "--name", "x", "--path", "gone.py"],
    );
    snapshot(
        "error_outside_a_project",
        &TestProject::empty(),
        &["runs", "list"],
    );
    snapshot("error_export_format", &p, &["export", "out.tar"]);
    p.baton(&["export", "copy.yaml"]).ok();
    snapshot(
        "error_import_missing_artifacts",
        &p,
        &["import", "copy.yaml", "--context", "elsewhere"],
    );
}
