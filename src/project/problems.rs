//! Many failures reported as one error, so a user fixes them all in one round.
//!
//! Export and import check every function and workflow of a project before writing anything:
//! stopping at the first missing artifact would make the user rerun once per problem.

use crate::error::{Error, ErrorKind};

/// The failures collected while checking a project, each with what it concerns.
#[derive(Debug, Default)]
pub(super) struct Problems {
    found: Vec<(String, Error)>,
}

impl Problems {
    /// Records that `subject` (e.g. "function `prep`") failed with `error`.
    pub(super) fn push(&mut self, subject: impl Into<String>, error: Error) {
        self.found.push((subject.into(), error));
    }

    /// Keeps the value of `result`, or records its error against `subject`.
    pub(super) fn keep<T>(&mut self, subject: &str, result: crate::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(subject, error);
                None
            }
        }
    }

    /// `Ok` when nothing failed; otherwise one error whose message is `summary` followed by
    /// every failure on its own line (with its causes). Its kind is that of the failures when
    /// they share one, else a failure of the work if any is one, else an invalid argument.
    pub(super) fn into_result(self, summary: &str) -> crate::Result<()> {
        if self.found.is_empty() {
            return Ok(());
        }
        let count = self.found.len();
        let mut message = format!(
            "{summary}: {count} problem{}",
            if count == 1 { "" } else { "s" }
        );
        for (subject, error) in &self.found {
            message.push_str(&format!("\n  - {subject}: {}", error.chain()));
        }
        let kinds: Vec<ErrorKind> = self.found.iter().map(|(_, e)| e.kind()).collect();
        let error = if kinds.iter().all(|k| *k == kinds[0]) {
            match kinds[0] {
                ErrorKind::NotFound => Error::not_found(message),
                ErrorKind::Conflict => Error::conflict(message),
                ErrorKind::Runtime | ErrorKind::Internal => Error::runtime(message),
                _ => Error::invalid(message),
            }
        } else if kinds
            .iter()
            .any(|k| matches!(k, ErrorKind::Runtime | ErrorKind::Internal))
        {
            Error::runtime(message)
        } else {
            Error::invalid(message)
        };
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_listed_and_the_kind_follows_them() {
        assert!(Problems::default().into_result("Cannot export").is_ok());

        let mut missing = Problems::default();
        missing.push(
            "function `a`",
            Error::not_found("Artifact `store://p/a` not found"),
        );
        missing.push(
            "workflow `w`",
            Error::not_found("Artifact `store://p/w` not found"),
        );
        let err = missing
            .into_result("Cannot export project `p`")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            "Cannot export project `p`: 2 problems\n  \
             - function `a`: Artifact `store://p/a` not found\n  \
             - workflow `w`: Artifact `store://p/w` not found"
        );

        let mut mixed = Problems::default();
        mixed.push("function `a`", Error::not_found("gone"));
        mixed.push(
            "function `b`",
            Error::runtime_from(
                "Failed to download `s3://b/x`",
                std::io::Error::other("refused"),
            ),
        );
        let err = mixed.into_result("Cannot export").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime);
        assert!(
            err.to_string()
                .ends_with("- function `b`: Failed to download `s3://b/x`: refused"),
            "{err}"
        );

        let mut one = Problems::default();
        assert_eq!(one.keep("x", Ok::<_, Error>(3)), Some(3));
        assert_eq!(one.keep::<()>("x", Err(Error::invalid("bad"))), None);
        let err = one.into_result("Cannot import").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_string(), "Cannot import: 1 problem\n  - x: bad");
    }
}
