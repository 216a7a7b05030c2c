//! What a schedule does when a fire finds earlier runs still going (overlap), and with the fire
//! times that passed while the server was down (catch-up).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a fire does while runs of earlier fires of its schedule are still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    /// Skip the fire (recorded, with the reason) while `concurrency_limit` runs are going:
    /// MLRun's behaviour.
    #[default]
    Skip,
    /// Keep one fire waiting and start it when the running one ends; further fires meanwhile
    /// are skipped.
    BufferOne,
    /// Start every fire, however many are running.
    AllowAll,
    /// Ask the running ones to terminate, and start the fire once they ended.
    CancelOther,
    /// Ask the running ones to terminate, and start the fire now.
    TerminateOther,
}

/// What happens to the fire times that passed while the server was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Catchup {
    /// They are dropped: MLRun's behaviour.
    Skip,
    /// The most recent one fires once.
    #[default]
    Latest,
    /// Each one within the catch-up window fires, oldest first.
    All,
}

macro_rules! names {
    ($ty:ident, $what:literal, $($variant:ident => $name:literal),+) => {
        impl $ty {
            /// The policy's name, as the CLI and the API take it.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self> {
                match text {
                    $($name => Ok($ty::$variant),)+
                    other => Err(Error::invalid(format!(
                        concat!($what, ": unknown policy `{}`; expected one of {}"),
                        other,
                        [$($name),+].join(", ")
                    ))),
                }
            }
        }
    };
}

names!(Overlap, "overlap",
    Skip => "skip", BufferOne => "buffer-one", AllowAll => "allow-all",
    CancelOther => "cancel-other", TerminateOther => "terminate-other");
names!(Catchup, "catchup", Skip => "skip", Latest => "latest", All => "all");

/// The default catch-up window: fires missed longer ago than this are dropped under
/// [`Catchup::All`].
pub const DEFAULT_CATCHUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The default number of runs of one schedule going at once under [`Overlap::Skip`] (MLRun's
/// `httpdb.scheduling.default_concurrency_limit`).
pub const DEFAULT_CONCURRENCY_LIMIT: u32 = 1;

/// What a fire does about the runs of its schedule that are still going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlapAction {
    /// Start the fire's run now.
    Start,
    /// Do not run it; the reason is recorded on the fire.
    Skip(String),
    /// Keep it waiting; it starts when no run of the schedule is going.
    Buffer,
    /// Ask the running ones to terminate, and keep the fire waiting until they ended.
    TerminateThenBuffer,
    /// Ask the running ones to terminate, and start the fire now.
    TerminateThenStart,
}

/// MLRun's message for a fire skipped by the concurrency limit.
pub const CONCURRENCY_SKIP: &str = "Schedule exceeded concurrency limit, skipping this run";

/// What a fire does under `overlap`, with `running` runs of its schedule going, at most `limit`
/// at once under [`Overlap::Skip`], and `buffered` whether a fire already waits.
pub fn on_overlap(overlap: Overlap, running: usize, limit: u32, buffered: bool) -> OverlapAction {
    let already_waiting = || {
        OverlapAction::Skip("a fire of this schedule is already waiting for the running one".into())
    };
    match overlap {
        Overlap::Skip if running < limit.max(1) as usize => OverlapAction::Start,
        Overlap::Skip => OverlapAction::Skip(CONCURRENCY_SKIP.to_string()),
        _ if running == 0 && !buffered => OverlapAction::Start,
        Overlap::AllowAll => OverlapAction::Start,
        Overlap::TerminateOther => OverlapAction::TerminateThenStart,
        Overlap::BufferOne | Overlap::CancelOther if buffered => already_waiting(),
        Overlap::BufferOne => OverlapAction::Buffer,
        Overlap::CancelOther => OverlapAction::TerminateThenBuffer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_name_the_field() {
        for o in [
            Overlap::Skip,
            Overlap::BufferOne,
            Overlap::AllowAll,
            Overlap::CancelOther,
            Overlap::TerminateOther,
        ] {
            assert_eq!(o.as_str().parse::<Overlap>().unwrap(), o);
        }
        let err = "sometimes".parse::<Catchup>().unwrap_err().to_string();
        assert!(
            err.starts_with("catchup: unknown policy `sometimes`"),
            "{err}"
        );
    }

    #[test]
    fn overlap_table() {
        use OverlapAction::*;
        let skip = Skip(CONCURRENCY_SKIP.to_string());
        let waiting = |a: &OverlapAction| matches!(a, OverlapAction::Skip(r) if r.contains("already waiting"));
        assert_eq!(on_overlap(Overlap::Skip, 0, 1, false), Start);
        assert_eq!(on_overlap(Overlap::Skip, 1, 1, false), skip);
        assert_eq!(on_overlap(Overlap::Skip, 1, 2, false), Start);
        assert_eq!(on_overlap(Overlap::BufferOne, 0, 1, false), Start);
        assert_eq!(on_overlap(Overlap::BufferOne, 1, 1, false), Buffer);
        assert!(waiting(&on_overlap(Overlap::BufferOne, 1, 1, true)));
        assert_eq!(on_overlap(Overlap::AllowAll, 5, 1, false), Start);
        assert_eq!(
            on_overlap(Overlap::CancelOther, 1, 1, false),
            TerminateThenBuffer
        );
        assert!(waiting(&on_overlap(Overlap::CancelOther, 1, 1, true)));
        assert_eq!(
            on_overlap(Overlap::TerminateOther, 1, 1, false),
            TerminateThenStart
        );
        assert_eq!(on_overlap(Overlap::TerminateOther, 0, 1, false), Start);
    }
}
