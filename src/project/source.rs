//! Resolving a function's source into a code folder on this machine.
//!
//! Every source form goes through the digest-keyed [`CodeCache`]: a `store://` artifact, an
//! archive given by path (recorded as a transient artifact so it meets the same safe extractor),
//! and a `.py` file, which is used in place.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{resolve_function_artifact, source_kind, Project, SourceKind};
use crate::code::CodeCache;
use crate::datastore::DataStore;
use crate::db::Db;
use crate::error::{IoResultExt, Result};
use crate::model::artifact::CODE_KIND;
use crate::model::{Artifact, ArtifactMetadata, CodeArtifactSpec, ResolvedCodeRecord};

/// A function source made available locally.
#[derive(Debug, Clone)]
pub struct ResolvedSource {
    /// The folder holding the code.
    pub dir: PathBuf,
    /// For a `.py` source, the module name of that file (a bare handler runs from it).
    pub file_stem: Option<String>,
    /// What was resolved, for the run record.
    pub record: ResolvedCodeRecord,
}

impl Project {
    /// Resolves `source` (read now, through `db`) into a local code folder.
    pub async fn resolve_source(&self, db: &dyn Db, source: &str) -> Result<ResolvedSource> {
        let (artifact, uid) = match source_kind(source)? {
            SourceKind::PythonFile => {
                let path = self.source_path(source);
                let bytes = tokio::fs::read(&path).await.io_context(|| {
                    format!("Failed to read function source `{}`", path.display())
                })?;
                return Ok(ResolvedSource {
                    dir: path.parent().map(PathBuf::from).unwrap_or_default(),
                    file_stem: path.file_stem().map(|s| s.to_string_lossy().into_owned()),
                    record: ResolvedCodeRecord {
                        source: source.to_string(),
                        uid: None,
                        digest: sha256_digest(&bytes),
                    },
                });
            }
            SourceKind::Store => {
                let artifact = resolve_function_artifact(db, self.name(), source).await?;
                let uid = artifact.metadata.uid.clone();
                (artifact, uid)
            }
            SourceKind::Archive => (self.local_archive_artifact(source).await?, None),
        };
        let code = CodeCache::new(CodeCache::default_root()?)
            .resolve(&artifact, &DataStore::new())
            .await?;
        Ok(ResolvedSource {
            dir: code.dir,
            file_stem: None,
            record: ResolvedCodeRecord {
                source: source.to_string(),
                uid,
                digest: code.digest,
            },
        })
    }

    /// A transient artifact record for an archive given by path.
    async fn local_archive_artifact(&self, source: &str) -> Result<Artifact> {
        let path = self.source_path(source);
        let bytes = tokio::fs::read(&path)
            .await
            .io_context(|| format!("Failed to read function source `{}`", path.display()))?;
        Ok(Artifact {
            kind: CODE_KIND.into(),
            metadata: ArtifactMetadata {
                key: "source".into(),
                project: self.name().into(),
                ..ArtifactMetadata::default()
            },
            spec: CodeArtifactSpec {
                target_path: Some(path.to_string_lossy().into_owned()),
                digest: Some(sha256_digest(&bytes)),
                ..CodeArtifactSpec::default()
            },
            status: Default::default(),
            extra: Default::default(),
        })
    }
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
