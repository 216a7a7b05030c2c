//! References inside step values: `{{args.NAME}}` and `{{steps.STEP.outputs.KEY}}`.
//!
//! Three jobs, one grammar: finding the references a value holds (the DAG turns them into edges
//! and checks them), substituting them right before a step starts, and evaluating a step's `when`
//! condition (`LHS OP RHS`).
//!
//! A string that is exactly one reference takes the referenced value's JSON type, so
//! `"{{steps.a.outputs.rows}}"` becomes the number `42`, not the text `"42"`. References inside a
//! longer string are substituted as text: strings unquoted, anything else as JSON. Other `{{...}}`
//! placeholders (MLRun's `{{workflow.uid}}`, for one) are not references and are left untouched.

use std::cmp::Ordering;
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
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces the references of one string; `None` when it holds none (the caller keeps it).
fn substitute_str(
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

/// A comparison operator of a `when` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
        }
    }
}

/// Splits `expr` into `(lhs, op, rhs)`; operators inside `{{...}}` or quotes do not count.
fn split_condition(expr: &str) -> Result<(&str, Op, &str)> {
    let invalid = |why: &str| {
        Error::invalid(format!(
            "invalid condition `{expr}`: {why}; expected `LHS OP RHS` with OP one of \
             == != < <= > >="
        ))
    };
    let bytes = expr.as_bytes();
    let mut found: Vec<(usize, usize, Op)> = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        let op = match (c, next) {
            (b'{', Some(b'{')) => {
                i = expr[i..].find("}}").map_or(bytes.len(), |end| i + end + 2);
                continue;
            }
            (b'\'' | b'"', _) => {
                quote = Some(c);
                None
            }
            (b'=', Some(b'=')) => Some((2, Op::Eq)),
            (b'!', Some(b'=')) => Some((2, Op::Ne)),
            (b'<', Some(b'=')) => Some((2, Op::Le)),
            (b'>', Some(b'=')) => Some((2, Op::Ge)),
            (b'<', _) => Some((1, Op::Lt)),
            (b'>', _) => Some((1, Op::Gt)),
            _ => None,
        };
        match op {
            Some((len, op)) => {
                found.push((i, len, op));
                i += len;
            }
            None => i += 1,
        }
    }
    match found.as_slice() {
        [] => Err(invalid("no comparison operator")),
        [(at, len, op)] => {
            let (lhs, rhs) = (expr[..*at].trim(), expr[at + len..].trim());
            if lhs.is_empty() || rhs.is_empty() {
                return Err(invalid("an operand is missing"));
            }
            Ok((lhs, *op, rhs))
        }
        _ => Err(invalid("more than one comparison operator")),
    }
}

/// Checks the shape of a condition (one operator, two operands, well-formed references) without
/// evaluating it.
pub fn check_condition(expr: &str) -> Result<()> {
    let (lhs, _, rhs) = split_condition(expr)?;
    for side in [lhs, rhs] {
        parse_str(unquote(side))
            .map_err(|e| Error::invalid(format!("invalid condition `{expr}`: {e}")))?;
    }
    Ok(())
}

/// Strips one pair of matching quotes around a literal.
fn unquote(side: &str) -> &str {
    let b = side.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        &side[1..side.len() - 1]
    } else {
        side
    }
}

/// One side of a condition, substituted and unquoted, as text.
fn operand(
    side: &str,
    args: &Map<String, Value>,
    outputs: &HashMap<String, Map<String, Value>>,
) -> Result<String> {
    let inner = unquote(side);
    Ok(match substitute_str(inner, args, outputs)? {
        Some(value) => text_of(&value),
        None => inner.to_owned(),
    })
}

/// Evaluates a `when` condition: `LHS OP RHS` with OP one of `== != < <= > >=`.
///
/// Both sides are substituted first. They compare as numbers when both parse as numbers, else as
/// strings (one pair of matching quotes around a literal is stripped). Anything else (no
/// operator, two operators, a missing operand, an unknown reference) is an error naming the
/// expression.
pub fn evaluate_condition(
    expr: &str,
    args: &Map<String, Value>,
    outputs: &HashMap<String, Map<String, Value>>,
) -> Result<bool> {
    let (lhs, op, rhs) = split_condition(expr)?;
    let wrap = |e: Error| Error::invalid(format!("cannot evaluate condition `{expr}`: {e}"));
    let lhs = operand(lhs, args, outputs).map_err(wrap)?;
    let rhs = operand(rhs, args, outputs).map_err(wrap)?;
    let ordering = match (lhs.trim().parse::<f64>(), rhs.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => match a.partial_cmp(&b) {
            Some(ordering) => ordering,
            // NaN compares unequal to everything.
            None => return Ok(op == Op::Ne),
        },
        _ => lhs.cmp(&rhs),
    };
    Ok(op.holds(ordering))
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

    #[test]
    fn conditions_compare_numbers_and_strings() {
        let (args, outputs) = ctx();
        let eval = |e: &str| evaluate_condition(e, &args, &outputs).unwrap();
        assert!(eval("{{steps.a.outputs.rows}} > 0"));
        assert!(eval("{{steps.a.outputs.rows}} >= 42"));
        assert!(!eval("{{steps.a.outputs.rows}} < 42"));
        assert!(eval("{{steps.a.outputs.rows}} <= 42.0"));
        // Numeric, not textual: "9" > "10" as text, 9 < 10 as numbers.
        assert!(eval("9 < 10"));
        assert!(eval("{{steps.a.outputs.rows}} == 42.0"));
        assert!(eval("{{steps.a.outputs.ratio}} != 1"));
        assert!(eval("{{args.name}} == 'bob'"));
        assert!(eval("\"{{args.name}}\" == bob"));
        assert!(!eval("{{args.name}} != \"bob\""));
        assert!(eval("{{args.flag}} == true"));
        assert!(eval("'a<b' < 'b'"));
        assert!(eval("{{steps.a.outputs.table}} == s3://x/t.csv"));
    }

    #[test]
    fn malformed_conditions_are_errors_naming_the_expression() {
        let (args, outputs) = ctx();
        for (expr, why) in [
            ("{{args.p1}}", "no comparison operator"),
            ("{{args.p1}} = 5", "no comparison operator"),
            ("1 < 2 < 3", "more than one comparison operator"),
            ("== 5", "an operand is missing"),
        ] {
            let err = evaluate_condition(expr, &args, &outputs)
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!(
                    "invalid condition `{expr}`: {why}; expected `LHS OP RHS` with OP one of \
                     == != < <= > >="
                )
            );
            assert!(check_condition(expr).is_err());
        }
        let err = evaluate_condition("{{args.zz}} > 1", &args, &outputs)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot evaluate condition `{{args.zz}} > 1`: unknown reference `{{args.zz}}`: there \
             is no workflow argument `zz`"
        );
        assert!(check_condition("{{steps.a.outputs.rows}} > 0").is_ok());
        assert!(check_condition("{{steps.a}} > 0").is_err());
    }
}
