//! Copying a resolved code folder out of the cache (for `artifacts pull --to` and build contexts).

use std::path::Path;

use crate::error::{IoResultExt, Result};

/// Copies the tree at `from` into `to` (created if missing), keeping symlinks as links. Files
/// already in `to` with other names stay; same-named files are overwritten, as MLRun does.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).io_context(|| format!("Failed to create `{}`", to.display()))?;
    let entries =
        std::fs::read_dir(from).io_context(|| format!("Failed to read `{}`", from.display()))?;
    for entry in entries {
        let entry = entry.io_context(|| format!("Failed to read `{}`", from.display()))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let file_type = entry
            .file_type()
            .io_context(|| format!("Failed to inspect `{}`", source.display()))?;
        if file_type.is_dir() {
            copy_tree(&source, &target)?;
        } else if file_type.is_symlink() {
            let link = std::fs::read_link(&source)
                .io_context(|| format!("Failed to read link `{}`", source.display()))?;
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(&link, &target)
                .io_context(|| format!("Failed to create link `{}`", target.display()))?;
        } else {
            std::fs::copy(&source, &target).io_context(|| {
                format!(
                    "Failed to copy `{}` to `{}`",
                    source.display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}
