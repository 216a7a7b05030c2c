//! Naming rules for artifact keys and tags (MLRun's, so names move between the two freely).

use crate::error::{Error, Result};

/// The pattern keys and db keys must match.
pub const KEY_PATTERN: &str = "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";

/// The pattern tags must match (at most 63 characters).
pub const TAG_PATTERN: &str = "^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/// Alphanumeric ends with `-_.` allowed in between.
fn is_dns_like(s: &str) -> bool {
    let bytes = s.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(inner_ok)
        }
        _ => false,
    }
}

/// Checks an artifact key (or db key); `field` names it in the error (`key`, `db_key`).
pub fn validate_key(field: &str, key: &str) -> Result<()> {
    if is_dns_like(key) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Field 'artifact.{field}' is malformed. `{key}` does not match required pattern: {KEY_PATTERN}"
        )))
    }
}

/// Checks a tag: at most 63 characters, alphanumeric at both ends, `-_.` in between.
pub fn validate_tag(tag: &str) -> Result<()> {
    if tag.len() <= 63 && is_dns_like(tag) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Field 'artifact.metadata.tag' is malformed. `{tag}` does not match required pattern: {TAG_PATTERN}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlrun_rules() {
        for ok in ["a", "my_func_code", "A.b-c_9", "x1"] {
            validate_key("key", ok).unwrap();
        }
        for bad in ["", "-a", "a-", "a b", "a/b", "_a", "a:b", "é"] {
            let err = validate_key("key", bad).unwrap_err().to_string();
            assert!(err.contains("Field 'artifact.key' is malformed"), "{err}");
        }
    }

    #[test]
    fn tags_follow_mlrun_rules() {
        validate_tag("v1.0").unwrap();
        validate_tag(&"a".repeat(63)).unwrap();
        for bad in ["", "v1-", ".v", &"a".repeat(64), "a:b"] {
            let err = validate_tag(bad).unwrap_err().to_string();
            assert!(
                err.contains("Field 'artifact.metadata.tag' is malformed"),
                "{err}"
            );
        }
    }
}
