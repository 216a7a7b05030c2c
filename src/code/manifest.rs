//! What a cache entry held when it was published, so a hit can be checked before it is used.
//!
//! A cache entry is trusted for its digest: the runner records that digest as the code a run
//! used. Anyone who edits a file inside the entry afterwards (by hand, or a handler writing next
//! to its own module) would make that record a lie. The manifest lists every file and link of the
//! published tree with its size, modification time and mode; a hit compares them with one
//! `lstat` per file, which costs microseconds, and any difference sends the resolver back to the
//! payload. Sealing a tree first sets every file's modification time a little into the past, so
//! even an edit made within the file system's timestamp granularity of publication, that keeps
//! the size, shows as a new modification time. Files the manifest does not list (a handler's output written into its working
//! folder) are not code the digest vouches for, and are left alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoResultExt, Result};

/// The manifest format; a manifest of another version is treated as a stale entry.
const VERSION: u32 = 1;

/// The files of a published tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Manifest {
    version: u32,
    entries: Vec<ManifestEntry>,
}

/// One file or link, by its path relative to the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestEntry {
    path: String,
    stamp: Stamp,
}

/// What a file's metadata says about its content; equal stamps mean an untouched file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    kind: EntryKind,
    size: u64,
    mtime_ns: i128,
    mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EntryKind {
    File,
    Link,
}

impl Manifest {
    /// Seals `tree`: backdates its files' modification times (see the module docs), then
    /// records every file and link under it.
    pub(super) fn seal(tree: &Path) -> Result<Manifest> {
        let sealed_at = SystemTime::now() - SEAL_BACKDATE;
        let mut entries = Vec::new();
        walk(tree, Path::new(""), sealed_at, &mut entries)?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Manifest {
            version: VERSION,
            entries,
        })
    }

    /// Writes the manifest to `path`.
    pub(super) fn write(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_vec(self).expect("manifests serialize");
        std::fs::write(path, body).io_context(|| format!("Failed to write `{}`", path.display()))
    }

    /// Reads the manifest at `path`; `None` when it is missing or unreadable (an entry from an
    /// older baton, or not an entry at all).
    pub(super) fn read(path: &Path) -> Option<Manifest> {
        let body = std::fs::read(path).ok()?;
        serde_json::from_slice::<Manifest>(&body)
            .ok()
            .filter(|m| m.version == VERSION)
    }

    /// The first file of `tree` that differs from this manifest (changed, replaced or removed),
    /// or `None` when every listed file is as it was published.
    pub(super) fn first_change(&self, tree: &Path) -> Option<PathBuf> {
        self.entries
            .iter()
            .find(|entry| {
                let path = tree.join(&entry.path);
                std::fs::symlink_metadata(&path)
                    .ok()
                    .and_then(|meta| stamp(&meta))
                    .as_ref()
                    != Some(&entry.stamp)
            })
            .map(|entry| PathBuf::from(&entry.path))
    }
}

/// How far into the past [`Manifest::seal`] sets modification times: more than any file
/// system's timestamp granularity.
const SEAL_BACKDATE: Duration = Duration::from_secs(2);

fn walk(
    root: &Path,
    rel: &Path,
    sealed_at: SystemTime,
    out: &mut Vec<ManifestEntry>,
) -> Result<()> {
    let dir = root.join(rel);
    let entries =
        std::fs::read_dir(&dir).io_context(|| format!("Failed to read `{}`", dir.display()))?;
    for entry in entries {
        let entry = entry.io_context(|| format!("Failed to read `{}`", dir.display()))?;
        let rel = rel.join(entry.file_name());
        let path = entry.path();
        let mut meta = entry
            .metadata()
            .io_context(|| format!("Failed to inspect `{}`", path.display()))?;
        if meta.is_dir() {
            walk(root, &rel, sealed_at, out)?;
            continue;
        }
        if meta.is_file() {
            // The owner may set a file's times through a read-only handle.
            std::fs::File::open(&path)
                .and_then(|file| {
                    file.set_modified(sealed_at)?;
                    file.metadata()
                })
                .map(|sealed| meta = sealed)
                .io_context(|| format!("Failed to seal `{}`", path.display()))?;
        }
        let stamp = stamp(&meta).ok_or_else(|| {
            Error::runtime(format!(
                "`{}` is neither a file, a folder nor a link",
                path.display()
            ))
        })?;
        let path = rel
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| Error::runtime(format!("`{}` is not a UTF-8 path", path.display())))?;
        out.push(ManifestEntry { path, stamp });
    }
    Ok(())
}

/// The stamp of a file or a link (not followed); `None` for anything else.
fn stamp(meta: &std::fs::Metadata) -> Option<Stamp> {
    use std::os::unix::fs::PermissionsExt;
    let kind = if meta.file_type().is_symlink() {
        EntryKind::Link
    } else if meta.is_file() {
        EntryKind::File
    } else {
        return None;
    };
    let mtime_ns = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or_else(|e| -(e.duration().as_nanos() as i128));
    Some(Stamp {
        kind,
        size: meta.len(),
        mtime_ns,
        mode: meta.permissions().mode(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let tmp = tempfile::TempDir::new().unwrap();
        std::fs::create_dir(tmp.path().join("pkg")).unwrap();
        std::fs::write(tmp.path().join("main.py"), "x = 1\n").unwrap();
        std::fs::write(tmp.path().join("pkg/mod.py"), "y = 2\n").unwrap();
        std::os::unix::fs::symlink("main.py", tmp.path().join("alias.py")).unwrap();
        tmp
    }

    #[test]
    fn an_untouched_tree_matches_its_manifest() {
        let tmp = tree();
        let manifest = Manifest::seal(tmp.path()).unwrap();
        assert_eq!(manifest.entries.len(), 3);
        assert_eq!(manifest.first_change(tmp.path()), None);
        // Files the manifest does not list are not code the digest vouches for.
        std::fs::write(tmp.path().join("output.csv"), "a,b\n").unwrap();
        assert_eq!(manifest.first_change(tmp.path()), None);
    }

    #[test]
    fn an_edited_removed_or_replaced_file_is_a_change() {
        let tmp = tree();
        let manifest = Manifest::seal(tmp.path()).unwrap();
        // Same size, right after sealing: the modification time still gives it away.
        std::fs::write(tmp.path().join("pkg/mod.py"), "y = 3\n").unwrap();
        let changed = manifest.first_change(tmp.path());
        assert_eq!(changed, Some(PathBuf::from("pkg/mod.py")));

        let tmp = tree();
        let manifest = Manifest::seal(tmp.path()).unwrap();
        std::fs::remove_file(tmp.path().join("main.py")).unwrap();
        assert_eq!(
            manifest.first_change(tmp.path()),
            Some(PathBuf::from("main.py"))
        );

        let tmp = tree();
        let manifest = Manifest::seal(tmp.path()).unwrap();
        std::fs::remove_file(tmp.path().join("alias.py")).unwrap();
        std::fs::write(tmp.path().join("alias.py"), "x = 1\n").unwrap();
        assert_eq!(
            manifest.first_change(tmp.path()),
            Some(PathBuf::from("alias.py"))
        );
    }

    #[test]
    fn a_manifest_round_trips_and_other_versions_are_ignored() {
        let tmp = tree();
        let manifest = Manifest::seal(tmp.path()).unwrap();
        let path = tmp.path().join("manifest.json");
        manifest.write(&path).unwrap();
        assert_eq!(Manifest::read(&path), Some(manifest));
        std::fs::write(&path, r#"{"version": 0, "entries": []}"#).unwrap();
        assert_eq!(Manifest::read(&path), None);
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(Manifest::read(&path), None);
    }
}
