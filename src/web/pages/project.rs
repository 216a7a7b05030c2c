//! `/projects/{project}`: a project's workflow runs, schedules, functions and code artifacts.

use std::sync::Arc;

use axum::extract::{Path, State};
use maud::{html, Markup};

use super::{badge, duration, parse_time, run_word, shell, time};
use crate::db::ArtifactFilter;
use crate::error::Result;
use crate::model::workflow_run::SCHEDULE_LABEL;
use crate::model::WorkflowRunSummary;
use crate::service::Baton;
use crate::web::error::PageResult;
use crate::web::{FireView, ScheduleView, Web};

/// The page of project `name`.
pub fn url(name: &str) -> String {
    format!("/projects/{}", segment(name))
}

/// A path segment, percent-encoded (names are validated, but ids come from URLs, and schedule
/// names are free text). A space is `%20`: a path, unlike a form, keeps `+` as it is.
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The project's page: one section per part of the project.
pub async fn page(State(web): State<Arc<Web>>, Path(project): Path<String>) -> PageResult<Markup> {
    let baton = web.source.baton(&project).await?;
    let sections = [
        workflow_runs(&baton).await?,
        schedules(web.source.schedules(&project).await?),
        functions(&baton).await?,
        artifacts(&baton).await?,
    ];
    Ok(shell(
        &project,
        html! {
            h1 { "Project " code { (project) } }
            @for section in sections { (section) }
        },
    ))
}

/// Who or what started a run: a retry of another, a schedule, else the program that drove it.
pub fn started_by(run: &WorkflowRunSummary) -> Markup {
    html! {
        @if let Some(previous) = &run.retry_of {
            "retry of " a href=(super::workflow_run::url(&run.project, previous)) { code { (short(previous)) } }
        } @else if let Some(schedule) = run.labels.get(SCHEDULE_LABEL) {
            "schedule " a href={ (url(&run.project)) "#schedules" } { code { (schedule) } }
        } @else if let Some(driver) = &run.driver {
            (driver.program) " on " (driver.host)
        } @else { "—" }
    }
}

/// The first characters of an id, enough to tell runs apart in a table.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A run's duration so far, when it has ended.
pub fn run_duration(run: &WorkflowRunSummary) -> String {
    match (
        parse_time(&run.started),
        run.finished.as_deref().and_then(parse_time),
    ) {
        (Some(from), Some(to)) => duration(from, to),
        _ => "—".into(),
    }
}

async fn workflow_runs(baton: &Baton) -> Result<Markup> {
    let runs = baton.workflow_run_summaries().await?;
    Ok(html! {
        section #workflow-runs {
            h2 { "Workflow runs" }
            @if runs.is_empty() { p.none { "No workflow runs yet." } } @else {
                table.list {
                    thead { tr { th { "Run" } th { "Workflow" } th { "State" } th { "Engine" } th { "Started" } th { "Duration" } th { "Started by" } } }
                    tbody {
                        @for run in &runs {
                            tr {
                                td { a href=(super::workflow_run::url(&run.project, &run.id)) { code { (short(&run.id)) } } }
                                td { (run.name) }
                                td { (badge(&run_word(run.state))) }
                                td { (run.engine) }
                                td { (time(&run.started)) }
                                td { (run_duration(run)) }
                                td { (started_by(run)) }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn schedules(listed: Option<Vec<ScheduleView>>) -> Markup {
    let Some(listed) = listed else {
        return html! {
            section #schedules {
                h2 { "Schedules" }
                p.none { "Schedules live on a " code { "baton server" } "; this page has none." }
            }
        };
    };
    html! {
        section #schedules {
            h2 { "Schedules" }
            @if listed.is_empty() { p.none { "No schedules yet." } } @else {
                table.list {
                    thead { tr { th { "Name" } th { "Workflow" } th { "Cron" } th { "Next fire" } th { "Last fire" } th { "Paused" } th { "Actions" } } }
                    tbody { @for s in &listed { (schedule_row(s)) } }
                }
            }
        }
    }
}

fn schedule_row(s: &ScheduleView) -> Markup {
    let base = format!("{}/schedules/{}", url(&s.project), segment(&s.name));
    html! {
        tr.schedule data-paused=(s.paused) {
            td { (s.name) }
            td { (s.workflow) }
            td { code { (s.cron) } " " small { (s.timezone) } }
            td { (s.next_fire.as_deref().map_or_else(|| "—".into(), time)) }
            td { @if let Some(fire) = &s.last_fire { (last_fire(&s.project, fire)) } @else { "—" } }
            td.paused {
                @if s.paused {
                    "paused" @if let Some(note) = &s.note { ": " q.note { (note) } }
                } @else { "—" }
            }
            td.actions {
                form method="post" action={ (base) "/trigger" } { button type="submit" { "▶ Trigger" } }
                @if s.paused {
                    form method="post" action={ (base) "/resume" } { button type="submit" { "↻ Resume" } }
                } @else {
                    form method="post" action={ (base) "/pause" } {
                        input type="text" name="note" placeholder="note" aria-label="Why pause";
                        button type="submit" { "⏸ Pause" }
                    }
                }
            }
        }
    }
}

/// A fire: when it was due, its state, and its run.
fn last_fire(project: &str, fire: &FireView) -> Markup {
    html! {
        (time(&fire.scheduled)) " " (badge(&fire.state))
        @if let Some(detail) = &fire.detail { " " small { (detail) } }
        @if let Some(run) = &fire.run_id {
            " " a href=(super::workflow_run::url(project, run)) { code { (short(run)) } }
        }
    }
}

async fn functions(baton: &Baton) -> Result<Markup> {
    let functions = baton.list_functions().await?;
    Ok(html! {
        section #functions {
            h2 { "Functions" }
            @if functions.is_empty() { p.none { "No functions yet." } } @else {
                table.list {
                    thead { tr { th { "Name" } th { "Kind" } th { "Source" } th { "Handler" } } }
                    tbody {
                        @for f in &functions {
                            tr {
                                td { (f.entry.name) }
                                td { (f.entry.kind.as_deref().unwrap_or("job")) }
                                td { code { (f.entry.url.as_deref().unwrap_or("—")) } }
                                td { code { (f.entry.handler.as_deref().unwrap_or("—")) } }
                            }
                        }
                    }
                }
            }
        }
    })
}

async fn artifacts(baton: &Baton) -> Result<Markup> {
    let versions = baton.artifact_versions(&ArtifactFilter::default()).await?;
    Ok(html! {
        section #artifacts {
            h2 { "Code artifacts" }
            @if versions.is_empty() { p.none { "No code artifacts yet." } } @else {
                table.list {
                    thead { tr { th { "Key" } th { "Type" } th { "Version (uid)" } th { "Tags" } th { "Digest" } } }
                    tbody {
                        @for v in &versions {
                            @let a = &v.artifact;
                            tr {
                                td { (a.metadata.key) }
                                td { (a.code_type()) }
                                td { code { (a.metadata.uid.as_deref().unwrap_or("—")) } }
                                td { (v.tags.join(", ")) }
                                td { code { (a.spec.digest.as_deref().unwrap_or("—")) } }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_encode_what_a_path_would_misread() {
        assert_eq!(super::segment("a b+c/d?"), "a%20b%2Bc%2Fd%3F");
    }
}
