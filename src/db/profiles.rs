//! Datastore profiles in the database: [`ProfileStore`] for [`SqliteDb`] and [`HttpDb`].
//!
//! The embedded database keeps each profile as one row of `datastore_profiles` (its public part
//! and its secrets, as JSON), created with the rest of the schema when the database is opened.
//! Only [`ProfileStore::profile_target`] reads the secrets back, for the datastore that opens the
//! storage on this machine.
//!
//! A `baton server`'s profiles are reached through its API (`/api/baton/v1/projects/{project}/
//! datastore-profiles`, see the server's `native/profiles.rs`): the secrets go to the server
//! once, when the profile is set, and never come back. A `ds://` object is read and written
//! through the server's `objects/` route, which resolves the profile there.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::api_client::segment;
use super::sqlite::db_error;
use super::{HttpDb, SqliteDb};
use crate::datastore::http::Bearer;
use crate::datastore::profile::{DatastoreProfile, ProfileSecrets, ProfileStore, ProfileTarget};
use crate::error::{Error, Result};

/// The table of profiles, created when a database is opened (independent of the migrations, so
/// it can be added to any database without renumbering them).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS datastore_profiles (
    project  TEXT NOT NULL,
    name     TEXT NOT NULL,
    body     TEXT NOT NULL,
    secrets  TEXT NOT NULL,
    PRIMARY KEY (project, name)
);
";

/// Creates the profile table if the database lacks it.
pub(super) fn ensure_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// The body of `PUT .../datastore-profiles/{name}` on baton's API: the profile and its secrets.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreProfileBody {
    /// The public part.
    pub profile: DatastoreProfile,
    /// The secret values.
    #[serde(default)]
    pub secrets: ProfileSecrets,
}

fn not_found(project: &str, name: &str) -> Error {
    Error::not_found(format!(
        "Datastore profile `{name}` does not exist in project `{project}`"
    ))
    .with_hint("list the profiles with `baton profiles list`")
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::runtime_from(format!("The stored {what} is unreadable"), e))
}

#[async_trait]
impl ProfileStore for SqliteDb {
    async fn store_profile(
        &self,
        project: &str,
        profile: &DatastoreProfile,
        secrets: &ProfileSecrets,
    ) -> Result<()> {
        profile.validate(secrets)?;
        let mut profile = profile.clone();
        profile.secrets = secrets.0.keys().cloned().collect();
        let body = serde_json::to_string(&profile).expect("profiles serialize");
        let secrets = serde_json::to_string(secrets).expect("secrets serialize");
        let project = project.to_string();
        self.write(move |conn, path| {
            conn.execute(
                "INSERT INTO datastore_profiles (project, name, body, secrets) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (project, name) DO UPDATE SET body = excluded.body, secrets = excluded.secrets",
                params![project, profile.name, body, secrets],
            )
            .map_err(db_error(path, "store a datastore profile"))?;
            Ok(())
        })
        .await
    }

    async fn read_profile(&self, project: &str, name: &str) -> Result<DatastoreProfile> {
        Ok(self.read_with_secrets(project, name).await?.0)
    }

    async fn list_profiles(&self, project: &str) -> Result<Vec<DatastoreProfile>> {
        let project = project.to_string();
        self.read(move |conn, path| {
            let mut stmt = conn
                .prepare("SELECT body FROM datastore_profiles WHERE project = ?1 ORDER BY name")
                .map_err(db_error(path, "list datastore profiles"))?;
            let bodies = stmt
                .query_map(params![project], |row| row.get::<_, String>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db_error(path, "list datastore profiles"))?;
            bodies
                .iter()
                .map(|b| decode(b, "datastore profile"))
                .collect()
        })
        .await
    }

    async fn delete_profile(&self, project: &str, name: &str) -> Result<()> {
        let (project, name) = (project.to_string(), name.to_string());
        self.write(move |conn, path| {
            let deleted = conn
                .execute(
                    "DELETE FROM datastore_profiles WHERE project = ?1 AND name = ?2",
                    params![project, name],
                )
                .map_err(db_error(path, "delete a datastore profile"))?;
            if deleted == 0 {
                return Err(not_found(&project, &name));
            }
            Ok(())
        })
        .await
    }

    async fn profile_target(
        &self,
        project: &str,
        name: &str,
        _path: &str,
    ) -> Result<ProfileTarget> {
        let (profile, secrets) = self.read_with_secrets(project, name).await?;
        Ok(ProfileTarget::Direct { profile, secrets })
    }
}

impl SqliteDb {
    async fn read_with_secrets(
        &self,
        project: &str,
        name: &str,
    ) -> Result<(DatastoreProfile, ProfileSecrets)> {
        let (project, name) = (project.to_string(), name.to_string());
        self.read(move |conn, path| {
            let row: Option<(String, String)> = conn
                .query_row(
                    "SELECT body, secrets FROM datastore_profiles WHERE project = ?1 AND name = ?2",
                    params![project, name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(db_error(path, "read a datastore profile"))?;
            let (body, secrets) = row.ok_or_else(|| not_found(&project, &name))?;
            Ok((
                decode(&body, "datastore profile")?,
                decode(&secrets, "datastore profile's secrets")?,
            ))
        })
        .await
    }
}

impl HttpDb {
    /// The URL of `path` under project `project`'s profiles on the server.
    fn profiles_url(&self, project: &str, path: &str) -> Result<String> {
        Ok(self.api.url(&format!(
            "/api/baton/v1/projects/{}/datastore-profiles{path}",
            segment("project", project)?
        )))
    }
}

#[async_trait]
impl ProfileStore for HttpDb {
    async fn store_profile(
        &self,
        project: &str,
        profile: &DatastoreProfile,
        secrets: &ProfileSecrets,
    ) -> Result<()> {
        profile.validate(secrets)?;
        let url = self.profiles_url(
            project,
            &format!("/{}", segment("profile name", &profile.name)?),
        )?;
        let body = StoreProfileBody {
            profile: profile.clone(),
            secrets: secrets.clone(),
        };
        self.api.put(&url, Some(&body)).await
    }

    async fn read_profile(&self, project: &str, name: &str) -> Result<DatastoreProfile> {
        let url = self.profiles_url(project, &format!("/{}", segment("profile name", name)?))?;
        self.api.get(&url, &[]).await
    }

    async fn list_profiles(&self, project: &str) -> Result<Vec<DatastoreProfile>> {
        let url = self.profiles_url(project, "")?;
        self.api.get(&url, &[]).await
    }

    async fn delete_profile(&self, project: &str, name: &str) -> Result<()> {
        let url = self.profiles_url(project, &format!("/{}", segment("profile name", name)?))?;
        self.api
            .call(reqwest::Method::DELETE, &url, &[], None)
            .await?;
        Ok(())
    }

    async fn profile_target(&self, project: &str, name: &str, path: &str) -> Result<ProfileTarget> {
        let mut route = format!("/{}/objects", segment("profile name", name)?);
        for part in path.split('/') {
            route.push('/');
            route.push_str(&segment("object path", part)?);
        }
        Ok(ProfileTarget::Server {
            url: self.profiles_url(project, &route)?,
            bearer: self.api.token().map(|t| Bearer(t.to_string())),
        })
    }
}
