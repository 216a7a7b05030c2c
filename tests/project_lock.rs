//! Commands that change `project.yaml` in parallel: none of their changes is lost.

mod common;

use common::TestProject;

/// The `name` of every entry of `spec.<list>` in `project.yaml`.
fn names(p: &TestProject, list: &str) -> Vec<String> {
    let text = std::fs::read_to_string(p.path().join("project.yaml")).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut names: Vec<String> = yaml["spec"][list]
        .as_sequence()
        .map(|s| {
            s.iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn parallel_set_function_and_set_workflow_keep_every_entry() {
    const FUNCTIONS: usize = 24;
    const WORKFLOWS: usize = 8;
    let p = TestProject::new();
    p.write("f.py", "def main():\n    return 1\n");
    p.write("wf.py", "def kfpipeline():\n    pass\n");
    let mut children = Vec::new();
    for n in 0..FUNCTIONS {
        let name = format!("f{n:02}");
        let args = ["set-function", "--name", &name, "--func", "f.py"];
        children.push(p.command(&args).output_spawn());
        if n < WORKFLOWS {
            let name = format!("w{n:02}");
            let args = ["set-workflow", "--name", &name, "--path", "wf.py"];
            children.push(p.command(&args).output_spawn());
        }
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let expected: Vec<String> = (0..FUNCTIONS).map(|n| format!("f{n:02}")).collect();
    assert_eq!(names(&p, "functions"), expected);
    let expected: Vec<String> = (0..WORKFLOWS).map(|n| format!("w{n:02}")).collect();
    assert_eq!(names(&p, "workflows"), expected);
}

/// Spawns a command with its output captured.
trait OutputSpawn {
    fn output_spawn(&mut self) -> std::process::Child;
}

impl OutputSpawn for std::process::Command {
    fn output_spawn(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}
