//! Datastore profiles: named storage locations with their credentials, so a `ds://<profile>/<path>`
//! URL names an object without the caller ever holding the credentials.
//!
//! A profile has a public part ([`DatastoreProfile`]: its type, bucket, endpoint, and the names
//! of the secrets it holds) and a private part ([`ProfileSecrets`]: the secret values). The
//! private part is stored where the profile is (the embedded database, or a `baton server`'s) and
//! is only ever read by the code that opens the store: no listing, API answer or error message
//! carries it, and [`ProfileSecrets`] does not even print its values in debug output.
//!
//! Where a `ds://` URL resolves depends on who holds the profile ([`ProfileAccess`]): with the
//! database at hand, the profile turns into a real URL and credentials ([`ProfileTarget`]); a
//! client of a `baton server` instead reads and writes through the server, which resolves the
//! profile itself, so credentials never leave it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::http::Bearer;
use crate::error::{Error, Result};

/// The scheme of profile URLs.
pub const DS_SCHEME: &str = "ds://";

/// The kinds of storage a profile can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// An S3 bucket (or an S3-compatible store at `endpoint`).
    S3,
    /// A local folder (`endpoint` is its absolute path).
    File,
    /// A read-only web server (`endpoint` is its base URL).
    Http,
}

impl ProfileKind {
    /// The names of the secrets a profile of this kind may hold.
    pub fn secret_keys(self) -> &'static [&'static str] {
        match self {
            ProfileKind::S3 => &["access_key_id", "secret_key", "session_token"],
            ProfileKind::File => &[],
            ProfileKind::Http => &["token"],
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::S3 => "s3",
            ProfileKind::File => "file",
            ProfileKind::Http => "http",
        }
    }
}

impl fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProfileKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "s3" => Ok(ProfileKind::S3),
            "file" => Ok(ProfileKind::File),
            "http" => Ok(ProfileKind::Http),
            other => Err(Error::invalid(format!(
                "Unknown datastore profile type `{other}`: expected one of `s3`, `file`, `http`"
            ))),
        }
    }
}

/// The public part of a profile: everything but the secret values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatastoreProfile {
    /// The name `ds://<name>/...` refers to.
    pub name: String,
    /// The kind of storage.
    #[serde(rename = "type")]
    pub kind: ProfileKind,
    /// The bucket (`s3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The endpoint: an S3-compatible store's URL (`s3`), the folder (`file`), the base URL
    /// (`http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The names of the secrets the profile holds (never their values).
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// The private part of a profile: secret name to value. Its debug output hides the values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSecrets(pub BTreeMap<String, String>);

impl fmt::Debug for ProfileSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl ProfileSecrets {
    /// Every secret value.
    pub fn values(&self) -> Vec<String> {
        self.0.values().cloned().collect()
    }

    /// The value of secret `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl DatastoreProfile {
    /// Checks the profile is complete for its kind: a valid name, the fields its kind needs, and
    /// only secrets its kind knows.
    pub fn validate(&self, secrets: &ProfileSecrets) -> Result<()> {
        crate::uri::names::validate_key("profile name", &self.name)?;
        let needs = |field: &str, value: &Option<String>| match value {
            Some(v) if !v.is_empty() => Ok(()),
            _ => Err(Error::invalid(format!(
                "A `{}` datastore profile needs --{field}",
                self.kind
            ))),
        };
        match self.kind {
            ProfileKind::S3 => needs("bucket", &self.bucket)?,
            ProfileKind::File => {
                needs("endpoint", &self.endpoint)?;
                let root = self.endpoint.as_deref().unwrap_or_default();
                if !root.trim_start_matches("file://").starts_with('/') {
                    return Err(Error::invalid(format!(
                        "The endpoint `{root}` of a `file` datastore profile must be an absolute folder"
                    )));
                }
            }
            ProfileKind::Http => {
                needs("endpoint", &self.endpoint)?;
                let base = self.endpoint.as_deref().unwrap_or_default();
                if !(base.starts_with("http://") || base.starts_with("https://")) {
                    return Err(Error::invalid(format!(
                        "The endpoint `{base}` of an `http` datastore profile must be an http(s):// URL"
                    )));
                }
            }
        }
        if let Some(endpoint) = self
            .endpoint
            .as_deref()
            .filter(|_| self.kind == ProfileKind::S3)
        {
            url::Url::parse(endpoint).map_err(|e| {
                Error::invalid_from(format!("The S3 endpoint `{endpoint}` is not a URL"), e)
            })?;
        }
        let known = self.kind.secret_keys();
        for key in secrets.0.keys() {
            if !known.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "A `{}` datastore profile has no secret `{key}`: expected {}",
                    self.kind,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            }
        }
        Ok(())
    }

    /// The real URL of `path` in this profile's storage.
    pub fn url_of(&self, path: &str) -> String {
        let base = match self.kind {
            ProfileKind::S3 => format!("s3://{}", self.bucket.as_deref().unwrap_or_default()),
            ProfileKind::File | ProfileKind::Http => self.endpoint.clone().unwrap_or_default(),
        };
        format!("{}/{path}", base.trim_end_matches('/'))
    }
}

/// A `ds://<profile>/<path>` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUrl {
    /// The profile's name.
    pub profile: String,
    /// The object's path inside the profile's storage: `/`-separated, no empty, `.` or `..`
    /// segment, so it cannot leave the storage the profile names.
    pub path: String,
}

impl FromStr for ProfileUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let malformed = |why: &str| {
            Error::invalid_with_hint(
                format!("Malformed datastore profile URL `{url}`: {why}"),
                "profile URLs look like `ds://<profile>/<path>`, e.g. `ds://my-profile/funcs/my_func.py`",
            )
        };
        let rest = url
            .strip_prefix(DS_SCHEME)
            .ok_or_else(|| malformed("it does not start with `ds://`"))?;
        let (profile, path) = rest
            .split_once('/')
            .ok_or_else(|| malformed("it names no object path"))?;
        if profile.is_empty() {
            return Err(malformed("the profile name is empty"));
        }
        if path.is_empty() {
            return Err(malformed("it names no object path"));
        }
        if path
            .split('/')
            .any(|s| matches!(s, "" | "." | "..") || s.contains(['\\', '\0', '?', '#']))
        {
            return Err(malformed(
                "the path has an empty, `.` or `..` segment or a `\\`, `?` or `#`",
            ));
        }
        Ok(ProfileUrl {
            profile: profile.to_string(),
            path: path.to_string(),
        })
    }
}

/// Where a `ds://` URL's bytes actually are.
pub enum ProfileTarget {
    /// The profile, resolved here: its real URL and the credentials to open it with.
    Direct {
        /// The profile.
        profile: DatastoreProfile,
        /// Its secrets.
        secrets: ProfileSecrets,
    },
    /// A `baton server` holds the profile: the object is read and written through `url`.
    Server {
        /// The server's route for this object.
        url: String,
        /// The server's token.
        bearer: Option<Bearer>,
    },
}

/// Stored datastore profiles of a project, with their secrets.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Creates or replaces profile `profile.name` of `project` with `secrets`.
    async fn store_profile(
        &self,
        project: &str,
        profile: &DatastoreProfile,
        secrets: &ProfileSecrets,
    ) -> Result<()>;

    /// The public part of profile `name`; [`Error::NotFound`] when there is none.
    async fn read_profile(&self, project: &str, name: &str) -> Result<DatastoreProfile>;

    /// The public parts of every profile of `project`, by name.
    async fn list_profiles(&self, project: &str) -> Result<Vec<DatastoreProfile>>;

    /// Deletes profile `name`; [`Error::NotFound`] when there is none.
    async fn delete_profile(&self, project: &str, name: &str) -> Result<()>;

    /// Where the object `path` of profile `name` is, for the datastore to open.
    async fn profile_target(&self, project: &str, name: &str, path: &str) -> Result<ProfileTarget>;
}

/// The profiles a datastore resolves `ds://` URLs through: a store, in a project.
#[derive(Clone)]
pub struct ProfileAccess {
    /// Where the profiles are.
    pub store: Arc<dyn ProfileStore>,
    /// The project whose profiles `ds://` names.
    pub project: String,
}

impl fmt::Debug for ProfileAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProfileAccess({})", self.project)
    }
}

/// The error of a `ds://` URL whose profile does not exist, as MLRun words it.
pub fn missing_profile(url: &str, project: &str) -> Error {
    Error::not_found(format!(
        "Unable to retrieve the datastore profile `{url}`: project `{project}` has no such profile"
    ))
    .with_hint("create it with `baton profiles set NAME --type s3|file|http ...`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_urls_split_and_refuse_escapes() {
        let url: ProfileUrl = "ds://my-profile/funcs/my_func.py".parse().unwrap();
        assert_eq!(url.profile, "my-profile");
        assert_eq!(url.path, "funcs/my_func.py");
        for bad in [
            "ds://p",
            "ds:///x",
            "ds://p/",
            "ds://p/../x",
            "ds://p/a//b",
            "ds://p/./x",
            "ds://p/a\\b",
            "s3://p/x",
        ] {
            let err = bad.parse::<ProfileUrl>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn profiles_check_their_fields_and_secrets() {
        let s3 = DatastoreProfile {
            name: "p".into(),
            kind: ProfileKind::S3,
            bucket: Some("b".into()),
            endpoint: None,
            secrets: vec![],
        };
        s3.validate(&ProfileSecrets::default()).unwrap();
        assert_eq!(s3.url_of("a/b.py"), "s3://b/a/b.py");
        let bad = ProfileSecrets([("password".to_string(), "x".to_string())].into());
        let err = s3.validate(&bad).unwrap_err().to_string();
        assert!(err.contains("no secret `password`"), "{err}");
        let no_bucket = DatastoreProfile {
            bucket: None,
            ..s3.clone()
        };
        assert!(no_bucket
            .validate(&ProfileSecrets::default())
            .unwrap_err()
            .to_string()
            .contains("needs --bucket"));
        let relative = DatastoreProfile {
            kind: ProfileKind::File,
            endpoint: Some("data".into()),
            ..s3
        };
        assert!(relative
            .validate(&ProfileSecrets::default())
            .unwrap_err()
            .to_string()
            .contains("absolute folder"));
    }

    #[test]
    fn secrets_never_show_their_values_in_debug_output() {
        let secrets = ProfileSecrets([("secret_key".to_string(), "hunter2".to_string())].into());
        let shown = format!("{secrets:?}");
        assert!(
            shown.contains("secret_key") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
