//! File work shared by the project's writers: replacing a file in one step (a temporary file
//! beside it, renamed over the old one, so a reader or a crash sees the old file or the new one,
//! never half of it), and running such work off the async runtime.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, IoResultExt, Result};

/// Writes `path` through `write`, atomically. The file keeps its mode if it exists (a new file
/// gets the mode the umask gives any new file). When `write` fails, nothing is left behind and
/// `path` is untouched.
pub(super) fn replace_file(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let mut staged = stage_beside(path)?;
    write(staged.as_file_mut())?;
    commit(staged, path)
}

/// A new temporary file beside `path`, with the mode `path` has (or a new file's), to be
/// [`commit`]ted over it or dropped (which deletes it).
pub(super) fn stage_beside(path: &Path) -> Result<NamedTempFile> {
    let context = || format!("Failed to write `{}`", path.display());
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let existing = std::fs::metadata(path).ok().map(|m| m.permissions());
    let staged = tempfile::Builder::new()
        .prefix(".baton-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .io_context(context)?;
    if let Some(permissions) = existing {
        staged
            .as_file()
            .set_permissions(permissions)
            .io_context(context)?;
    }
    Ok(staged)
}

/// Renames the `staged` file over `path` in one step.
pub(super) fn commit(staged: NamedTempFile, path: &Path) -> Result<()> {
    staged
        .persist(path)
        .map_err(|e| Error::io(format!("Failed to write `{}`", path.display()), e.error))?;
    Ok(())
}

/// Runs blocking file-system work off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal_from("A file-system task failed", e))?
}
