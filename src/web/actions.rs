//! The actions of a workflow run page: terminate and retry, by the service's own rules (the
//! CLI's `workflows terminate` and `workflows retry`), answered with a redirect to the page to
//! look at next. A refusal (retrying a run that succeeded or still runs, an unknown run) is the
//! error page with the service's message. [`super::access`] has already checked the request.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Redirect;

use super::error::PageResult;
use super::pages::workflow_run::url;
use super::Web;
use crate::engine::{EngineKind, WorkflowRunId};
use crate::error::ErrorKind;
use crate::project::RunWorkflowOptions;
use crate::service::Termination;

/// `POST .../workflow-runs/{id}/terminate`: asks the run to stop (an ended run is left as it
/// is), then shows the run.
pub async fn terminate(
    State(web): State<Arc<Web>>,
    Path((project, id)): Path<(String, String)>,
) -> PageResult<Redirect> {
    let baton = web.source.baton(&project).await?;
    if baton.terminate_workflow(&id).await? == Termination::Requested {
        // A run hosted here stops now rather than at its driver's next look at the database.
        if let Some(engines) = web.source.engines() {
            let run = WorkflowRunId::from(id.as_str());
            for kind in [EngineKind::Local, EngineKind::Kfp] {
                match engines.get(kind).terminate(&run).await {
                    Ok(()) => break,
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::BadRequest) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(Redirect::to(&url(&project, &id)))
}

/// `POST .../workflow-runs/{id}/retry`: starts a new run of what did not succeed, handed to
/// the source to follow, then shows the new run.
pub async fn retry(
    State(web): State<Arc<Web>>,
    Path((project, id)): Path<(String, String)>,
) -> PageResult<Redirect> {
    let baton = web.source.baton(&project).await?;
    let handle = baton
        .retry_workflow(&id, &RunWorkflowOptions::default())
        .await?;
    let new_id = handle.id().to_string();
    web.source.follow(baton, handle);
    Ok(Redirect::to(&url(&project, &new_id)))
}
