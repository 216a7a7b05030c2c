//! Payload I/O over [`object_store`], addressed by URL.
//!
//! Callers name payloads by the URL stored in an artifact's `target_path` (an absolute local
//! path or `file://` today; `s3://`, `http(s)://` and `ds://` profiles slot in here later), and
//! never see which backend serves them. Writes are atomic: a reader never observes a partly
//! written object, which matters when several `log-code` runs upload to the same target at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// A payload location resolved to a backend and a path inside it.
struct Location {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
}

/// Reads and writes artifact payloads by URL.
#[derive(Clone)]
pub struct DataStore {
    local: Arc<LocalFileSystem>,
}

impl Default for DataStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataStore")
    }
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

impl DataStore {
    /// A datastore serving local files.
    pub fn new() -> Self {
        DataStore {
            local: Arc::new(LocalFileSystem::new()),
        }
    }

    fn locate(&self, url: &str) -> Result<Location> {
        if let Some(path) = local_path(url) {
            let path = ObjectPath::from_absolute_path(&path)
                .map_err(|e| Error::invalid(format!("`{url}` is not a usable local path: {e}")))?;
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

    /// Stores `bytes` at `url`, replacing any previous object atomically.
    pub async fn put(&self, url: &str, bytes: Bytes) -> Result<()> {
        let loc = self.locate(url)?;
        loc.store
            .put(&loc.path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| Error::runtime_from(format!("Failed to upload to `{url}`"), e))?;
        Ok(())
    }

    /// Uploads the local file `source` to `url`.
    pub async fn put_file(&self, url: &str, source: &Path) -> Result<()> {
        let bytes = tokio::fs::read(source)
            .await
            .map_err(|e| Error::io(format!("Failed to read `{}`", source.display()), e))?;
        self.put(url, Bytes::from(bytes)).await
    }

    /// Whether an object exists at `url`.
    pub async fn exists(&self, url: &str) -> Result<bool> {
        let loc = self.locate(url)?;
        match loc.store.head(&loc.path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::runtime_from(format!("Failed to look up `{url}`"), e)),
        }
    }

    /// Streams the object at `url` into `dest`, returning the number of bytes written.
    ///
    /// A missing object is [`Error::NotFound`] naming the URL.
    pub async fn download(&self, url: &str, dest: &mut tokio::fs::File) -> Result<u64> {
        let loc = self.locate(url)?;
        let result = loc.store.get(&loc.path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                Error::not_found(format!("Payload `{url}` does not exist"))
            }
            e => Error::runtime_from(format!("Failed to download `{url}`"), e),
        })?;
        let mut stream = result.into_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| Error::runtime_from(format!("Failed to download `{url}`"), e))?;
            dest.write_all(&chunk)
                .await
                .map_err(|e| Error::io(format!("Failed to write the download of `{url}`"), e))?;
            written += chunk.len() as u64;
        }
        dest.flush()
            .await
            .map_err(|e| Error::io(format!("Failed to write the download of `{url}`"), e))?;
        Ok(written)
    }
}
