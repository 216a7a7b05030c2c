//! Projects: the `project.yaml` file, its folder, and the embedded `.baton/` state beside it.
//!
//! A project folder holds `project.yaml` (MLRun's project format, so MLRun and baton can share
//! it) and `.baton/`: the embedded SQLite database and `artifacts/`, the default artifact path.
//! Commands find the project like git finds a repository: from the given folder upwards.
//!
//! A project travels as an export ([`Project::export`]): a zip with its code, or its
//! `project.yaml` alone; [`import_project`] turns either back into a project folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod build;
mod entries;
mod export;
mod files;
mod functions;
mod hub;
mod import;
mod problems;
mod run_workflow;
mod store;
mod workflows;

pub use build::{BuildOutput, IMAGE_CODE_DIR};
pub use export::{ExportFormat, ExportSummary, PackagedCode, EXPORT_CODE_DIR};
pub use functions::{
    check_module_handler, normalize_function_name, resolve_function_artifact, EffectiveBuild,
    SetFunctionRequest, DEFAULT_BASE_IMAGE,
};
pub use hub::{HUB_ENV, HUB_PREFIX};
pub use import::{import_project, ImportSummary};
pub use run_workflow::{args_schema, PreparedWorkflow, RunWorkflowOptions, WorkflowRunHandle};
use store::StateDir;
pub use store::{MemoryProjectStore, ProjectStore, ProjectYaml, StateLock};
pub use workflows::{
    check_schedule, resolve_workflow_artifact, ResolvedWorkflow, SetWorkflowRequest,
};

use crate::artifact::{LogScope, UploadLock};
use crate::db::SqliteDb;
use crate::error::{Error, IoResultExt, Result};
use crate::model::{ProjectFile, ProjectMetadata, ProjectSpec};

/// The project file's name.
pub const PROJECT_FILE: &str = "project.yaml";

/// The folder holding baton's embedded state, beside `project.yaml`.
pub const STATE_DIR: &str = ".baton";

/// The default artifact path written by `baton init`, relative to the project folder.
pub const DEFAULT_ARTIFACT_PATH: &str = ".baton/artifacts";

/// A loaded project: its home folder and its definition, read from its [`ProjectStore`].
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
    /// The definition as last read; change it in the store with [`Project::update`].
    pub file: ProjectFile,
    store: Arc<dyn ProjectStore>,
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
        let mut metadata = crate::model::Extra::new();
        metadata.insert("created".into(), chrono::Utc::now().to_rfc3339().into());
        let mut spec_extra = crate::model::Extra::new();
        spec_extra.insert("desired_state".into(), "online".into());
        let mut status = crate::model::Extra::new();
        status.insert("state".into(), "online".into());
        let file = ProjectFile {
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
        };
        Project::create(&root, file)
    }

    /// Writes `file` as a new project in folder `root` (created if missing) with its `.baton/`
    /// state. The name must be valid; an existing `project.yaml` is a [`Error::Conflict`].
    pub fn create(root: &Path, file: ProjectFile) -> Result<Project> {
        validate_project_name(&file.metadata.name)?;
        let store = ProjectYaml::new(root);
        let project = Project {
            root: root.to_path_buf(),
            store: Arc::new(store.clone()),
            file,
        };
        store.create(&project.file)?;
        project.ensure_state_dir()?;
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
            "No `{PROJECT_FILE}` found in `{}` or any parent folder",
            start.display()
        ))
        .with_hint("run `baton init` to create a project"))
    }

    /// Loads the project whose `project.yaml` is in `root`.
    pub fn load(root: &Path) -> Result<Project> {
        Project::open(root, Arc::new(ProjectYaml::new(root)))
    }

    /// The project at home folder `root` whose definition is kept in `store`.
    pub fn open(root: &Path, store: Arc<dyn ProjectStore>) -> Result<Project> {
        Ok(Project {
            root: root.to_path_buf(),
            file: store.load()?,
            store,
        })
    }

    /// Changes the stored definition: under the store's lock, re-reads it (so another
    /// process's change is kept), applies `change` and stores the result, returning what
    /// `change` returned.
    pub fn update<T>(&mut self, change: impl FnOnce(&mut ProjectFile) -> T) -> Result<T> {
        let mut change = Some(change);
        let mut out = None;
        self.file = self.store.update(&mut |file| {
            if let Some(change) = change.take() {
                out = Some(change(file));
            }
        })?;
        Ok(out.expect("the store applies the change once"))
    }

    /// Where `log-code` logs into this project: its name, its resolved default artifact path,
    /// and the project's upload lock.
    pub fn log_scope(&self) -> LogScope<'_> {
        LogScope {
            project: self.name(),
            artifact_path: self.resolve_artifact_path(None),
            lock: self,
        }
    }

    /// Takes the exclusive lock `.baton/<name>`, waiting for another process to release it.
    pub fn lock_state(&self, name: &str) -> Result<StateLock> {
        StateDir::of(&self.root).lock(name)
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
        SqliteDb::open(&self.db_path())
    }

    /// The embedded database file, `.baton/baton.db`.
    pub fn db_path(&self) -> PathBuf {
        self.state_dir().join("baton.db")
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

/// Uploads into a project folder are serialised by the file lock `.baton/log-code.lock`, which
/// holds across processes.
impl UploadLock for Project {
    fn acquire(&self) -> Result<Box<dyn Send>> {
        Ok(Box::new(self.lock_state("log-code.lock")?))
    }
}
