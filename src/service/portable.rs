//! Moving a project between machines: export it (a zip with its code, or its `project.yaml`),
//! import it into a new folder.

use std::path::Path;
use std::sync::Arc;

use super::{ensure_server_project, Baton};
use crate::db::{ApiClient, Db, HttpDb};
use crate::error::Result;
use crate::project::{ExportSummary, ImportSummary};

impl Baton {
    /// Writes the project to `out` (see [`crate::project::Project::export`]): its artifacts are
    /// read from this service's database and their payloads fetched through its datastore.
    pub async fn export(&self, out: &Path) -> Result<ExportSummary> {
        self.project
            .export(self.db.as_ref(), &self.code.store, out)
            .await
    }
}

/// Imports the project in `source` into the folder `dir` (see [`crate::project::import_project`]). With `api`,
/// its `store://` sources are checked on that server, which then holds the project; without, in
/// the project's own embedded database.
pub async fn import_project(
    source: &Path,
    dir: &Path,
    api: Option<ApiClient>,
) -> Result<ImportSummary> {
    let server = api
        .clone()
        .map(|api| Arc::new(HttpDb::with_client(api)) as Arc<dyn Db>);
    let (project, summary) = crate::project::import_project(source, dir, server).await?;
    if let Some(api) = &api {
        ensure_server_project(api, &project).await?;
    }
    Ok(summary)
}
