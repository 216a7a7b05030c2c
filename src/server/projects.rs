//! The projects a server holds: one folder each under `<data>/projects/`, with its database
//! opened once and shared by every request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::db::Db;
use crate::engine::EngineRegistry;
use crate::error::{Error, IoResultExt, Result};
use crate::model::ProjectFile;
use crate::project::{validate_project_name, Project, PROJECT_FILE};
use crate::runner::CodeSources;
use crate::service::Baton;

/// The server's projects.
pub struct Projects {
    root: PathBuf,
    artifacts: PathBuf,
    code: CodeSources,
    dbs: Mutex<HashMap<String, Arc<dyn Db>>>,
    engines: OnceLock<EngineRegistry>,
    fork: OnceLock<crate::runner::ForkServer>,
}

impl Projects {
    /// The projects under `root`; new ones get `<artifacts>/<name>` as their artifact path.
    pub fn open(root: PathBuf, artifacts: PathBuf) -> Result<Projects> {
        std::fs::create_dir_all(&root)
            .io_context(|| format!("Failed to create `{}`", root.display()))?;
        Ok(Projects {
            root,
            artifacts,
            code: CodeSources::from_env()?,
            dbs: Mutex::new(HashMap::new()),
            engines: OnceLock::new(),
            fork: OnceLock::new(),
        })
    }

    /// The folder of project `name`, which must be a valid project name (so no name reaches
    /// outside the data folder).
    fn dir(&self, name: &str) -> Result<PathBuf> {
        validate_project_name(name)?;
        Ok(self.root.join(name))
    }

    /// The names of every project, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = std::fs::read_dir(&self.root)
            .io_context(|| format!("Failed to list `{}`", self.root.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join(PROJECT_FILE).is_file() && validate_project_name(&name).is_ok() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Project `name` as stored; an unknown one is [`Error::NotFound`].
    pub fn load(&self, name: &str) -> Result<Project> {
        let dir = self.dir(name)?;
        if !dir.join(PROJECT_FILE).is_file() {
            return Err(Error::not_found(format!("Project `{name}` not found")));
        }
        Project::load(&dir)
    }

    /// Creates project `file.metadata.name` from the definition a client sent. Its artifact
    /// path defaults to the server's; an existing project is [`Error::Conflict`].
    pub fn create(&self, mut file: ProjectFile) -> Result<Project> {
        let name = file.metadata.name.clone();
        let dir = self.dir(&name)?;
        if dir.join(PROJECT_FILE).is_file() {
            return Err(Error::conflict(format!(
                "Project with name `{name}` already exists"
            )));
        }
        if file.spec.artifact_path.as_deref().unwrap_or("").is_empty() {
            file.spec.artifact_path = Some(self.default_artifact_path(&name));
        }
        Project::create(&dir, file)
    }

    /// Replaces project `file.metadata.name`'s definition (creating the project if needed),
    /// keeping its artifact path when the new definition has none.
    pub fn store(&self, mut file: ProjectFile) -> Result<Project> {
        let name = file.metadata.name.clone();
        let mut project = match self.load(&name) {
            Ok(project) => project,
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {
                return self.create(file);
            }
            Err(e) => return Err(e),
        };
        project.update(|stored| {
            if file.spec.artifact_path.as_deref().unwrap_or("").is_empty() {
                file.spec.artifact_path = stored.spec.artifact_path.clone();
            }
            *stored = file;
        })?;
        Ok(project)
    }

    /// Stores `file`, which a request on project `project` (its path) sent along; a definition
    /// of another project is [`Error::BadRequest`].
    pub fn store_sent(&self, project: &str, file: ProjectFile) -> Result<Project> {
        if file.metadata.name != project {
            return Err(Error::bad_request(format!(
                "project.metadata.name `{}` does not match the project `{project}` in the path",
                file.metadata.name
            )));
        }
        self.store(file)
    }

    /// Makes every service of these projects run workflows on `engines` (set once, at start).
    pub fn set_engines(&self, engines: EngineRegistry) {
        let _ = self.engines.set(engines);
    }

    /// Makes every service of these projects trace Python workflows through `server`'s warm
    /// workers (set once, at start).
    pub fn set_fork_server(&self, server: crate::runner::ForkServer) {
        let _ = self.fork.set(server);
    }

    /// The service of project `name`, over its shared database and the server's engines.
    pub async fn baton(&self, name: &str) -> Result<Baton> {
        let project = self.load(name)?;
        let db = self.db(&project).await?;
        let mut baton = Baton::with_parts(project, db, self.code.clone());
        if let Some(server) = self.fork.get() {
            baton.set_fork_server(server.clone());
        }
        Ok(match self.engines.get() {
            Some(engines) => baton.with_engines(engines.clone()),
            None => baton,
        })
    }

    /// The datastore profiles of project `name`.
    pub async fn profiles(
        &self,
        name: &str,
    ) -> Result<Arc<dyn crate::datastore::profile::ProfileStore>> {
        Ok(self.baton(name).await?.db().profile_store())
    }

    /// The database of `project`, opened on first use.
    async fn db(&self, project: &Project) -> Result<Arc<dyn Db>> {
        let name = project.name().to_string();
        if let Some(db) = self.lock().get(&name) {
            return Ok(db.clone());
        }
        let opening = project.clone();
        let db = tokio::task::spawn_blocking(move || opening.open_db())
            .await
            .map_err(|e| Error::internal_from("Opening the project database failed", e))??;
        let db: Arc<dyn Db> = Arc::new(db);
        let db = self.lock().entry(name).or_insert(db).clone();
        Ok(db)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn Db>>> {
        self.dbs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The artifact path of a new project: `<artifacts>/<name>`.
    fn default_artifact_path(&self, name: &str) -> String {
        Path::new(&self.artifacts)
            .join(name)
            .to_string_lossy()
            .into_owned()
    }
}
