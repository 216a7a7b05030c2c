//! Naming rules for artifact keys and tags (MLRun's, so names move between the two freely).

use crate::error::{Error, Result};

/// The pattern keys and db keys must match.
pub const KEY_PATTERN: &str = "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";

/// The longest key (or db key) a new artifact may have, in characters. MLRun sets no limit; this
/// one keeps every name derived from a key (the payload's folder, an inline body's `<key>.py`)
/// well within the 255 bytes file systems allow and the code cache's file-name limit.
pub const MAX_KEY_LEN: usize = 128;

/// The longest file name a code artifact may have: the code cache stores the payload under it.
pub use crate::code::MAX_FILE_NAME_LEN;

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

/// Checks the key (or db key) of an artifact being logged: [`validate_key`], and at most
/// [`MAX_KEY_LEN`] characters. Reading older records checks only the pattern.
pub fn validate_new_key(field: &str, key: &str) -> Result<()> {
    let len = key.chars().count();
    if len > MAX_KEY_LEN {
        return Err(Error::invalid_with_hint(
            format!(
                "Field 'artifact.{field}' is {len} characters long, above the limit of {MAX_KEY_LEN}"
            ),
            "choose a shorter key; labels and tags can carry the details",
        ));
    }
    validate_key(field, key)
}

/// Checks the file name a code artifact is stored and pulled under (at most
/// [`MAX_FILE_NAME_LEN`] characters).
pub fn validate_file_name(name: &str) -> Result<()> {
    let len = name.chars().count();
    if len > MAX_FILE_NAME_LEN {
        let shown: String = name.chars().take(40).collect();
        return Err(Error::invalid_with_hint(
            format!("The code's file name is {len} characters long, above the limit of {MAX_FILE_NAME_LEN} (`{shown}...`)"),
            "rename the file before logging it",
        ));
    }
    Ok(())
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
    fn new_keys_have_a_length_limit() {
        validate_new_key("key", &"k".repeat(MAX_KEY_LEN)).unwrap();
        let err = validate_new_key("db_key", &"k".repeat(MAX_KEY_LEN + 1)).unwrap_err();
        assert!(err
            .to_string()
            .contains("Field 'artifact.db_key' is 129 characters long, above the limit of 128"));
        validate_key("key", &"k".repeat(1000)).unwrap();
        validate_file_name(&"f".repeat(MAX_FILE_NAME_LEN)).unwrap();
        assert!(validate_file_name(&"f".repeat(MAX_FILE_NAME_LEN + 1)).is_err());
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
