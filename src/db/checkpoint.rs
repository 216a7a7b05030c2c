//! Background WAL checkpoints for a [`super::SqliteDb`] handle.
//!
//! In WAL mode a commit appends pages to `<database>-wal`; a checkpoint copies them into the
//! database file, and the last connection to close checkpoints what is left, syncs both files
//! and deletes the log. A `baton run` of a few dozen steps commits a few megabytes of pages, so
//! leaving all of it to the close made the process's exit wait for a large sync of the log and
//! the removal of the file (about 6 ms of a 150 ms run here). A [`Checkpointer`] runs passive
//! checkpoints on a thread of its own while the handle is in use, at most one per
//! [`CHECKPOINT_EVERY`] after a write, so the copying and syncing overlap the rest of the work
//! and the close finds little left to do.
//!
//! A passive checkpoint never blocks the writer or a reader: it copies what no open read
//! transaction still needs and leaves the rest for the next one.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// Writes that arrive within this long of each other share one checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);

/// Checkpoints the WAL of one database on a thread of its own; the thread ends, without a last
/// checkpoint, when this is dropped (the writer's close does the last one).
pub(super) struct Checkpointer {
    /// Wakes the thread; disconnected on drop, which ends it.
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for the database at `path`; it opens its own connection at the first
    /// write. `None` (and a debug message) when no thread can be started: the close still
    /// checkpoints everything.
    pub(super) fn start(path: &Path) -> Option<Checkpointer> {
        let (wake, woken) = mpsc::sync_channel(1);
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("baton-checkpoint".into())
            .spawn(move || run(&path, &woken))
            .map_err(|e| tracing::debug!("no background WAL checkpoints: {e}"))
            .ok()?;
        Some(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Says a transaction committed; never blocks.
    pub(super) fn committed(&self) {
        if let Some(wake) = &self.wake {
            // Full: a wake is already pending, which covers this commit too.
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: after a commit, waits out [`CHECKPOINT_EVERY`] (further commits join it), then
/// checkpoints; returns as soon as the handle is dropped.
fn run(path: &Path, woken: &mpsc::Receiver<()>) {
    let mut conn = None;
    while woken.recv().is_ok() {
        let due = Instant::now() + CHECKPOINT_EVERY;
        loop {
            match woken.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if conn.is_none() {
            match open(path) {
                Ok(opened) => conn = Some(opened),
                Err(e) => {
                    tracing::debug!(db = %path.display(), "no background WAL checkpoints: {e}");
                    return;
                }
            }
        }
        if let Some(conn) = &conn {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(db = %path.display(), "background WAL checkpoint failed: {e}");
            }
        }
    }
}

/// The checkpointing connection: read-write (a read-only one cannot checkpoint), syncing as the
/// writer does.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}
