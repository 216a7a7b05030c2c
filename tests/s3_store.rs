//! S3 for real: moto's S3 server (tests/s3/venv.sh) on a loopback port. Code logged to an
//! `s3://` target runs; an object changed behind baton's back is refused by its digest and never
//! run; a large payload streams up in parts and back; a `ds://` profile on a `baton server`
//! serves a client that holds no credentials, and its secrets appear in no answer, file or log.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use baton::datastore::profile::{
    DatastoreProfile, ProfileAccess, ProfileKind, ProfileSecrets, ProfileStore,
};
use baton::datastore::{DataStore, PayloadDigest};
use baton::db::SqliteDb;
use common::moto::Moto;
use common::server::{data_dir, TestServer};
use common::{Run, TestProject};
use serde_json::Value;

const MY_FUNC: &str = "def main(p1=1):\n    return p1 * 2\n";

/// `baton ARGS` in `p` with S3 credentials and endpoint in the environment, as the AWS tools
/// name them.
fn with_aws(p: &TestProject, moto: &Moto, args: &[&str]) -> Run {
    Run::from(aws_command(p, moto, args).output().unwrap())
}

fn aws_command(p: &TestProject, moto: &Moto, args: &[&str]) -> Command {
    let mut command = p.command(args);
    command
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1");
    command
}

#[test]
fn code_logged_to_s3_runs_and_an_object_changed_behind_batons_back_is_refused() {
    let moto = Moto::start();
    moto.create_bucket("code");
    let p = TestProject::new();
    p.write("my_func.py", MY_FUNC);
    with_aws(
        &p,
        &moto,
        &[
            "log-code",
            "my_func_code",
            "--local-path",
            "my_func.py",
            "--target-path",
            "s3://code/funcs/my_func.py",
        ],
    )
    .ok();
    assert_eq!(
        moto.get_object("code", "funcs/my_func.py").as_deref(),
        Some(MY_FUNC.as_bytes())
    );
    p.set_store_function("my-func", "my_func_code", "my_func:main");
    let run = with_aws(
        &p,
        &moto,
        &["run-function", "my-func", "-p", "p1=5", "--json"],
    )
    .json();
    assert_eq!(run["status"]["results"]["return"], 10, "{run:#}");

    // Someone rewrites the object; a machine with a cold cache must refuse it, not run it.
    let marker = p.path().join("ran");
    let evil = format!(
        "def main(p1=1):\n    open({:?}, 'w').write('x')\n    return 0\n",
        marker.display().to_string()
    );
    moto.put_object("code", "funcs/my_func.py", evil.as_bytes());
    let cold = tempfile::TempDir::new().unwrap();
    let out = Run::from(
        aws_command(&p, &moto, &["run-function", "my-func", "--json"])
            .env("BATON_CACHE_DIR", cold.path())
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    let error = run["status"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("changed after it was logged"), "{run:#}");
    assert!(!marker.exists(), "the changed code ran");
    let leftovers: Vec<_> = std::fs::read_dir(cold.path().join("code"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A datastore whose `ds://moto/...` is the bucket `bucket` of `moto`, through a profile in an
/// embedded database.
async fn profile_store(moto: &Moto, bucket: &str, db_path: &Path) -> DataStore {
    let db = tokio::task::spawn_blocking({
        let path = db_path.to_path_buf();
        move || SqliteDb::open(&path).unwrap()
    })
    .await
    .unwrap();
    let profile = DatastoreProfile {
        name: "moto".into(),
        kind: ProfileKind::S3,
        bucket: Some(bucket.into()),
        endpoint: Some(moto.endpoint.clone()),
        secrets: vec![],
    };
    let secrets = ProfileSecrets(
        [("access_key_id", "test"), ("secret_key", "test")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    db.store_profile("p", &profile, &secrets).await.unwrap();
    DataStore::new().with_profiles(ProfileAccess {
        store: Arc::new(db),
        project: "p".into(),
    })
}

#[test]
fn a_large_payload_streams_up_in_parts_and_back_with_its_digest() {
    let moto = Moto::start();
    moto.create_bucket("big");
    let tmp = tempfile::TempDir::new().unwrap();
    // 20 MiB and a bit: three parts of an 8 MiB multipart upload.
    let file = tmp.path().join("big.bin");
    let bytes: Vec<u8> = (0..20 * 1024 * 1024 + 123)
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = profile_store(&moto, "big", &tmp.path().join("db.sqlite")).await;
        let digest = PayloadDigest::of_file(&file).unwrap();
        store
            .put_file("ds://moto/a/big.bin", &file, &digest)
            .await
            .unwrap();
        assert_eq!(
            store.digest("ds://moto/a/big.bin").await.unwrap(),
            Some(digest.clone())
        );
        assert!(store.holds("ds://moto/a/big.bin", &digest).await.unwrap());

        // A file that changes while it is uploaded replaces nothing.
        let other = PayloadDigest::of_bytes(b"not these bytes");
        let err = store
            .put_file("ds://moto/a/big.bin", &file, &other)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("changed while it was being uploaded"),
            "{err}"
        );
        assert_eq!(
            store.digest("ds://moto/a/big.bin").await.unwrap(),
            Some(digest)
        );
        assert_eq!(store.digest("ds://moto/a/none.bin").await.unwrap(), None);
    });
    drop(rt);
}

/// Every file under `dir` with its path, its bytes read as text.
fn text_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text_files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn a_ds_profile_on_the_server_serves_a_client_without_credentials_and_never_shows_them() {
    let moto = Moto::start();
    moto.create_bucket("vault");
    moto.put_object("vault", "funcs/my_func.py", MY_FUNC.as_bytes());
    let (_dir, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let nonce = uuid_like();
    let (key_id, secret) = (format!("AKID{nonce}"), format!("SECRET{nonce}"));
    // Everything produced below, to be scanned for the credentials at the end.
    let seen: std::cell::RefCell<Vec<(String, String)>> = Default::default();

    let p = TestProject::new();
    let client = |args: &[&str]| -> Command {
        let mut command = p.command(args);
        command
            .env("BATON_API", &server.url)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_ENDPOINT_URL");
        command
    };
    let run = |args: &[&str], extra: &[(&str, &str)]| -> Run {
        let mut command = client(args);
        for (k, v) in extra {
            command.env(k, v);
        }
        let out = Run::from(command.output().unwrap());
        let mut seen = seen.borrow_mut();
        seen.push((format!("baton {args:?} stdout"), out.stdout.clone()));
        seen.push((format!("baton {args:?} stderr"), out.stderr.clone()));
        out
    };

    // The administrator sets the profile once; the values come from their environment.
    run(
        &[
            "profiles",
            "set",
            "my-profile",
            "--type",
            "s3",
            "--bucket",
            "vault",
            "--endpoint",
            &moto.endpoint,
            "--secret",
            "access_key_id=ADMIN_KEY_ID",
            "--secret",
            "secret_key=ADMIN_SECRET",
        ],
        &[("ADMIN_KEY_ID", &key_id), ("ADMIN_SECRET", &secret)],
    )
    .ok();

    // A client with no credentials registers an existing object and uploads a new one.
    run(
        &[
            "log-code",
            "my_func_code",
            "--target-path",
            "ds://my-profile/funcs/my_func.py",
        ],
        &[],
    )
    .ok();
    p.write("up.py", "def main():\n    return 'up'\n");
    run(
        &[
            "log-code",
            "up_code",
            "--local-path",
            "up.py",
            "--target-path",
            "ds://my-profile/funcs/up.py",
        ],
        &[],
    )
    .ok();
    assert_eq!(
        moto.get_object("vault", "funcs/up.py").as_deref(),
        Some(b"def main():\n    return 'up'\n".as_slice())
    );
    // A payload above the server's JSON body limit (8 MiB) streams through it as well.
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(p.path().join("big.bin"), &big).unwrap();
    run(
        &[
            "log-code",
            "big_code",
            "--local-path",
            "big.bin",
            "--target-path",
            "ds://my-profile/blobs/big.bin",
        ],
        &[],
    )
    .ok();
    assert_eq!(
        moto.get_object("vault", "blobs/big.bin").as_deref(),
        Some(big.as_slice())
    );
    std::fs::remove_file(p.path().join("big.bin")).unwrap();
    run(
        &[
            "set-function",
            "--name",
            "my-func",
            "--func",
            "store://my-project/my_func_code",
            "--handler",
            "my_func:main",
        ],
        &[],
    )
    .ok();

    // Run here (the code comes through the server) and on the server (it opens the bucket).
    let here = run(&["run-function", "my-func", "-p", "p1=4", "--json"], &[]).json();
    assert_eq!(here["status"]["results"]["return"], 8, "{here:#}");
    p.write(
        "wf.yaml",
        "name: wf\nsteps:\n  - name: s\n    function: my-func\n    params: {p1: 21}\n    outputs: [return]\n",
    );
    run(
        &[
            "log-code",
            "wf",
            "--local-path",
            "wf.yaml",
            "--code-type",
            "workflow",
        ],
        &[],
    )
    .ok();
    run(
        &[
            "set-workflow",
            "--name",
            "wf",
            "--path",
            "store://artifacts/my-project/wf",
        ],
        &[],
    )
    .ok();
    let remote = run(&["run", "wf", "--engine", "remote:local", "--json"], &[]).json();
    assert_eq!(remote["state"], "Succeeded", "{remote:#}");
    assert_eq!(
        common::step(&remote, "s")["outputs"]["return"],
        42,
        "{remote:#}"
    );

    // Listing and reading show the names of the secrets, never their values.
    let got = run(&["profiles", "get", "my-profile", "--json"], &[]).json();
    assert_eq!(
        got["secrets"],
        serde_json::json!(["access_key_id", "secret_key"]),
        "{got:#}"
    );
    run(&["profiles", "list"], &[]).ok();
    for path in [
        "/api/v1/projects/my-project/datastore-profiles",
        "/api/v1/projects/my-project/datastore-profiles/my-profile",
        "/api/baton/v1/projects/my-project/datastore-profiles",
        "/api/baton/v1/projects/my-project/datastore-profiles/my-profile",
        "/api/v1/projects/my-project",
        "/api/v1/projects/my-project/runs",
        "/api/v2/projects/my-project/artifacts/my_func_code",
    ] {
        let body = server.get(path);
        seen.borrow_mut().push((path.to_string(), body.to_string()));
    }
    let mlrun = server.get("/api/v1/projects/my-project/datastore-profiles/my-profile");
    assert_eq!(mlrun["private"], Value::Null, "{mlrun:#}");

    // A missing profile is a clear error naming it.
    let err = run(&["log-code", "x", "--target-path", "ds://nope/x.py"], &[]).fails(2);
    assert!(
        err.contains("Unable to retrieve the datastore profile `ds://nope/x.py`"),
        "{err}"
    );
    // A broken upload through the server never leaves an object.
    let (status, _) = {
        let response = server
            .request(reqwest::Method::PUT, "/api/baton/v1/projects/my-project/datastore-profiles/my-profile/objects/funcs/torn.py")
            .header("x-baton-digest", format!("sha256:{}", "0".repeat(64)))
            .body("def main(): pass\n")
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        seen.borrow_mut().push(("PUT torn.py".into(), text.clone()));
        (status, text)
    };
    assert_eq!(status, 409);
    assert_eq!(moto.get_object("vault", "funcs/torn.py"), None);

    // The scan: every answer above, the project's files and logs, the server's log and every
    // file it wrote except its databases (where the secrets are kept, and which this scan would
    // find them in).
    let mut seen = seen.into_inner();
    text_files(p.path(), &mut seen);
    seen.push(("server log".into(), server.log_text()));
    let mut server_files = Vec::new();
    text_files(&data, &mut server_files);
    seen.extend(
        server_files
            .into_iter()
            .filter(|(path, _)| !path.contains(".db")),
    );
    drop(server);
    assert!(seen.len() > 30, "the scan saw only {} texts", seen.len());
    for (what, text) in &seen {
        assert!(
            !text.contains(&secret),
            "the secret key leaked into {what}:\n{text}"
        );
        assert!(
            !text.contains(&key_id),
            "the access key id leaked into {what}:\n{text}"
        );
    }
}

/// A unique random string.
fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .unwrap();
    hex::encode(bytes)
}
