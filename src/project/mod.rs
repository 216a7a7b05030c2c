//! Projects: the `project.yaml` file, its folder, and the embedded `.baton/` state beside it.
//!
//! A project folder holds `project.yaml` (MLRun's project format, so MLRun and baton can share
//! it) and `.baton/`: the embedded SQLite database and `artifacts/`, the default artifact path.
//! Commands find the project like git finds a repository: from the given folder upwards.

use std::path::{Path, PathBuf};

mod build;
mod entries;
mod functions;
mod run_workflow;
mod source;
mod workflows;

pub use build::{BuildOutput, IMAGE_CODE_DIR};
pub use functions::{
    check_module_handler, normalize_function_name, resolve_function_artifact, source_kind,
    EffectiveBuild, SetFunctionRequest, SourceKind, DEFAULT_BASE_IMAGE,
};
pub use run_workflow::{PreparedWorkflow, RunWorkflowOptions, WorkflowRunHandle};
pub use source::ResolvedSource;
pub use workflows::{
    check_schedule, resolve_workflow_artifact, ResolvedWorkflow, SetWorkflowRequest,
};

use crate::db::SqliteDb;
use crate::error::{Error, IoResultExt, Result};
use crate::model::{ProjectFile, ProjectMetadata, ProjectSpec};

/// The project file's name.
pub const PROJECT_FILE: &str = "project.yaml";

/// The folder holding baton's embedded state, beside `project.yaml`.
pub const STATE_DIR: &str = ".baton";

/// The lock file, under `.baton/`, held while `project.yaml` is read, changed and written.
const PROJECT_LOCK: &str = "project.lock";

/// The default artifact path written by `baton init`, relative to the project folder.
pub const DEFAULT_ARTIFACT_PATH: &str = ".baton/artifacts";

/// A loaded project: its folder and its `project.yaml`.
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
    /// The parsed `project.yaml`; change it on disk with [`Project::update`].
    pub file: ProjectFile,
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

/// What a project name must be, as users read it.
const PROJECT_NAME_RULE: &str =
    "use lowercase letters, digits and `-` (at most 63, not at the ends)";

/// Whether `name` is a DNS-1123 label, as MLRun requires of project names.
fn is_valid_project_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Checks a project name: a DNS-1123 label, as MLRun requires.
pub fn validate_project_name(name: &str) -> Result<()> {
    if is_valid_project_name(name) {
        Ok(())
    } else {
        Err(Error::invalid_with_hint(
            format!("Project name `{name}` is malformed: {PROJECT_NAME_RULE}"),
            "pass a valid name with `baton init --name my-project`",
        ))
    }
}

/// A project name derived from a folder name: lowercase, `_`, `.` and spaces turned into `-`.
pub fn name_from_folder(folder: &Path) -> String {
    let raw = folder
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' => c,
            _ => '-',
        })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "default".to_string()
    } else {
        name
    }
}

impl Project {
    /// Creates `project.yaml` and `.baton/` in `dir`. An existing `project.yaml` is a
    /// [`Error::Conflict`]: init never overwrites a project.
    pub fn init(dir: &Path, name: Option<&str>) -> Result<Project> {
        let root = std::path::absolute(dir)
            .io_context(|| format!("Failed to resolve `{}`", dir.display()))?;
        let name = match name {
            Some(name) => name.to_string(),
            None => name_from_folder(&root),
        };
        validate_project_name(&name)?;
        let file_path = root.join(PROJECT_FILE);
        let state = StateDir(root.join(STATE_DIR));
        let _lock = state.lock(PROJECT_LOCK)?;
        if file_path.exists() {
            return Err(Error::conflict(format!(
                "`{}` already exists; baton init does not overwrite a project",
                file_path.display()
            )));
        }
        let mut metadata = crate::model::Extra::new();
        metadata.insert("created".into(), chrono::Utc::now().to_rfc3339().into());
        let mut spec_extra = crate::model::Extra::new();
        spec_extra.insert("desired_state".into(), "online".into());
        let mut status = crate::model::Extra::new();
        status.insert("state".into(), "online".into());
        let project = Project {
            root,
            file: ProjectFile {
                kind: "project".into(),
                metadata: ProjectMetadata {
                    name,
                    extra: metadata,
                },
                spec: ProjectSpec {
                    artifact_path: Some(DEFAULT_ARTIFACT_PATH.into()),
                    extra: spec_extra,
                    ..ProjectSpec::default()
                },
                status,
                extra: Default::default(),
            },
        };
        project.ensure_state_dir()?;
        project.save()?;
        Ok(project)
    }

    /// Finds the project containing `start`: the first folder from `start` upwards that holds a
    /// `project.yaml`.
    pub fn discover(start: &Path) -> Result<Project> {
        let start = std::path::absolute(start)
            .io_context(|| format!("Failed to resolve `{}`", start.display()))?;
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            if d.join(PROJECT_FILE).is_file() {
                return Project::load(d);
            }
            dir = d.parent();
        }
        Err(Error::not_found(format!(
            "No `{PROJECT_FILE}` found in `{}` or any parent folder; run `baton init` to create a project",
            start.display()
        )))
    }

    /// Loads the project whose `project.yaml` is in `root`.
    pub fn load(root: &Path) -> Result<Project> {
        let path = root.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&path)
            .io_context(|| format!("Failed to read `{}`", path.display()))?;
        let file: ProjectFile = serde_yaml::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "`{}` is not a valid project file: {e}",
                path.display()
            ))
        })?;
        if file.kind != "project" {
            return Err(Error::invalid(format!(
                "`{}` has kind `{}`; expected `project`",
                path.display(),
                file.kind
            )));
        }
        let name = &file.metadata.name;
        if !is_valid_project_name(name) {
            return Err(Error::invalid_with_hint(
                format!(
                    "`{}` has a malformed `metadata.name`: `{}`: {PROJECT_NAME_RULE}",
                    path.display(),
                    name.escape_debug()
                ),
                "edit `metadata.name` in project.yaml; MLRun requires the same rule",
            ));
        }
        Ok(Project {
            root: root.to_path_buf(),
            file,
        })
    }

    /// Changes `project.yaml`: under the project lock, re-reads the file (so another process's
    /// change is kept), applies `change` and writes the result, returning what `change` returned.
    pub fn update<T>(&mut self, change: impl FnOnce(&mut ProjectFile) -> T) -> Result<T> {
        let _lock = self.lock_state(PROJECT_LOCK)?;
        self.file = Project::load(&self.root)?.file;
        let out = change(&mut self.file);
        self.save()?;
        Ok(out)
    }

    /// Takes the exclusive lock `.baton/<name>`, waiting for another process to release it.
    pub fn lock_state(&self, name: &str) -> Result<StateLock> {
        StateDir(self.state_dir()).lock(name)
    }

    /// Writes `project.yaml` atomically (a temporary file renamed over the old one), keeping
    /// every field baton does not know and the file's mode (a new file gets the mode the umask
    /// gives any new file). Callers hold the project lock.
    fn save(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.root.join(PROJECT_FILE);
        let text = serde_yaml::to_string(&self.file).expect("project files always serialize");
        let existing = std::fs::metadata(&path).ok().map(|m| m.permissions());
        let mut tmp = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(&self.root)
            .io_context(|| format!("Failed to write `{}`", path.display()))?;
        if let Some(permissions) = existing {
            tmp.as_file()
                .set_permissions(permissions)
                .io_context(|| format!("Failed to write `{}`", path.display()))?;
        }
        std::io::Write::write_all(&mut tmp, text.as_bytes())
            .io_context(|| format!("Failed to write `{}`", path.display()))?;
        tmp.persist(&path)
            .map_err(|e| Error::io(format!("Failed to write `{}`", path.display()), e.error))?;
        Ok(())
    }

    /// The project's name.
    pub fn name(&self) -> &str {
        &self.file.metadata.name
    }

    /// The project folder (where `project.yaml` is).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `.baton/` state folder.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    fn ensure_state_dir(&self) -> Result<()> {
        let artifacts = self.root.join(DEFAULT_ARTIFACT_PATH);
        std::fs::create_dir_all(&artifacts)
            .io_context(|| format!("Failed to create `{}`", artifacts.display()))
    }

    /// Opens the embedded database, creating `.baton/` when a project came from MLRun.
    pub fn open_db(&self) -> Result<SqliteDb> {
        self.ensure_state_dir()?;
        SqliteDb::open(&self.state_dir().join("baton.db"))
    }

    /// Resolves an artifact path (the project's default when `None`): `{{project}}`,
    /// `{{run.project}}` and `{{run.uid}}` are substituted as MLRun does at project level, and a
    /// relative local path is taken relative to the project folder.
    pub fn resolve_artifact_path(&self, artifact_path: Option<&str>) -> String {
        let raw = artifact_path
            .or(self.file.spec.artifact_path.as_deref())
            .unwrap_or(DEFAULT_ARTIFACT_PATH);
        let path = raw
            .replace("{{run.project}}", self.name())
            .replace("{{project}}", self.name())
            .replace("{{run.uid}}", "project");
        if crate::datastore::is_absolute_target(&path) {
            path
        } else {
            self.root.join(path).to_string_lossy().into_owned()
        }
    }
}

/// The `.baton/` folder of a project, which may not exist yet.
struct StateDir(PathBuf);

impl StateDir {
    fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.0)
            .io_context(|| format!("Failed to create `{}`", self.0.display()))
    }

    fn lock(&self, name: &str) -> Result<StateLock> {
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
