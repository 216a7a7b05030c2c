//! Payload I/O over [`object_store`], addressed by URL.
//!
//! Callers name payloads by the URL stored in an artifact's `target_path` (an absolute local
//! path or `file://` today; `s3://`, `http(s)://` and `ds://` profiles slot in here later), and
//! never see which backend serves them. Writes are atomic: a reader never observes a partly
//! written object, which matters when several `log-code` runs upload to the same target at once.
//! Payloads are streamed in chunks of [`CHUNK_SIZE`], never held whole in memory.

use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use object_store::{PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};

mod digest;
mod registry;

use digest::Hasher;
pub use digest::PayloadDigest;
use registry::Registry;
pub use registry::{is_absolute_target, local_path};

/// How many bytes a streamed read or upload handles at a time.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// Parts of a streamed upload in flight at once (each holds one chunk).
const UPLOAD_CONCURRENCY: usize = 4;

/// Reads and writes artifact payloads by URL.
#[derive(Clone)]
pub struct DataStore {
    registry: Registry,
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

impl DataStore {
    /// A datastore serving local files.
    pub fn new() -> Self {
        DataStore {
            registry: Registry::new(),
        }
    }

    /// Stores `bytes` at `url`, replacing any previous object atomically.
    pub async fn put(&self, url: &str, bytes: Bytes) -> Result<()> {
        let loc = self.registry.locate(url)?;
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
        let loc = self.registry.locate(url)?;
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
        let loc = self.registry.locate(url)?;
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
        let loc = self.registry.locate(url)?;
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
        let loc = self.registry.locate(url)?;
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
