//! The URL → backend registry: which object store serves a payload URL, and where in it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use super::http::{Bearer, HttpLimits, HttpSource};
use super::profile::{
    missing_profile, DatastoreProfile, ProfileAccess, ProfileSecrets, ProfileTarget, ProfileUrl,
    DS_SCHEME,
};
use super::redact::redact;
use super::s3::{S3Settings, S3Url};
use crate::error::{Error, Result};

/// A payload location resolved to a backend and a path inside it.
pub(super) enum Location {
    /// An object of an [`ObjectStore`] (a local file, an S3 object).
    Object {
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
    },
    /// A URL read over HTTP(S); `writable` only for a `baton server`'s `ds://` route.
    Http {
        url: String,
        bearer: Option<Bearer>,
        writable: bool,
    },
}

/// Whether `target` is an absolute path or a URL, as a `target_path` must be.
pub fn is_absolute_target(target: &str) -> bool {
    target.starts_with('/') || target.contains("://")
}

/// The local file a `file://` URL or absolute path names, or `None` for a remote URL.
pub fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    url.starts_with('/').then(|| PathBuf::from(url))
}

/// The backends payload URLs resolve to, with the clients they opened (one per S3 bucket and
/// credentials), so repeated transfers reuse connections.
#[derive(Clone)]
pub(super) struct Registry {
    local: Arc<LocalFileSystem>,
    s3: Arc<Mutex<HashMap<S3Settings, Arc<dyn ObjectStore>>>>,
    http: HttpSource,
    profiles: Option<ProfileAccess>,
}

impl Registry {
    /// A registry serving local files, S3 and HTTP(S), HTTP downloads bounded by `limits`.
    pub(super) fn with_limits(limits: HttpLimits) -> Result<Self> {
        Ok(Registry {
            local: Arc::new(LocalFileSystem::new()),
            s3: Arc::default(),
            http: HttpSource::new(limits)?,
            profiles: None,
        })
    }

    /// The same registry with HTTP downloads bounded by `limits`.
    pub(super) fn with_http_limits(self, limits: HttpLimits) -> Result<Self> {
        Ok(Registry {
            http: HttpSource::new(limits)?,
            ..self
        })
    }

    /// The same registry resolving `ds://` URLs through `profiles`.
    pub(super) fn with_profiles(self, profiles: ProfileAccess) -> Self {
        Registry {
            profiles: Some(profiles),
            ..self
        }
    }

    /// The HTTP reader.
    pub(super) fn http(&self) -> &HttpSource {
        &self.http
    }

    /// The backend and path serving `url`, with the secret values it was opened with (to be
    /// kept out of its errors).
    pub(super) async fn locate(&self, url: &str) -> Result<(Location, Vec<String>)> {
        if url.starts_with(DS_SCHEME) {
            return self.locate_profile(url).await;
        }
        Ok((self.locate_plain(url, None)?, Vec::new()))
    }

    /// A URL of a backend of its own (not `ds://`), opened with `profile`'s settings if given.
    fn locate_plain(
        &self,
        url: &str,
        profile: Option<(&DatastoreProfile, &ProfileSecrets)>,
    ) -> Result<Location> {
        if let Some(path) = local_path(url) {
            let path = ObjectPath::from_absolute_path(&path).map_err(|e| {
                Error::invalid_from(format!("`{url}` is not a usable local path"), e)
            })?;
            return Ok(Location::Object {
                store: self.local.clone(),
                path,
            });
        }
        if url.starts_with("s3://") {
            let parsed = S3Url::parse(url)?;
            let settings = match profile {
                Some((profile, secrets)) => S3Settings::from_profile(profile, secrets),
                None => S3Settings::from_env(&parsed.bucket),
            };
            return Ok(Location::Object {
                store: self.s3_store(settings)?,
                path: parsed.path()?,
            });
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            let bearer = profile
                .and_then(|(_, secrets)| secrets.get("token"))
                .map(|t| Bearer(t.to_string()));
            return Ok(Location::Http {
                url: url.to_string(),
                bearer,
                writable: false,
            });
        }
        let scheme = url.split("://").next().unwrap_or(url);
        Err(Error::invalid_with_hint(
            format!("Unsupported datastore URL `{url}`: scheme `{scheme}` is not supported"),
            "use an absolute path, or a `file://`, `s3://`, `http(s)://` or `ds://` URL",
        ))
    }

    async fn locate_profile(&self, url: &str) -> Result<(Location, Vec<String>)> {
        let parsed: ProfileUrl = url.parse()?;
        let Some(access) = &self.profiles else {
            return Err(Error::invalid(format!(
                "Cannot resolve `{url}`: datastore profiles are not available here"
            )));
        };
        let target = access
            .store
            .profile_target(&access.project, &parsed.profile, &parsed.path)
            .await
            .map_err(|e| match e.kind() {
                crate::error::ErrorKind::NotFound => missing_profile(url, &access.project),
                _ => e,
            })?;
        match target {
            ProfileTarget::Direct { profile, secrets } => {
                let location = self
                    .locate_plain(&profile.url_of(&parsed.path), Some((&profile, &secrets)))
                    .map_err(|e| redact(e, &secrets.values()))?;
                Ok((location, secrets.values()))
            }
            ProfileTarget::Server { url, bearer } => Ok((
                Location::Http {
                    url,
                    bearer,
                    writable: true,
                },
                Vec::new(),
            )),
        }
    }

    fn s3_store(&self, settings: S3Settings) -> Result<Arc<dyn ObjectStore>> {
        let mut clients = self.s3.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = clients.get(&settings) {
            return Ok(store.clone());
        }
        let store = settings.open()?;
        clients.insert(settings, store.clone());
        Ok(store)
    }
}
