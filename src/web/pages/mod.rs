//! The pages, one module each, and what they share: the page shell, state badges (a symbol and
//! a word beside the colour, never colour alone), durations and times.

pub mod project;
pub mod projects;
pub mod run;
pub mod workflow_run;

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::assets::{CSS_URL, JS_URL};
use crate::engine::{StepState, WorkflowState};

/// A whole page: `title` in the tab, `body` in the main column, the assets linked.
pub fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · baton" }
                link rel="stylesheet" href=(CSS_URL);
                script src=(JS_URL) defer {}
            }
            body {
                header.top { a href="/" { "baton" } }
                main { (body) }
            }
        }
    }
}

/// The symbol shown beside a state's word.
fn symbol(state: &str) -> &'static str {
    match state {
        "pending" | "created" => "○",
        "running" | "canceling" => "◔",
        "succeeded" | "completed" => "✔",
        "failed" | "error" => "✖",
        "skipped" => "⤼",
        "canceled" | "aborted" => "■",
        _ => "•",
    }
}

/// A state as a badge: symbol and word, coloured by `data-state`.
pub fn badge(state: &str) -> Markup {
    html! {
        span.badge data-state=(state) { span.sym aria-hidden="true" { (symbol(state)) } " " span.word { (state) } }
    }
}

/// A step state's word (`succeeded`).
pub fn step_word(state: StepState) -> String {
    state.to_string().to_lowercase()
}

/// A workflow state's word.
pub fn run_word(state: WorkflowState) -> String {
    state.to_string().to_lowercase()
}

/// `35ms`, `1.2s`, `3m 04s`, `2h 01m`: short enough for a step box.
pub fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ms = (to - from).num_milliseconds().max(0);
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..=59 => format!("{}.{}s", secs, (ms % 1000) / 100),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// An RFC 3339 time read back, for durations between recorded times.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A recorded time as people read it (UTC, to the second); text that is no time is shown as is.
pub fn time(text: &str) -> String {
    parse_time(text).map_or_else(
        || text.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// A JSON value as compact text (strings without quotes).
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A key/value table, or a dash when empty.
pub fn key_values<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> Markup {
    let rows: Vec<(&str, String)> = rows.into_iter().collect();
    html! {
        @if rows.is_empty() { p.none { "none" } } @else {
            table.kv { @for (k, v) in &rows { tr { th { (k) } td { code { (v) } } } } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        let t0 = parse_time("2026-01-01T00:00:00Z").unwrap();
        let at = |s: &str| parse_time(s).unwrap();
        assert_eq!(duration(t0, at("2026-01-01T00:00:01.25Z")), "1.2s");
        assert_eq!(duration(t0, at("2026-01-01T00:03:04Z")), "3m 04s");
        assert_eq!(duration(t0, at("2026-01-01T02:01:00Z")), "2h 01m");
        assert_eq!(duration(t0, at("2026-01-01T00:00:00.035Z")), "35ms");
        assert_eq!(duration(at("2026-01-01T00:00:05Z"), t0), "0ms");
    }

    #[test]
    fn badges_never_rely_on_colour_alone() {
        let html = badge("failed").into_string();
        assert!(html.contains("✖") && html.contains(">failed<"), "{html}");
    }
}
