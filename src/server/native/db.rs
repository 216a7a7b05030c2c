//! The [`crate::db::Db`] operations over HTTP, for [`crate::db::HttpDb`].

use std::sync::Arc;

use axum::Router;

use crate::server::AppState;

/// The routes of the database API.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
