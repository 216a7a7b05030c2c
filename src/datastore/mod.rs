//! Payload I/O addressed by URL: local paths and `file://`, `s3://`, `http(s)://` (read-only)
//! and `ds://<profile>/<path>`.
//!
//! Callers name payloads by the URL stored in an artifact's `target_path` and never see which
//! backend serves them; [`registry`] maps a URL to one, [`s3`], [`http`] and [`profile`] are the
//! backends that need more than [`object_store`]'s own, and [`git`] fetches git sources.
//!
//! - **Atomic writes**: a reader never observes a partly written object (an S3 multipart upload
//!   becomes visible when it completes; a local file is renamed into place), which matters when
//!   several `log-code` runs upload to the same target at once.
//! - **Streamed**: payloads move in chunks of [`CHUNK_SIZE`] (uploads in parts of
//!   [`UPLOAD_PART_SIZE`], S3's minimum being 5 MiB), never held whole in memory, and are hashed
//!   on the way.
//! - **Whole or refused**: a download that ends before the size its backend announced is an
//!   error, never a short file; an upload whose bytes are not the digest the caller expects is
//!   abandoned before it becomes visible.

use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use object_store::WriteMultipart;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

mod digest;
pub mod git;
pub mod http;
pub mod profile;
mod redact;
pub mod registry;
pub mod s3;

use digest::Hasher;
pub use digest::PayloadDigest;
use http::{HttpLimits, Incoming};
use profile::ProfileAccess;
use redact::redact;
pub use registry::{is_absolute_target, local_path};
use registry::{Location, Registry};

/// How many bytes a streamed read or upload handles at a time.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// The size of one part of a streamed upload (S3 refuses parts under 5 MiB but the last).
pub const UPLOAD_PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of a streamed upload in flight at once (each holds one part).
const UPLOAD_CONCURRENCY: usize = 4;

/// Reads and writes artifact payloads by URL.
#[derive(Clone)]
pub struct DataStore {
    registry: Registry,
}

impl std::fmt::Debug for DataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataStore")
    }
}

impl Default for DataStore {
    fn default() -> Self {
        Self::new()
    }
}

impl DataStore {
    /// A datastore with the default HTTP limits ([`HttpLimits::default`]).
    pub fn new() -> Self {
        DataStore {
            registry: Registry::with_limits(HttpLimits::default())
                .expect("the HTTP client builds with default settings"),
        }
    }

    /// A datastore with the HTTP limits of the environment ([`HttpLimits::from_env`]); a
    /// malformed limit is [`Error::InvalidArgument`] naming its variable.
    pub fn from_env() -> Result<Self> {
        Ok(DataStore {
            registry: Registry::with_limits(HttpLimits::from_env()?)?,
        })
    }

    /// The same datastore with HTTP downloads bounded by `limits`.
    pub fn with_http_limits(self, limits: HttpLimits) -> Result<Self> {
        Ok(DataStore {
            registry: self.registry.with_http_limits(limits)?,
        })
    }

    /// The same datastore resolving `ds://` URLs through `profiles`.
    pub fn with_profiles(self, profiles: ProfileAccess) -> Self {
        DataStore {
            registry: self.registry.with_profiles(profiles),
        }
    }

    /// Stores `bytes` at `url`, replacing any previous object atomically.
    pub async fn put(&self, url: &str, bytes: Bytes) -> Result<()> {
        let expected = PayloadDigest::of_bytes(&bytes);
        let chunks = futures::stream::iter([Ok(bytes)]);
        self.write(url, chunks, &expected).await
    }

    /// Streams the local file `source` to `url`, replacing any previous object atomically.
    ///
    /// The bytes are hashed on the way; if they are not `expected` (the file changed since it
    /// was hashed), the upload is abandoned and nothing is replaced.
    pub async fn put_file(&self, url: &str, source: &Path, expected: &PayloadDigest) -> Result<()> {
        let shown = source.display().to_string();
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| Error::io(format!("Failed to read `{shown}`"), e))?;
        let chunks = tokio_util::io::ReaderStream::with_capacity(file, CHUNK_SIZE)
            .map(move |r| r.map_err(|e| Error::io(format!("Failed to read `{shown}`"), e)));
        self.write(url, chunks, expected)
            .await
            .map_err(|e| match e {
                Error::Conflict { .. } => Error::conflict(format!(
                    "`{}` changed while it was being uploaded (expected digest `{}`)",
                    source.display(),
                    expected.sha256,
                ))
                .with_hint("log it again once it stops changing"),
                e => e,
            })
    }

    /// Streams `chunks` to `url`, replacing any previous object atomically, provided they have
    /// `expected`'s sha256 and size (its sha1 is not checked): otherwise the upload is abandoned, nothing is replaced, and the
    /// answer is [`Error::Conflict`].
    pub async fn write(
        &self,
        url: &str,
        chunks: impl futures::Stream<Item = Result<Bytes>> + Send + 'static,
        expected: &PayloadDigest,
    ) -> Result<()> {
        let (location, secrets) = self.registry.locate(url).await?;
        self.write_to(url, location, chunks, expected)
            .await
            .map_err(|e| redact(e, &secrets))
    }

    async fn write_to(
        &self,
        url: &str,
        location: Location,
        chunks: impl futures::Stream<Item = Result<Bytes>> + Send + 'static,
        expected: &PayloadDigest,
    ) -> Result<()> {
        match location {
            Location::Object { store, path } => {
                let upload_error =
                    |e| Error::runtime_from(format!("Failed to upload to `{url}`"), e);
                let upload = store.put_multipart(&path).await.map_err(upload_error)?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_SIZE);
                let mut hasher = Hasher::default();
                let mut chunks = std::pin::pin!(chunks);
                while let Some(chunk) = chunks.next().await {
                    let chunk = match chunk {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            let _ = writer.abort().await;
                            return Err(e);
                        }
                    };
                    hasher.update(&chunk);
                    if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                        let _ = writer.abort().await;
                        return Err(upload_error(e));
                    }
                    writer.write(&chunk);
                }
                let actual = hasher.finish();
                if actual.sha256 != expected.sha256 || actual.size != expected.size {
                    let _ = writer.abort().await;
                    return Err(digest_mismatch(url, expected, &actual));
                }
                writer.finish().await.map_err(upload_error)?;
                Ok(())
            }
            Location::Http {
                url: route,
                bearer,
                writable: true,
            } => {
                let body = reqwest::Body::wrap_stream(chunks);
                self.registry
                    .http()
                    .upload(&route, bearer.as_ref(), expected, body)
                    .await
            }
            Location::Http { .. } => Err(Error::invalid_with_hint(
                format!("Cannot upload to `{url}`: HTTP(S) sources are read-only"),
                "upload to a local path, an `s3://` URL or a `ds://` profile instead",
            )),
        }
    }

    /// Opens the object at `url` for reading; `None` when there is none.
    pub async fn read(&self, url: &str) -> Result<Option<Incoming>> {
        let (location, secrets) = self.registry.locate(url).await?;
        let incoming = self
            .read_from(url, location)
            .await
            .map_err(|e| redact(e, &secrets))?;
        Ok(incoming.map(|incoming| Incoming {
            announced: incoming.announced,
            chunks: incoming
                .chunks
                .map(move |chunk| chunk.map_err(|e| redact(e, &secrets)))
                .boxed(),
        }))
    }

    async fn read_from(&self, url: &str, location: Location) -> Result<Option<Incoming>> {
        match location {
            Location::Object { store, path } => {
                let result = match store.get(&path).await {
                    Ok(result) => result,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => {
                        return Err(Error::runtime_from(format!("Failed to read `{url}`"), e))
                    }
                };
                let announced = Some(result.meta.size);
                let shown = url.to_string();
                let chunks = result
                    .into_stream()
                    .map(move |chunk| {
                        chunk.map_err(|e| {
                            Error::runtime_from(format!("Failed to read `{shown}`"), e)
                        })
                    })
                    .boxed();
                Ok(Some(Incoming { announced, chunks }))
            }
            Location::Http {
                url: route, bearer, ..
            } => self.registry.http().get(&route, bearer.as_ref()).await,
        }
    }

    /// The digest of the object at `url`, streamed; `None` when there is no object.
    pub async fn digest(&self, url: &str) -> Result<Option<PayloadDigest>> {
        let Some(incoming) = self.read(url).await? else {
            return Ok(None);
        };
        let mut hasher = Hasher::default();
        let mut chunks = incoming.chunks;
        while let Some(chunk) = chunks.next().await {
            hasher.update(&chunk?);
        }
        let digest = hasher.finish();
        check_complete(url, incoming.announced, digest.size)?;
        Ok(Some(digest))
    }

    /// Whether the object at `url` already holds exactly the payload `expected` (its size is
    /// checked first, so a differing object is rarely read).
    pub async fn holds(&self, url: &str, expected: &PayloadDigest) -> Result<bool> {
        if let (Location::Object { store, path }, secrets) = self.registry.locate(url).await? {
            match store.head(&path).await {
                Ok(meta) if meta.size == expected.size => {}
                Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => {
                    let error = Error::runtime_from(format!("Failed to look up `{url}`"), e);
                    return Err(redact(error, &secrets));
                }
            }
        }
        Ok(self.digest(url).await?.as_ref() == Some(expected))
    }

    /// Streams the object at `url` into `dest`, hashing it on the way, and returns the bytes
    /// written and their sha256, so the caller need not read the file again.
    ///
    /// A missing object is [`Error::NotFound`] naming the URL; a transfer that ends before the
    /// size the backend announced is [`Error::Runtime`] ("truncated"), and `dest` must then be
    /// thrown away.
    pub async fn download(&self, url: &str, dest: &mut tokio::fs::File) -> Result<Downloaded> {
        let incoming = self
            .read(url)
            .await?
            .ok_or_else(|| Error::not_found(format!("Payload `{url}` does not exist")))?;
        let write_error = |e| Error::io(format!("Failed to write the download of `{url}`"), e);
        let mut chunks = incoming.chunks;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            sha2::Digest::update(&mut hasher, &chunk);
            dest.write_all(&chunk).await.map_err(write_error)?;
            size += chunk.len() as u64;
        }
        dest.flush().await.map_err(write_error)?;
        check_complete(url, incoming.announced, size)?;
        Ok(Downloaded {
            size,
            sha256_hex: hex::encode(sha2::Digest::finalize(hasher)),
        })
    }
}

/// What [`DataStore::download`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The number of bytes.
    pub size: u64,
    /// The lowercase hex of their sha256.
    pub sha256_hex: String,
}

/// A transfer that delivered fewer (or more) bytes than its backend announced is refused.
fn check_complete(url: &str, announced: Option<u64>, received: u64) -> Result<()> {
    match announced {
        Some(size) if size != received => Err(Error::runtime(format!(
            "The download of `{url}` was truncated: {received} of {size} bytes arrived"
        ))),
        _ => Ok(()),
    }
}

/// An upload whose bytes are not the ones the caller hashed.
fn digest_mismatch(url: &str, expected: &PayloadDigest, actual: &PayloadDigest) -> Error {
    Error::conflict(format!(
        "The upload to `{url}` was abandoned: its bytes have digest `{}`, not the expected `{}`",
        actual.sha256, expected.sha256
    ))
}
