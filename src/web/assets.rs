//! The stylesheet and the script, compiled into the binary and cached by browsers for a day;
//! their URLs carry the crate version, so a new release's pages never get an old copy.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The stylesheet's URL.
pub const CSS_URL: &str = concat!("/assets/baton-", env!("CARGO_PKG_VERSION"), ".css");
/// The script's URL.
pub const JS_URL: &str = concat!("/assets/baton-", env!("CARGO_PKG_VERSION"), ".js");

const CSS: &str = include_str!("assets/baton.css");
const JS: &str = include_str!("assets/baton.js");

/// `GET` of both assets.
pub fn routes() -> Router {
    Router::new()
        .route(
            CSS_URL,
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            JS_URL,
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}
