//! Copying a resolved code folder out of the cache (for `artifacts pull --to` and build contexts).

use std::fs;
use std::path::Path;

use crate::error::{Error, IoResultExt, Result};

/// Copies the tree at `from` into `to` (created if missing), keeping symlinks as links. Files
/// already in `to` with other names stay; same-named files are overwritten, as MLRun does.
///
/// Nothing already inside `to` is followed: a link at a path the tree writes is replaced by the
/// file, folder or link the tree has there, so a planted `to/f.py -> ~/victim` cannot redirect
/// the copy outside `to`. `to` itself may be a link to a folder (the caller named it).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if to.exists() && !to.is_dir() {
        return Err(Error::invalid(format!(
            "Cannot copy code into `{}`: it exists and is not a folder",
            to.display()
        )));
    }
    fs::create_dir_all(to).io_context(|| format!("Failed to create `{}`", to.display()))?;
    copy_into(from, to)
}

fn copy_into(from: &Path, to: &Path) -> Result<()> {
    let entries =
        fs::read_dir(from).io_context(|| format!("Failed to read `{}`", from.display()))?;
    for entry in entries {
        let entry = entry.io_context(|| format!("Failed to read `{}`", from.display()))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let file_type = entry
            .file_type()
            .io_context(|| format!("Failed to inspect `{}`", source.display()))?;
        let existing = fs::symlink_metadata(&target).ok().map(|m| m.file_type());
        if file_type.is_dir() {
            match existing {
                Some(t) if t.is_dir() => {}
                Some(_) => {
                    remove_file(&target)?;
                    create_dir(&target)?;
                }
                None => create_dir(&target)?,
            }
            copy_into(&source, &target)?;
            continue;
        }
        if existing.is_some_and(|t| t.is_dir()) {
            return Err(Error::invalid(format!(
                "Cannot copy `{}`: `{}` is a folder",
                entry.file_name().to_string_lossy(),
                target.display()
            )));
        }
        if file_type.is_symlink() {
            let link = fs::read_link(&source)
                .io_context(|| format!("Failed to read link `{}`", source.display()))?;
            if existing.is_some() {
                remove_file(&target)?;
            }
            std::os::unix::fs::symlink(&link, &target)
                .io_context(|| format!("Failed to create link `{}`", target.display()))?;
        } else {
            replace_file(&source, &target)?;
        }
    }
    Ok(())
}

/// Copies `source` to a new file beside `target`, then renames it over `target`: a rename
/// replaces whatever `target` is (a link included) instead of writing through it.
fn replace_file(source: &Path, target: &Path) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let staged = tempfile::Builder::new()
        .prefix(".baton-copy-")
        .tempfile_in(dir)
        .io_context(|| format!("Failed to create a file in `{}`", dir.display()))?;
    fs::copy(source, staged.path()).io_context(|| {
        format!(
            "Failed to copy `{}` to `{}`",
            source.display(),
            target.display()
        )
    })?;
    staged
        .persist(target)
        .map_err(|e| Error::io(format!("Failed to write `{}`", target.display()), e.error))?;
    Ok(())
}

fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir(path).io_context(|| format!("Failed to create `{}`", path.display()))
}

fn remove_file(path: &Path) -> Result<()> {
    fs::remove_file(path).io_context(|| format!("Failed to replace `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_in_the_destination_is_replaced_not_followed() {
        let tmp = tempfile::TempDir::new().unwrap();
        let (from, to, victim) = (
            tmp.path().join("from"),
            tmp.path().join("to"),
            tmp.path().join("victim"),
        );
        fs::create_dir_all(from.join("pkg")).unwrap();
        fs::write(from.join("f.py"), "code\n").unwrap();
        fs::write(from.join("pkg/m.py"), "module\n").unwrap();
        fs::create_dir_all(victim.join("dir")).unwrap();
        fs::write(victim.join("file"), "precious\n").unwrap();
        fs::create_dir(&to).unwrap();
        std::os::unix::fs::symlink(victim.join("file"), to.join("f.py")).unwrap();
        std::os::unix::fs::symlink(victim.join("dir"), to.join("pkg")).unwrap();

        copy_tree(&from, &to).unwrap();

        assert_eq!(
            fs::read_to_string(victim.join("file")).unwrap(),
            "precious\n"
        );
        assert_eq!(fs::read_dir(victim.join("dir")).unwrap().count(), 0);
        assert!(!fs::symlink_metadata(to.join("f.py")).unwrap().is_symlink());
        assert_eq!(fs::read_to_string(to.join("f.py")).unwrap(), "code\n");
        assert_eq!(fs::read_to_string(to.join("pkg/m.py")).unwrap(), "module\n");
    }

    #[test]
    fn an_existing_file_as_destination_is_an_invalid_argument() {
        let tmp = tempfile::TempDir::new().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = copy_tree(tmp.path(), &file).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("is not a folder"), "{err}");
    }
}
