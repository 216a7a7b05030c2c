//! Datastore profiles of the project: set, list, read, delete (secrets go in, never out).

use super::Baton;
use crate::datastore::profile::{DatastoreProfile, ProfileSecrets};
use crate::error::Result;

impl Baton {
    /// Creates or replaces a profile of the project with its secrets, where the project's
    /// records are (the embedded database, or the server).
    pub async fn set_profile(
        &self,
        profile: &DatastoreProfile,
        secrets: &ProfileSecrets,
    ) -> Result<()> {
        self.db
            .profile_store()
            .store_profile(self.project.name(), profile, secrets)
            .await
    }

    /// The project's profiles (public parts), by name.
    pub async fn profiles(&self) -> Result<Vec<DatastoreProfile>> {
        self.db
            .profile_store()
            .list_profiles(self.project.name())
            .await
    }

    /// One profile's public part.
    pub async fn profile(&self, name: &str) -> Result<DatastoreProfile> {
        self.db
            .profile_store()
            .read_profile(self.project.name(), name)
            .await
    }

    /// Deletes a profile.
    pub async fn delete_profile(&self, name: &str) -> Result<()> {
        self.db
            .profile_store()
            .delete_profile(self.project.name(), name)
            .await
    }
}
