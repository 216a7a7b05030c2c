//! The actions of a project's schedules: trigger, pause (with a note) and resume, by the same
//! service functions as `baton schedules ...` and the native routes, answered with a redirect
//! to the project's schedules. A refusal (an unknown schedule, no schedules under `baton ui`)
//! is the error page with the service's message. [`super::access`] has already checked the
//! request.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::Form;
use serde::Deserialize;

use super::error::PageResult;
use super::pages::project::url;
use super::{ScheduleAction, Web};

/// The form of `POST .../schedules/{name}/pause`.
#[derive(Debug, Deserialize)]
pub struct PauseForm {
    /// Why it is paused (empty: no note).
    #[serde(default)]
    note: String,
}

/// `POST .../schedules/{name}/trigger`: fires the schedule now (its overlap policy applies).
pub async fn trigger(
    State(web): State<Arc<Web>>,
    Path((project, name)): Path<(String, String)>,
) -> PageResult<Redirect> {
    web.source
        .schedule_action(&project, &name, ScheduleAction::Trigger)
        .await?;
    Ok(back(&project))
}

/// `POST .../schedules/{name}/pause`: holds its fires, keeping the note.
pub async fn pause(
    State(web): State<Arc<Web>>,
    Path((project, name)): Path<(String, String)>,
    Form(form): Form<PauseForm>,
) -> PageResult<Redirect> {
    let note = Some(form.note).filter(|n| !n.is_empty());
    web.source
        .schedule_action(&project, &name, ScheduleAction::Pause(note))
        .await?;
    Ok(back(&project))
}

/// `POST .../schedules/{name}/resume`: fires from now on.
pub async fn resume(
    State(web): State<Arc<Web>>,
    Path((project, name)): Path<(String, String)>,
) -> PageResult<Redirect> {
    web.source
        .schedule_action(&project, &name, ScheduleAction::Resume)
        .await?;
    Ok(back(&project))
}

fn back(project: &str) -> Redirect {
    Redirect::to(&format!("{}#schedules", url(project)))
}
