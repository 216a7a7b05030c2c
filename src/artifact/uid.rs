//! The uid of an artifact version: a hash of the record's content.
//!
//! Like MLRun's `fill_object_hash`, the uid is the sha1 of the record's JSON with sorted keys,
//! leaving out what may change without changing the content (labels, timestamps, status, tag,
//! uid, db_key) and, unlike MLRun, the producer tree: MLRun gives every log a fresh tree, which
//! would make every log a new version, while baton promises that logging identical content again
//! returns the same uid.

use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::model::Artifact;

/// Computes the content uid of `artifact` (its current `uid` and `tag` are ignored).
pub fn content_uid(artifact: &Artifact) -> String {
    let mut value = serde_json::to_value(artifact).expect("artifact records always serialize");
    if let Value::Object(map) = &mut value {
        map.remove("status");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for field in ["labels", "updated", "created", "tag", "uid", "tree"] {
                meta.remove(field);
            }
        }
        if let Some(Value::Object(spec)) = map.get_mut("spec") {
            for field in ["db_key", "extra_data"] {
                spec.remove(field);
            }
        }
    }
    let canonical = canonical_json(&value);
    hex::encode(Sha1::digest(canonical.as_bytes()))
}

/// JSON text with object keys sorted at every level.
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => {
            let body: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", body.join(","))
        }
        other => other.to_string(),
    }
}
