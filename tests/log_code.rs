//! `baton init`, `baton log-code` and `baton artifacts list/get`: every option and rule of
//! issue "Code artifacts on the embedded default", driven through the real binary.

mod common;

use common::{sha256, tar_gz_bytes, zip_bytes, TestProject};
use serde_json::Value;

const FUNC: &str = "def main(p1=1):\n    return p1 * 2\n";

#[test]
fn init_writes_an_mlrun_project_and_the_embedded_state() {
    let p = TestProject::new();
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(p.path().join("project.yaml")).unwrap())
            .unwrap();
    assert_eq!(yaml["kind"], "project");
    assert_eq!(yaml["metadata"]["name"], "my-project");
    assert_eq!(
        yaml["spec"]["functions"],
        serde_yaml::Value::Sequence(vec![])
    );
    assert_eq!(
        yaml["spec"]["workflows"],
        serde_yaml::Value::Sequence(vec![])
    );
    assert_eq!(yaml["spec"]["artifact_path"], ".baton/artifacts");
    assert!(p.path().join(".baton/artifacts").is_dir());
}

#[test]
fn init_refuses_to_overwrite_and_checks_the_name() {
    let p = TestProject::new();
    let err = p.baton(&["init"]).fails(2);
    assert!(
        err.contains("already exists; baton init does not overwrite a project"),
        "{err}"
    );

    let q = TestProject::empty();
    let err = q.baton(&["init", "--name", "My_Project"]).fails(2);
    assert!(
        err.contains("Project name `My_Project` is malformed"),
        "{err}"
    );
}

#[test]
fn init_defaults_the_name_to_the_folder() {
    let q = TestProject::empty();
    let dir = q.path().join("Churn_Model");
    q.baton(&["-C", dir.to_str().unwrap(), "init"]).ok();
    let text = std::fs::read_to_string(dir.join("project.yaml")).unwrap();
    assert!(text.contains("name: churn-model"), "{text}");
}

#[test]
fn commands_find_the_project_by_walking_up_and_say_when_there_is_none() {
    let p = TestProject::new();
    p.write("src/deep/my_func.py", FUNC);
    let out = p
        .baton(&[
            "-C",
            "src/deep",
            "log-code",
            "k",
            "--local-path",
            "my_func.py",
        ])
        .ok();
    assert!(
        out.starts_with("store://artifacts/my-project/k#0@"),
        "{out}"
    );

    let none = TestProject::empty();
    let err = none.baton(&["artifacts", "list"]).fails(2);
    assert!(err.contains("No `project.yaml` found in"), "{err}");
    assert!(err.contains("run `baton init`"), "{err}");
}

#[test]
fn a_project_written_by_mlrun_keeps_unknown_fields() {
    let p = TestProject::empty();
    let original = "kind: project\nmetadata:\n  name: from-mlrun\n  labels:\n    team: ml\nspec:\n  functions: []\n  workflows: []\n  source: git://github.com/x/y\n  params:\n    lr: 0.1\nstatus:\n  state: online\n";
    p.write("project.yaml", original);
    let mut project = baton::project::Project::load(p.path()).unwrap();
    project.update(|_| ()).unwrap();
    let before: serde_yaml::Value = serde_yaml::from_str(original).unwrap();
    let after: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(p.path().join("project.yaml")).unwrap())
            .unwrap();
    assert_eq!(before, after);
}

#[test]
fn local_path_is_uploaded_to_the_artifact_path_and_recorded() {
    let p = TestProject::new();
    p.write("my_func.py", FUNC);
    let uri = p.log_code("my_func_code", "./my_func.py", &[]);
    let record = p.artifact(&uri);
    let target = p
        .path()
        .join(".baton/artifacts/my_func_code")
        .join(sha256(FUNC.as_bytes()).trim_start_matches("sha256:"))
        .join("my_func.py");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), FUNC);
    assert_eq!(record["kind"], "code");
    assert_eq!(record["metadata"]["key"], "my_func_code");
    assert_eq!(record["metadata"]["project"], "my-project");
    assert_eq!(record["metadata"]["iter"], 0);
    assert_eq!(record["spec"]["src_path"], "./my_func.py");
    assert_eq!(record["spec"]["target_path"], target.to_str().unwrap());
    assert_eq!(record["spec"]["size"], FUNC.len());
    assert_eq!(record["spec"]["digest"], sha256(FUNC.as_bytes()));
    assert_eq!(record["spec"]["language"], "python");
    assert_eq!(record["spec"]["code_type"], "function");
    assert_eq!(record["status"]["state"], "created");
    // The printed URI is pinned by tree and uid, without a tag when none was given.
    let uid = record["metadata"]["uid"].as_str().unwrap();
    let tree = record["metadata"]["tree"].as_str().unwrap();
    assert_eq!(
        uri,
        format!("store://artifacts/my-project/my_func_code#0@{tree}^{uid}")
    );
}

#[test]
fn archives_keep_all_their_suffixes() {
    let p = TestProject::new();
    p.write("my_pkg.tar.gz", tar_gz_bytes(&[("trainer.py", FUNC)]));
    p.write("my_pkg.zip", zip_bytes(&[("trainer.py", FUNC)]));
    let tgz = p.artifact(&p.log_code("pkg_tgz", "my_pkg.tar.gz", &[]));
    let zip = p.artifact(&p.log_code("pkg_zip", "my_pkg.zip", &[]));
    assert!(tgz["spec"]["target_path"]
        .as_str()
        .unwrap()
        .ends_with("/my_pkg.tar.gz"));
    assert!(zip["spec"]["target_path"]
        .as_str()
        .unwrap()
        .ends_with("/my_pkg.zip"));
    assert_eq!(tgz["spec"]["language"], "");
}

#[test]
fn target_path_with_local_path_uploads_there() {
    let p = TestProject::new();
    p.write("my_func.py", FUNC);
    let target = p.path().join("remote/funcs/my_func.py");
    let url = format!("file://{}", target.display());
    let record = p.artifact(&p.log_code("k", "my_func.py", &["--target-path", &url]));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), FUNC);
    assert_eq!(record["spec"]["target_path"], url);
}

#[test]
fn a_relative_target_path_is_refused() {
    let p = TestProject::new();
    p.write("my_func.py", FUNC);
    let err = p
        .baton(&[
            "log-code",
            "k",
            "--local-path",
            "my_func.py",
            "--target-path",
            "funcs/x.py",
        ])
        .fails(2);
    assert!(
        err.contains("target_path (`funcs/x.py`) param cannot be relative"),
        "{err}"
    );
}

#[test]
fn target_path_alone_registers_an_existing_object_without_copying() {
    let p = TestProject::new();
    let existing = p.write("store/funcs/my_func.py", FUNC);
    let before = std::fs::read_dir(p.path().join(".baton/artifacts"))
        .unwrap()
        .count();
    let uri = p
        .baton(&["log-code", "k", "--target-path", existing.to_str().unwrap()])
        .ok();
    let record = p.artifact(uri.trim());
    assert_eq!(record["spec"]["target_path"], existing.to_str().unwrap());
    assert_eq!(record["spec"]["digest"], sha256(FUNC.as_bytes()));
    assert_eq!(record["spec"]["language"], "python");
    assert!(record["spec"].get("src_path").is_none());
    let after = std::fs::read_dir(p.path().join(".baton/artifacts"))
        .unwrap()
        .count();
    assert_eq!(before, after, "nothing is copied into the artifact path");

    let missing = p.path().join("store/nope.py");
    let err = p
        .baton(&["log-code", "k2", "--target-path", missing.to_str().unwrap()])
        .fails(2);
    assert!(
        err.contains(&format!("Target `{}` does not exist", missing.display())),
        "{err}"
    );
}

#[test]
fn no_source_at_all_is_an_error_listing_the_options() {
    let p = TestProject::new();
    let err = p.baton(&["log-code", "k"]).fails(2);
    assert!(
        err.contains("must provide a local path, a target path or a body"),
        "{err}"
    );
    assert!(err.contains("--local-path"), "{err}");
}

#[test]
fn a_folder_is_refused_with_advice_to_pack_it() {
    let p = TestProject::new();
    p.write("pkg/trainer.py", FUNC);
    let err = p.baton(&["log-code", "k", "--local-path", "pkg"]).fails(2);
    assert!(
        err.contains("`pkg` is a folder; a code artifact is one file or one archive"),
        "{err}"
    );
    assert!(err.contains("hint: pack the folder first"), "{err}");
}

#[test]
fn a_missing_local_file_is_named() {
    let p = TestProject::new();
    let err = p
        .baton(&["log-code", "k", "--local-path", "nope.py"])
        .fails(2);
    assert!(
        err.contains("file does not exist at path `nope.py`"),
        "{err}"
    );
}

#[test]
fn an_inline_body_lives_in_the_record() {
    let p = TestProject::new();
    let body = "def main():\n    return 'ok'\n";
    let uri = p.baton(&["log-code", "inline_code", "--body", body]).ok();
    let record = p.artifact(uri.trim());
    assert_eq!(record["spec"]["inline"], body);
    assert_eq!(record["spec"]["digest"], sha256(body.as_bytes()));
    assert_eq!(record["spec"]["size"], body.len());
    assert!(record["spec"].get("target_path").is_none());
    assert!(
        record["spec"].get("language").is_none(),
        "no path leaves the language unset"
    );
    assert_eq!(
        std::fs::read_dir(p.path().join(".baton/artifacts"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_body_file_keeps_its_path_and_language() {
    let p = TestProject::new();
    p.write("small.py", FUNC);
    let uri = p
        .baton(&["log-code", "small", "--body-file", "small.py"])
        .ok();
    let record = p.artifact(uri.trim());
    assert_eq!(record["spec"]["inline"], FUNC);
    assert_eq!(record["spec"]["src_path"], "small.py");
    assert_eq!(record["spec"]["language"], "python");
}

#[test]
fn bodies_over_one_mebibyte_are_refused_with_advice() {
    let p = TestProject::new();
    p.write("big.py", "#".repeat(1024 * 1024 + 1));
    let err = p
        .baton(&["log-code", "big", "--body-file", "big.py"])
        .fails(2);
    assert!(
        err.contains("above the 1048576-byte limit for inline bodies"),
        "{err}"
    );
    assert!(err.contains("--local-path"), "{err}");
}

#[test]
fn code_type_language_requirements_labels_and_db_key_are_recorded() {
    let p = TestProject::new();
    p.write("wf.py", FUNC);
    let uri = p.log_code(
        "my_workflow_code",
        "wf.py",
        &[
            "--code-type",
            "workflow",
            "--language",
            "cython",
            "--requirement",
            "pandas>=2.0",
            "--requirement",
            "numpy",
            "--label",
            "team=ml",
            "--db-key",
            "wf_db",
        ],
    );
    assert!(
        uri.starts_with("store://artifacts/my-project/wf_db#0@"),
        "{uri}"
    );
    let record = p.artifact(&uri);
    assert_eq!(record["spec"]["code_type"], "workflow");
    assert_eq!(record["spec"]["language"], "cython");
    assert_eq!(
        record["spec"]["requirements"],
        serde_json::json!(["pandas>=2.0", "numpy"])
    );
    assert_eq!(record["metadata"]["labels"]["team"], "ml");
    assert_eq!(record["spec"]["db_key"], "wf_db");
}

#[test]
fn invalid_inputs_are_invalid_argument_errors_naming_the_value() {
    let p = TestProject::new();
    p.write("f.py", FUNC);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--code-type", "pipeline"],
            "`pipeline` is not a valid code_type: expected `function` or `workflow`",
        ),
        (
            &["--requirement", "pandas>>2"],
            "Requirement `pandas>>2` is not a valid PEP 508 requirement",
        ),
        (
            &["--tag=-bad"],
            "Field 'artifact.metadata.tag' is malformed. `-bad` does not match",
        ),
        (
            &["--db-key", "a/b"],
            "Field 'artifact.db_key' is malformed. `a/b` does not match",
        ),
        (
            &["--label", "novalue"],
            "`novalue` is not of the form key=value",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["log-code", "k", "--local-path", "f.py"];
        args.extend_from_slice(extra);
        let err = p.baton(&args).fails(2);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    let err = p
        .baton(&["log-code", "bad key", "--local-path", "f.py"])
        .fails(2);
    assert!(
        err.contains("Field 'artifact.key' is malformed. `bad key` does not match"),
        "{err}"
    );
}

#[test]
fn overlong_keys_and_file_names_are_refused_when_logging() {
    let p = TestProject::new();
    p.write("f.py", FUNC);
    let huge = "k".repeat(100_000);
    let err = p.baton(&["log-code", &huge, "--body", FUNC]).fails(2);
    assert!(
        err.contains("Field 'artifact.key' is 100000 characters long, above the limit of 128"),
        "{err}"
    );
    assert!(err.len() < 1000, "the error does not quote the whole key");
    let long = "k".repeat(301);
    let err = p
        .baton(&["log-code", &long, "--local-path", "f.py"])
        .fails(2);
    assert!(err.contains("above the limit of 128"), "{err}");
    let err = p
        .baton(&["log-code", "k", "--local-path", "f.py", "--db-key", &long])
        .fails(2);
    assert!(
        err.contains("Field 'artifact.db_key' is 301 characters"),
        "{err}"
    );
    assert!(p.baton(&["artifacts", "list"]).ok().trim().lines().count() <= 1);

    // A file name the code cache could not hold is refused now, not at pull time.
    let name = format!("{}.py", "m".repeat(210));
    p.write(&name, FUNC);
    let err = p.baton(&["log-code", "k", "--local-path", &name]).fails(2);
    assert!(
        err.contains("file name is 213 characters long, above the limit of 200"),
        "{err}"
    );

    // At the limit, a key logs, pulls and runs.
    let key = "k".repeat(128);
    let uri = p.baton(&["log-code", &key, "--body", FUNC]).ok();
    p.baton(&["artifacts", "pull", uri.trim()]).ok();
}

#[test]
fn artifact_path_option_overrides_the_project_default() {
    let p = TestProject::new();
    p.write("f.py", FUNC);
    let custom = p.path().join("custom-artifacts");
    let record =
        p.artifact(&p.log_code("k", "f.py", &["--artifact-path", custom.to_str().unwrap()]));
    let target = custom
        .join("k")
        .join(sha256(FUNC.as_bytes()).trim_start_matches("sha256:"))
        .join("f.py");
    assert_eq!(record["spec"]["target_path"], target.to_str().unwrap());
    assert!(target.is_file());
}

#[test]
fn json_prints_the_whole_record() {
    let p = TestProject::new();
    p.write("f.py", FUNC);
    let record = p
        .baton(&[
            "log-code",
            "k",
            "--local-path",
            "f.py",
            "--json",
            "--tag",
            "v1",
        ])
        .json();
    assert_eq!(record["kind"], "code");
    assert_eq!(record["metadata"]["tag"], "v1");
    assert_eq!(record["spec"]["code_type"], "function");
}

#[test]
fn identical_content_keeps_its_uid_and_changes_add_versions() {
    let p = TestProject::new();
    p.write("f.py", FUNC);
    let first = p.artifact(&p.log_code("k", "f.py", &["--tag", "v1"]));
    let again = p.baton(&["log-code", "k", "--local-path", "f.py"]);
    assert!(
        again.stderr.contains("no new version was added"),
        "{}",
        again.stderr
    );
    let again = p.artifact(again.stdout.trim());
    assert_eq!(first["metadata"]["uid"], again["metadata"]["uid"]);
    assert_eq!(first["metadata"]["tree"], again["metadata"]["tree"]);
    let list = p
        .baton(&["artifacts", "list", "--key", "k", "--json"])
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);

    p.write("f.py", "def main():\n    return 3\n");
    let second = p.artifact(&p.log_code("k", "f.py", &["--tag", "v2"]));
    assert_ne!(first["metadata"]["uid"], second["metadata"]["uid"]);

    // latest follows the newest; older versions stay resolvable by uid and by tag.
    let latest = p.artifact("store://my-project/k");
    assert_eq!(latest["metadata"]["uid"], second["metadata"]["uid"]);
    assert_eq!(latest["metadata"]["tag"], "latest");
    let old_uid = first["metadata"]["uid"].as_str().unwrap();
    let by_uid = p.artifact(&format!("store://artifacts/my-project/k^{old_uid}"));
    assert_eq!(by_uid["spec"]["digest"], sha256(FUNC.as_bytes()));
    let by_tag = p.artifact("store://artifacts/my-project/k:v1");
    assert_eq!(by_tag["metadata"]["uid"], old_uid);

    let list = p
        .baton(&["artifacts", "list", "--key", "k", "--json"])
        .json();
    let tags: Vec<Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["tags"].clone())
        .collect();
    assert_eq!(
        tags,
        vec![
            serde_json::json!(["latest", "v2"]),
            serde_json::json!(["v1"])
        ]
    );
    let v1_only = p
        .baton(&["artifacts", "list", "--tag", "v1", "--json"])
        .json();
    assert_eq!(v1_only.as_array().unwrap().len(), 1);

    // A changed label alone is not new content.
    let relabelled = p.artifact(&p.log_code("k", "f.py", &["--label", "x=y"]));
    assert_eq!(relabelled["metadata"]["uid"], second["metadata"]["uid"]);
    assert_eq!(relabelled["metadata"]["labels"]["x"], "y");
}

#[test]
fn unknown_keys_tags_and_uids_are_not_found_quoting_the_uri() {
    let p = TestProject::new();
    p.write("f.py", FUNC);
    p.log_code("k", "f.py", &[]);
    for uri in [
        "store://artifacts/my-project/nope",
        "store://artifacts/my-project/k:v9",
        "store://artifacts/my-project/k^0123abcd",
        "store://artifacts/my-project/k:latest@othertree",
    ] {
        let err = p.baton(&["artifacts", "get", uri]).fails(2);
        assert!(
            err.contains(&format!("Artifact `{uri}` not found")),
            "{uri}: {err}"
        );
    }
    // A URI without a project names it in the message.
    let err = p
        .baton(&["artifacts", "get", "store://artifacts/nope:v1"])
        .fails(2);
    assert!(
        err.contains("Artifact `store://artifacts/my-project/nope:v1` not found"),
        "{err}"
    );
}

#[test]
fn short_and_long_uris_resolve_the_same_version() {
    let p = TestProject::new();
    p.write("f.py", FUNC);
    let uri = p.log_code("k", "f.py", &[]);
    let pinned = p.artifact(&uri);
    let short = p.artifact("store://my-project/k");
    let tagged = p.artifact("store://artifacts/my-project/k:latest");
    assert_eq!(pinned["metadata"]["uid"], short["metadata"]["uid"]);
    assert_eq!(pinned["metadata"]["uid"], tagged["metadata"]["uid"]);
}

#[test]
fn malformed_uris_are_invalid_arguments() {
    let p = TestProject::new();
    for (uri, reason) in [
        ("store://artifacts", "it names no artifact"),
        (
            "store://artifacts/p/k#one",
            "the iteration `one` is not an integer",
        ),
        ("http://x/y", "it does not start with `store://`"),
    ] {
        let err = p.baton(&["artifacts", "get", uri]).fails(2);
        assert!(
            err.contains(&format!("Malformed store URI `{uri}`: {reason}")),
            "{err}"
        );
        assert!(err.contains("hint: store URIs look like"), "{err}");
    }
}

#[test]
fn eight_concurrent_logs_of_one_key_record_every_version() {
    let p = TestProject::new();
    let children: Vec<_> = (0..8)
        .map(|i| {
            let file = format!("f{i}.py");
            p.write(&file, format!("def main():\n    return {i}\n"));
            p.command(&["log-code", "shared", "--local-path", &file])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut uids = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let uri = String::from_utf8(out.stdout).unwrap();
        uids.insert(uri.trim().rsplit('^').next().unwrap().to_string());
    }
    assert_eq!(uids.len(), 8);
    let list = p
        .baton(&["artifacts", "list", "--key", "shared", "--json"])
        .json();
    let versions = list.as_array().unwrap();
    assert_eq!(versions.len(), 8);
    let latest: Vec<&Value> = versions
        .iter()
        .filter(|v| {
            v["tags"]
                .as_array()
                .unwrap()
                .contains(&Value::from("latest"))
        })
        .collect();
    assert_eq!(latest.len(), 1, "exactly one version is latest");
    // latest describes the bytes at the shared default target.
    let record = &latest[0]["artifact"];
    let target = record["spec"]["target_path"].as_str().unwrap();
    assert_eq!(
        sha256(&std::fs::read(target).unwrap()),
        record["spec"]["digest"]
    );
    assert!(uids.contains(record["metadata"]["uid"].as_str().unwrap()));
}
