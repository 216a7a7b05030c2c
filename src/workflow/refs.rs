//! References inside step values: `{{args.NAME}}` and `{{steps.STEP.outputs.KEY}}`.
//!
//! Two jobs, one grammar: finding the references a value holds (the DAG turns them into edges
//! and checks them), and substituting them right before a step starts. A step's `when` condition
//! uses the same references (see [`super::condition`]).
//!
//! A string that is exactly one reference takes the referenced value's JSON type, so
//! `"{{steps.a.outputs.rows}}"` becomes the number `42`, not the text `"42"`. References inside a
//! longer string are substituted as text: strings unquoted, anything else as JSON. Other `{{...}}`
//! placeholders (MLRun's `{{workflow.uid}}`, for one) are not references and are left untouched.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One reference found in a step value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// `{{args.NAME}}`: a workflow argument.
    Arg(String),
    /// `{{steps.STEP.outputs.KEY}}`: an output of an earlier step.
    StepOutput {
        /// The producing step's name.
        step: String,
        /// The output key.
        key: String,
    },
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Arg(name) => write!(f, "{{{{args.{name}}}}}"),
            Reference::StepOutput { step, key } => {
                write!(f, "{{{{steps.{step}.outputs.{key}}}}}")
            }
        }
    }
}

/// A parsed string: literal text and references, in order.
pub(super) enum Piece<'a> {
    Text(&'a str),
    Ref(Reference),
}

/// Splits `s` into text and references; a malformed `{{args...}}` / `{{steps...}}` is an error.
pub(super) fn parse_str(s: &str) -> Result<Vec<Piece<'_>>> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        match parse_inner(after[..end].trim())? {
            Some(reference) => {
                if start > 0 {
                    pieces.push(Piece::Text(&rest[..start]));
                }
                pieces.push(Piece::Ref(reference));
            }
            None => pieces.push(Piece::Text(&rest[..start + 2 + end + 2])),
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Parses the text between `{{` and `}}`; `None` when it is not one of our references.
fn parse_inner(inner: &str) -> Result<Option<Reference>> {
    let malformed = || {
        Error::invalid(format!(
            "malformed reference `{{{{{inner}}}}}`; expected `{{{{args.NAME}}}}` or \
             `{{{{steps.STEP.outputs.KEY}}}}`"
        ))
    };
    let valid = |part: &str| !part.is_empty() && !part.contains(char::is_whitespace);
    if let Some(name) = inner.strip_prefix("args.") {
        if !valid(name) {
            return Err(malformed());
        }
        return Ok(Some(Reference::Arg(name.to_owned())));
    }
    if let Some(rest) = inner.strip_prefix("steps.") {
        let (step, key) = rest.split_once(".outputs.").ok_or_else(malformed)?;
        if !valid(step) || !valid(key) {
            return Err(malformed());
        }
        return Ok(Some(Reference::StepOutput {
            step: step.to_owned(),
            key: key.to_owned(),
        }));
    }
    Ok(None)
}

fn collect(value: &Value, strict: bool, out: &mut Vec<Reference>) -> Result<()> {
    match value {
        Value::String(s) => match parse_str(s) {
            Ok(pieces) => out.extend(pieces.into_iter().filter_map(|p| match p {
                Piece::Ref(r) => Some(r),
                Piece::Text(_) => None,
            })),
            Err(e) if strict => return Err(e),
            Err(_) => {}
        },
        Value::Array(items) => {
            for item in items {
                collect(item, strict, out)?;
            }
        }
        Value::Object(map) => {
            for item in map.values() {
                collect(item, strict, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every well-formed reference in `value`, walking strings inside objects and arrays, in order.
/// Malformed references are ignored here; [`try_references`] reports them.
pub fn references(value: &Value) -> Vec<Reference> {
    let mut out = Vec::new();
    // Cannot fail when not strict.
    let _ = collect(value, false, &mut out);
    out
}

/// Like [`references`], but a malformed `{{args...}}` or `{{steps...}}` is an error naming it.
pub fn try_references(value: &Value) -> Result<Vec<Reference>> {
    let mut out = Vec::new();
    collect(value, true, &mut out)?;
    Ok(out)
}

/// The value a reference points at, or an error naming the reference.
fn lookup<'a>(
    reference: &Reference,
    args: &'a Map<String, Value>,
    outputs: &'a HashMap<String, Map<String, Value>>,
) -> Result<&'a Value> {
    match reference {
        Reference::Arg(name) => args.get(name).ok_or_else(|| {
            Error::invalid(format!(
                "unknown reference `{reference}`: there is no workflow argument `{name}`"
            ))
        }),
        Reference::StepOutput { step, key } => {
            let produced = outputs.get(step).ok_or_else(|| {
                Error::invalid(format!(
                    "unknown reference `{reference}`: step `{step}` has produced no outputs"
                ))
            })?;
            produced.get(key).ok_or_else(|| {
                let keys: Vec<&str> = produced.keys().map(String::as_str).collect();
                Error::invalid(format!(
                    "unknown reference `{reference}`: step `{step}` did not produce output \
                     `{key}`; it produced: {}",
                    if keys.is_empty() {
                        "nothing".to_owned()
                    } else {
                        keys.join(", ")
                    }
                ))
            })
        }
    }
}

/// A value as text: strings unquoted, anything else as JSON.
pub(super) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces the references of one string; `None` when it holds none (the caller keeps it).
pub(super) fn substitute_str(
    s: &str,
    args: &Map<String, Value>,
    outputs: &HashMap<String, Map<String, Value>>,
) -> Result<Option<Value>> {
    let pieces = parse_str(s)?;
    if let [Piece::Ref(reference)] = pieces.as_slice() {
        return lookup(reference, args, outputs).map(|v| Some(v.clone()));
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Ref(_))) {
        return Ok(None);
    }
    let mut text = String::with_capacity(s.len());
    for piece in &pieces {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Ref(r) => text.push_str(&text_of(lookup(r, args, outputs)?)),
        }
    }
    Ok(Some(Value::String(text)))
}

/// Substitutes every reference in `value` (recursively through objects and arrays).
///
/// A string that is exactly one reference becomes the referenced value with its JSON type;
/// references inside longer strings become text. `outputs` maps step names to the outputs they
/// produced. An unknown argument, step or output key is an error naming the reference.
pub fn substitute(
    value: &Value,
    args: &Map<String, Value>,
    outputs: &HashMap<String, Map<String, Value>>,
) -> Result<Value> {
    Ok(match value {
        Value::String(s) => substitute_str(s, args, outputs)?.unwrap_or_else(|| value.clone()),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute(v, args, outputs))
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, args, outputs)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx() -> (Map<String, Value>, HashMap<String, Map<String, Value>>) {
        let args = json!({"p1": 5, "name": "bob", "flag": true})
            .as_object()
            .unwrap()
            .clone();
        let mut outputs = HashMap::new();
        outputs.insert(
            "a".to_owned(),
            json!({"rows": 42, "table": "s3://x/t.csv", "meta": {"k": [1, 2]}, "ratio": 0.5})
                .as_object()
                .unwrap()
                .clone(),
        );
        (args, outputs)
    }

    #[test]
    fn finds_references_recursively_in_order() {
        let v = json!({
            "x": "{{args.p1}}",
            "y": ["pre {{steps.a.outputs.rows}} mid {{ args.name }}", 3],
            "z": {"w": "{{workflow.uid}} {{steps.b.outputs.k.with.dots}}"}
        });
        assert_eq!(
            references(&v),
            vec![
                Reference::Arg("p1".into()),
                Reference::StepOutput {
                    step: "a".into(),
                    key: "rows".into()
                },
                Reference::Arg("name".into()),
                Reference::StepOutput {
                    step: "b".into(),
                    key: "k.with.dots".into()
                },
            ]
        );
    }

    #[test]
    fn malformed_references_are_reported_strictly() {
        let v = json!("{{steps.a.rows}}");
        assert!(references(&v).is_empty());
        let err = try_references(&v).unwrap_err().to_string();
        assert!(
            err.contains("malformed reference `{{steps.a.rows}}`"),
            "{err}"
        );
        let err = try_references(&json!(["{{args.}}"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`{{args.}}`"), "{err}");
    }

    #[test]
    fn exact_reference_keeps_type_and_embedded_becomes_text() {
        let (args, outputs) = ctx();
        let v = json!({
            "n": "{{steps.a.outputs.rows}}",
            "f": "{{steps.a.outputs.ratio}}",
            "b": "{{args.flag}}",
            "o": "{{steps.a.outputs.meta}}",
            "s": "{{args.name}}",
            "t": "rows={{steps.a.outputs.rows}} name={{args.name}} meta={{steps.a.outputs.meta}}",
            "keep": "{{workflow.uid}}/x",
            "list": ["{{args.p1}}", 7]
        });
        let out = substitute(&v, &args, &outputs).unwrap();
        assert_eq!(
            out,
            json!({
                "n": 42, "f": 0.5, "b": true, "o": {"k": [1, 2]}, "s": "bob",
                "t": "rows=42 name=bob meta={\"k\":[1,2]}",
                "keep": "{{workflow.uid}}/x",
                "list": [5, 7]
            })
        );
    }

    #[test]
    fn unknown_references_are_errors_naming_them() {
        let (args, outputs) = ctx();
        let err = substitute(&json!("{{args.nope}}"), &args, &outputs)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown reference `{{args.nope}}`: there is no workflow argument `nope`"
        );
        let err = substitute(&json!("x {{steps.zz.outputs.k}}"), &args, &outputs)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown reference `{{steps.zz.outputs.k}}`: step `zz` has produced no outputs"
        );
        let err = substitute(&json!(["{{steps.a.outputs.k}}"]), &args, &outputs)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown reference `{{steps.a.outputs.k}}`: step `a` did not produce output `k`; it produced: "), "{err}");
    }
}
