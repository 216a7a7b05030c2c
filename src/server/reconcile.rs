//! Reconciling, at start-up, what a previous server left unfinished.
//!
//! A server killed outright leaves runs `running` (their runners got SIGTERM with it and
//! usually recorded `aborted`, but not always) and workflow runs whose driver was that server.
//! At start the unfinished records are listed; once every lease the dead server held has had
//! time to expire, those whose holder is gone are settled: a function run becomes `error`
//! ("server restarted"), a workflow run `Failed`, each of its steps taking the outcome of its
//! step run when that run finished. Nothing is removed, and `workflows retry` re-runs only the
//! steps that did not succeed.

use std::sync::Arc;

use super::AppState;
use crate::db::{settle_run, RunFilter, LEASE_TTL};
use crate::error::Result;
use crate::model::RunState;

/// What a previous server left unfinished: per project, the uids of its unfinished runs and
/// how many workflow runs are unfinished.
pub struct Survey(Vec<(String, (Vec<String>, usize))>);

/// Lists the unfinished records of every project. Call it before the server takes requests, so
/// no run of this server is among them. A project that cannot be read is logged and skipped.
pub async fn survey(state: &AppState) -> Survey {
    let names = match state.projects.names() {
        Ok(names) => names,
        Err(e) => {
            tracing::error!("cannot list projects to reconcile: {}", e.chain());
            return Survey(Vec::new());
        }
    };
    let mut pending = Vec::new();
    for name in names {
        match unfinished(state, &name).await {
            Ok((runs, 0)) if runs.is_empty() => {}
            Ok(found) => pending.push((name, found)),
            Err(e) => tracing::error!("cannot reconcile project `{name}`: {}", e.chain()),
        }
    }
    Survey(pending)
}

/// Waits one lease period (a lease renewed just before the old server died is valid that
/// long), then settles the surveyed records whose runner or driver is gone.
pub async fn settle_after_leases(state: Arc<AppState>, survey: Survey) {
    if survey.0.is_empty() {
        return;
    }
    tokio::time::sleep(LEASE_TTL + std::time::Duration::from_secs(1)).await;
    for (name, (runs, workflows)) in survey.0 {
        tracing::info!(
            "reconciling project `{name}`: {} unfinished run(s), {workflows} unfinished workflow run(s)",
            runs.len()
        );
        if let Err(e) = settle(&state, &name, &runs).await {
            tracing::error!("cannot reconcile project `{name}`: {}", e.chain());
        }
    }
}

/// The uids of project `name`'s unfinished runs, and how many of its workflow runs are
/// unfinished.
async fn unfinished(state: &AppState, name: &str) -> Result<(Vec<String>, usize)> {
    let baton = state.projects.baton(name).await?;
    let db = baton.db();
    let runs = db
        .list_runs(name, &RunFilter::default())
        .await?
        .into_iter()
        .filter(|r| !r.status.state.is_terminal())
        .map(|r| r.metadata.uid)
        .collect();
    let workflows = db
        .list_workflow_run_summaries(name)
        .await?
        .iter()
        .filter(|w| !w.state.is_terminal())
        .count();
    Ok((runs, workflows))
}

/// Settles project `name`'s workflow runs whose driver is gone, and those of runs `uids` whose
/// runner is gone.
async fn settle(state: &AppState, name: &str, uids: &[String]) -> Result<()> {
    let baton = state.projects.baton(name).await?;
    // Workflow runs first: settling one settles its step runs with the workflow's reason.
    baton.workflow_run_summaries().await?;
    let db = baton.db();
    for uid in uids {
        let run = db.read_run(name, uid).await?;
        if run.status.state.is_terminal() || db.lease_alive(&run.runner_lease()).await? {
            continue;
        }
        let error = if run.status.state == RunState::Created {
            "server restarted before the run started"
        } else {
            "server restarted: the run's runner stopped with the server that started it"
        };
        settle_run(db, &run, RunState::Error, error.into()).await?;
    }
    Ok(())
}
