//! Live pages: a workflow run's changes and a run's log as server-sent events.
//!
//! A run page's stream starts with a snapshot (the run, every step), then sends only what
//! changed. When this process hosts the run, the changes are the engine's own events
//! ([`crate::engine::WorkflowEngine::subscribe`]); otherwise (a run driven by a `baton run`
//! while `baton ui` shows it) they are the differences between successive reads of the run's
//! record, one read per tick for the whole run, however many steps it has. The stream ends once
//! the run has.
//!
//! A log streams in chunks of at most [`LOG_CHUNK_BYTES`] from the offset the page stopped at,
//! each chunk cut on a UTF-8 boundary, until the run has ended and its log is drained.
//!
//! Each stream is a task feeding a small bounded channel: a slow reader slows its own task
//! only, and a closed page ends it at its next send.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::error::PageResult;
use super::pages::workflow_run::{RunView, StepView};
use super::Web;
use crate::engine::{EngineKind, Subscription, WorkflowRunId, WorkflowRunStatus};
use crate::error::{Error, Result};
use crate::model::WorkflowRunRecord;
use crate::service::Baton;

/// How much of a log a run page carries when it loads.
pub const LOG_PAGE_BYTES: u64 = 64 * 1024;
/// The most log bytes in one event.
pub const LOG_CHUNK_BYTES: usize = 16 * 1024;
/// How often a record or a log is looked at again when nothing pushes changes.
const TICK: Duration = Duration::from_millis(500);
/// Events queued per stream before its task waits for the reader.
const QUEUE: usize = 16;

type EventStream = futures::stream::BoxStream<'static, std::result::Result<Event, Infallible>>;

/// An SSE response over the events a task sends into a bounded channel.
fn channel_stream<F, Fut>(produce: F) -> Response
where
    F: FnOnce(futures::channel::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = futures::channel::mpsc::channel(QUEUE);
    tokio::spawn(produce(tx));
    let events: EventStream = rx.map(Ok).boxed();
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(value).expect("views serialize"))
}

/// `GET /projects/{project}/workflow-runs/{id}/events`: `run` events (a [`RunView`]) and
/// `steps` events (a list of [`StepView`]s), a snapshot of both first.
pub async fn workflow_run_events(
    State(web): State<Arc<Web>>,
    Path((project, id)): Path<(String, String)>,
) -> PageResult<Response> {
    let baton = web.source.baton(&project).await?;
    let run = baton.workflow_run(&id).await?;
    let hosted = match web.source.engines() {
        Some(engines) => subscribe_hosted(&engines, &id).await,
        None => None,
    };
    Ok(match hosted {
        Some(subscription) => channel_stream(move |tx| follow_engine(project, subscription, tx)),
        None => channel_stream(move |tx| follow_record(baton, run, tx)),
    })
}

/// The engine's subscription to run `id`, when one of this process's engines hosts it.
async fn subscribe_hosted(
    engines: &crate::engine::EngineRegistry,
    id: &str,
) -> Option<Subscription> {
    let id = WorkflowRunId::from(id);
    for kind in [EngineKind::Local, EngineKind::Kfp] {
        if let Ok(subscription) = engines.get(kind).subscribe(&id).await {
            return Some(subscription);
        }
    }
    None
}

/// The snapshot events of a run.
fn snapshot(project: &str, status: &WorkflowRunStatus) -> [Event; 2] {
    let steps: Vec<StepView> = status
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepView::of(project, i, s))
        .collect();
    [
        json_event("steps", &steps),
        json_event("run", &RunView::of(status.state, status.error.clone())),
    ]
}

async fn follow_engine(
    project: String,
    subscription: Subscription,
    mut tx: futures::channel::mpsc::Sender<Event>,
) {
    use futures::SinkExt;
    let Subscription { mut status, events } = subscription;
    let mut events = events;
    for event in snapshot(&project, &status) {
        if tx.send(event).await.is_err() {
            return;
        }
    }
    while let Some(event) = events.next().await {
        let before = (status.state, status.error.clone());
        status.apply(&event);
        if let Some(step) = event.kind.step() {
            if let Some(s) = status.steps.get(step.index) {
                let view = [StepView::of(&project, step.index, s)];
                if tx.send(json_event("steps", &view)).await.is_err() {
                    return;
                }
            }
        }
        if before != (status.state, status.error.clone()) {
            let view = RunView::of(status.state, status.error.clone());
            if tx.send(json_event("run", &view)).await.is_err() {
                return;
            }
        }
    }
}

async fn follow_record(
    baton: Baton,
    mut run: WorkflowRunRecord,
    mut tx: futures::channel::mpsc::Sender<Event>,
) {
    use futures::SinkExt;
    let mut sent = run.status();
    for event in snapshot(&run.project, &sent) {
        if tx.send(event).await.is_err() {
            return;
        }
    }
    while !run.state.is_terminal() {
        tokio::time::sleep(TICK).await;
        run = match baton.workflow_run(&run.id).await {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!("cannot follow workflow run `{}`: {}", run.id, e.chain());
                return;
            }
        };
        let now = run.status();
        let changed: Vec<StepView> = now
            .steps
            .iter()
            .enumerate()
            .filter(|(i, s)| sent.steps.get(*i) != Some(*s))
            .map(|(i, s)| StepView::of(&run.project, i, s))
            .collect();
        if !changed.is_empty() && tx.send(json_event("steps", &changed)).await.is_err() {
            return;
        }
        if (now.state, &now.error) != (sent.state, &sent.error) {
            let view = RunView::of(now.state, now.error.clone());
            if tx.send(json_event("run", &view)).await.is_err() {
                return;
            }
        }
        sent = now;
    }
}

/// The end of a log, as a page shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogTailText {
    /// The offset of the first byte shown.
    pub start: u64,
    /// The offset after the last byte shown (where following resumes).
    pub end: u64,
    /// The bytes shown, as text.
    pub text: String,
}

/// The last `max` bytes of the log at `path`, starting on a character boundary; an empty tail
/// when there is no log yet.
pub async fn log_tail(path: &FsPath, max: u64) -> Result<LogTailText> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || read_tail_text(&path, max))
        .await
        .map_err(|e| Error::internal_from("Reading a log failed", e))?
}

fn read_tail_text(path: &FsPath, max: u64) -> Result<LogTailText> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogTailText::default()),
        Err(e) => return Err(Error::io(format!("Failed to open `{}`", path.display()), e)),
    };
    let read_error = |e| Error::io(format!("Failed to read `{}`", path.display()), e);
    let len = file.metadata().map_err(read_error)?.len();
    let mut start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start)).map_err(read_error)?;
    let mut bytes = Vec::with_capacity(len.min(max) as usize);
    file.take(max).read_to_end(&mut bytes).map_err(read_error)?;
    // Skip the continuation bytes of a character cut by the start.
    let skip = bytes
        .iter()
        .take(3)
        .take_while(|b| (*b & 0xC0) == 0x80)
        .count();
    start += skip as u64;
    let (text, used) = utf8_prefix(&bytes[skip..], true);
    Ok(LogTailText {
        start,
        end: start + used as u64,
        text,
    })
}

/// `bytes` as text and how many bytes that used: a character cut at the end is left for the
/// next read unless `at_end`; invalid bytes become U+FFFD.
fn utf8_prefix(bytes: &[u8], at_end: bool) -> (String, usize) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), bytes.len()),
        Err(e) if e.error_len().is_none() && !at_end => {
            let used = e.valid_up_to();
            (String::from_utf8_lossy(&bytes[..used]).into_owned(), used)
        }
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), bytes.len()),
    }
}

/// Up to [`LOG_CHUNK_BYTES`] of the log at `path` from `offset`.
fn read_chunk(path: &FsPath, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut chunk = Vec::with_capacity(LOG_CHUNK_BYTES);
    file.take(LOG_CHUNK_BYTES as u64).read_to_end(&mut chunk)?;
    Ok(chunk)
}

/// The query of a log stream: where to start.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// The byte offset to start from (where the page's log ended).
    #[serde(default)]
    from: u64,
}

/// `GET /projects/{project}/runs/{uid}/log?from=N`: `log` events (a JSON string each, at most
/// [`LOG_CHUNK_BYTES`] of the log), then one `end` event once the run has ended and its log
/// is drained.
pub async fn log_events(
    State(web): State<Arc<Web>>,
    Path((project, uid)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
    headers: axum::http::HeaderMap,
) -> PageResult<Response> {
    let baton = web.source.baton(&project).await?;
    baton.run(&uid).await?;
    let path = baton.logs().path(&uid);
    // A browser reconnecting sends the last chunk's id: the offset it had read up to.
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(query.from);
    Ok(channel_stream(move |tx| {
        follow_log(baton, uid, path, from, tx)
    }))
}

async fn follow_log(
    baton: Baton,
    uid: String,
    path: PathBuf,
    mut offset: u64,
    mut tx: futures::channel::mpsc::Sender<Event>,
) {
    use futures::SinkExt;
    loop {
        // Read before looking at the state: a run that has ended wrote all of its log.
        let ended = match baton.run(&uid).await {
            Ok(run) => run.status.state.is_terminal(),
            Err(e) => {
                tracing::warn!("cannot follow the log of run `{uid}`: {}", e.chain());
                return;
            }
        };
        loop {
            let reading = path.clone();
            let chunk =
                match tokio::task::spawn_blocking(move || read_chunk(&reading, offset)).await {
                    Ok(Ok(chunk)) => chunk,
                    Ok(Err(e)) => {
                        tracing::warn!("cannot read the log of run `{uid}`: {e}");
                        return;
                    }
                    Err(_) => return,
                };
            if chunk.is_empty() {
                break;
            }
            let (text, used) = utf8_prefix(&chunk, ended && chunk.len() < LOG_CHUNK_BYTES);
            if used == 0 {
                break;
            }
            offset += used as u64;
            let event = json_event("log", &text).id(offset.to_string());
            if tx.send(event).await.is_err() {
                return;
            }
        }
        if ended {
            let _ = tx.send(Event::default().event("end").data("")).await;
            return;
        }
        tokio::time::sleep(TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_character_waits_for_the_next_read_unless_the_log_ended() {
        let bytes = "aé".as_bytes();
        assert_eq!(utf8_prefix(&bytes[..2], false), ("a".to_string(), 1));
        assert_eq!(utf8_prefix(&bytes[..2], true), ("a\u{FFFD}".to_string(), 2));
        assert_eq!(utf8_prefix(bytes, false), ("aé".to_string(), 3));
    }

    #[test]
    fn a_tail_starts_on_a_character_boundary() {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join("r.log");
        std::fs::write(&log, "xxé123").unwrap();
        // The last 4 bytes begin inside `é`: the tail starts after it.
        let tail = read_tail_text(&log, 4).unwrap();
        assert_eq!(tail.text, "123");
        assert_eq!((tail.start, tail.end), (4, 7));
        assert_eq!(
            read_tail_text(&dir.path().join("none.log"), 5).unwrap(),
            LogTailText::default()
        );
    }
}
