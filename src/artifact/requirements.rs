//! Pip requirements of code artifacts: parsing (PEP 508) and the merge into a function's build.

use std::collections::HashMap;
use std::str::FromStr;

use pep508_rs::{Requirement, VerbatimUrl};

use crate::error::{Error, Result};

/// Parses one requirement, naming it in the error when it is not valid PEP 508.
pub fn parse(requirement: &str) -> Result<Requirement<VerbatimUrl>> {
    Requirement::<VerbatimUrl>::from_str(requirement).map_err(|e| {
        Error::invalid_with_hint(
            format!("Requirement `{requirement}` is not a valid PEP 508 requirement: {e}"),
            "write requirements as pip does, e.g. `pandas>=2.0` or `numpy`",
        )
    })
}

/// Checks every requirement of a list, failing on the first invalid one.
pub fn validate_all(requirements: &[String]) -> Result<()> {
    requirements.iter().try_for_each(|r| parse(r).map(|_| ()))
}

/// The PEP 503 normalised name: lowercase, runs of `-`, `_` and `.` collapsed to `-`.
pub fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            in_separator = true;
        } else {
            if in_separator && !out.is_empty() {
                out.push('-');
            }
            in_separator = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Merges an artifact's requirements into a function's own build requirements.
///
/// MLRun's rule (`merge_requirements`): entries are keyed by canonical name; the function's own
/// entries win; the artifact's entries come first (in their order, carrying the winner's text),
/// then the function-only ones; inside one list the last duplicate wins; every entry is
/// re-rendered in canonical PEP 508 form (`pandas >= 2.0` becomes `pandas>=2.0`).
pub fn merge(artifact: &[String], function: &[String]) -> Result<Vec<String>> {
    let parse_list = |list: &[String]| -> Result<Vec<(String, String)>> {
        list.iter()
            .map(|r| {
                let req = parse(r)?;
                Ok((canonical_name(req.name.as_ref()), render(r, &req)))
            })
            .collect()
    };
    let artifact = parse_list(artifact)?;
    let function = parse_list(function)?;

    let mut winner: HashMap<&str, &str> = HashMap::new();
    for (name, text) in artifact.iter().chain(function.iter()) {
        winner.insert(name, text);
    }
    let mut merged = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, _) in artifact.iter().chain(function.iter()) {
        if seen.insert(name.as_str()) {
            merged.push(winner[name.as_str()].to_string());
        }
    }
    Ok(merged)
}

/// The canonical PEP 508 text of `req`, keeping the name as the user spelled it (`packaging`
/// does the same; the parser itself normalises names).
fn render(original: &str, req: &Requirement<VerbatimUrl>) -> String {
    let rendered = req.to_string();
    let spelled: String = original
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    match rendered.strip_prefix(req.name.as_ref()) {
        Some(rest) if canonical_name(&spelled) == canonical_name(req.name.as_ref()) => {
            format!("{spelled}{rest}")
        }
        _ => rendered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn canonical_names_follow_pep_503() {
        assert_eq!(canonical_name("Scikit.Learn"), "scikit-learn");
        assert_eq!(canonical_name("scikit__learn"), "scikit-learn");
        assert_eq!(canonical_name("Foo-_.Bar"), "foo-bar");
    }

    #[test]
    fn merge_table() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            // artifact only
            (&["pandas>=2.0", "numpy"], &[], &["pandas>=2.0", "numpy"]),
            // function only
            (&[], &["requests"], &["requests"]),
            // the user's entry wins, in the artifact's position
            (
                &["pandas>=2.0", "numpy"],
                &["Pandas==1.5"],
                &["Pandas==1.5", "numpy"],
            ),
            // names compare by PEP 503 normalisation
            (
                &["scikit_learn>=1"],
                &["Scikit.Learn==1.3"],
                &["Scikit.Learn==1.3"],
            ),
            // artifact entries first, then function-only ones
            (&["a", "b"], &["c", "b>1"], &["a", "b>1", "c"]),
            // re-rendered canonically
            (&["pandas >= 2.0"], &[], &["pandas>=2.0"]),
            // the last duplicate inside one list wins
            (&["x==1", "x==2"], &[], &["x==2"]),
        ];
        for (artifact, function, expected) in cases {
            assert_eq!(
                merge(&strings(artifact), &strings(function)).unwrap(),
                strings(expected),
                "artifact {artifact:?} + function {function:?}"
            );
        }
    }

    #[test]
    fn invalid_requirement_is_named() {
        let err = merge(&strings(&["pandas>>2"]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Requirement `pandas>>2` is not a valid PEP 508 requirement"),
            "{err}"
        );
    }
}
