//! `baton export` and `baton import` through the real binary: a zip export carries the code
//! under its original file names and runs, imported into a fresh folder and database, with the
//! same results; a YAML export keeps its `store://` URIs and imports only where the artifacts
//! exist; hostile zips are refused; and a failed export or import writes nothing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::server::{data_dir, TestServer};
use common::{set_function_args, set_up_churn, zip_bytes, Run, TestProject};
use serde_json::{json, Value};

/// A new folder with the churn example set up as project `churn`.
fn churn() -> TestProject {
    let p = TestProject::empty();
    p.baton(&["init", "--name", "churn"]).ok();
    set_up_churn(&p, |args| p.baton(args));
    p
}

/// The step results of a workflow run record, by step: every output, with the `dataset`
/// artifact (a path that differs between projects) replaced by the bytes it holds.
fn step_results(record: &Value) -> Vec<(String, Value)> {
    assert_eq!(record["state"], "Succeeded", "{record:#}");
    record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            let mut outputs = step["outputs"].clone();
            if let Some(path) = outputs.get("dataset").and_then(Value::as_str) {
                outputs["dataset"] = Value::from(std::fs::read_to_string(path).unwrap());
            }
            (step["name"].as_str().unwrap().to_string(), outputs)
        })
        .collect()
}

/// The members of a zip file and their bytes, in order.
fn zip_members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut member = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut member, &mut bytes).unwrap();
            (member.name().to_string(), bytes)
        })
        .collect()
}

/// Names in `dir` that a failed export or import could have left behind.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".baton-"))
        .collect()
}

/// `project.yaml` of the project in `dir`, as JSON.
fn definition(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("project.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn a_zip_export_imported_into_a_fresh_folder_and_database_runs_with_the_same_results() {
    let exporting = churn();
    let before = step_results(&exporting.baton(&["run", "main", "--json"]).json());

    let summary = exporting.baton(&["export", "out.zip", "--json"]).json();
    assert_eq!(summary["format"], "zip");
    let zip = exporting.path().join("out.zip");
    let members = zip_members(&zip);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    // Original file names, the archive kept whole: MLRun's export renames them and breaks
    // handlers such as `prep:main` and `trainer:train`.
    assert_eq!(
        names,
        [
            "project.yaml",
            "code/prep_code/prep.py",
            "code/evaluate_code/evaluate.py",
            "code/trainer_code/trainer.zip",
            "code/churn_workflow/workflow.py",
        ]
    );
    let bytes = |name: &str| &members.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(
        bytes("code/trainer_code/trainer.zip"),
        &std::fs::read(exporting.path().join("trainer.zip")).unwrap()
    );
    assert_eq!(
        bytes("code/prep_code/prep.py"),
        &std::fs::read(exporting.path().join("src/prep.py")).unwrap()
    );
    let inside: Value = serde_yaml::from_slice(bytes("project.yaml")).unwrap();
    let urls: Vec<(&str, &str, &str)> = inside["spec"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["url"].as_str().unwrap(),
                f["handler"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        urls,
        [
            ("prep", "code/prep_code/prep.py", "prep:main"),
            (
                "evaluate",
                "code/evaluate_code/evaluate.py",
                "evaluate:pick"
            ),
            ("trainer", "code/trainer_code/trainer.zip", "trainer:train"),
        ]
    );
    assert_eq!(
        inside["spec"]["workflows"][0]["path"],
        "code/churn_workflow/workflow.py"
    );
    // The same project exports to the same bytes.
    exporting.baton(&["export", "again.zip"]).ok();
    assert_eq!(
        std::fs::read(&zip).unwrap(),
        std::fs::read(exporting.path().join("again.zip")).unwrap()
    );

    // Import into a folder that does not exist yet, with its own database and code cache; the
    // zip is named relative to where baton runs, not to `--context`.
    let importing = TestProject::empty();
    std::fs::copy(&zip, importing.path().join("out.zip")).unwrap();
    drop(exporting);
    let target = importing.path().join("imported");
    let summary = importing
        .baton(&["import", "out.zip", "--context", "imported", "--json"])
        .json();
    assert_eq!(summary["project"], "churn");
    assert_eq!(summary["format"], "zip");
    assert_eq!(summary["files"], 5);
    assert_eq!(Path::new(summary["dir"].as_str().unwrap()), target);
    assert!(target.join(".baton/baton.db").is_file());
    assert_eq!(
        importing
            .baton(&["-C", "imported", "artifacts", "list", "--json"])
            .json(),
        json!([]),
        "the database is fresh"
    );
    let after = step_results(
        &importing
            .baton(&["-C", "imported", "run", "main", "--json"])
            .json(),
    );
    assert_eq!(after, before);
    assert!(leftovers(importing.path()).is_empty());
}

#[test]
fn a_yaml_export_keeps_store_uris_and_imports_where_the_artifacts_exist() {
    let (_keep, data) = data_dir();
    let server = TestServer::start_in(&data, &[]);
    let on_server = |p: &TestProject, args: &[&str]| {
        Run::from(
            p.command(args)
                .env("BATON_API", &server.url)
                .output()
                .unwrap(),
        )
    };
    let exporting = TestProject::empty();
    exporting.baton(&["init", "--name", "churn"]).ok();
    set_up_churn(&exporting, |args| on_server(&exporting, args));
    let before = step_results(&on_server(&exporting, &["run", "main", "--json"]).json());

    on_server(&exporting, &["export", "exported.yaml"]).ok();
    let exported = exporting.path().join("exported.yaml");
    let yaml: Value = serde_yaml::from_slice(&std::fs::read(&exported).unwrap()).unwrap();
    assert_eq!(yaml, definition(exporting.path()));
    assert_eq!(
        yaml["spec"]["functions"][2]["url"],
        "store://artifacts/churn/trainer_code"
    );
    assert_eq!(
        yaml["spec"]["workflows"][0]["path"],
        "store://artifacts/churn/churn_workflow"
    );

    // Into an existing, empty folder, on the server that holds the artifacts.
    let importing = TestProject::empty();
    let src = exported.to_string_lossy().into_owned();
    let dir = importing.path().to_string_lossy().into_owned();
    let summary = on_server(&importing, &["import", &src, "--context", &dir, "--json"]).json();
    assert_eq!(summary["format"], "yaml");
    assert_eq!(definition(importing.path()), yaml);
    let after = step_results(&on_server(&importing, &["run", "main", "--json"]).json());
    assert_eq!(after, before);
}

#[test]
fn a_yaml_export_imported_where_the_artifacts_are_missing_fails_naming_every_uri() {
    let exporting = churn();
    // In the project folder, `export project.yaml` names the definition itself: it stays as the
    // user wrote it.
    let own = exporting.path().join("project.yaml");
    let text = format!("# kept\n{}", std::fs::read_to_string(&own).unwrap());
    std::fs::write(&own, &text).unwrap();
    exporting.baton(&["export", "project.yaml"]).ok();
    assert_eq!(std::fs::read_to_string(&own).unwrap(), text);
    let src = own.to_string_lossy().into_owned();

    let importing = TestProject::empty();
    let stderr = importing
        .baton(&["import", &src, "--context", "fresh"])
        .fails(2);
    assert!(
        stderr.contains("Cannot import project `churn`") && stderr.contains("4 problems"),
        "{stderr}"
    );
    for (what, key) in [
        ("function `prep`", "prep_code"),
        ("function `evaluate`", "evaluate_code"),
        ("function `trainer`", "trainer_code"),
        ("workflow `main`", "churn_workflow"),
    ] {
        let line = format!("- {what}: Artifact `store://artifacts/churn/{key}` not found");
        assert!(stderr.contains(&line), "no `{line}` in\n{stderr}");
    }
    assert!(!importing.path().join("fresh").exists());
    assert!(leftovers(importing.path()).is_empty());
}

/// A zip holding `project.yaml` (a valid, empty project) plus whatever `extra` adds.
fn hostile_zip(extra: impl FnOnce(&mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("project.yaml", options).unwrap();
    zip.write_all(b"kind: project\nmetadata:\n  name: evil\nspec: {}\n")
        .unwrap();
    extra(&mut zip);
    zip.finish().unwrap().into_inner()
}

#[test]
fn hostile_zips_are_refused_and_nothing_is_written() {
    let options = zip::write::SimpleFileOptions::default();
    let file = |name: &'static str| {
        move |zip: &mut zip::ZipWriter<_>| {
            zip.start_file(name, options).unwrap();
            zip.write_all(b"print('pwned')\n").unwrap();
        }
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            hostile_zip(file("../evil.py")),
            "Refusing to extract archive member `../evil.py`",
        ),
        (
            "absolute",
            hostile_zip(file("/tmp/evil.py")),
            "Refusing to extract archive member `/tmp/evil.py`",
        ),
        (
            "escaping-link",
            hostile_zip(|zip| zip.add_symlink("code/up", "../../..", options).unwrap()),
            "Refusing to extract archive member `code/up`",
        ),
        (
            "inner-link",
            hostile_zip(|zip| {
                zip.start_file("code/f.py", options).unwrap();
                zip.write_all(b"x = 1\n").unwrap();
                zip.add_symlink("code/g.py", "f.py", options).unwrap();
            }),
            "it holds symlinks, which `baton export` never writes",
        ),
        (
            "bomb",
            hostile_zip(|zip| {
                let deflated = options.compression_method(zip::CompressionMethod::Deflated);
                zip.start_file("code/zeros.py", deflated).unwrap();
                zip.write_all(&vec![b'#'; 20 << 20]).unwrap();
            }),
            "it looks like a decompression bomb",
        ),
        (
            "state",
            hostile_zip(|zip| {
                zip.start_file(".baton/baton.db", options).unwrap();
                zip.write_all(b"not a database").unwrap();
            }),
            "it holds `.baton/`, baton's own state",
        ),
        (
            "no-project",
            zip_bytes(&[("code/f.py", "x = 1\n")]),
            "holds no `project.yaml` at its top level",
        ),
    ];
    let p = TestProject::empty();
    for (name, bytes, refusal) in cases {
        let src = format!("{name}.zip");
        p.write(&src, bytes);
        let target = format!("target-{name}");
        let stderr = p.baton(&["import", &src, "--context", &target]).fails(2);
        assert!(
            stderr.contains(refusal),
            "{name}: no `{refusal}` in\n{stderr}"
        );
        assert!(!p.path().join(&target).exists(), "{name} left {target}");
        assert!(
            leftovers(p.path()).is_empty(),
            "{name} left a staging folder"
        );
    }
    assert!(!Path::new("/tmp/evil.py").exists());
}

/// The payload file of the latest version of artifact `key`.
fn payload(p: &TestProject, key: &str) -> PathBuf {
    let artifact = p.artifact(&format!("store://my-project/{key}"));
    PathBuf::from(artifact["spec"]["target_path"].as_str().unwrap())
}

#[test]
fn export_reports_every_failure_together_and_writes_nothing() {
    let p = TestProject::new();
    for key in ["gone", "changed", "fine"] {
        let file = format!("{key}.py");
        p.write(&file, "def main():\n    return 1\n");
        p.log_code(&format!("{key}_code"), &file, &[]);
        p.set_store_function(key, &format!("{key}_code"), &format!("{key}:main"));
    }
    std::fs::remove_file(payload(&p, "gone_code")).unwrap();
    std::fs::write(payload(&p, "changed_code"), "def main():\n    return 2\n").unwrap();
    // An artifact that never existed, as a hand-edited project.yaml may name it.
    let mut yaml = definition(p.path());
    yaml["spec"]["workflows"] =
        json!([{"name": "main", "path": "store://artifacts/my-project/ghost"}]);
    p.write("project.yaml", serde_yaml::to_string(&yaml).unwrap());
    p.write("out.zip", "the previous export");

    let stderr = p.baton(&["export", "out.zip"]).fails(2);
    assert!(
        stderr.contains("Cannot export project `my-project`: 3 problems"),
        "{stderr}"
    );
    let gone = payload(&p, "gone_code");
    for line in [
        format!(
            "- function `gone` (`store://my-project/gone_code`): Payload `{}` does not exist",
            gone.display()
        ),
        "- function `changed` (`store://my-project/changed_code`): its payload has digest"
            .to_string(),
        "- workflow `main`: Artifact `store://artifacts/my-project/ghost` not found".to_string(),
    ] {
        assert!(stderr.contains(&line), "no `{line}` in\n{stderr}");
    }
    assert!(!stderr.contains("function `fine`"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(p.path().join("out.zip")).unwrap(),
        "the previous export"
    );
    assert!(leftovers(p.path()).is_empty());
}

#[test]
fn local_sources_travel_too_and_the_effective_build_is_kept() {
    let p = TestProject::new();
    p.write("src/local.py", "def main(x=1):\n    return x * 10\n");
    let elsewhere = tempfile::TempDir::new().unwrap();
    let outside = elsewhere.path().join("outside.py");
    std::fs::write(&outside, "def main():\n    return 'outside'\n").unwrap();
    p.write("pinned.py", "def main():\n    return 'pinned'\n");
    p.log_code(
        "pinned_code",
        "pinned.py",
        &["--requirement", "Pandas>=2.0", "--requirement", "numpy"],
    );
    let outside_path = outside.to_string_lossy().into_owned();
    for (name, func, handler, extra) in [
        ("local", "src/local.py", "local:main", None),
        ("outside", outside_path.as_str(), "outside:main", None),
        (
            "pinned",
            "store://my-project/pinned_code",
            "pinned:main",
            Some("pandas>=2.1"),
        ),
    ] {
        let mut args = set_function_args(name, func, handler).to_vec();
        if let Some(requirement) = extra {
            args.extend(["--requirement", requirement]);
        }
        p.baton(&args).ok();
    }
    let build = |p: &TestProject, dir: &str| {
        p.baton(&["-C", dir, "functions", "get", "pinned", "--json"])
            .json()["effective_build"]["requirements"]
            .clone()
    };
    let before = build(&p, ".");
    assert_eq!(before, json!(["pandas>=2.1", "numpy"]));
    p.baton(&["export", "out.zip"]).ok();
    let names: Vec<String> = zip_members(&p.path().join("out.zip"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "project.yaml",
            "src/local.py",
            "code/files/outside.py",
            "code/pinned_code/pinned.py"
        ]
    );

    p.baton(&["import", "out.zip", "--context", "copy"]).ok();
    drop(elsewhere);
    assert_eq!(build(&p, "copy"), before);
    for (name, result) in [
        ("local", json!(10)),
        ("outside", json!("outside")),
        ("pinned", json!("pinned")),
    ] {
        let run = p
            .baton(&["-C", "copy", "run-function", name, "--json"])
            .json();
        assert_eq!(
            run["status"]["results"]["return"], result,
            "{name}: {run:#}"
        );
    }
}

#[test]
fn import_never_overwrites_a_project_or_a_file() {
    let p = TestProject::with_trivial_function();
    p.baton(&["export", "out.zip"]).ok();

    let stderr = p.baton(&["import", "out.zip", "--context", "."]).fails(2);
    assert!(stderr.contains("already holds a project"), "{stderr}");

    let target = p.path().join("busy");
    std::fs::create_dir_all(target.join("code")).unwrap();
    std::fs::write(target.join("notes.txt"), "mine").unwrap();
    let stderr = p
        .baton(&["import", "out.zip", "--context", "busy"])
        .fails(2);
    assert!(stderr.contains("it already has `code`"), "{stderr}");
    assert!(!target.join("project.yaml").exists());
    assert!(leftovers(&target).is_empty());

    std::fs::remove_dir(target.join("code")).unwrap();
    p.baton(&["import", "out.zip", "--context", "busy"]).ok();
    assert_eq!(
        std::fs::read_to_string(target.join("notes.txt")).unwrap(),
        "mine"
    );
    let run = p
        .baton(&["-C", "busy", "run-function", "triv", "--json"])
        .json();
    assert_eq!(run["status"]["results"]["return"], 1);
}
