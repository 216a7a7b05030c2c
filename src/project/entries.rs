//! The named lists of `project.yaml` (`spec.functions`, `spec.workflows`): decode, find, replace.
//!
//! Entries stay raw JSON in the project file so fields baton does not model survive a save;
//! they are decoded into typed entries only when read.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// Decodes every entry of a list; `what` names an entry in the error (`function`).
pub(super) fn decode<T: DeserializeOwned>(values: &[Value], what: &str) -> Result<Vec<T>> {
    values
        .iter()
        .map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| {
                Error::invalid(format!("A {what} in `project.yaml` is malformed: {e}"))
            })
        })
        .collect()
}

/// The entry called `name`, or a not-found error listing the names there are.
pub(super) fn find<T>(
    entries: Vec<T>,
    name_of: impl Fn(&T) -> &String,
    name: &str,
    what: &str,
    project: &str,
) -> Result<T> {
    let names: Vec<String> = entries.iter().map(|e| name_of(e).clone()).collect();
    entries
        .into_iter()
        .find(|e| name_of(e) == name)
        .ok_or_else(|| {
            let known = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            Error::not_found(format!(
                "{what} `{name}` does not exist in project `{project}` ({}s: {known})",
                what.to_lowercase()
            ))
        })
}

/// Replaces the entry called `name` with `entry`, or appends it.
pub(super) fn upsert(list: &mut Vec<Value>, name: &str, entry: Value) {
    list.retain(|e| e.get("name").and_then(Value::as_str) != Some(name));
    list.push(entry);
}
