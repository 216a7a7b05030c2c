//! Run logs: `baton runs logs` prints a log of any size in bounded memory.

mod common;

use std::process::Command;

use common::{baton_bin, TestProject};

/// The peak resident memory, in KiB, of `baton ARGS` run in `p` with its output discarded
/// (measured by a Python parent through `getrusage`, so nothing else pollutes the figure).
fn peak_rss_kib(p: &TestProject, args: &[&str]) -> u64 {
    let probe = "import resource, subprocess, sys\n\
                 done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
                 assert done.returncode == 0, done.returncode\n\
                 print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let out = Command::new("python3")
        .arg("-c")
        .arg(probe)
        .arg(baton_bin())
        .args(args)
        .current_dir(p.path())
        .env("BATON_CACHE_DIR", p.cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_huge_log_is_printed_in_bounded_memory() {
    let p = TestProject::new();
    p.write("f.py", "def main():\n    print('hello')\n");
    p.log_code("f_code", "f.py", &[]);
    p.set_store_function("f", "f_code", "f:main");
    let run = p.baton(&["run-function", "f", "--json"]).json();
    let uid = run["metadata"]["uid"].as_str().unwrap();

    // Grow the log to 256 MiB (sparse: cheap to make, as costly to read as any other).
    const SIZE: u64 = 256 << 20;
    let log = p.path().join(format!(".baton/logs/{uid}.log"));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .set_len(SIZE)
        .unwrap();

    let peak = peak_rss_kib(&p, &["runs", "logs", uid]);
    assert!(
        peak * 1024 < SIZE / 4,
        "`runs logs` peaked at {peak} KiB for a {} MiB log",
        SIZE >> 20
    );
}

#[test]
fn a_workflow_that_prints_a_lot_while_loading_is_traced_in_bounded_memory() {
    let p = TestProject::new();
    p.write("f.py", "def main():\n    return 1\n");
    p.log_code("f_code", "f.py", &[]);
    p.set_store_function("f", "f_code", "f:main");
    // 128 MiB on stdout at import time, then an ordinary pipeline.
    p.write(
        "wf.py",
        "import sys\n\
         chunk = 'x' * (1 << 20)\n\
         for _ in range(128):\n    sys.stdout.write(chunk)\n\
         import mlrun\n\
         def pipeline():\n    mlrun.run_function('f')\n",
    );
    p.log_code("wf_code", "wf.py", &["--code-type", "workflow"]);
    p.baton(&[
        "set-workflow",
        "--name",
        "main",
        "--path",
        "store://my-project/wf_code",
    ])
    .ok();

    let peak = peak_rss_kib(&p, &["graph", "main"]);
    assert!(
        peak < 64 * 1024,
        "`graph` peaked at {peak} KiB while the workflow printed 128 MiB"
    );
}
