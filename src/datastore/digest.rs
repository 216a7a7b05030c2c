//! What identifies a payload: its sha256 (every record and check uses it), MLRun's sha1 and its
//! size, computed over chunks as they stream by so a payload is never held whole in memory.

use std::path::Path;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::CHUNK_SIZE;
use crate::error::{Error, Result};

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
pub(super) struct Hasher {
    sha256: Sha256,
    sha1: Sha1,
    size: u64,
}

impl Hasher {
    pub(super) fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        self.sha1.update(chunk);
        self.size += chunk.len() as u64;
    }

    pub(super) fn finish(self) -> PayloadDigest {
        PayloadDigest {
            sha256: format!("sha256:{}", hex::encode(self.sha256.finalize())),
            sha1: hex::encode(self.sha1.finalize()),
            size: self.size,
        }
    }
}
