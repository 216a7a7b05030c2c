//! Workflow progress on stderr: a tree of steps redrawn in place on a terminal, plain lines
//! otherwise. It only draws; the engine reports events and never touches the terminal.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use crate::engine::{StepState, WorkflowEvent, WorkflowObserver, WorkflowRunId};
use crate::workflow::Dag;

struct Row {
    name: String,
    depth: usize,
    state: StepState,
    started: Option<Instant>,
    elapsed: Option<std::time::Duration>,
    note: String,
}

struct Screen {
    rows: Vec<Row>,
    drawn: usize,
}

/// Draws workflow progress. With `watch` off it prints nothing; with `live` it redraws a tree of
/// steps in place, else it prints one line per event.
pub struct Progress {
    watch: bool,
    live: bool,
    screen: Mutex<Screen>,
}

impl Progress {
    /// A progress view of `dag`'s steps, indented by their depth in the graph.
    pub fn new(dag: &Dag, watch: bool, live: bool) -> Self {
        let mut depth = vec![0usize; dag.len()];
        for &i in dag.topological_order() {
            depth[i] = dag.predecessors(i).map(|p| depth[p] + 1).max().unwrap_or(0);
        }
        let rows = dag
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
        Progress {
            watch,
            live,
            screen: Mutex::new(Screen { rows, drawn: 0 }),
        }
    }

    /// Redraws the live tree so running steps' durations advance; call it periodically.
    pub fn tick(&self) {
        let mut screen = self.screen.lock().unwrap_or_else(|p| p.into_inner());
        if self.watch && self.live && screen.drawn > 0 {
            redraw(&mut screen);
        }
    }

    /// Draws the final state (live mode) once the run is over.
    pub fn finish(&self) {
        if self.watch && self.live {
            let mut screen = self.screen.lock().unwrap_or_else(|p| p.into_inner());
            redraw(&mut screen);
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

fn redraw(screen: &mut Screen) {
    let mut err = std::io::stderr().lock();
    if screen.drawn > 0 {
        let _ = write!(err, "\x1b[{}A", screen.drawn);
    }
    for row in &screen.rows {
        let elapsed = row
            .elapsed
            .or_else(|| row.started.map(|s| s.elapsed()))
            .map(|d| format!(" {:.1}s", d.as_secs_f64()))
            .unwrap_or_default();
        let _ = writeln!(
            err,
            "\x1b[2K{}{} {}{}{}",
            "  ".repeat(row.depth),
            symbol(row.state),
            row.name,
            elapsed,
            if row.note.is_empty() {
                String::new()
            } else {
                format!("  {}", row.note)
            }
        );
    }
    screen.drawn = screen.rows.len();
}

impl WorkflowObserver for Progress {
    fn on_event(&self, _: &WorkflowRunId, event: &WorkflowEvent) {
        if !self.watch {
            return;
        }
        let mut screen = self.screen.lock().unwrap_or_else(|p| p.into_inner());
        let line = {
            let find = |name: &str| screen.rows.iter().position(|r| r.name == name);
            match event {
                WorkflowEvent::StepStarted { name, attempt, .. } => find(name).map(|i| {
                    let row = &mut screen.rows[i];
                    row.state = StepState::Running;
                    row.started.get_or_insert_with(Instant::now);
                    row.note = if *attempt > 1 {
                        format!("attempt {attempt}")
                    } else {
                        String::new()
                    };
                    format!(
                        "▶ {name}{}",
                        if *attempt > 1 {
                            format!(" (attempt {attempt})")
                        } else {
                            String::new()
                        }
                    )
                }),
                WorkflowEvent::StepFinished {
                    name, state, error, ..
                } => find(name).map(|i| {
                    let row = &mut screen.rows[i];
                    row.state = *state;
                    row.elapsed = row.started.map(|s| s.elapsed());
                    row.note = error.clone().unwrap_or_default();
                    let secs = row
                        .elapsed
                        .map(|d| format!(" {:.1}s", d.as_secs_f64()))
                        .unwrap_or_default();
                    match error {
                        Some(e) => format!("{} {name}{secs}: {e}", symbol(*state)),
                        None => format!("{} {name}{secs}", symbol(*state)),
                    }
                }),
                WorkflowEvent::StepRetrying {
                    name,
                    next_attempt,
                    delay,
                } => find(name).map(|i| {
                    let row = &mut screen.rows[i];
                    row.state = StepState::Pending;
                    row.note = format!("retrying in {}", humantime::format_duration(*delay));
                    format!(
                        "↻ {name} attempt {next_attempt} in {}",
                        humantime::format_duration(*delay)
                    )
                }),
                WorkflowEvent::StepSkipped { name, reason } => find(name).map(|i| {
                    let row = &mut screen.rows[i];
                    row.state = StepState::Skipped;
                    row.note = reason.clone();
                    format!("↷ {name} skipped: {reason}")
                }),
                WorkflowEvent::StepReused { name } => find(name).map(|i| {
                    screen.rows[i].state = StepState::Succeeded;
                    screen.rows[i].note = "reused".into();
                    format!("✓ {name} reused")
                }),
                WorkflowEvent::StepRunStarted { .. } | WorkflowEvent::WorkflowFinished { .. } => {
                    None
                }
            }
        };
        if self.live {
            redraw(&mut screen);
        } else if let Some(line) = line {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}
