//! `s3://<bucket>/<key>` payloads, through [`object_store`]'s S3 client.
//!
//! Credentials and settings come from the environment as the AWS tools name them
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`; `AWS_ENDPOINT_URL_S3` as MLRun names it), or from a datastore profile,
//! whose endpoint and secrets then take precedence. An `http://` endpoint (an S3-compatible
//! store on a private network, or a test server) is allowed, and requests go path-style
//! (`<endpoint>/<bucket>/<key>`), which every S3-compatible store understands.
//!
//! Retries are bounded (three tries within 30 s): a store that is down fails a download in seconds, not the
//! minutes of the client's default, and the caller decides whether to try again.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, RetryConfig};

use super::profile::{DatastoreProfile, ProfileSecrets};
use crate::error::{Error, Result};

/// MLRun's name for the S3 endpoint variable, read besides the AWS tools' `AWS_ENDPOINT_URL`.
pub const MLRUN_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_S3";

/// The region used when none is configured (S3-compatible stores ignore it).
const DEFAULT_REGION: &str = "us-east-1";

/// How often a failed S3 request is retried, and for how long in all.
const RETRY: (usize, Duration) = (3, Duration::from_secs(30));

/// An `s3://` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// The object's key.
    pub key: String,
}

impl S3Url {
    /// Splits `s3://<bucket>/<key>`; a URL without a bucket or key is
    /// [`Error::InvalidArgument`].
    pub fn parse(url: &str) -> Result<S3Url> {
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(S3Url {
                bucket: bucket.to_string(),
                key: key.to_string(),
            }),
            _ => Err(Error::invalid(format!(
                "Malformed S3 URL `{url}`: expected `s3://<bucket>/<key>`"
            ))),
        }
    }

    /// The key as an object path.
    pub fn path(&self) -> Result<ObjectPath> {
        ObjectPath::parse(&self.key)
            .map_err(|e| Error::invalid_from(format!("`{}` is not a usable S3 key", self.key), e))
    }
}

/// What a store is opened with; equal settings share one client.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct S3Settings {
    bucket: String,
    endpoint: Option<String>,
    access_key_id: Option<String>,
    secret_key: Option<String>,
    session_token: Option<String>,
}

impl S3Settings {
    /// Settings from the environment alone.
    pub(super) fn from_env(bucket: &str) -> S3Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        S3Settings {
            bucket: bucket.to_string(),
            endpoint: var(MLRUN_ENDPOINT_ENV)
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .or_else(|| var("AWS_ENDPOINT")),
            access_key_id: None,
            secret_key: None,
            session_token: None,
        }
    }

    /// Settings of `profile`, over the environment's.
    pub(super) fn from_profile(profile: &DatastoreProfile, secrets: &ProfileSecrets) -> S3Settings {
        let env = S3Settings::from_env(profile.bucket.as_deref().unwrap_or_default());
        let secret = |key: &str| secrets.get(key).map(str::to_string);
        S3Settings {
            endpoint: profile.endpoint.clone().or(env.endpoint),
            access_key_id: secret("access_key_id"),
            secret_key: secret("secret_key"),
            session_token: secret("session_token"),
            ..env
        }
    }

    /// A client of the bucket.
    pub(super) fn open(&self) -> Result<Arc<dyn ObjectStore>> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region(DEFAULT_REGION);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &self.session_token {
            builder = builder.with_token(token);
        }
        let (max_retries, retry_timeout) = RETRY;
        let store = builder
            .with_retry(RetryConfig {
                max_retries,
                retry_timeout,
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| {
                // The builder's own message may quote its configuration: keep it out.
                tracing::debug!("S3 client set-up failed: {e}");
                Error::invalid(format!(
                    "Cannot open S3 bucket `{}`: its configuration is incomplete or malformed",
                    self.bucket
                ))
                .with_hint("check AWS_REGION, AWS_ENDPOINT_URL and the profile's endpoint")
            })?;
        Ok(Arc::new(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_need_a_bucket_and_a_key() {
        let url = S3Url::parse("s3://bucket/funcs/my_func.py").unwrap();
        assert_eq!(
            (url.bucket.as_str(), url.key.as_str()),
            ("bucket", "funcs/my_func.py")
        );
        for bad in ["s3://bucket", "s3://bucket/", "s3:///key"] {
            assert!(S3Url::parse(bad).unwrap_err().to_string().contains(bad));
        }
    }
}
