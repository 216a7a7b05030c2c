//! Hosted workflow runs: the remote engine's protocol.

use std::sync::Arc;

use axum::Router;

use crate::server::AppState;

/// The routes of hosted workflow runs.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
