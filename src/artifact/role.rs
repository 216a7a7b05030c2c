//! Checks that an artifact is used in the role its `code_type` declares.

use crate::error::{Error, Result};
use crate::model::artifact::CODE_KIND;
use crate::model::{Artifact, CodeType};

/// Refuses an artifact that is not a code artifact, or whose `code_type` is not `expected`.
///
/// `what` names the argument in the message (`Source`, `Workflow path`). A record without a
/// code_type (legacy) counts as `function`, MLRun's default.
pub fn check_role(artifact: &Artifact, uri: &str, expected: CodeType, what: &str) -> Result<()> {
    if artifact.kind != CODE_KIND {
        return Err(Error::invalid(format!(
            "{what} `{uri}` resolves to a '{}' artifact; expected a code artifact (kind='code')",
            artifact.kind
        )));
    }
    let actual = artifact.code_type();
    if actual != expected {
        return Err(Error::invalid_with_hint(
            format!(
                "{what} `{uri}` resolves to artifact `{}` with code_type='{actual}'; expected '{expected}'",
                artifact.metadata.key
            ),
            format!("log the code with `baton log-code KEY --code-type {expected}`"),
        ));
    }
    Ok(())
}
