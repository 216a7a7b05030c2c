//! `/`: the projects.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::shell;
use crate::web::error::PageResult;
use crate::web::Web;

/// The list of projects; with one project only (`baton ui`), that project's page.
pub async fn page(State(web): State<Arc<Web>>) -> PageResult<Response> {
    let names = web.source.projects()?;
    if let [only] = names.as_slice() {
        return Ok(Redirect::to(&super::project::url(only)).into_response());
    }
    Ok(shell(
        "Projects",
        html! {
            h1 { "Projects" }
            @if names.is_empty() { p.none { "No projects yet." } }
            ul.projects {
                @for name in &names { li { a href=(super::project::url(name)) { (name) } } }
            }
        },
    )
    .into_response())
}
