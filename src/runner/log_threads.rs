//! Reused threads for the runs' log copies.
//!
//! A log copy blocks on the handler's output pipe for as long as the handler runs, and longer
//! when a process that left the handler's group keeps the pipe open. So it cannot borrow a
//! thread of tokio's blocking pool, which every database call shares: enough long copies would
//! starve them. It used to start a thread of its own per run instead, about 0.2 ms of every
//! step's path here (the thread's start, its stack and its exit).
//!
//! [`Threads::spawn`] hands the job to an idle copy thread when there is one and starts a thread
//! otherwise, so a job never waits for another. A thread idle for [`IDLE_FOR`] ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long an idle copy thread waits for its next job before it ends.
const IDLE_FOR: Duration = Duration::from_secs(10);

/// The threads of this process's log copies.
pub(super) static LOG_THREADS: Threads = Threads::new(IDLE_FOR);

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run one job at a time and wait a while for the next; see the module.
pub(super) struct Threads {
    /// The idle threads, most recently idle last.
    idle: Mutex<Vec<Idle>>,
    idle_for: Duration,
    next_id: AtomicU64,
}

/// An idle thread: its id and where it takes its next job.
struct Idle {
    id: u64,
    jobs: Sender<Job>,
}

impl Threads {
    const fn new(idle_for: Duration) -> Self {
        Threads {
            idle: Mutex::new(Vec::new()),
            idle_for,
            next_id: AtomicU64::new(0),
        }
    }

    /// Runs `job` on an idle thread, or on a new one (named `baton-log`) when none is idle.
    pub(super) fn spawn(&'static self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let mut job: Job = Box::new(job);
        while let Some(idle) = self.idle().pop() {
            match idle.jobs.send(job) {
                Ok(()) => return Ok(()),
                // That thread ended meanwhile; the job comes back.
                Err(mpsc::SendError(back)) => job = back,
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        std::thread::Builder::new()
            .name("baton-log".into())
            .spawn(move || self.serve(id, job))?;
        Ok(())
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // The list stays consistent whatever panicked: entries are pushed and removed whole.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A thread: runs `job`, then each job it is handed while idle, and ends once idle for
    /// `idle_for`.
    fn serve(&self, id: u64, mut job: Job) {
        let (jobs, next) = mpsc::channel();
        loop {
            job();
            self.idle().push(Idle {
                id,
                jobs: jobs.clone(),
            });
            job = match next.recv_timeout(self.idle_for) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    let mut idle = self.idle();
                    if let Some(at) = idle.iter().position(|i| i.id == id) {
                        idle.swap_remove(at);
                        return;
                    }
                    drop(idle);
                    // Taken off the list just now: its job is on the way.
                    match next.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Receiver};
    use std::thread::ThreadId;
    use std::time::Instant;

    /// A pool of its own, so other tests' log copies do not take its threads.
    fn threads(idle_for: Duration) -> &'static Threads {
        Box::leak(Box::new(Threads::new(idle_for)))
    }

    /// Runs a job on `threads` that waits for `hold` (when given), then reports its thread.
    fn run(threads: &'static Threads, ran: &Sender<ThreadId>, hold: Option<Receiver<()>>) {
        let ran = ran.clone();
        threads
            .spawn(move || {
                if let Some(hold) = hold {
                    let _ = hold.recv();
                }
                ran.send(std::thread::current().id()).unwrap();
            })
            .unwrap();
    }

    fn until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_job_reuses_an_idle_thread_and_never_waits_for_a_busy_one() {
        let threads = threads(Duration::from_secs(60));
        let (ran, done) = channel();
        run(threads, &ran, None);
        let first = done.recv_timeout(Duration::from_secs(10)).unwrap();
        until("the thread to go idle", || threads.idle().len() == 1);
        let (release, hold) = channel();
        run(threads, &ran, Some(hold));
        // That job holds the idle thread; another runs at once, on a new one.
        assert!(threads.idle().is_empty());
        run(threads, &ran, None);
        let third = done.recv_timeout(Duration::from_secs(10)).unwrap();
        release.send(()).unwrap();
        let second = done.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(second, first, "the idle thread was not reused");
        assert_ne!(third, first);
    }

    #[test]
    fn an_idle_thread_ends_after_its_wait_and_a_later_job_starts_another() {
        let threads = threads(Duration::from_millis(50));
        let (ran, done) = channel();
        run(threads, &ran, None);
        done.recv_timeout(Duration::from_secs(10)).unwrap();
        until("the thread to go idle", || threads.idle().len() == 1);
        until("the idle thread to end", || threads.idle().is_empty());
        run(threads, &ran, None);
        done.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}
