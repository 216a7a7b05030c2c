//! Limits on the names of artifacts being logged, on top of the key and tag rules every
//! store URI follows ([`crate::uri::names`]).

use crate::error::{Error, Result};
pub use crate::uri::names::{validate_key, validate_tag};

/// The longest key (or db key) a new artifact may have, in characters. MLRun sets no limit; this
/// one keeps every name derived from a key (the payload's folder, an inline body's `<key>.py`)
/// well within the 255 bytes file systems allow and the code cache's file-name limit.
pub const MAX_KEY_LEN: usize = 128;

/// The longest file name a code artifact may have: the code cache stores the payload under it.
pub use crate::code::MAX_FILE_NAME_LEN;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
