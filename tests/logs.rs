//! Run logs: `baton runs logs` prints a log of any size in bounded memory.

mod common;

use common::{peak_rss, Run, TestProject};

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

    let (code, peak) = peak_rss(p.command(&["runs", "logs", uid]));
    assert_eq!(code, 0);
    assert!(
        peak < SIZE / 4,
        "`runs logs` peaked at {peak} bytes for a {} MiB log",
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

    let (code, peak) = peak_rss(p.command(&["graph", "main"]));
    assert_eq!(code, 0);
    assert!(
        peak < 64 << 20,
        "`graph` peaked at {peak} bytes while the workflow printed 128 MiB"
    );
}

#[test]
fn a_run_log_is_capped_keeping_the_end_of_the_output() {
    let p = TestProject::new();
    p.write(
        "chatty.py",
        "import sys\n\
         def main():\n\
         \x20   for i in range(100_000):\n\
         \x20       print(f'line {i:06d} of the output')\n\
         \x20   print('THE END', file=sys.stderr)\n\
         \x20   return 'done'\n",
    );
    p.log_code("chatty_code", "chatty.py", &[]);
    p.set_store_function("chatty", "chatty_code", "chatty:main");
    let run = Run::from(
        p.command(&["run-function", "chatty", "--json"])
            .env("BATON_LOG_MAX_BYTES", "65536")
            .output()
            .unwrap(),
    )
    .json();
    assert_eq!(run["status"]["results"]["return"], "done");

    let uid = run["metadata"]["uid"].as_str().unwrap();
    let log = std::fs::read_to_string(p.path().join(format!(".baton/logs/{uid}.log"))).unwrap();
    // The handler printed about 2.7 MB; the log keeps the cap plus the runner's own lines.
    assert!(
        log.len() < 65536 + 4096,
        "the log holds {} bytes",
        log.len()
    );
    assert!(
        log.contains("line 000000 of the output"),
        "the head is kept"
    );
    assert!(
        log.contains("bytes of output were dropped"),
        "the cut is said"
    );
    assert!(
        log.contains("line 099999 of the output\nTHE END"),
        "the tail is kept"
    );
}
