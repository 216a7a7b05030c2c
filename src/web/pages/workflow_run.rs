//! `/projects/{project}/workflow-runs/{id}`: a workflow run as a DAG whose steps show their
//! state, duration and attempt, with the run's facts, its actions, and a step table.
//!
//! The page is complete as sent; its script then follows the run's event stream
//! ([`crate::web::live`]) and updates each step in place from the same [`StepView`]s the page
//! was rendered from.

use std::sync::Arc;

use axum::extract::{Path, State};
use maud::{html, Markup};
use serde::Serialize;

use super::project::{run_duration, segment, short, started_by};
use super::{badge, duration, run_word, shell, step_word, time};
use crate::engine::{StepState, StepStatus, WorkflowState};
use crate::model::{WorkflowRunRecord, WorkflowRunSummary};
use crate::web::error::PageResult;
use crate::web::layout::{Layout, NODE_HEIGHT, NODE_WIDTH};
use crate::web::Web;
use crate::workflow::{Dag, DagCheck, WorkflowGraph};

/// Characters of a step name that fit in a step box (the rest is in its tooltip).
const NAME_CHARS: usize = 28;
/// Characters of a condition that fit in a step box, after its `if `.
const CONDITION_CHARS: usize = 32;

/// The page of workflow run `id`.
pub fn url(project: &str, id: &str) -> String {
    format!(
        "/projects/{}/workflow-runs/{}",
        segment(project),
        segment(id)
    )
}

/// What the page shows of one step, and what a live update sends: rendered and updated from
/// the same fields, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepView {
    /// The step's index (declaration order).
    pub i: usize,
    /// Its state's word.
    pub state: String,
    /// Attempts started.
    pub attempts: u32,
    /// How long it ran, once it ended; else empty.
    pub duration: String,
    /// The page of its last attempt's run, once known.
    pub run: Option<String>,
    /// Why it failed, was skipped or canceled.
    pub error: Option<String>,
}

impl StepView {
    /// The view of step `i` of a run of `project`.
    pub fn of(project: &str, i: usize, step: &StepStatus) -> StepView {
        StepView {
            i,
            state: step_word(step.state),
            attempts: step.attempts,
            duration: match (step.started, step.finished) {
                (Some(from), Some(to)) => duration(from, to),
                _ => String::new(),
            },
            run: step
                .run_uid
                .as_deref()
                .map(|uid| super::run::url(project, uid)),
            error: step.error.clone(),
        }
    }
}

/// What the script receives about the run itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    /// The run state's word.
    pub state: String,
    /// Whether the run has ended.
    pub ended: bool,
    /// Whether a retry would be accepted (ended, not succeeded).
    pub retryable: bool,
    /// Why it failed or was canceled.
    pub error: Option<String>,
}

impl RunView {
    /// The view of a run in `state`.
    pub fn of(state: WorkflowState, error: Option<String>) -> RunView {
        RunView {
            state: run_word(state),
            ended: state.is_terminal(),
            retryable: state.is_terminal() && state != WorkflowState::Succeeded,
            error,
        }
    }
}

/// A condition as a step box shows it: `{{steps.pick.outputs.score}} > {{args.min}}` reads
/// `pick.score > min` (the full text is in the box's tooltip and the step table).
pub fn compact_condition(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let inner = rest[open + 2..open + close].trim();
        let short = match inner.split('.').collect::<Vec<_>>().as_slice() {
            ["steps", step, "outputs", key] => format!("{step}.{key}"),
            ["args", name] => (*name).to_string(),
            _ => inner.to_string(),
        };
        out.push_str(&short);
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// The step whose failure came first (earliest end, then declaration order).
pub fn first_failed(steps: &[StepStatus]) -> Option<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.state == StepState::Failed)
        .min_by_key(|(i, s)| (s.finished, *i))
        .map(|(i, _)| i)
}

/// The run's graph as it ran (stored with the record); `None` for a record without one.
fn dag_of(run: &WorkflowRunRecord) -> Option<Dag> {
    let graph: WorkflowGraph = serde_json::from_value(run.graph.clone()?).ok()?;
    Dag::build(graph, &DagCheck::default()).ok()
}

/// The run page.
pub async fn page(
    State(web): State<Arc<Web>>,
    Path((project, id)): Path<(String, String)>,
) -> PageResult<Markup> {
    let baton = web.source.baton(&project).await?;
    let run = baton.workflow_run(&id).await?;
    Ok(render(&run))
}

/// The whole page of `run`.
pub fn render(run: &WorkflowRunRecord) -> Markup {
    let views: Vec<StepView> = run
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepView::of(&run.project, i, s))
        .collect();
    let dag = dag_of(run);
    let conditions: Vec<Option<String>> = run
        .steps
        .iter()
        .map(|s| {
            let step = dag.as_ref()?.step_by_name(&s.name)?;
            step.when.clone()
        })
        .collect();
    let failed = first_failed(&run.steps);
    let view = RunView::of(run.state, run.error.clone());
    let events = format!("{}/events", url(&run.project, &run.id));
    let title = format!("{} {}", run.name, short(&run.id));
    shell(
        &title,
        html! {
            div #run data-events=(events) data-ended=(view.ended) {
                h1 { "Workflow run " code { (run.name) } " " small { code { (run.id) } } }
                p.run-state { "State: " span #run-state { (badge(&view.state)) } }
                p.error #run-error hidden[run.error.is_none()] { (run.error.as_deref().unwrap_or("")) }
                @if let Some(i) = failed {
                    p.first-failed { "First failed step: " a href={ "#step-" (i) } { code { (run.steps[i].name) } } }
                }
                (actions(run, &view))
                (graph(run, dag.as_ref(), &views, &conditions, failed))
                (facts(run))
                (step_table(run, &views, &conditions, failed))
            }
        },
    )
}

fn facts(run: &WorkflowRunRecord) -> Markup {
    let summary = WorkflowRunSummary::of(run);
    html! {
        table.kv.facts {
            tr { th { "Project" } td { a href=(super::project::url(&run.project)) { (run.project) } } }
            tr { th { "Engine" } td { (run.engine) } }
            tr { th { "Started" } td { (time(&run.started)) } }
            tr { th { "Finished" } td { (run.finished.as_deref().map(time).unwrap_or_else(|| "—".into())) } }
            tr { th { "Duration" } td { (run_duration(&summary)) } }
            tr { th { "Started by" } td { (started_by(&summary)) } }
            tr { th { "Workflow source" } td { code { (run.workflow.source) } } }
            @if let Some(uid) = &run.workflow.uid { tr { th { "Source artifact uid" } td { code { (uid) } } } }
            tr { th { "Source digest" } td { code { (run.workflow.digest) } } }
            @for (k, v) in &run.args { tr { th { "arg " (k) } td { code { (super::value_text(v)) } } } }
        }
    }
}

fn actions(run: &WorkflowRunRecord, view: &RunView) -> Markup {
    let base = url(&run.project, &run.id);
    html! {
        div.actions {
            form #terminate method="post" action={ (base) "/terminate" } data-when="active" hidden[view.ended] {
                button type="submit" { "■ Terminate" }
            }
            form #retry method="post" action={ (base) "/retry" } data-when="retryable" hidden[!view.retryable] {
                button type="submit" { "↻ Retry" }
            }
        }
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn graph(
    run: &WorkflowRunRecord,
    dag: Option<&Dag>,
    views: &[StepView],
    conditions: &[Option<String>],
    failed: Option<usize>,
) -> Markup {
    // Record steps and graph nodes share declaration order; a record without its graph is
    // drawn without edges.
    let n = run.steps.len();
    let (edges, order): (Vec<(usize, usize)>, Vec<usize>) = match dag {
        Some(dag) if dag.len() == n => (
            dag.graph()
                .edge_indices()
                .filter_map(|e| dag.graph().edge_endpoints(e))
                .map(|(a, b)| (a.index(), b.index()))
                .collect(),
            dag.topological_order().to_vec(),
        ),
        _ => (Vec::new(), (0..n).collect()),
    };
    let layout = Layout::layered(n, &edges, &order);
    html! {
        figure.dag {
            svg #dag xmlns="http://www.w3.org/2000/svg" width=(layout.width) height=(layout.height)
                viewBox={ "0 0 " (layout.width) " " (layout.height) } role="img"
                aria-label={ "Step graph of " (run.name) } {
                defs {
                    marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto" {
                        path d="M0 0 L10 5 L0 10 z" {}
                    }
                }
                @for (from, to) in &edges {
                    path.edge.guarded[conditions[*to].is_some()] d=(layout.edge_path(*from, *to)) marker-end="url(#arrow)" {}
                }
                @for (i, step) in run.steps.iter().enumerate() {
                    @let (x, y) = layout.nodes[i];
                    @let v = &views[i];
                    g.node.guarded[conditions[i].is_some()].first-failed[failed == Some(i)]
                        #{ "node-" (i) } data-step=(i) data-state=(v.state) transform={ "translate(" (x) " " (y) ")" } {
                        title { (step.name) @if let Some(c) = &conditions[i] { " (when " (c) ")" } }
                        a.run href=(v.run.as_deref().unwrap_or("#")) {
                            rect width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6" {}
                            text.name x="10" y="19" { (clip(&step.name, NAME_CHARS)) }
                            text.status x="10" y="38" {
                                tspan.sym { (super::symbol(&v.state)) } " " tspan.word { (v.state) }
                                " " tspan.dur { (v.duration) } " · attempt " tspan.att { (v.attempts) }
                            }
                            @if let Some(c) = &conditions[i] {
                                text.cond x="10" y="57" { "if " (clip(&compact_condition(c), CONDITION_CHARS)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn step_table(
    run: &WorkflowRunRecord,
    views: &[StepView],
    conditions: &[Option<String>],
    failed: Option<usize>,
) -> Markup {
    html! {
        h2 { "Steps" }
        table.list.steps {
            thead { tr { th { "Step" } th { "State" } th { "Attempt" } th { "Duration" } th { "Condition" } th { "Run" } th { "Error" } } }
            tbody {
                @for (i, step) in run.steps.iter().enumerate() {
                    @let v = &views[i];
                    tr #{ "step-" (i) } .first-failed[failed == Some(i)] data-step=(i) data-state=(v.state) {
                        td.name { (step.name) }
                        td { (badge(&v.state)) }
                        td.att { (v.attempts) }
                        td.dur { (v.duration) }
                        td { @if let Some(c) = &conditions[i] { code { (c) } } }
                        td { a.run href=(v.run.as_deref().unwrap_or("#")) hidden[v.run.is_none()] { "run" } }
                        td.err { (v.error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_short_text_and_marks_cuts() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdefghijk", 5), "abcd…");
    }

    #[test]
    fn conditions_read_short_in_a_box() {
        assert_eq!(
            compact_condition("{{steps.pick.outputs.best_score}} > {{ args.threshold }}"),
            "pick.best_score > threshold"
        );
        assert_eq!(
            compact_condition("{{steps.a.outputs.n}} == 'x'"),
            "a.n == 'x'"
        );
        assert_eq!(compact_condition("plain {{odd"), "plain {{odd");
    }

    #[test]
    fn the_first_failed_step_is_the_earliest_to_fail() {
        let at = |s: &str| super::super::parse_time(s);
        let mut a = StepStatus::pending("a".into());
        let mut b = StepStatus::pending("b".into());
        a.state = StepState::Failed;
        a.finished = at("2026-01-01T00:00:09Z");
        b.state = StepState::Failed;
        b.finished = at("2026-01-01T00:00:03Z");
        assert_eq!(first_failed(&[a.clone(), b]), Some(1));
        assert_eq!(first_failed(&[StepStatus::pending("c".into()), a]), Some(1));
        assert_eq!(first_failed(&[StepStatus::pending("c".into())]), None);
    }
}
