//! Where payloads are stored: every version of every key keeps its own bytes, identical content
//! is not rewritten, and logging a big file keeps memory bounded.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::{peak_rss, sha256, TestProject};

/// The payload file a record's `target_path` names.
fn target_of(p: &TestProject, uri: &str) -> PathBuf {
    PathBuf::from(p.artifact(uri)["spec"]["target_path"].as_str().unwrap())
}

#[test]
fn old_versions_keep_their_payload() {
    let p = TestProject::new();
    let bodies: Vec<String> = (1..=3)
        .map(|n| format!("def main():\n    return {n}\n"))
        .collect();
    let mut uids = Vec::new();
    for body in &bodies {
        p.write("f.py", body);
        let uri = p.log_code("k", "f.py", &[]);
        uids.push(
            p.artifact(&uri)["metadata"]["uid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for (n, (uid, body)) in uids.iter().zip(&bodies).enumerate() {
        let pinned = format!("store://artifacts/my-project/k^{uid}");
        let out = p.baton(&["artifacts", "pull", &pinned]).ok();
        let file = out.lines().last().unwrap();
        assert_eq!(std::fs::read_to_string(file).unwrap(), *body, "{pinned}");

        let name = format!("f{n}");
        p.baton(&[
            "set-function",
            "--name",
            &name,
            "--func",
            &pinned,
            "--handler",
            "f:main",
        ])
        .ok();
        let run = p.baton(&["run-function", &name, "--json"]).json();
        assert_eq!(run["status"]["state"], "completed", "{run}");
        assert_eq!(run["status"]["results"]["return"], n + 1, "{run}");
        assert_eq!(run["status"]["code"]["uid"], uid.as_str(), "{run}");
    }
}

#[test]
fn different_keys_never_share_a_payload() {
    let p = TestProject::new();
    p.write("f.py", "def main():\n    return 'x'\n");
    p.write("Makefile", "all:\n\ttrue\n");
    let x = p.log_code("x", "f.py", &[]);
    let x_py = p.log_code("x.py", "Makefile", &[]);
    assert_ne!(target_of(&p, &x), target_of(&p, &x_py));
    let out = p.baton(&["artifacts", "pull", &x]).ok();
    let file = out.lines().last().unwrap();
    assert_eq!(
        std::fs::read_to_string(file).unwrap(),
        "def main():\n    return 'x'\n"
    );
    // Identical bytes under two keys still get two payloads.
    let y = p.log_code("y", "f.py", &[]);
    assert_ne!(target_of(&p, &x), target_of(&p, &y));
}

#[test]
fn default_targets_keep_the_file_name_under_the_key_and_digest() {
    let p = TestProject::new();
    p.write("my_func.py", "def main():\n    return 1\n");
    let uri = p.log_code("my_func_code", "./my_func.py", &[]);
    let record = p.artifact(&uri);
    let digest = record["spec"]["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let expected = p
        .path()
        .join(".baton/artifacts/my_func_code")
        .join(hex)
        .join("my_func.py");
    assert_eq!(record["spec"]["target_path"], expected.to_str().unwrap());
    assert_eq!(sha256(&std::fs::read(&expected).unwrap()), digest);
}

#[test]
fn relogging_identical_content_does_not_rewrite_the_payload() {
    let p = TestProject::new();
    p.write("f.py", "def main():\n    return 1\n");
    let uri = p.log_code("k", "f.py", &[]);
    let target = target_of(&p, &uri);
    let before = std::fs::metadata(&target).unwrap();
    let again = p.log_code("k", "f.py", &[]);
    assert_eq!(target_of(&p, &again), target);
    let after = std::fs::metadata(&target).unwrap();
    assert_eq!(before.ino(), after.ino(), "the payload was replaced");
    assert_eq!(before.mtime_nsec(), after.mtime_nsec());
    assert_eq!(before.mtime(), after.mtime());

    // The same holds for an explicit target path holding the same bytes.
    let explicit = p.path().join("store/f.py");
    let explicit = explicit.to_str().unwrap();
    p.log_code("e", "f.py", &["--target-path", explicit]);
    let before = std::fs::metadata(explicit).unwrap();
    p.log_code("e", "f.py", &["--target-path", explicit]);
    let after = std::fs::metadata(explicit).unwrap();
    assert_eq!(
        before.ino(),
        after.ino(),
        "the explicit target was replaced"
    );
}

#[test]
fn logging_a_big_file_keeps_memory_bounded() {
    const SIZE: u64 = 200 * 1024 * 1024;
    let p = TestProject::new();
    let big = p.path().join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(SIZE).unwrap();
    let (code, rss) = peak_rss(p.command(&["log-code", "big", "--local-path", "big.bin"]));
    assert_eq!(code, 0);
    assert!(
        rss < SIZE / 4,
        "log-code of a {SIZE}-byte file peaked at {rss} bytes of RSS"
    );
    let target = target_of(&p, "store://my-project/big");
    assert_eq!(std::fs::metadata(target).unwrap().len(), SIZE);
}
