//! Run logs: reading what a log gained since the last look, in bounded memory.
//!
//! A run's log is one append-only file that its runner writes. Readers (`runs logs --follow`,
//! the live log of `run-function`) remember how far they have read and copy only the new bytes,
//! through a fixed-size buffer, so a log of any size is printed without being held in memory.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, IoResultExt, Result};

/// The size of the buffer a [`LogTail`] copies through.
const CHUNK: usize = 64 * 1024;

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
