//! Resolving a run's code from its function snapshot into a folder on this machine.
//!
//! The run record pins where the code is ([`FunctionSnapshot::code_location`]): a `store://`
//! artifact version, the absolute path of a `.py` file or an archive, an archive's URL, or a git
//! source. Every form goes through the digest-keyed [`CodeCache`] except a `.py` file, which is
//! used in place. Nothing here needs
//! the project folder, so a runner started anywhere (a local subprocess, a server worker, a KFP
//! pod) resolves the same code.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::code::CodeCache;
use crate::datastore::profile::ProfileAccess;
use crate::datastore::DataStore;
use crate::db::Db;
use crate::error::{Error, IoResultExt, Result};
use crate::model::artifact::CODE_KIND;
use crate::model::{
    Artifact, ArtifactMetadata, CodeArtifactSpec, FunctionSnapshot, ResolvedCodeRecord,
};
use crate::uri::{is_remote_url, source_kind, SourceKind, StoreUri};

/// A function's code made available on this machine.
#[derive(Debug, Clone)]
pub struct ResolvedSource {
    /// The folder holding the code.
    pub dir: PathBuf,
    /// For a `.py` source, the module name of that file (a bare handler runs from it).
    pub file_stem: Option<String>,
    /// What was resolved, for the run record.
    pub record: ResolvedCodeRecord,
}

/// Where code is fetched from and kept: the datastore that reads payloads and the cache that
/// holds them on this machine.
#[derive(Debug, Clone)]
pub struct CodeSources {
    /// Reads payloads (`target_path`s).
    pub store: DataStore,
    /// Keeps fetched and extracted payloads, keyed by digest.
    pub cache: CodeCache,
}

impl CodeSources {
    /// The default datastore and the cache at [`CodeCache::default_root`].
    pub fn from_env() -> Result<Self> {
        Ok(CodeSources {
            store: DataStore::from_env()?,
            cache: CodeCache::new(CodeCache::default_root()?),
        })
    }

    /// Resolves the code `snapshot` pins (its artifact records read through `db`, in
    /// `project`) into a local folder.
    pub async fn resolve(
        &self,
        db: &dyn Db,
        project: &str,
        snapshot: &FunctionSnapshot,
    ) -> Result<ResolvedSource> {
        let source = snapshot.function.url.clone().unwrap_or_default();
        let location = snapshot.code_location.as_str();
        let (artifact, uid) = match source_kind(location)? {
            SourceKind::PythonFile => {
                let path = Path::new(location);
                let bytes = tokio::fs::read(path).await.io_context(|| {
                    format!("Failed to read function source `{}`", path.display())
                })?;
                return Ok(ResolvedSource {
                    dir: path.parent().map(PathBuf::from).unwrap_or_default(),
                    file_stem: path.file_stem().map(|s| s.to_string_lossy().into_owned()),
                    record: ResolvedCodeRecord {
                        source,
                        uid: None,
                        digest: sha256_digest(&bytes),
                    },
                });
            }
            SourceKind::Store => {
                let artifact = read_pinned(db, project, snapshot).await?;
                let uid = artifact.metadata.uid.clone();
                (artifact, uid)
            }
            SourceKind::Git => {
                let code = self.cache.resolve_git(location).await?;
                return Ok(fetched(code.dir, source, None, code.digest));
            }
            SourceKind::Archive if is_remote_url(location) => {
                let store = self.store_for(db, project);
                let code = self.cache.resolve_url(location, &store).await?;
                return Ok(fetched(code.dir, source, None, code.digest));
            }
            SourceKind::Archive => (local_archive_artifact(project, location).await?, None),
        };
        let store = self.store_for(db, project);
        let code = self.cache.resolve(&artifact, &store).await?;
        Ok(fetched(code.dir, source, uid, code.digest))
    }

    /// The code `snapshot` pins if it is a `store://` artifact the cache already holds (checked
    /// as [`CodeSources::resolve`] checks it), without fetching anything; `None` otherwise, an
    /// error included: [`CodeSources::resolve`] then resolves it and reports the error.
    pub async fn resolve_cached(
        &self,
        db: &dyn Db,
        project: &str,
        snapshot: &FunctionSnapshot,
    ) -> Option<ResolvedSource> {
        let location = snapshot.code_location.as_str();
        if !matches!(source_kind(location), Ok(SourceKind::Store)) {
            return None;
        }
        let artifact = read_pinned(db, project, snapshot).await.ok()?;
        let source = snapshot.function.url.clone().unwrap_or_default();
        let code = self.cache.cached(&artifact).ok()??;
        tracing::debug!(uri = %location, digest = %code.digest, "code cache hit");
        Some(fetched(
            code.dir,
            source,
            artifact.metadata.uid.clone(),
            code.digest,
        ))
    }

    /// The datastore resolving `ds://` URLs through the profiles of `project` in `db`.
    pub fn store_for(&self, db: &dyn Db, project: &str) -> DataStore {
        self.store.clone().with_profiles(ProfileAccess {
            store: db.profile_store(),
            project: project.to_string(),
        })
    }
}

/// Code fetched into the cache, as a run records it.
fn fetched(dir: PathBuf, source: String, uid: Option<String>, digest: String) -> ResolvedSource {
    ResolvedSource {
        dir,
        file_stem: None,
        record: ResolvedCodeRecord {
            source,
            uid,
            digest,
        },
    }
}

/// The `store://` artifact `snapshot` pins, read from `db`; it must still be the version pinned
/// at submit.
async fn read_pinned(db: &dyn Db, project: &str, snapshot: &FunctionSnapshot) -> Result<Artifact> {
    let uri: StoreUri = snapshot.code_location.parse()?;
    let artifact = db.read_artifact(project, &uri).await?;
    let source = snapshot.function.url.as_deref().unwrap_or_default();
    check_pinned(&artifact, snapshot, source)?;
    Ok(artifact)
}

/// The artifact read back must be the version pinned at submit.
fn check_pinned(artifact: &Artifact, snapshot: &FunctionSnapshot, source: &str) -> Result<()> {
    let Some(pinned) = &snapshot.pinned else {
        return Ok(());
    };
    if artifact.spec.digest.as_deref() != Some(pinned.digest.as_str()) {
        return Err(Error::conflict(format!(
            "Code artifact `{source}` pinned at submit has digest `{}`, but its record now says \
             `{}`",
            pinned.digest,
            artifact.spec.digest.as_deref().unwrap_or("none")
        )));
    }
    Ok(())
}

/// A transient artifact record for an archive given by (absolute) path, so it meets the same
/// digest check and safe extractor as a logged one.
async fn local_archive_artifact(project: &str, path: &str) -> Result<Artifact> {
    let bytes = tokio::fs::read(path)
        .await
        .io_context(|| format!("Failed to read function source `{path}`"))?;
    Ok(Artifact {
        kind: CODE_KIND.into(),
        metadata: ArtifactMetadata {
            key: "source".into(),
            project: project.into(),
            ..ArtifactMetadata::default()
        },
        spec: CodeArtifactSpec {
            target_path: Some(path.to_string()),
            digest: Some(sha256_digest(&bytes)),
            ..CodeArtifactSpec::default()
        },
        status: Default::default(),
        extra: Default::default(),
    })
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
