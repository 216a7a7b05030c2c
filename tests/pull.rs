//! `baton artifacts pull`: what a runner does at start-up, from the command line.

mod common;

use common::{sha256, tar_gz_bytes, zip_bytes, TestProject};

fn cache_entries(p: &TestProject) -> Vec<String> {
    match std::fs::read_dir(p.cache.path().join("code")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_single_file_is_pulled_into_the_cache_and_its_path_printed() {
    let p = TestProject::new();
    p.write("my_func.py", "def main():\n    return 1\n");
    let uri = p.log_code("my_func_code", "./my_func.py", &[]);
    let out = p.baton(&["artifacts", "pull", &uri]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(p.cache.path().to_str().unwrap()),
        "{out}"
    );
    assert!(
        lines[1].ends_with("/my_func.py"),
        "named after src_path: {out}"
    );
    assert_eq!(
        std::fs::read_to_string(lines[1]).unwrap(),
        "def main():\n    return 1\n"
    );
}

#[test]
fn an_archive_is_extracted_and_copied_with_to() {
    let p = TestProject::new();
    p.write(
        "pkg.zip",
        zip_bytes(&[("trainer.py", "x = 1\n"), ("lib/utils.py", "y = 2\n")]),
    );
    let uri = p.log_code("pkg", "pkg.zip", &[]);
    let to = p.path().join("out");
    let out = p
        .baton(&["artifacts", "pull", &uri, "--to", to.to_str().unwrap()])
        .ok();
    assert_eq!(out.trim(), to.to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(to.join("trainer.py")).unwrap(),
        "x = 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(to.join("lib/utils.py")).unwrap(),
        "y = 2\n"
    );
    assert!(!to.join("pkg.zip").exists());
}

#[test]
fn a_warm_pull_neither_downloads_nor_extracts() {
    let p = TestProject::new();
    p.write("pkg.tar.gz", tar_gz_bytes(&[("trainer.py", "x = 1\n")]));
    let uri = p.log_code("pkg", "pkg.tar.gz", &[]);
    let cold = p.baton(&["artifacts", "pull", &uri]);
    assert!(cold.stderr.contains("Fetched"), "{}", cold.stderr);
    // Remove the stored payload: only the cache can serve the next pull.
    let record = p.artifact(&uri);
    std::fs::remove_file(record["spec"]["target_path"].as_str().unwrap()).unwrap();
    let warm = p.baton(&["artifacts", "pull", &uri]);
    assert!(warm.stderr.contains("Using cached"), "{}", warm.stderr);
    assert_eq!(warm.ok(), cold.ok());
}

#[test]
fn a_changed_payload_fails_the_digest_check_and_leaves_nothing_cached() {
    let p = TestProject::new();
    p.write("f.py", "a = 1\n");
    let uri = p.log_code("k", "f.py", &[]);
    let record = p.artifact(&uri);
    let target = record["spec"]["target_path"].as_str().unwrap();
    std::fs::write(target, "a = 2\n").unwrap();
    let err = p.baton(&["artifacts", "pull", &uri]).fails(1);
    assert!(
        err.contains(&sha256(b"a = 1\n")["sha256:".len()..]),
        "{err}"
    );
    assert!(
        err.contains(&sha256(b"a = 2\n")["sha256:".len()..]),
        "{err}"
    );
    assert!(err.contains("changed after it was logged"), "{err}");
    assert!(
        cache_entries(&p).iter().all(|e| e.starts_with('.')),
        "{:?}",
        cache_entries(&p)
    );
}

#[test]
fn a_hostile_archive_is_refused_at_pull() {
    let p = TestProject::new();
    p.write("evil.zip", zip_bytes(&[("../escape.py", "boom\n")]));
    let uri = p.log_code("evil", "evil.zip", &[]);
    let err = p.baton(&["artifacts", "pull", &uri]).fails(2);
    assert!(err.contains("Refusing to extract archive member"), "{err}");
    assert!(!p.cache.path().join("escape.py").exists());
    assert!(
        cache_entries(&p).iter().all(|e| e.starts_with('.')),
        "{:?}",
        cache_entries(&p)
    );
}

#[test]
fn two_processes_pulling_the_same_digest_both_succeed() {
    let p = TestProject::new();
    let files: Vec<(String, String)> = (0..200)
        .map(|i| (format!("m{i}.py"), format!("v = {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    p.write("pkg.tar.gz", tar_gz_bytes(&refs));
    let uri = p.log_code("pkg", "pkg.tar.gz", &[]);
    let children: Vec<_> = (0..2)
        .map(|_| {
            p.command(&["artifacts", "pull", &uri])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert_eq!(outs[0], outs[1]);
    assert_eq!(std::fs::read_dir(outs[0].trim()).unwrap().count(), 200);
}

#[test]
fn pulling_an_unknown_artifact_is_not_found() {
    let p = TestProject::new();
    let err = p
        .baton(&["artifacts", "pull", "store://my-project/nope"])
        .fails(2);
    assert!(
        err.contains("Artifact `store://artifacts/my-project/nope` not found"),
        "{err}"
    );
}

#[test]
fn an_edited_cache_entry_is_not_used_by_pull_or_run() {
    let p = TestProject::new();
    p.write("my_func.py", "def main():\n    return 'original'\n");
    let uri = p.log_code("my_func_code", "./my_func.py", &[]);
    let out = p.baton(&["artifacts", "pull", &uri]).ok();
    let cached = out.lines().nth(1).unwrap().to_string();
    std::fs::write(&cached, "def main():\n    return 'tampered'\n").unwrap();

    let again = p.baton(&["artifacts", "pull", &uri]);
    assert!(again.stderr.contains("Fetched"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(&cached).unwrap(),
        "def main():\n    return 'original'\n"
    );

    std::fs::write(&cached, "def main():\n    return 'tampered'\n").unwrap();
    p.set_store_function("my-func", "my_func_code", "my_func:main");
    let run = p.baton(&["run-function", "my-func", "--json"]).json();
    assert_eq!(run["status"]["results"]["return"], "original", "{run}");
    assert_eq!(
        run["status"]["code"]["digest"],
        p.artifact(&uri)["spec"]["digest"]
    );
}

#[test]
fn pull_to_replaces_a_planted_link_instead_of_writing_through_it() {
    let p = TestProject::new();
    p.write("f.py", "x = 1\n");
    let victim = p.write("victim.txt", "precious\n");
    let uri = p.log_code("f_code", "f.py", &[]);
    let to = p.path().join("out");
    std::fs::create_dir(&to).unwrap();
    std::os::unix::fs::symlink(&victim, to.join("f.py")).unwrap();

    p.baton(&["artifacts", "pull", &uri, "--to", to.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!std::fs::symlink_metadata(to.join("f.py"))
        .unwrap()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(to.join("f.py")).unwrap(), "x = 1\n");
}

#[test]
fn pull_to_an_existing_file_is_bad_input() {
    let p = TestProject::new();
    p.write("f.py", "x = 1\n");
    let file = p.write("taken", "");
    let uri = p.log_code("f_code", "f.py", &[]);
    let err = p
        .baton(&["artifacts", "pull", &uri, "--to", file.to_str().unwrap()])
        .fails(2);
    assert!(err.contains("exists and is not a folder"), "{err}");
}

#[test]
fn errors_name_the_artifact_uri_not_the_cache_folder() {
    let p = TestProject::new();
    let cache = p.cache.path().to_str().unwrap().to_string();

    // A handler whose module is not in the artifact.
    p.write("f.py", "def main():\n    return 1\n");
    p.log_code("f_code", "f.py", &[]);
    p.set_store_function("f", "f_code", "f:main");
    let run: serde_json::Value = serde_json::from_str(
        &p.baton(&["run-function", "f", "--handler", "nope:main", "--json"])
            .stdout,
    )
    .unwrap();
    let error = run["status"]["error"].as_str().unwrap();
    assert!(error.contains("store://my-project/f_code"), "{error}");
    assert!(!error.contains(&cache), "{error}");

    // A workflow artifact that fails to load.
    p.write(
        "wf.py",
        "import mlrun\ndef pipeline():\n    mlrun.no_such_call()\n",
    );
    p.log_code("wf_code", "wf.py", &["--code-type", "workflow"]);
    let uri = "store://my-project/wf_code";
    p.baton(&["set-workflow", "--name", "main", "--path", uri])
        .ok();
    let err = p.baton(&["graph", "main"]).fails(2);
    assert!(err.contains(&format!("workflow `{uri}` line 3")), "{err}");
    assert!(!err.contains(&cache), "{err}");
}
