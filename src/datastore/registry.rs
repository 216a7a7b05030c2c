//! The URL → backend registry: which object store serves a payload URL, and where in it.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use crate::error::{Error, Result};

/// A payload location resolved to a backend and a path inside it.
pub(super) struct Location {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) path: ObjectPath,
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

/// The backends payload URLs resolve to.
#[derive(Clone)]
pub(super) struct Registry {
    local: Arc<LocalFileSystem>,
}

impl Registry {
    /// A registry serving local files.
    pub(super) fn new() -> Self {
        Registry {
            local: Arc::new(LocalFileSystem::new()),
        }
    }

    pub(super) fn locate(&self, url: &str) -> Result<Location> {
        if let Some(path) = local_path(url) {
            let path = ObjectPath::from_absolute_path(&path).map_err(|e| {
                Error::invalid_from(format!("`{url}` is not a usable local path"), e)
            })?;
            return Ok(Location {
                store: self.local.clone(),
                path,
            });
        }
        let scheme = url.split("://").next().unwrap_or(url);
        Err(Error::invalid_with_hint(
            format!("Unsupported datastore URL `{url}`: scheme `{scheme}` is not available in this build"),
            "use an absolute path or a `file://` URL",
        ))
    }
}
