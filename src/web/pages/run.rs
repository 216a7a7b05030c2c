//! `/projects/{project}/runs/{uid}`: one run (a workflow step, or a function run): its
//! parameters, inputs, results, the code it ran, labels, timings, and its log, tailed live
//! while it runs.

use std::sync::Arc;

use axum::extract::{Path, State};
use maud::{html, Markup};

use super::project::segment;
use super::{badge, key_values, shell, time, value_text};
use crate::model::RunObject;
use crate::web::error::PageResult;
use crate::web::live::LOG_PAGE_BYTES;
use crate::web::Web;

/// The page of run `uid`.
pub fn url(project: &str, uid: &str) -> String {
    format!("/projects/{}/runs/{}", segment(project), segment(uid))
}

/// The run page: facts, then the last [`LOG_PAGE_BYTES`] of the log, which the script then
/// follows from where the page ends.
pub async fn page(
    State(web): State<Arc<Web>>,
    Path((project, uid)): Path<(String, String)>,
) -> PageResult<Markup> {
    let baton = web.source.baton(&project).await?;
    let run = baton.run(&uid).await?;
    let log = crate::web::live::log_tail(&baton.logs().path(&uid), LOG_PAGE_BYTES).await?;
    Ok(render(&run, &log))
}

/// The page of `run` with `log`, the end of its log.
pub fn render(run: &RunObject, log: &crate::web::live::LogTailText) -> Markup {
    let m = &run.metadata;
    let s = &run.status;
    let state = s.state.to_string();
    let workflow = m.labels.get("workflow");
    let log_url = format!("{}/log?from={}", url(&m.project, &m.uid), log.end);
    shell(
        &format!("run {}", m.name),
        html! {
            h1 { "Run " code { (m.name) } " " small { code { (m.uid) } } }
            p.run-state { "State: " (badge(&state)) }
            @if let Some(error) = &s.error { p.error { (error) } }
            table.kv.facts {
                tr { th { "Project" } td { a href=(super::project::url(&m.project)) { (m.project) } } }
                @if let Some(id) = workflow {
                    tr { th { "Workflow run" } td { a href=(super::workflow_run::url(&m.project, id)) { code { (id) } } } }
                }
                tr { th { "Function" } td { code { (run.spec.function) } } }
                tr { th { "Handler" } td { code { (run.spec.handler.as_deref().unwrap_or("—")) } } }
                tr { th { "Started" } td { (s.start_time.as_deref().map(time).unwrap_or_else(|| "—".into())) } }
                tr { th { "Ended" } td { (s.end_time.as_deref().map(time).unwrap_or_else(|| "—".into())) } }
                @if let Some(code) = &s.code {
                    tr { th { "Code source" } td { code { (code.source) } } }
                    tr { th { "Code artifact uid" } td { code { (code.uid.as_deref().unwrap_or("—")) } } }
                    tr { th { "Code digest" } td { code { (code.digest) } } }
                }
            }
            h2 { "Parameters" }
            (key_values(run.spec.parameters.iter().map(|(k, v)| (k.as_str(), value_text(v)))))
            h2 { "Inputs" }
            (key_values(run.spec.inputs.iter().map(|(k, v)| (k.as_str(), v.clone()))))
            h2 { "Results" }
            (key_values(s.results.iter().map(|(k, v)| (k.as_str(), value_text(v)))))
            h2 { "Labels" }
            (key_values(m.labels.iter().map(|(k, v)| (k.as_str(), v.clone()))))
            h2 { "Log" }
            @if log.start > 0 { p.none { "(the first " (log.start) " bytes are not shown)" } }
            pre #log data-follow=[(!s.state.is_terminal()).then_some(&log_url)] { (log.text) }
        },
    )
}
