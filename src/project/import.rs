//! `baton import`: a project from an export zip or a `project.yaml`, into a folder of its own.
//!
//! The source is judged by its content: an archive (a zip from `baton export`, or MLRun's) is
//! unpacked by the one safe extractor ([`crate::code::extract()`]), which refuses absolute
//! paths, `..`, links leaving the folder and decompression bombs; an import also refuses any
//! link at all and anything under `.baton/` (baton's own state, never exported). Anything else
//! is read as a `project.yaml`.
//!
//! Nothing lands in the target folder until the project has passed the checks `set-function`
//! and `set-workflow` make, for every function and workflow at once: each packaged source must
//! be there, and each remaining `store://` source must resolve, in the database the project
//! will use, to an artifact of the right role. A YAML export imported where its artifacts do
//! not exist therefore fails with one error naming every missing URI. The project is staged in
//! a temporary folder beside its target and moved into place only then, so a failed import
//! writes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::files::blocking;
use super::problems::Problems;
use super::store::parse_project_file;
use super::{Project, ProjectYaml, SetFunctionRequest, PROJECT_FILE, STATE_DIR};
use crate::code::{detect, extract, ExtractLimits};
use crate::db::{Db, SqliteDb};
use crate::error::{Error, IoResultExt, Result};

/// What an import read and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    /// The project's name.
    pub project: String,
    /// The project folder written.
    pub dir: PathBuf,
    /// `zip`, `tar`, `tar.gz` or `yaml`.
    pub format: String,
    /// The files written from the source (its `project.yaml` included).
    pub files: u64,
}

/// Imports the project in `source` (an export archive or a `project.yaml`) into `dir`, which
/// must not hold a project yet (it is created if missing). Stored sources are checked in
/// `server` when given, else in the embedded database the project will have. See the module
/// docs for what is checked and refused; on failure `dir` is as it was.
pub async fn import_project(
    source: &Path,
    dir: &Path,
    server: Option<Arc<dyn Db>>,
) -> Result<(Project, ImportSummary)> {
    let source = std::path::absolute(source)
        .io_context(|| format!("Failed to resolve `{}`", source.display()))?;
    let dir =
        std::path::absolute(dir).io_context(|| format!("Failed to resolve `{}`", dir.display()))?;
    if dir.join(PROJECT_FILE).exists() {
        return Err(Error::conflict(format!(
            "`{}` already holds a project; import writes a new one",
            dir.display()
        ))
        .with_hint("import into a new or empty folder with `--context DIR`"));
    }
    let exists = dir.is_dir();
    let staging_parent = if exists {
        dir.clone()
    } else {
        let parent = dir
            .parent()
            .ok_or_else(|| Error::invalid(format!("Cannot import into `{}`", dir.display())))?;
        std::fs::create_dir_all(parent)
            .io_context(|| format!("Failed to create `{}`", parent.display()))?;
        parent.to_path_buf()
    };
    let staging = tempfile::Builder::new()
        .prefix(".baton-import-")
        .tempdir_in(&staging_parent)
        .io_context(|| {
            format!(
                "Failed to create a folder in `{}`",
                staging_parent.display()
            )
        })?;

    let (format, files) = {
        let (source, root) = (source.clone(), staging.path().to_path_buf());
        blocking(move || unpack(&source, &root)).await?
    };
    let shown = match format.as_str() {
        "yaml" => source.display().to_string(),
        _ => format!("{}/{PROJECT_FILE}", source.display()),
    };
    let staged_file = staging.path().join(PROJECT_FILE);
    let text = std::fs::read_to_string(&staged_file).map_err(|_| {
        Error::invalid(format!(
            "`{}` holds no `{PROJECT_FILE}` at its top level",
            source.display()
        ))
        .with_hint("import a zip written by `baton export OUT.zip`, or a project.yaml")
    })?;
    let file = parse_project_file(&text, &shown)?;
    let name = file.metadata.name.clone();

    let staged = Project::open(staging.path(), Arc::new(ProjectYaml::new(staging.path())))?;
    let db: Arc<dyn Db> = match server {
        Some(db) => db,
        None if dir.join(STATE_DIR).is_dir() => {
            Arc::new(SqliteDb::open(&dir.join(STATE_DIR).join("baton.db"))?)
        }
        None => Arc::new(staged.open_db()?),
    };
    check_definitions(&staged, db.as_ref())
        .await?
        .into_result(&format!(
            "Cannot import project `{name}` from `{}`",
            source.display()
        ))
        .map_err(|e| match e.kind() {
            crate::error::ErrorKind::NotFound => e.with_hint(
                "a YAML export keeps store:// URIs: import it where those artifacts exist (`--api URL` of the server holding them), or import a zip export, which carries the code",
            ),
            _ => e,
        })?;
    drop(db);

    let target = dir.clone();
    blocking(move || move_into_place(staging, &target, exists)).await?;
    let project = Project::load(&dir)?;
    Ok((
        project,
        ImportSummary {
            project: name,
            dir,
            format,
            files,
        },
    ))
}

/// Unpacks `source` into the empty folder `root`: an archive through the safe extractor, a
/// YAML file as `project.yaml`. Returns the format's name and the files written.
fn unpack(source: &Path, root: &Path) -> Result<(String, u64)> {
    match detect(source)? {
        Some(format) => {
            let stats = extract(source, format, root, &ExtractLimits::default())?;
            if stats.symlinks > 0 {
                return Err(Error::invalid(format!(
                    "Refusing to import `{}`: it holds symlinks, which `baton export` never writes",
                    source.display()
                )));
            }
            if root.join(STATE_DIR).exists() {
                return Err(Error::invalid(format!(
                    "Refusing to import `{}`: it holds `{STATE_DIR}/`, baton's own state, which \
                     `baton export` never writes",
                    source.display()
                )));
            }
            Ok((format.as_str().to_string(), stats.files))
        }
        None => {
            let target = root.join(PROJECT_FILE);
            std::fs::copy(source, &target)
                .io_context(|| format!("Failed to read `{}`", source.display()))?;
            Ok(("yaml".to_string(), 1))
        }
    }
}

/// Runs the checks of `set-function` and `set-workflow` on every function and workflow of
/// `project` that has a source, collecting every failure.
async fn check_definitions(project: &Project, db: &dyn Db) -> Result<Problems> {
    let mut problems = Problems::default();
    for function in project.functions()? {
        if function.url.as_deref().is_none_or(str::is_empty) {
            continue;
        }
        let request = SetFunctionRequest::from_entry(&function);
        let checked = project.check_function(db, &request).await;
        problems.keep(&format!("function `{}`", function.name), checked);
    }
    for workflow in project.workflows()? {
        let Some(path) = workflow.path.as_deref() else {
            continue;
        };
        let checked = project
            .check_workflow(
                db,
                path,
                workflow.engine.as_deref(),
                workflow.schedule.as_deref(),
            )
            .await;
        problems.keep(&format!("workflow `{}`", workflow.name), checked);
    }
    Ok(problems)
}

/// Moves the staged project into `dir`: by renaming the staging folder when `dir` did not exist,
/// else entry by entry (`project.yaml` last) after checking that none is taken.
fn move_into_place(staging: tempfile::TempDir, dir: &Path, exists: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !exists {
        let staged = staging.path().to_path_buf();
        std::fs::rename(&staged, dir)
            .io_context(|| format!("Failed to create `{}`", dir.display()))?;
        // The staging folder was private; the project folder is an ordinary one.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .io_context(|| format!("Failed to set the mode of `{}`", dir.display()))?;
        let _ = staging.keep();
        return Ok(());
    }
    let mut names: Vec<_> = std::fs::read_dir(staging.path())
        .io_context(|| format!("Failed to read `{}`", staging.path().display()))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .io_context(|| format!("Failed to read `{}`", staging.path().display()))?;
    let taken: Vec<String> = names
        .iter()
        .filter(|name| dir.join(name).symlink_metadata().is_ok())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    if !taken.is_empty() {
        return Err(Error::conflict(format!(
            "Cannot import into `{}`: it already has {}",
            dir.display(),
            taken
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint("import into a new or empty folder"));
    }
    names.sort_by_key(|name| name == PROJECT_FILE);
    for name in names {
        let (from, to) = (staging.path().join(&name), dir.join(&name));
        std::fs::rename(&from, &to).io_context(|| {
            format!(
                "Failed to move `{}` into `{}`",
                from.display(),
                dir.display()
            )
        })?;
    }
    Ok(())
}
