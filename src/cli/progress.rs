//! Workflow progress on stderr, following a run's event stream ([`Subscription`]): a tree of
//! steps redrawn in place on a terminal (with `indicatif`, which keeps the drawing within the
//! terminal's height), plain lines otherwise. It only draws; the engine publishes events and
//! never touches the terminal.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{
    AttemptResult, StepState, Subscription, WorkflowEvent, WorkflowEventKind, WorkflowRunStatus,
};
use crate::workflow::Dag;

/// How often the live tree redraws so running steps' durations advance.
const TICK: Duration = Duration::from_millis(250);

struct Row {
    name: String,
    depth: usize,
    state: StepState,
    started: Option<DateTime<Utc>>,
    elapsed: Option<Duration>,
    note: String,
}

impl Row {
    fn elapsed(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.elapsed
            .or_else(|| self.started.and_then(|s| (now - s).to_std().ok()))
    }

    /// The row as the live tree shows it.
    fn line(&self, now: DateTime<Utc>) -> String {
        let elapsed = self
            .elapsed(now)
            .map(|d| format!(" {:.1}s", d.as_secs_f64()))
            .unwrap_or_default();
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!("  {}", self.note)
        };
        format!(
            "{}{} {}{elapsed}{note}",
            "  ".repeat(self.depth),
            symbol(self.state),
            self.name
        )
    }
}

/// Draws workflow progress: nothing, a live tree, or one plain line per event.
pub struct Progress {
    rows: Vec<Row>,
    /// The live tree's bars, one per row (in row order); `None` prints plain lines.
    live: Option<(MultiProgress, Vec<ProgressBar>)>,
    watch: bool,
}

impl Progress {
    /// A progress view of `dag`'s steps, indented by their depth in the graph. With `watch` off
    /// it prints nothing; with `live` it redraws a tree of steps in place, else it prints one
    /// line per event.
    pub fn new(dag: &Dag, watch: bool, live: bool) -> Self {
        let mut depth = vec![0usize; dag.len()];
        for &i in dag.topological_order() {
            depth[i] = dag.predecessors(i).map(|p| depth[p] + 1).max().unwrap_or(0);
        }
        let rows: Vec<Row> = dag
            .topological_order()
            .iter()
            .map(|&i| Row {
                name: dag.step(i).name.clone(),
                depth: depth[i],
                state: StepState::Pending,
                started: None,
                elapsed: None,
                note: String::new(),
            })
            .collect();
        let live = (watch && live).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{msg}").expect("a valid template");
            let bars = rows
                .iter()
                .map(|row| {
                    let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
                    bar.set_message(row.line(Utc::now()));
                    bar
                })
                .collect();
            (multi, bars)
        });
        Progress { rows, live, watch }
    }

    /// Follows a run until its event stream ends, then leaves the final tree on screen.
    pub async fn follow(mut self, subscription: Subscription) {
        self.catch_up(&subscription.status);
        self.redraw();
        let mut events = subscription.events;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => self.on_event(&event),
                    None => break,
                },
                _ = tick.tick(), if self.live.is_some() => self.redraw(),
            }
        }
        // The final tree is written as plain lines below nothing live, so what is printed next
        // starts on a line of its own.
        if let Some((multi, bars)) = &self.live {
            for bar in bars {
                bar.finish_and_clear();
            }
            let _ = multi.clear();
            let now = Utc::now();
            let mut err = std::io::stderr().lock();
            for row in &self.rows {
                let _ = writeln!(err, "{}", row.line(now));
            }
        }
    }

    /// Takes what happened before the subscription from its status (in plain mode, with the
    /// lines its events would have printed).
    fn catch_up(&mut self, status: &WorkflowRunStatus) {
        let mut lines = Vec::new();
        for row in &mut self.rows {
            let Some(step) = status.step(&row.name) else {
                continue;
            };
            row.state = step.state;
            row.started = step.started;
            row.elapsed = step
                .started
                .zip(step.finished)
                .and_then(|(s, f)| (f - s).to_std().ok());
            let secs = row
                .elapsed
                .map(|d| format!(" {:.1}s", d.as_secs_f64()))
                .unwrap_or_default();
            if step.attempts > 0 {
                lines.push(format!("▶ {}", row.name));
            }
            let name = &row.name;
            match (step.state, &step.error) {
                (StepState::Succeeded, _) => lines.push(format!("✓ {name}{secs}")),
                (StepState::Failed, Some(e)) => lines.push(format!("✗ {name}{secs}: {e}")),
                (StepState::Skipped, Some(e)) => lines.push(format!("↷ {name} skipped: {e}")),
                _ => {}
            }
        }
        if self.watch && self.live.is_none() {
            let mut err = std::io::stderr().lock();
            for line in lines {
                let _ = writeln!(err, "{line}");
            }
        }
    }

    fn redraw(&self) {
        if let Some((_, bars)) = &self.live {
            let now = Utc::now();
            for (row, bar) in self.rows.iter().zip(bars) {
                bar.set_message(row.line(now));
            }
        }
    }

    fn on_event(&mut self, event: &WorkflowEvent) {
        if !self.watch {
            return;
        }
        let Some(step) = event.kind.step() else {
            return;
        };
        let Some(i) = self.rows.iter().position(|r| r.name == step.name) else {
            return;
        };
        let row = &mut self.rows[i];
        let mut lines = Vec::new();
        match &event.kind {
            WorkflowEventKind::StepStarted { attempt, .. } => {
                row.state = StepState::Running;
                row.started.get_or_insert(event.at);
                row.elapsed = None;
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                row.note = if *attempt > 1 {
                    format!("attempt {attempt}")
                } else {
                    String::new()
                };
                lines.push(format!("▶ {}{again}", row.name));
            }
            WorkflowEventKind::StepFinished { result, .. } => {
                row.elapsed = row.started.and_then(|s| (event.at - s).to_std().ok());
                let secs = row
                    .elapsed
                    .map(|d| format!(" {:.1}s", d.as_secs_f64()))
                    .unwrap_or_default();
                match result {
                    AttemptResult::Succeeded { .. } => {
                        row.state = StepState::Succeeded;
                        row.note.clear();
                        lines.push(format!("{} {}{secs}", symbol(row.state), row.name));
                    }
                    AttemptResult::Failed { error, .. } => {
                        row.state = StepState::Failed;
                        row.note.clone_from(error);
                        lines.push(format!("{} {}{secs}: {error}", symbol(row.state), row.name));
                    }
                    AttemptResult::Retrying {
                        error,
                        next_attempt,
                        delay,
                    } => {
                        let delay = humantime::format_duration(*delay);
                        lines.push(format!(
                            "{} {}{secs}: {error}",
                            symbol(StepState::Failed),
                            row.name
                        ));
                        lines.push(format!("↻ {} attempt {next_attempt} in {delay}", row.name));
                        row.state = StepState::Pending;
                        row.note = format!("retrying in {delay}");
                    }
                }
            }
            WorkflowEventKind::StepSkipped { reason, .. } => {
                row.state = StepState::Skipped;
                row.note.clone_from(reason);
                lines.push(format!("↷ {} skipped: {reason}", row.name));
            }
            WorkflowEventKind::StepReused { .. } => {
                row.state = StepState::Succeeded;
                row.note = "reused".into();
                lines.push(format!("✓ {} reused", row.name));
            }
            WorkflowEventKind::StepFailed { error, .. } => {
                row.state = StepState::Failed;
                row.note.clone_from(error);
            }
            WorkflowEventKind::StepCanceled { .. } => {
                row.state = StepState::Canceled;
                if let Some(started) = row.started.filter(|_| row.elapsed.is_none()) {
                    row.elapsed = (event.at - started).to_std().ok();
                }
            }
            _ => {}
        }
        match &self.live {
            Some((_, bars)) => bars[i].set_message(self.rows[i].line(Utc::now())),
            None => {
                let mut err = std::io::stderr().lock();
                for line in lines {
                    let _ = writeln!(err, "{line}");
                }
            }
        }
    }
}

fn symbol(state: StepState) -> &'static str {
    match state {
        StepState::Pending => "·",
        StepState::Running => "▶",
        StepState::Succeeded => "✓",
        StepState::Failed => "✗",
        StepState::Skipped => "↷",
        StepState::Canceled => "■",
    }
}
