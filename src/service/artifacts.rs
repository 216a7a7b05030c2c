//! Code artifacts: log them, list and read their versions, pull their code.

use std::path::{Path, PathBuf};

use super::Baton;
use crate::artifact::{log_code_file, LogCodeRequest};
use crate::code::{copy_tree, ResolvedCode};
use crate::db::{ArtifactFilter, ArtifactVersion, StoredArtifact};
use crate::error::{Error, Result};
use crate::model::Artifact;
use crate::uri::StoreUri;

/// Code pulled the way a runner pulls it at start-up.
#[derive(Debug, Clone)]
pub struct PulledCode {
    /// The artifact version that was pulled.
    pub artifact: Artifact,
    /// The code in the cache.
    pub code: ResolvedCode,
    /// Where the code is for the caller: the cache folder, or the `to` folder it was copied to.
    pub dir: PathBuf,
}

impl Baton {
    /// Logs a code artifact into the project (see [`log_code_file`]). A request's own
    /// `artifact_path` is resolved like the project's (relative to the project's home).
    pub async fn log_code(&self, mut request: LogCodeRequest) -> Result<StoredArtifact> {
        request.artifact_path = request
            .artifact_path
            .map(|path| self.project.resolve_artifact_path(Some(&path)));
        log_code_file(
            &self.project.log_scope(),
            self.db.as_ref(),
            &self.datastore(),
            request,
        )
        .await
    }

    /// The datastore, resolving `ds://` through the project's profiles.
    pub fn datastore(&self) -> crate::datastore::DataStore {
        self.code.store_for(self.db.as_ref(), self.project.name())
    }

    /// The versions of the project's code artifacts that pass `filter`, newest first.
    pub async fn artifact_versions(&self, filter: &ArtifactFilter) -> Result<Vec<ArtifactVersion>> {
        self.db.list_artifacts(self.project.name(), filter).await
    }

    /// The artifact version `uri` names.
    pub async fn artifact(&self, uri: &str) -> Result<Artifact> {
        let uri: StoreUri = uri.parse()?;
        self.db.read_artifact(self.project.name(), &uri).await
    }

    /// Resolves `uri` and fetches, verifies and (for an archive) extracts its payload into the
    /// code cache, as a runner does at start-up; with `to`, copies the code there too.
    pub async fn pull(&self, uri: &str, to: Option<&Path>) -> Result<PulledCode> {
        let artifact = self.artifact(uri).await?;
        let code = self
            .code
            .cache
            .resolve(&artifact, &self.datastore())
            .await?;
        let dir = match to {
            Some(to) => {
                let to = std::path::absolute(to)
                    .map_err(|e| Error::io(format!("Failed to resolve `{}`", to.display()), e))?;
                let (from, dest) = (code.dir.clone(), to.clone());
                tokio::task::spawn_blocking(move || copy_tree(&from, &dest))
                    .await
                    .map_err(|e| Error::internal_from("Copying the code failed", e))??;
                to
            }
            None => code.dir.clone(),
        };
        Ok(PulledCode {
            artifact,
            code,
            dir,
        })
    }
}
