//! How an engine publishes a run: every event is folded into the run's status on a `watch`
//! channel and handed to each subscriber, under one lock, so a subscriber's snapshot plus the
//! events after it always fold to the published status.
//!
//! Subscribers get unbounded channels rather than a `broadcast`: a lagging broadcast receiver
//! loses events, and a fold that misses one is wrong for good. Events are small and a run emits
//! a bounded number of them (a few per step attempt).

use std::sync::{Arc, Mutex, MutexGuard};

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::model::{WorkflowEvent, WorkflowEventKind, WorkflowRunId, WorkflowRunStatus};

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<WorkflowEvent>>>>;

fn lock(subscribers: &Subscribers) -> MutexGuard<'_, Vec<mpsc::UnboundedSender<WorkflowEvent>>> {
    // A poisoned list is still a list of senders.
    subscribers.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run's status as of some event, and every event after it, ending after `WorkflowFinished`.
pub struct Subscription {
    /// The status when the subscription started.
    pub status: WorkflowRunStatus,
    /// The events after `status`, in order; folding them into `status` with
    /// [`WorkflowRunStatus::apply`] follows the run. Empty when the run had already ended.
    /// Engines hand out fused streams (polling one after its end answers `None` again).
    pub events: BoxStream<'static, WorkflowEvent>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// The publishing end, owned by whatever drives the run. Dropping it ends every subscription,
/// and [`RunFeed::wait`] then reports the driver gone unless the run had finished.
pub struct RunPublisher {
    status: watch::Sender<WorkflowRunStatus>,
    subscribers: Subscribers,
}

/// The observing end, kept by the engine for [`RunFeed::status`], [`RunFeed::wait`] and
/// [`RunFeed::subscribe`]. Cheap to clone.
#[derive(Clone)]
pub struct RunFeed {
    status: watch::Receiver<WorkflowRunStatus>,
    subscribers: Subscribers,
}

/// A feed starting at `initial` (normally [`WorkflowRunStatus::pending`]).
pub fn run_feed(initial: WorkflowRunStatus) -> (RunPublisher, RunFeed) {
    let (tx, rx) = watch::channel(initial);
    let subscribers = Subscribers::default();
    (
        RunPublisher {
            status: tx,
            subscribers: subscribers.clone(),
        },
        RunFeed {
            status: rx,
            subscribers,
        },
    )
}

impl RunPublisher {
    /// Folds `event` into the status and sends it to every subscriber.
    pub fn publish(&self, event: WorkflowEvent) {
        let mut subscribers = lock(&self.subscribers);
        // Every event changes the value in place (a `borrow` sees it at once), but only a change
        // of the run's state wakes the watchers (`wait`): waking them per step event would cost
        // more than dispatching the step. Followers of steps subscribe to the events.
        self.status.send_if_modified(|status| {
            let before = status.state;
            status.apply(&event);
            status.state != before
        });
        let last = matches!(event.kind, WorkflowEventKind::WorkflowFinished { .. });
        subscribers.retain(|s| s.send(event.clone()).is_ok());
        if last {
            // Their streams end: nothing follows the last event.
            subscribers.clear();
        }
    }

    /// The status as folded so far.
    pub fn status(&self) -> WorkflowRunStatus {
        self.status.borrow().clone()
    }

    /// Reads the status as folded so far without cloning it.
    pub fn with_status<T>(&self, f: impl FnOnce(&WorkflowRunStatus) -> T) -> T {
        f(&self.status.borrow())
    }
}

impl Drop for RunPublisher {
    fn drop(&mut self) {
        lock(&self.subscribers).clear();
    }
}

fn driver_gone(id: &WorkflowRunId) -> Error {
    Error::runtime(format!(
        "the dispatcher of workflow run `{id}` stopped unexpectedly"
    ))
}

impl RunFeed {
    /// The current status: a consistent snapshot, possibly stale when it returns.
    pub fn status(&self) -> WorkflowRunStatus {
        self.status.borrow().clone()
    }

    /// Waits until the run is terminal and returns its final status; an error when the
    /// publisher was dropped first.
    pub async fn wait(&self) -> Result<WorkflowRunStatus> {
        let mut status = self.status.clone();
        let id = status.borrow().id.clone();
        let done = status
            .wait_for(|s| s.state.is_terminal())
            .await
            .map_err(|_| driver_gone(&id))?;
        Ok(done.clone())
    }

    /// The status now and every event from now on.
    pub fn subscribe(&self) -> Subscription {
        let mut subscribers = lock(&self.subscribers);
        let status = self.status.borrow().clone();
        if status.state.is_terminal() || self.status.has_changed().is_err() {
            return Subscription {
                status,
                events: stream::empty().boxed(),
            };
        }
        let (tx, rx) = mpsc::unbounded_channel();
        subscribers.push(tx);
        let events = stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        });
        Subscription {
            status,
            // Fused: polling past the end keeps answering `None`.
            events: events.fuse().boxed(),
        }
    }
}
