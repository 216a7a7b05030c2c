//! Shared helpers for the CLI integration tests: a throw-away project folder and a way to run
//! the real `baton` binary in it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub mod browser;
pub mod fake_kfp;
pub mod gated;

pub mod moto;
pub mod server;

/// A temporary project folder with its own code cache.
pub struct TestProject {
    pub dir: TempDir,
    pub cache: TempDir,
}

/// The result of one `baton` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The result of a command the caller ran itself (extra environment, another folder).
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    /// Asserts failure with `code` and returns stderr.
    #[track_caller]
    pub fn fails(self, code: i32) -> String {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stderr
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out}"))
    }
}

/// A handler that does nothing but return: what the benchmarks run to measure baton itself.
pub const TRIVIAL_HANDLER: &str = "def main():\n    return 1\n";

/// The `baton` binary under test.
pub fn baton_bin() -> &'static str {
    env!("CARGO_BIN_EXE_baton")
}

impl TestProject {
    /// A new folder with `baton init --name my-project` already run.
    pub fn new() -> TestProject {
        let project = TestProject::empty();
        project.baton(&["init", "--name", "my-project"]).ok();
        project
    }

    /// A new, empty folder (no project).
    pub fn empty() -> TestProject {
        TestProject {
            dir: TempDir::new().unwrap(),
            cache: TempDir::new().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command running `baton` in the project folder with an isolated cache.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(baton_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("BATON_CACHE_DIR", self.cache.path())
            .env("BATON_NO_PROGRESS", "1")
            .env_remove("BATON_LOG")
            // The embedded default unless a test names a server.
            .env_remove("BATON_API")
            .env_remove("MLRUN_DBPATH")
            .env_remove("BATON_TOKEN")
            // No hub source unless a test names one.
            .env_remove("BATON_HUB");
        cmd
    }

    /// Runs `baton ARGS` in the project folder.
    pub fn baton(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// Writes a file relative to the project folder, creating parents.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Logs `rel` as a code artifact and returns the printed URI.
    pub fn log_code(&self, key: &str, rel: &str, extra: &[&str]) -> String {
        let mut args = vec!["log-code", key, "--local-path", rel];
        args.extend_from_slice(extra);
        self.baton(&args).ok().trim().to_string()
    }

    /// `set-function --name NAME --func store://my-project/KEY --handler HANDLER`, asserting
    /// success.
    pub fn set_store_function(&self, name: &str, key: &str, handler: &str) {
        let func = format!("store://my-project/{key}");
        self.baton(&set_function_args(name, &func, handler)).ok();
    }

    /// A new project whose function `triv` runs [`TRIVIAL_HANDLER`] from a code artifact
    /// (`triv_code`): what the benchmarks measure baton with.
    pub fn with_trivial_function() -> TestProject {
        let p = TestProject::new();
        p.write("triv.py", TRIVIAL_HANDLER);
        p.log_code("triv_code", "triv.py", &[]);
        p.set_store_function("triv", "triv_code", "triv:main");
        p
    }

    /// `artifacts get URI --json`.
    pub fn artifact(&self, uri: &str) -> serde_json::Value {
        self.baton(&["artifacts", "get", uri, "--json"]).json()
    }
}

/// The arguments of `baton set-function --name NAME --func FUNC --handler HANDLER`.
pub fn set_function_args<'a>(name: &'a str, func: &'a str, handler: &'a str) -> [&'a str; 7] {
    [
        "set-function",
        "--name",
        name,
        "--func",
        func,
        "--handler",
        handler,
    ]
}

/// Sets up the churn example (`examples/churn`) in `p` as `examples/churn/run.sh` does, in the
/// project `churn` the caller has created: its sources written, logged as code artifacts (two
/// files, the archive `trainer.zip` holding `trainer.py` and `utils.py`, and a workflow file),
/// and set as functions `prep`, `evaluate` and `trainer` and workflow `main`. `baton` runs one
/// command in `p` (against a server, if it likes) and must succeed.
pub fn set_up_churn(p: &TestProject, baton: impl Fn(&[&str]) -> Run) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/churn");
    let read = |rel: &str| std::fs::read_to_string(example.join(rel)).unwrap();
    p.write("src/prep.py", read("src/prep.py"));
    p.write("src/evaluate.py", read("src/evaluate.py"));
    p.write("workflow.py", read("workflow.py"));
    p.write(
        "trainer.zip",
        zip_bytes(&[
            ("trainer.py", &read("src/trainer/trainer.py")),
            ("utils.py", &read("src/trainer/utils.py")),
        ]),
    );
    for (key, file) in [
        ("prep_code", "src/prep.py"),
        ("evaluate_code", "src/evaluate.py"),
        ("trainer_code", "trainer.zip"),
    ] {
        baton(&["log-code", key, "--local-path", file]).ok();
    }
    baton(&[
        "log-code",
        "churn_workflow",
        "--local-path",
        "workflow.py",
        "--code-type",
        "workflow",
    ])
    .ok();
    for (name, key, handler) in [
        ("prep", "prep_code", "prep:main"),
        ("evaluate", "evaluate_code", "evaluate:pick"),
        ("trainer", "trainer_code", "trainer:train"),
    ] {
        let func = format!("store://artifacts/churn/{key}");
        baton(&set_function_args(name, &func, handler)).ok();
    }
    baton(&[
        "set-workflow",
        "--name",
        "main",
        "--path",
        "store://artifacts/churn/churn_workflow",
    ])
    .ok();
}

/// Builds a zip archive in memory from (name, contents) pairs.
pub fn zip_bytes(files: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default();
        for (name, contents) in files {
            zip.start_file(*name, options).unwrap();
            std::io::Write::write_all(&mut zip, contents.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }
    buf.into_inner()
}

/// Builds a .tar.gz archive in memory from (name, contents) pairs.
pub fn tar_gz_bytes(files: &[(&str, &str)]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(encoder);
    for (name, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, contents.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// sha256 of bytes as `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Waits (at most 30 s) until `check` holds, failing the test with `what` otherwise.
#[track_caller]
pub fn poll(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `/proc/PID/stat` after the command name: state, ppid, pgrp, ...
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether process `pid` still runs (a zombie waiting to be reaped counts as gone).
pub fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| !matches!(f[0].as_str(), "Z" | "X"))
}

/// Runs `cmd` with its output discarded and returns its exit code and peak resident set size in
/// bytes, measured by the kernel for that one child.
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also reports its peak RSS
pub fn peak_rss(mut cmd: Command) -> (i32, u64) {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own unreaped child, with valid out-pointers.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    assert!(libc::WIFEXITED(status), "status {status}");
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64 * 1024)
}

/// The step called `name` of a workflow run record.
#[track_caller]
pub fn step<'a>(record: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {record:#}"))
}
