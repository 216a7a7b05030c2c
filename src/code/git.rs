//! git sources in the code cache: one entry per commit, `<root>/code/git-<commit>/tree/`.
//!
//! The ref is resolved on every call ([`GitSource::resolve_commit`]), so a branch that moved is
//! fetched anew by the next run while a commit pin always finds the same entry; the tree of a
//! commit is exported by git as a tar archive and unpacked through the one safe extractor, then
//! published like any entry (atomic rename, manifest checked on every hit).

use super::cache::{
    blocking, ensure_dir, publish, stage, verified_entry, CodeCache, ResolvedCode, TREE,
};
use super::extract::{extract, ArchiveFormat};
use crate::datastore::git::GitSource;
use crate::error::{IoResultExt, Result};

impl CodeCache {
    /// Materialises the tree of the commit the git source `url` names now, fetching it unless
    /// the cache holds that commit. The digest it reports is `git:<commit>`.
    pub async fn resolve_git(&self, url: &str) -> Result<ResolvedCode> {
        let source = GitSource::parse(url)?;
        let commit = source.resolve_commit().await?;
        let code_dir = self.code_dir();
        let entry = code_dir.join(format!("git-{commit}"));
        let resolved = |fetched| ResolvedCode {
            dir: entry.join(TREE),
            file: None,
            digest: format!("git:{commit}"),
            archive: true,
            fetched,
        };
        if verified_entry(&entry, url) {
            tracing::debug!(%url, %commit, "code cache hit (git)");
            return Ok(resolved(false));
        }
        tracing::debug!(%url, %commit, "code cache miss (git): fetching");
        ensure_dir(&code_dir)?;
        let scratch = tempfile::TempDir::with_prefix_in(".git-", &code_dir)
            .io_context(|| format!("Failed to create a folder in `{}`", code_dir.display()))?;
        let tar = scratch.path().join("tree.tar");
        source
            .archive(&commit, &scratch.path().join("repo"), &tar)
            .await?;
        let limits = self.limits();
        let published = entry.clone();
        blocking(move || {
            let staged = stage(&code_dir, ".stage-")?;
            extract(&tar, ArchiveFormat::Tar, &staged.path().join(TREE), &limits)?;
            publish(staged, &published)?;
            drop(scratch);
            Ok(())
        })
        .await?;
        Ok(resolved(true))
    }
}
