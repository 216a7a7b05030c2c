//! All terminal output goes through [`Printer`]: data on stdout, messages on stderr.

use std::io::Write;

/// Where the CLI writes. stdout carries data a script could pipe (URIs, ids, `--json`);
/// everything meant for a person goes to stderr.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
}

impl Printer {
    /// A printer; `quiet` silences informational messages (never data or errors).
    pub fn new(quiet: bool) -> Self {
        Printer { quiet }
    }

    /// Whether informational messages are suppressed.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Writes one line of data to stdout. A closed pipe is not an error worth reporting.
    #[allow(clippy::print_stdout)]
    pub fn data(&self, line: impl std::fmt::Display) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }

    /// Writes a value as pretty JSON to stdout.
    pub fn json(&self, value: &impl serde::Serialize) {
        self.data(serde_json::to_string_pretty(value).expect("values always serialize"));
    }

    /// Writes an informational message to stderr (suppressed by `--quiet`).
    #[allow(clippy::print_stderr)]
    pub fn info(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Writes a warning to stderr.
    #[allow(clippy::print_stderr)]
    pub fn warn(&self, line: impl std::fmt::Display) {
        eprintln!("warning: {line}");
    }

    /// Writes an error, its chain of causes and its hint to stderr.
    #[allow(clippy::print_stderr)]
    pub fn error(&self, err: &crate::Error) {
        eprintln!("error: {err}");
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            eprintln!("  Caused by: {cause}");
            source = cause.source();
        }
        if let Some(hint) = err.hint() {
            eprintln!("\nhint: {hint}");
        }
    }
}
