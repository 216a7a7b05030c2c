//! Run logs: writing a handler's output under a size cap, and reading what a log gained since
//! the last look, both in bounded memory.
//!
//! A run's log is one append-only file that its runner writes. The handler's output reaches it
//! through [`copy_capped`], which stops writing at a cap, keeps the last bytes in memory, and
//! appends them with a note of what was dropped when the output ends: a runaway handler cannot
//! fill the disk, and the end of its output (the traceback, the last progress line) survives.
//! Readers (`runs logs --follow`, the live log of `run-function`) remember how far they have read
//! and copy only the new bytes, through a fixed-size buffer, so a log of any size is printed
//! without being held in memory.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoResultExt, Result};

/// Where run logs live: one append-only file per run, `<dir>/<uid>.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStore {
    dir: PathBuf,
}

impl LogStore {
    /// A store keeping its logs in `dir` (created when a log is first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogStore { dir: dir.into() }
    }

    /// The log file of run `uid`.
    pub fn path(&self, uid: &str) -> PathBuf {
        self.dir.join(format!("{uid}.log"))
    }
}

/// The size of the buffer a [`LogTail`] copies through.
const CHUNK: usize = 64 * 1024;

/// The environment variable that sets the cap of a run's log, in bytes.
pub const LOG_MAX_BYTES_ENV: &str = "BATON_LOG_MAX_BYTES";

/// How much of a handler's output a run's log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCap {
    /// The most bytes of output the log receives, kept tail included.
    pub max_bytes: u64,
    /// How many of the last bytes are kept once the cap is reached.
    pub tail_bytes: usize,
}

impl Default for LogCap {
    /// 64 MiB, the last 1 MiB of it kept for the end.
    fn default() -> Self {
        LogCap::with_max(64 << 20)
    }
}

impl LogCap {
    /// A cap of `max_bytes`, of which the last sixteenth (at most 1 MiB) is the kept tail.
    pub fn with_max(max_bytes: u64) -> Self {
        LogCap {
            max_bytes,
            tail_bytes: (max_bytes / 16).min(1 << 20) as usize,
        }
    }

    /// The cap from [`LOG_MAX_BYTES_ENV`], else the default; an unreadable value is an error
    /// naming the variable.
    pub fn from_env() -> Result<Self> {
        match std::env::var(LOG_MAX_BYTES_ENV) {
            Err(_) => Ok(LogCap::default()),
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1024)
                .map(LogCap::with_max)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "`{LOG_MAX_BYTES_ENV}` must be a number of bytes, at least 1024; got \
                         `{text}`"
                    ))
                }),
        }
    }

    /// The bytes written before output starts being dropped.
    fn head_bytes(&self) -> u64 {
        self.max_bytes.saturating_sub(self.tail_bytes as u64)
    }
}

/// Appends everything `input` yields to the log at `log` (created if missing) until `input`
/// ends, keeping within `cap`: past the cap, output is dropped except its last
/// [`LogCap::tail_bytes`], which are appended at the end after a line saying how much was
/// dropped. Returns the number of bytes dropped.
pub fn copy_capped(mut input: impl Read, log: &Path, cap: LogCap) -> Result<u64> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .io_context(|| format!("Could not open the log `{}`", log.display()))?;
    let write_error = |e| Error::io(format!("Could not write the log `{}`", log.display()), e);
    let mut buf = vec![0u8; CHUNK];
    let mut head_left = cap.head_bytes();
    let mut tail: VecDeque<u8> = VecDeque::new();
    let mut seen_past_head = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("Could not read the handler's output", e)),
        };
        let mut chunk = &buf[..n];
        if head_left > 0 {
            let take = chunk.len().min(head_left as usize);
            file.write_all(&chunk[..take]).map_err(write_error)?;
            head_left -= take as u64;
            chunk = &chunk[take..];
        }
        if !chunk.is_empty() {
            seen_past_head += chunk.len() as u64;
            tail.extend(chunk);
            let excess = tail.len().saturating_sub(cap.tail_bytes);
            tail.drain(..excess);
        }
    }
    let dropped = seen_past_head - tail.len() as u64;
    if dropped > 0 {
        let note = format!(
            "\n[baton] this log reached its cap of {} bytes ({LOG_MAX_BYTES_ENV}): {dropped} bytes \
             of output were dropped here; the last {} bytes follow\n",
            cap.max_bytes,
            tail.len()
        );
        file.write_all(note.as_bytes()).map_err(write_error)?;
    }
    let (front, back) = tail.as_slices();
    file.write_all(front).map_err(write_error)?;
    file.write_all(back).map_err(write_error)?;
    Ok(dropped)
}

/// The last `max` bytes of the file at `path` (all of it when shorter), read without loading
/// the rest.
pub fn read_tail(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut tail = Vec::with_capacity(len.min(max) as usize);
    file.take(max).read_to_end(&mut tail)?;
    Ok(tail)
}

/// What one [`LogTail::copy_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// The log does not exist (yet).
    NoLog,
    /// This many new bytes were copied.
    Bytes(u64),
    /// The destination stopped taking bytes (a closed pipe): stop copying, quietly.
    Closed,
}

/// Reads a log file incrementally: each call copies what the file gained since the last one.
#[derive(Debug, Default)]
pub struct LogTail {
    offset: u64,
}

impl LogTail {
    /// Copies the bytes appended to `path` since the last call into `out`, through a fixed-size
    /// buffer, and flushes `out`.
    pub fn copy_new(&mut self, path: &Path, out: &mut impl Write) -> Result<Copied> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Copied::NoLog),
            Err(e) => return Err(Error::io(format!("Failed to open `{}`", path.display()), e)),
        };
        file.seek(SeekFrom::Start(self.offset))
            .io_context(|| format!("Failed to read `{}`", path.display()))?;
        let mut buf = vec![0u8; CHUNK];
        let mut copied = 0;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("Failed to read `{}`", path.display()), e)),
            };
            if out.write_all(&buf[..n]).is_err() {
                return Ok(Copied::Closed);
            }
            self.offset += n as u64;
            copied += n as u64;
        }
        if out.flush().is_err() {
            return Ok(Copied::Closed);
        }
        Ok(Copied::Bytes(copied))
    }

    /// Copies the new bytes to stderr (the live log of `run-function`); a closed stderr is
    /// ignored.
    pub fn copy_to_stderr(&mut self, path: &Path) -> Result<()> {
        self.copy_new(path, &mut io::stderr().lock()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_under_the_cap_is_copied_whole() {
        let tmp = tempfile::TempDir::new().unwrap();
        let log = tmp.path().join("run.log");
        std::fs::write(&log, "runner line\n").unwrap();
        let dropped = copy_capped(&b"hello\n"[..], &log, LogCap::with_max(1024)).unwrap();
        assert_eq!(dropped, 0);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "runner line\nhello\n"
        );
    }

    #[test]
    fn output_over_the_cap_keeps_its_head_and_tail_and_says_so() {
        let tmp = tempfile::TempDir::new().unwrap();
        let log = tmp.path().join("run.log");
        let cap = LogCap::with_max(16 * 1024);
        let lines: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        let dropped = copy_capped(lines.as_bytes(), &log, cap).unwrap();

        let written = std::fs::read_to_string(&log).unwrap();
        let head = cap.max_bytes as usize - cap.tail_bytes;
        assert_eq!(dropped as usize, lines.len() - cap.max_bytes as usize);
        assert!(written.starts_with(&lines[..head]));
        assert!(written.ends_with(&lines[lines.len() - cap.tail_bytes..]));
        assert!(written.ends_with("line 9999\n"));
        assert!(
            written.contains(&format!("{dropped} bytes of output were dropped")),
            "{written}"
        );
        assert!(written.len() < cap.max_bytes as usize + 200);
    }

    #[test]
    fn the_kept_tail_is_a_sixteenth_of_the_cap_and_at_most_1_mib() {
        assert_eq!(LogCap::with_max(1 << 30).tail_bytes, 1 << 20);
        assert_eq!(LogCap::with_max(16 * 1024).tail_bytes, 1024);
    }

    #[test]
    fn a_files_tail_is_its_last_bytes() {
        let tmp = tempfile::TempDir::new().unwrap();
        let path = tmp.path().join("out");
        std::fs::write(&path, "0123456789").unwrap();
        assert_eq!(read_tail(&path, 4).unwrap(), b"6789");
        assert_eq!(read_tail(&path, 100).unwrap(), b"0123456789");
    }

    #[test]
    fn each_call_copies_only_what_the_log_gained() {
        let tmp = tempfile::TempDir::new().unwrap();
        let path = tmp.path().join("run.log");
        let mut tail = LogTail::default();
        let mut out = Vec::new();
        assert_eq!(tail.copy_new(&path, &mut out).unwrap(), Copied::NoLog);

        std::fs::write(&path, "one\n").unwrap();
        assert_eq!(tail.copy_new(&path, &mut out).unwrap(), Copied::Bytes(4));
        let big = "x".repeat(3 * CHUNK + 7);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(big.as_bytes()).unwrap();
        assert_eq!(
            tail.copy_new(&path, &mut out).unwrap(),
            Copied::Bytes(big.len() as u64)
        );
        assert_eq!(tail.copy_new(&path, &mut out).unwrap(), Copied::Bytes(0));
        assert_eq!(out, format!("one\n{big}").into_bytes());
    }

    #[test]
    fn a_closed_destination_stops_the_copy() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let tmp = tempfile::TempDir::new().unwrap();
        let path = tmp.path().join("run.log");
        std::fs::write(&path, "line\n").unwrap();
        assert_eq!(
            LogTail::default().copy_new(&path, &mut Closed).unwrap(),
            Copied::Closed
        );
    }
}
