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

use std::borrow::Cow;
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
enum Piece<'a> {
    Text(&'a str),
    Ref(Reference),
}

/// Splits `s` into text and references; a malformed `{{args...}}` / `{{steps...}}` is an error.
fn parse_str(s: &str) -> Result<Vec<Piece<'_>>> {
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

/// A step value parsed once: its references found and checked, ready to render for each attempt.
///
/// Parsing never looks values up; [`Template::render`] does, against the run's arguments and the
/// outputs produced so far. Values without references stay [`Template::Literal`] whole, so
/// rendering them is one clone.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A value holding no references, used as is.
    Literal(Value),
    /// A string that is exactly one reference: the referenced value, with its JSON type.
    Ref(Reference),
    /// A string holding references among text: each reference substituted as text.
    Text(Vec<Segment>),
    /// An array holding references somewhere inside.
    Array(Vec<Template>),
    /// An object holding references somewhere inside, keys in their original order.
    Object(Vec<(String, Template)>),
}

/// A piece of a [`Template::Text`] or of a condition operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Literal text (including placeholders that are not references, such as `{{workflow.uid}}`).
    Text(String),
    /// A reference, rendered as text: strings unquoted, anything else as JSON.
    Ref(Reference),
}

/// A string parsed into segments: exactly one reference, text with references, or plain text.
pub(super) enum ParsedStr {
    /// Exactly one reference, nothing around it.
    Ref(Reference),
    /// Text with at least one reference; adjacent text is merged.
    Text(Vec<Segment>),
    /// No references at all.
    Plain,
}

/// Parses one string; a malformed `{{args...}}` / `{{steps...}}` is an error naming it.
pub(super) fn parse_segments(s: &str) -> Result<ParsedStr> {
    let pieces = parse_str(s)?;
    if !pieces.iter().any(|p| matches!(p, Piece::Ref(_))) {
        return Ok(ParsedStr::Plain);
    }
    let mut segments: Vec<Segment> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match (piece, segments.last_mut()) {
            (Piece::Text(t), Some(Segment::Text(last))) => last.push_str(t),
            (Piece::Text(t), _) => segments.push(Segment::Text(t.to_owned())),
            (Piece::Ref(r), _) => segments.push(Segment::Ref(r)),
        }
    }
    if let [Segment::Ref(_)] = segments.as_slice() {
        let Some(Segment::Ref(reference)) = segments.pop() else {
            unreachable!("checked above")
        };
        return Ok(ParsedStr::Ref(reference));
    }
    Ok(ParsedStr::Text(segments))
}

/// Renders text segments: references as text (strings unquoted, anything else as JSON).
pub(super) fn render_text(
    segments: &[Segment],
    args: &Map<String, Value>,
    outputs: &HashMap<String, Map<String, Value>>,
) -> Result<String> {
    let mut text = String::new();
    for segment in segments {
        match segment {
            Segment::Text(t) => text.push_str(t),
            Segment::Ref(r) => text.push_str(&text_of(lookup(r, args, outputs)?)),
        }
    }
    Ok(text)
}

impl Template {
    /// Parses `value`, walking strings inside arrays and objects. A malformed `{{args...}}` or
    /// `{{steps...}}` is an error naming it; other `{{...}}` placeholders are plain text.
    pub fn parse(value: &Value) -> Result<Template> {
        Ok(match value {
            Value::String(s) => match parse_segments(s)? {
                ParsedStr::Ref(reference) => Template::Ref(reference),
                ParsedStr::Text(segments) => Template::Text(segments),
                ParsedStr::Plain => Template::Literal(value.clone()),
            },
            Value::Array(items) => {
                let items: Vec<Template> =
                    items.iter().map(Template::parse).collect::<Result<_>>()?;
                if items.iter().all(Template::is_literal) {
                    Template::Literal(value.clone())
                } else {
                    Template::Array(items)
                }
            }
            Value::Object(map) => {
                let entries: Vec<(String, Template)> = map
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Template::parse(v)?)))
                    .collect::<Result<_>>()?;
                if entries.iter().all(|(_, t)| t.is_literal()) {
                    Template::Literal(value.clone())
                } else {
                    Template::Object(entries)
                }
            }
            other => Template::Literal(other.clone()),
        })
    }

    fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }

    /// Every reference this template holds, in order (a reference used twice comes twice).
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        self.collect_references(&mut out);
        out
    }

    fn collect_references<'a>(&'a self, out: &mut Vec<&'a Reference>) {
        match self {
            Template::Literal(_) => {}
            Template::Ref(reference) => out.push(reference),
            Template::Text(segments) => out.extend(segments.iter().filter_map(|s| match s {
                Segment::Ref(r) => Some(r),
                Segment::Text(_) => None,
            })),
            Template::Array(items) => {
                for item in items {
                    item.collect_references(out);
                }
            }
            Template::Object(entries) => {
                for (_, item) in entries {
                    item.collect_references(out);
                }
            }
        }
    }

    /// Substitutes every reference.
    ///
    /// A string that is exactly one reference becomes the referenced value with its JSON type;
    /// references inside longer strings become text. `outputs` maps step names to the outputs
    /// they produced. An unknown argument, step or output key is an error naming the reference.
    pub fn render(
        &self,
        args: &Map<String, Value>,
        outputs: &HashMap<String, Map<String, Value>>,
    ) -> Result<Value> {
        Ok(match self {
            Template::Literal(value) => value.clone(),
            Template::Ref(reference) => lookup(reference, args, outputs)?.clone(),
            Template::Text(segments) => Value::String(render_text(segments, args, outputs)?),
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(args, outputs))
                    .collect::<Result<_>>()?,
            ),
            Template::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(args, outputs)?)))
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

/// A value as text: strings unquoted, anything else as JSON.
pub(super) fn text_of(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// The value a reference points at, or an error naming the reference.
pub(super) fn lookup<'a>(
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

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;

    /// Every reference of `value`; empty when it holds a malformed one.
    fn references(value: &Value) -> Vec<Reference> {
        try_references(value).unwrap_or_default()
    }

    fn try_references(value: &Value) -> Result<Vec<Reference>> {
        Ok(Template::parse(value)?
            .references()
            .into_iter()
            .cloned()
            .collect())
    }

    fn substitute(
        value: &Value,
        args: &Map<String, Value>,
        outputs: &HashMap<String, Map<String, Value>>,
    ) -> Result<Value> {
        Template::parse(value)?.render(args, outputs)
    }

    /// Arguments and step outputs the tests of this module and `condition` render against.
    pub(in crate::workflow) fn ctx() -> (Map<String, Value>, HashMap<String, Map<String, Value>>) {
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

    fn arg(name: &str) -> Reference {
        Reference::Arg(name.into())
    }

    fn output(step: &str, key: &str) -> Reference {
        Reference::StepOutput {
            step: step.into(),
            key: key.into(),
        }
    }

    #[test]
    fn parses_exact_references_text_and_literals() {
        let parse = |v: Value| Template::parse(&v).unwrap();
        assert_eq!(parse(json!("{{ args.p1 }}")), Template::Ref(arg("p1")));
        assert_eq!(
            parse(json!("{{steps.a.outputs.rows}}")),
            Template::Ref(output("a", "rows"))
        );
        // Text around a reference, and placeholders that are not references, merge into text.
        assert_eq!(
            parse(json!(
                "{{workflow.uid}}/{{args.name}}-{{steps.a.outputs.rows}}.csv"
            )),
            Template::Text(vec![
                Segment::Text("{{workflow.uid}}/".into()),
                Segment::Ref(arg("name")),
                Segment::Text("-".into()),
                Segment::Ref(output("a", "rows")),
                Segment::Text(".csv".into()),
            ])
        );
        for literal in [
            json!("plain"),
            json!("{{workflow.uid}}"),
            json!(3),
            json!(null),
            json!(true),
            json!({"a": [1, "x", {"b": "{{run.uid}}"}]}),
        ] {
            assert_eq!(parse(literal.clone()), Template::Literal(literal));
        }
    }

    #[test]
    fn nested_values_keep_literals_whole_and_templates_where_references_are() {
        let template = Template::parse(&json!({
            "lit": {"k": [1, 2]},
            "list": [7, "{{args.p1}}", ["x", "n={{args.p1}}"]],
            "obj": {"s": "{{args.name}}", "keep": "v"}
        }))
        .unwrap();
        assert_eq!(
            template,
            Template::Object(vec![
                ("lit".into(), Template::Literal(json!({"k": [1, 2]}))),
                (
                    "list".into(),
                    Template::Array(vec![
                        Template::Literal(json!(7)),
                        Template::Ref(arg("p1")),
                        Template::Array(vec![
                            Template::Literal(json!("x")),
                            Template::Text(vec![
                                Segment::Text("n=".into()),
                                Segment::Ref(arg("p1"))
                            ]),
                        ]),
                    ])
                ),
                (
                    "obj".into(),
                    Template::Object(vec![
                        ("s".into(), Template::Ref(arg("name"))),
                        ("keep".into(), Template::Literal(json!("v"))),
                    ])
                ),
            ])
        );
        assert_eq!(
            template.references(),
            [&arg("p1"), &arg("p1"), &arg("name")]
        );
        let (args, outputs) = ctx();
        let rendered = template.render(&args, &outputs).unwrap();
        assert_eq!(
            rendered,
            json!({
                "lit": {"k": [1, 2]},
                "list": [7, 5, ["x", "n=5"]],
                "obj": {"s": "bob", "keep": "v"}
            })
        );
        // Key order is the template's, not sorted.
        let keys: Vec<&String> = rendered["obj"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["s", "keep"]);
    }

    #[test]
    fn exact_references_take_every_json_type() {
        let (mut args, outputs) = ctx();
        args.insert("none".into(), Value::Null);
        args.insert("big".into(), json!(u64::MAX));
        for (name, want) in [
            ("p1", json!(5)),
            ("name", json!("bob")),
            ("flag", json!(true)),
            ("none", Value::Null),
            ("big", json!(u64::MAX)),
        ] {
            let template = Template::parse(&json!(format!("{{{{args.{name}}}}}"))).unwrap();
            assert_eq!(template.render(&args, &outputs).unwrap(), want, "{name}");
        }
        let text = Template::parse(&json!("{{args.none}}/{{args.flag}}/{{args.big}}")).unwrap();
        assert_eq!(
            text.render(&args, &outputs).unwrap(),
            json!(format!("null/true/{}", u64::MAX))
        );
    }

    #[test]
    fn malformed_references_are_parse_errors_naming_them() {
        for (value, bad) in [
            (json!("x {{args.a b}}"), "{{args.a b}}"),
            (
                json!({"k": ["{{steps.a.outputs.}}"]}),
                "{{steps.a.outputs.}}",
            ),
            (
                json!({"k": {"j": "{{ steps..outputs.k }}"}}),
                "{{steps..outputs.k}}",
            ),
        ] {
            let err = Template::parse(&value).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "malformed reference `{bad}`; expected `{{{{args.NAME}}}}` or \
                     `{{{{steps.STEP.outputs.KEY}}}}`"
                )
            );
        }
    }
}
