//! Payload I/O over [`object_store`], addressed by URL.
//!
//! Callers name payloads by the URL stored in an artifact's `target_path` (an absolute local
//! path or `file://` today; `s3://`, `http(s)://` and `ds://` profiles slot in here later), and
//! never see which backend serves them. Writes are atomic: a reader never observes a partly
//! written object, which matters when several `log-code` runs upload to the same target at once.
//! Payloads are streamed in chunks of [`CHUNK_SIZE`], never held whole in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// How many bytes a streamed read or upload handles at a time.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// Parts of a streamed upload in flight at once (each holds one chunk).
const UPLOAD_CONCURRENCY: usize = 4;

/// What identifies a payload: its digests and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadDigest {
    /// `sha256:<hex>`, the digest every record and check uses.
    pub sha256: String,
    /// The sha1 hex MLRun keeps as `metadata.hash`.
    pub sha1: String,
    /// The size in bytes.
    pub size: u64,
}

impl PayloadDigest {
    /// The lowercase hex of the sha256 digest, without its `sha256:` prefix.
    pub fn sha256_hex(&self) -> &str {
        self.sha256.trim_start_matches("sha256:")
    }

    /// The digest of bytes held in memory.
    pub fn of_bytes(bytes: &[u8]) -> PayloadDigest {
        let mut hasher = Hasher::default();
        hasher.update(bytes);
        hasher.finish()
    }

    /// The digest of a local file, read in chunks (blocking: call it off the async runtime).
    pub fn of_file(path: &Path) -> Result<PayloadDigest> {
        use std::io::Read;
        let context = || format!("Failed to read `{}`", path.display());
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(context(), e))?;
        let mut hasher = Hasher::default();
        let mut buf = vec![0u8; CHUNK_SIZE];
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(context(), e))?;
            if n == 0 {
                return Ok(hasher.finish());
            }
            hasher.update(&buf[..n]);
        }
    }
}

/// Computes a [`PayloadDigest`] over chunks as they stream by.
#[derive(Default)]
struct Hasher {
    sha256: Sha256,
    sha1: Sha1,
    size: u64,
}

impl Hasher {
    fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        self.sha1.update(chunk);
        self.size += chunk.len() as u64;
    }

    fn finish(self) -> PayloadDigest {
        PayloadDigest {
            sha256: format!("sha256:{}", hex::encode(self.sha256.finalize())),
            sha1: hex::encode(self.sha1.finalize()),
            size: self.size,
        }
    }
}

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

    /// Stores `bytes` at `url`, replacing any previous object atomically.
    pub async fn put(&self, url: &str, bytes: Bytes) -> Result<()> {
        let loc = self.locate(url)?;
        loc.store
            .put(&loc.path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| Error::runtime_from(format!("Failed to upload to `{url}`"), e))?;
        Ok(())
    }

    /// Streams the local file `source` to `url`, replacing any previous object atomically.
    ///
    /// The bytes are hashed on the way; if they are not `expected` (the file changed since it
    /// was hashed), the upload is abandoned and nothing is replaced.
    pub async fn put_file(&self, url: &str, source: &Path, expected: &PayloadDigest) -> Result<()> {
        let loc = self.locate(url)?;
        let upload_error = |e| Error::runtime_from(format!("Failed to upload to `{url}`"), e);
        let read_error = |e| Error::io(format!("Failed to read `{}`", source.display()), e);
        let mut file = tokio::fs::File::open(source).await.map_err(read_error)?;
        let upload = loc
            .store
            .put_multipart(&loc.path)
            .await
            .map_err(upload_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK_SIZE);
        let mut hasher = Hasher::default();
        let mut buf = vec![0u8; CHUNK_SIZE];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(read_error(e));
                }
            };
            hasher.update(&buf[..n]);
            if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(upload_error(e));
            }
            writer.write(&buf[..n]);
        }
        let actual = hasher.finish();
        if &actual != expected {
            let _ = writer.abort().await;
            return Err(Error::conflict(format!(
                "`{}` changed while it was being uploaded (digest `{}`, then `{}`)",
                source.display(),
                expected.sha256,
                actual.sha256
            ))
            .with_hint("log it again once it stops changing"));
        }
        writer.finish().await.map_err(upload_error)?;
        Ok(())
    }

    /// The digest of the object at `url`, streamed; `None` when there is no object.
    pub async fn digest(&self, url: &str) -> Result<Option<PayloadDigest>> {
        let loc = self.locate(url)?;
        let result = match loc.store.get(&loc.path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::runtime_from(format!("Failed to read `{url}`"), e)),
        };
        let mut stream = result.into_stream();
        let mut hasher = Hasher::default();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| Error::runtime_from(format!("Failed to read `{url}`"), e))?;
            hasher.update(&chunk);
        }
        Ok(Some(hasher.finish()))
    }

    /// Whether the object at `url` already holds exactly the payload `expected` (its size is
    /// checked first, so a differing object is rarely read).
    pub async fn holds(&self, url: &str, expected: &PayloadDigest) -> Result<bool> {
        let loc = self.locate(url)?;
        match loc.store.head(&loc.path).await {
            Ok(meta) if meta.size == expected.size => {}
            Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(Error::runtime_from(format!("Failed to look up `{url}`"), e)),
        }
        Ok(self.digest(url).await?.as_ref() == Some(expected))
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
