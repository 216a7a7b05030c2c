//! `when` conditions: `LHS OP RHS`, with OP one of `== != < <= > >=`.
//!
//! Operands are literals or [references](super::refs); both sides compare as numbers when both
//! parse as numbers, else as text.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::refs::{parse_str, substitute_str, text_of};
use crate::error::{Error, Result};

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
