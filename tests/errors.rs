//! Errors as a server needs them: advice kept in the hint, causes chained as sources, and the
//! CLI still printing both (cause lines, then the hint after a blank line).

mod common;

use baton::error::ErrorKind;
use baton::project::Project;
use common::TestProject;

#[test]
fn no_project_is_not_found_with_the_cli_advice_in_the_hint_not_the_message() {
    let dir = tempfile::TempDir::new().unwrap();
    let err = Project::discover(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.http_status(), 404);
    assert!(!err.to_string().contains("baton"), "{err}");
    assert!(err.hint().unwrap().contains("baton init"), "{err:?}");
    assert!(!err.mlrun_body().detail.contains("baton init"));
}

#[test]
fn the_cli_prints_the_hint_after_a_blank_line_and_exits_2() {
    let p = TestProject::empty();
    let stderr = p.baton(&["functions", "list"]).fails(2);
    assert!(
        stderr.contains("\n\nhint: run `baton init` to create a project"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_project_file_chains_the_yaml_error_as_its_source() {
    let p = TestProject::new();
    p.write("project.yaml", "kind: [unclosed\n");
    let err = Project::load(p.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let message = err.to_string();
    assert!(
        message.ends_with("is not a valid project file"),
        "{message}"
    );
    let cause = std::error::Error::source(&err).expect("the YAML error");
    assert!(err.chain().to_string().ends_with(&cause.to_string()));
    // The CLI prints the cause on its own line.
    let stderr = p.baton(&["functions", "list"]).fails(2);
    assert!(
        stderr.contains("is not a valid project file\n  Caused by: "),
        "{stderr}"
    );
}
