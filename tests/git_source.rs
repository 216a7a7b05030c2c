//! git sources for real: a local repository reached by `git+file://` and by `git://` through a
//! `git daemon` on a loopback port. A branch that moves is picked up by the next run, a tag and a
//! commit pin never change, a run records the commit it used, and a missing ref or a missing
//! `git` program is a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, TestProject};

/// Runs git in `repo`, asserting success; returns its output.
fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Commits `my_func.py` returning `value` on the current branch; returns the commit id.
fn commit(repo: &Path, value: &str) -> String {
    std::fs::write(
        repo.join("my_func.py"),
        format!("def main():\n    return {value:?}\n"),
    )
    .unwrap();
    git(repo, &["add", "my_func.py"]);
    git(repo, &["commit", "-q", "-m", value]);
    git(repo, &["rev-parse", "HEAD"])
}

/// A repository with commit `v1` (tagged `v1`) and `v2` on `main`; returns (path, v1's id).
fn repository(root: &Path) -> (PathBuf, String) {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let first = commit(&repo, "v1");
    git(&repo, &["tag", "-a", "v1", "-m", "first"]);
    commit(&repo, "v2");
    (repo, first)
}

fn set(p: &TestProject, name: &str, func: &str) {
    p.baton(&[
        "set-function",
        "--name",
        name,
        "--func",
        func,
        "--handler",
        "my_func:main",
    ])
    .ok();
}

fn result(p: &TestProject, name: &str) -> serde_json::Value {
    let run = p.baton(&["run-function", name, "--json"]).json();
    assert_eq!(run["status"]["state"], "completed", "{run:#}");
    run
}

#[test]
fn branches_move_while_tags_and_commits_stay_pinned() {
    let tmp = tempfile::TempDir::new().unwrap();
    let (repo, first) = repository(tmp.path());
    let base = format!("git+file://{}", repo.display());
    let p = TestProject::new();
    set(&p, "at-main", &format!("{base}#main"));
    set(&p, "at-tag", &format!("{base}#v1"));
    set(&p, "at-commit", &format!("{base}#{first}"));

    assert_eq!(result(&p, "at-main")["status"]["results"]["return"], "v2");
    assert_eq!(result(&p, "at-tag")["status"]["results"]["return"], "v1");
    let pinned = result(&p, "at-commit");
    assert_eq!(pinned["status"]["results"]["return"], "v1");
    assert_eq!(
        pinned["status"]["code"]["digest"],
        format!("git:{first}"),
        "{pinned:#}"
    );

    let third = commit(&repo, "v3");
    let moved = result(&p, "at-main");
    assert_eq!(moved["status"]["results"]["return"], "v3");
    assert_eq!(moved["status"]["code"]["digest"], format!("git:{third}"));
    assert_eq!(result(&p, "at-commit")["status"]["results"]["return"], "v1");
    assert_eq!(result(&p, "at-tag")["status"]["results"]["return"], "v1");

    set(&p, "nowhere", &format!("{base}#nope"));
    let out = p.baton(&["run-function", "nowhere", "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains("has no branch, tag or ref `nope`"),
        "{}",
        out.stdout
    );
}

/// `git daemon` serving `base` on a free loopback port; killed and reaped on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_git_protocol_source_is_fetched_from_a_git_daemon() {
    let tmp = tempfile::TempDir::new().unwrap();
    let (repo, _) = repository(tmp.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _daemon = Daemon(
        Command::new("git")
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", tmp.path().display()))
            .arg(tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "git daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let p = TestProject::new();
    set(&p, "remote", &format!("git://127.0.0.1:{port}/repo#main"));
    assert_eq!(result(&p, "remote")["status"]["results"]["return"], "v2");
    let _ = repo;
}

#[test]
fn without_the_git_program_a_git_source_is_a_clear_error() {
    let tmp = tempfile::TempDir::new().unwrap();
    let (repo, _) = repository(tmp.path());
    let p = TestProject::new();
    set(&p, "f", &format!("git+file://{}#main", repo.display()));
    let python = String::from_utf8(
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let empty = tempfile::TempDir::new().unwrap();
    let out = Run::from(
        p.command(&["run-function", "f", "--json"])
            .env("PATH", empty.path())
            .env("BATON_PYTHON", python.trim())
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("git sources need the `git` program, and it is not on PATH"),
        "{}",
        out.stdout
    );
}
