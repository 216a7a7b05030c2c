//! Keeping a profile's secrets out of error messages.
//!
//! A store's own errors may quote what it was sent: S3 answers an unknown key with
//! `<AWSAccessKeyId>...</AWSAccessKeyId>`, and [`object_store`] puts the answer in its message.
//! Every error of a store opened with a profile's secrets passes through [`redact`], which
//! replaces any secret in the message or its causes with `***`.

use crate::error::{Error, ErrorKind};

/// What replaces a secret.
const MASK: &str = "***";

/// `error`, with every value of `secrets` in its message and causes masked. An error that
/// quotes none is returned as it is; one that does is rebuilt with the same kind and hint, its
/// causes flattened into one masked cause.
pub(super) fn redact(error: Error, secrets: &[String]) -> Error {
    let secrets: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let message = error.to_string();
    let quotes = |text: &str| secrets.iter().any(|s| text.contains(s));
    if !quotes(&message) && !causes.iter().any(|c| quotes(c)) {
        return error;
    }
    let mask = |text: &str| {
        secrets
            .iter()
            .fold(text.to_string(), |text, secret| text.replace(secret, MASK))
    };
    let message = mask(&message);
    let cause = mask(&causes.join(": "));
    let rebuilt = match error.kind() {
        ErrorKind::InvalidArgument => Error::invalid(message),
        ErrorKind::NotFound => Error::not_found(message),
        ErrorKind::Conflict => Error::conflict(message),
        ErrorKind::BadRequest => Error::bad_request(message),
        _ => Error::runtime_from(message, cause.clone()),
    };
    let rebuilt = match error.hint() {
        Some(hint) => rebuilt.with_hint(mask(hint)),
        None => rebuilt,
    };
    if !cause.is_empty() {
        tracing::debug!("cause of a redacted datastore error: {cause}");
    }
    rebuilt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_messages_and_causes() {
        let secrets = vec!["AKID123".to_string(), "s3cr3t".to_string()];
        let quoted = Error::runtime_from(
            "Failed to read `ds://p/x`",
            "403 Forbidden: <AWSAccessKeyId>AKID123</AWSAccessKeyId>".to_string(),
        );
        let redacted = redact(quoted, &secrets);
        let mut text = redacted.to_string();
        let mut source = std::error::Error::source(&redacted);
        while let Some(cause) = source {
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        assert!(!text.contains("AKID123"), "{text}");
        assert!(
            text.contains("<AWSAccessKeyId>***</AWSAccessKeyId>"),
            "{text}"
        );
        assert_eq!(redacted.kind(), ErrorKind::Runtime);

        let clean = Error::not_found("Payload `ds://p/x` does not exist");
        assert_eq!(redact(clean, &secrets).kind(), ErrorKind::NotFound);
    }
}
