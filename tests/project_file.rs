//! `project.yaml` as users edit it: names are checked on load, the file's mode is kept on save,
//! and a URI naming a project but no key says so.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::TestProject;

fn mode(p: &TestProject) -> u32 {
    std::fs::metadata(p.path().join("project.yaml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn saving_project_yaml_keeps_its_mode() {
    let p = TestProject::empty();
    let init = p.command(&["init", "--name", "my-project"]);
    // A new project.yaml gets the mode any new file gets under the user's umask.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(init.get_program())
        .args(init.get_args())
        .current_dir(p.path())
        .envs(init.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert_eq!(mode(&p), 0o644);

    p.write("f.py", "def main():\n    return 1\n");
    for wanted in [0o640, 0o664] {
        std::fs::set_permissions(
            p.path().join("project.yaml"),
            std::fs::Permissions::from_mode(wanted),
        )
        .unwrap();
        p.baton(&["set-function", "--name", "f", "--func", "f.py"])
            .ok();
        assert_eq!(mode(&p), wanted, "set-function changed the mode");
    }
}

#[test]
fn hand_edited_project_names_are_checked_on_load() {
    for bad in ["a/b", "../../evil", "Upper", ""] {
        let p = TestProject::empty();
        p.write(
            "project.yaml",
            format!("kind: project\nmetadata:\n  name: '{bad}'\nspec: {{}}\n"),
        );
        p.write("f.py", "def main():\n    return 1\n");
        let err = p.baton(&["functions", "list"]).fails(2);
        assert!(err.contains("project.yaml"), "{bad}: {err}");
        assert!(err.contains("metadata.name"), "{bad}: {err}");
        assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        let err = p.baton(&["log-code", "k", "--local-path", "f.py"]).fails(2);
        assert!(err.contains("metadata.name"), "{bad}: {err}");
        assert!(!p.path().join("evil").exists() && !p.path().join("a").exists());
    }
}

#[test]
fn a_uri_with_a_project_and_no_key_says_the_key_is_missing() {
    let p = TestProject::new();
    for uri in ["store://artifacts/my-project/", "store://my-project/"] {
        let err = p.baton(&["artifacts", "get", uri]).fails(2);
        assert!(
            err.contains(&format!(
                "Malformed store URI `{uri}`: the key is empty (`my-project/` names a project and no key)"
            )),
            "{err}"
        );
    }
    // A slash after a key is still tolerated.
    p.write("f.py", "def main():\n    return 1\n");
    p.log_code("k", "f.py", &[]);
    p.baton(&["artifacts", "get", "store://artifacts/my-project/k/"])
        .ok();
}
