//! baton's own API under `/api/baton/v1`, used by the baton CLI and the remote engine: the
//! [`crate::db::Db`] operations over HTTP ([`db`]), datastore profiles and their objects
//! ([`profiles`]), and hosted workflow runs ([`workflows`]).

mod db;
mod profiles;
mod workflows;

use std::sync::Arc;

use axum::Router;

use super::AppState;

/// baton's own routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .merge(db::routes())
        .merge(profiles::routes())
        .merge(workflows::routes())
}
