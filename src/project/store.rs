//! Where a project's definition lives, and the locks of a project's state folder.
//!
//! A project is a home folder (relative sources and artifact paths are taken from it, and its
//! `.baton/` holds the embedded state) plus a definition: MLRun's project object (functions,
//! workflows, artifact path, params). The definition is behind [`ProjectStore`]: the embedded
//! default keeps it in `project.yaml` ([`ProjectYaml`]), shared with MLRun; a server can keep it
//! in its database. Every change is a read-modify-write under an exclusive lock, so concurrent
//! writers never lose each other's changes.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use super::{is_valid_project_name, PROJECT_FILE, PROJECT_NAME_RULE, STATE_DIR};
use crate::error::{Error, IoResultExt, Result};
use crate::model::ProjectFile;

/// Where a project's definition is kept.
pub trait ProjectStore: Send + Sync + Debug {
    /// The definition as stored now.
    fn load(&self) -> Result<ProjectFile>;

    /// Applies `change` to the stored definition under an exclusive lock (re-read first, so
    /// another writer's change is kept) and stores the result, which it returns.
    fn update(&self, change: &mut dyn FnMut(&mut ProjectFile)) -> Result<ProjectFile>;
}

/// `project.yaml` in a project folder, locked through `.baton/project.lock`.
#[derive(Debug, Clone)]
pub struct ProjectYaml {
    root: PathBuf,
}

/// The lock file, under `.baton/`, held while `project.yaml` is read, changed and written.
const PROJECT_LOCK: &str = "project.lock";

impl ProjectYaml {
    /// The `project.yaml` of folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProjectYaml { root: root.into() }
    }

    fn path(&self) -> PathBuf {
        self.root.join(PROJECT_FILE)
    }

    /// Writes `file` as a new `project.yaml`; an existing one is a [`Error::Conflict`].
    pub(super) fn create(&self, file: &ProjectFile) -> Result<()> {
        let _lock = StateDir::of(&self.root).lock(PROJECT_LOCK)?;
        let path = self.path();
        if path.exists() {
            return Err(Error::conflict(format!(
                "`{}` already exists; baton init does not overwrite a project",
                path.display()
            )));
        }
        self.save(file)
    }

    /// Writes `project.yaml` atomically (a temporary file renamed over the old one), keeping
    /// every field baton does not know and the file's mode (a new file gets the mode the umask
    /// gives any new file). Callers hold the project lock.
    fn save(&self, file: &ProjectFile) -> Result<()> {
        let path = self.path();
        let text = serde_yaml::to_string(file).expect("project files always serialize");
        super::files::replace_file(&path, |out| {
            std::io::Write::write_all(out, text.as_bytes())
                .io_context(|| format!("Failed to write `{}`", path.display()))
        })
    }
}

impl ProjectStore for ProjectYaml {
    fn load(&self) -> Result<ProjectFile> {
        let path = self.path();
        let text = std::fs::read_to_string(&path)
            .io_context(|| format!("Failed to read `{}`", path.display()))?;
        parse_project_file(&text, &path.display().to_string())
    }

    fn update(&self, change: &mut dyn FnMut(&mut ProjectFile)) -> Result<ProjectFile> {
        let _lock = StateDir::of(&self.root).lock(PROJECT_LOCK)?;
        let mut file = self.load()?;
        change(&mut file);
        self.save(&file)?;
        Ok(file)
    }
}

/// Parses the text of a project file, checking its kind and name; `shown` names the file in
/// errors.
pub(super) fn parse_project_file(text: &str, shown: &str) -> Result<ProjectFile> {
    let file: ProjectFile = serde_yaml::from_str(text)
        .map_err(|e| Error::invalid_from(format!("`{shown}` is not a valid project file"), e))?;
    if file.kind != "project" {
        return Err(Error::invalid(format!(
            "`{shown}` has kind `{}`; expected `project`",
            file.kind
        )));
    }
    let name = &file.metadata.name;
    if !is_valid_project_name(name) {
        return Err(Error::invalid_with_hint(
            format!(
                "`{shown}` has a malformed `metadata.name`: `{}`: {PROJECT_NAME_RULE}",
                name.escape_debug()
            ),
            "edit `metadata.name` in project.yaml; MLRun requires the same rule",
        ));
    }
    Ok(file)
}

/// An exclusive lock on a file under the project's `.baton/`, held until dropped.
///
/// Locks are advisory (`flock`), so they bind baton processes to each other; the kernel releases
/// them when a process dies, so a crash never leaves one behind.
#[derive(Debug)]
pub struct StateLock(std::fs::File);

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The `.baton/` folder of a project, which may not exist yet.
pub(super) struct StateDir(PathBuf);

impl StateDir {
    /// The state folder of the project at `root`.
    pub(super) fn of(root: &Path) -> StateDir {
        StateDir(root.join(STATE_DIR))
    }

    fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.0)
            .io_context(|| format!("Failed to create `{}`", self.0.display()))
    }

    /// Takes the exclusive lock `<state>/<name>`, waiting for another process to release it.
    pub(super) fn lock(&self, name: &str) -> Result<StateLock> {
        self.create()?;
        let path = self.0.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .io_context(|| format!("Failed to open `{}`", path.display()))?;
        file.lock()
            .io_context(|| format!("Failed to lock `{}`", path.display()))?;
        Ok(StateLock(file))
    }
}

/// A definition kept in memory only: a project that lives as long as one process (a runner in
/// a KFP pod), or whose definition another store keeps.
#[derive(Debug)]
pub struct MemoryProjectStore(std::sync::Mutex<ProjectFile>);

impl MemoryProjectStore {
    /// A store holding `file`.
    pub fn new(file: ProjectFile) -> Self {
        MemoryProjectStore(std::sync::Mutex::new(file))
    }
}

impl ProjectStore for MemoryProjectStore {
    fn load(&self) -> Result<ProjectFile> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn update(&self, change: &mut dyn FnMut(&mut ProjectFile)) -> Result<ProjectFile> {
        let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut file);
        Ok(file.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::ProjectMetadata;
    use crate::project::Project;

    #[test]
    fn a_project_changes_its_definition_through_its_store_keeping_other_writers_changes() {
        let store = Arc::new(MemoryProjectStore::new(ProjectFile {
            kind: "project".into(),
            metadata: ProjectMetadata {
                name: "served".into(),
                extra: Default::default(),
            },
            spec: Default::default(),
            status: Default::default(),
            extra: Default::default(),
        }));
        let home = tempfile::TempDir::new().unwrap();
        let mut first = Project::open(home.path(), store.clone()).unwrap();
        let mut second = Project::open(home.path(), store.clone()).unwrap();
        first
            .update(|f| f.spec.artifact_path = Some("s3://bucket/a".into()))
            .unwrap();
        second
            .update(|f| f.spec.extra.insert("owner".into(), "ana".into()))
            .unwrap();
        let stored = store.load().unwrap();
        assert_eq!(stored.spec.artifact_path.as_deref(), Some("s3://bucket/a"));
        assert_eq!(stored.spec.extra["owner"], "ana");
        assert_eq!(second.file, stored);
        // No project.yaml was written: the store is the only place the definition lives.
        assert!(!home.path().join(PROJECT_FILE).exists());
    }
}
