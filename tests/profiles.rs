//! `baton profiles` on the embedded database: a `file` profile names a folder; `ds://` targets
//! upload into it and run from it; a path cannot leave it; set, list, get and delete, with the
//! errors that name what to fix.

mod common;

use common::TestProject;
use serde_json::json;

#[test]
fn a_file_profile_serves_ds_urls_and_profiles_can_be_listed_and_deleted() {
    let p = TestProject::new();
    let store = tempfile::TempDir::new().unwrap();
    let root = store.path().display().to_string();
    p.baton(&[
        "profiles",
        "set",
        "local",
        "--type",
        "file",
        "--endpoint",
        &root,
    ])
    .ok();
    p.write("my_func.py", "def main(p1=1):\n    return p1 * 3\n");
    p.baton(&[
        "log-code",
        "my_func_code",
        "--local-path",
        "my_func.py",
        "--target-path",
        "ds://local/funcs/my_func.py",
    ])
    .ok();
    assert!(store.path().join("funcs/my_func.py").is_file());
    let record = p.artifact("store://my-project/my_func_code");
    assert_eq!(record["spec"]["target_path"], "ds://local/funcs/my_func.py");
    p.set_store_function("my-func", "my_func_code", "my_func:main");
    let run = p
        .baton(&["run-function", "my-func", "-p", "p1=2", "--json"])
        .json();
    assert_eq!(run["status"]["results"]["return"], 6, "{run:#}");

    assert_eq!(
        p.baton(&["profiles", "list", "--json"]).json(),
        json!([{"name": "local", "type": "file", "endpoint": root, "secrets": []}])
    );
    let err = p
        .baton(&["log-code", "x", "--target-path", "ds://local/../etc/passwd"])
        .fails(2);
    assert!(
        err.contains("Malformed datastore profile URL `ds://local/../etc/passwd`"),
        "{err}"
    );

    p.baton(&["profiles", "delete", "local"]).ok();
    let err = p.baton(&["profiles", "get", "local"]).fails(2);
    assert!(
        err.contains("Datastore profile `local` does not exist in project `my-project`"),
        "{err}"
    );
    let cold = tempfile::TempDir::new().unwrap();
    let err = common::Run::from(
        p.command(&["artifacts", "pull", "store://my-project/my_func_code"])
            .env("BATON_CACHE_DIR", cold.path())
            .output()
            .unwrap(),
    );
    assert_eq!(err.code, 2, "{}", err.stderr);
    assert!(
        err.stderr
            .contains("Unable to retrieve the datastore profile `ds://local/funcs/my_func.py`"),
        "{}",
        err.stderr
    );
}

#[test]
fn bad_profiles_are_refused_naming_what_to_fix() {
    let p = TestProject::new();
    let err = p.baton(&["profiles", "set", "b", "--type", "s3"]).fails(2);
    assert!(
        err.contains("A `s3` datastore profile needs --bucket"),
        "{err}"
    );
    let err = p.baton(&["profiles", "set", "b", "--type", "ftp"]).fails(2);
    assert!(
        err.contains("Unknown datastore profile type `ftp`"),
        "{err}"
    );
    let err = p
        .baton(&[
            "profiles",
            "set",
            "b",
            "--type",
            "s3",
            "--bucket",
            "x",
            "--secret",
            "password=PW",
        ])
        .fails(2);
    assert!(
        err.contains("environment variable `PW`, which is not set"),
        "{err}"
    );
    let err = p
        .command(&[
            "profiles",
            "set",
            "b",
            "--type",
            "s3",
            "--bucket",
            "x",
            "--secret",
            "password=PW",
        ])
        .env("PW", "hunter2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(err.contains("has no secret `password`"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(p.baton(&["profiles", "list", "--json"]).json(), json!([]));
}
