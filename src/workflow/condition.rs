//! `when` conditions, parsed once when the [`Dag`](super::Dag) is built.
//!
//! A condition is one comparison `LHS OP RHS`, with OP one of `== != < <= > >=`, or several joined
//! by ` and ` (the Python loader writes nested `dsl.Condition` blocks that way). Operators inside
//! `{{...}}` or quotes do not count, and a text with exactly one operator is always a single
//! comparison, so an operand such as `'rock and roll'` needs no quotes.
//!
//! # Why a typed form
//!
//! The dispatcher evaluates a step's condition once per run and the KFP compiler translates it, so
//! both want the structure, not a string to split again: each [`Operand`] is a reference, text
//! holding references, or a [`Literal`] typed as written (`null`, `true`, `42`, `'text'`).
//!
//! # Semantics
//!
//! Each operand becomes text: a reference's value as text (strings unquoted, anything else as
//! JSON), a literal as written (one pair of matching quotes stripped). Two texts that both parse
//! as numbers compare as `f64`, so `9 < 10`, `'42' == 42.0`, and a big integer stored as text
//! compares by its nearest `f64`; `NaN` is unequal to everything. Otherwise they compare as
//! strings, byte by byte (`true == true`, `null == null`). Comparisons joined by `and` are
//! evaluated left to right and stop at the first false one.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use super::refs::{self, ParsedStr, Reference, Segment};
use crate::error::{Error, Result};

/// A parsed `when` condition: comparisons that must all hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The condition as written, for messages.
    text: String,
    /// At least one comparison.
    comparisons: Vec<Comparison>,
}

/// One comparison of a [`Condition`].
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The left operand.
    pub lhs: Operand,
    /// The operator.
    pub op: CompareOp,
    /// The right operand.
    pub rhs: Operand,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// One side of a [`Comparison`].
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// Exactly one reference (quoted or not): the referenced value.
    Ref(Reference),
    /// Text holding references (`s3://{{args.bucket}}/x`), substituted as text.
    Text(Vec<Segment>),
    /// A value written in the condition.
    Literal(Literal),
}

/// A literal operand, typed as written: unquoted `null`, `true`, `false` and numbers are typed;
/// anything else, and anything quoted, is a string (its quotes stripped).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An unquoted number: its text as written (a big integer keeps every digit) and its value.
    Number {
        /// The number as written.
        text: String,
        /// Its value, used when it is compared.
        value: f64,
    },
    /// Text. Compared as a number when it parses as one (`'5' == 5.0` holds), as it always has.
    String {
        /// The text, quotes stripped.
        text: String,
        /// Its value when the text parses as a number.
        number: Option<f64>,
    },
}

impl CompareOp {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Ne => ordering != Ordering::Equal,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Le => ordering != Ordering::Greater,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Ge => ordering != Ordering::Less,
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        })
    }
}

/// An operator found in a condition: its position, its length and which it is.
type OpAt = (usize, usize, CompareOp);

/// Where operators and ` and ` joints sit in a condition, outside `{{...}}` and quotes.
struct Scan {
    /// The operators, in order.
    ops: Vec<OpAt>,
    /// Positions of the `and` keywords that stand between whitespace.
    ands: Vec<usize>,
}

fn scan(expr: &str) -> Scan {
    let bytes = expr.as_bytes();
    let mut found = Scan {
        ops: Vec::new(),
        ands: Vec::new(),
    };
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
            (b'=', Some(b'=')) => Some((2, CompareOp::Eq)),
            (b'!', Some(b'=')) => Some((2, CompareOp::Ne)),
            (b'<', Some(b'=')) => Some((2, CompareOp::Le)),
            (b'>', Some(b'=')) => Some((2, CompareOp::Ge)),
            (b'<', _) => Some((1, CompareOp::Lt)),
            (b'>', _) => Some((1, CompareOp::Gt)),
            (b'a', _)
                if bytes[i..].starts_with(b"and")
                    && i > 0
                    && bytes[i - 1].is_ascii_whitespace()
                    && bytes.get(i + 3).is_some_and(u8::is_ascii_whitespace) =>
            {
                found.ands.push(i);
                None
            }
            _ => None,
        };
        match op {
            Some((len, op)) => {
                found.ops.push((i, len, op));
                i += len;
            }
            None => i += 1,
        }
    }
    found
}

/// Splits one comparison into `(lhs, op, rhs)`, or says why it cannot.
fn split<'a>(
    expr: &'a str,
    ops: &[OpAt],
) -> std::result::Result<(&'a str, CompareOp, &'a str), &'static str> {
    match ops {
        [] => Err("no comparison operator"),
        [(at, len, op)] => {
            let (lhs, rhs) = (expr[..*at].trim(), expr[at + len..].trim());
            if lhs.is_empty() || rhs.is_empty() {
                return Err("an operand is missing");
            }
            Ok((lhs, *op, rhs))
        }
        _ => Err("more than one comparison operator"),
    }
}

/// Strips one pair of matching quotes around a literal; `true` when it did.
fn unquote(side: &str) -> (&str, bool) {
    let b = side.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        (&side[1..side.len() - 1], true)
    } else {
        (side, false)
    }
}

impl Condition {
    /// Parses a condition. Anything but comparisons joined by ` and ` (no operator, two
    /// operators in one comparison, a missing operand, a malformed reference) is an error naming
    /// the text.
    pub fn parse(text: &str) -> Result<Condition> {
        let invalid = |why: &str| {
            Error::invalid(format!(
                "invalid condition `{text}`: {why}; expected `LHS OP RHS` with OP one of \
                 == != < <= > >="
            ))
        };
        let found = scan(text);
        let parts: Vec<(&str, Vec<OpAt>)> = if found.ops.len() > 1 && !found.ands.is_empty() {
            let mut parts = Vec::with_capacity(found.ands.len() + 1);
            let mut start = 0;
            for end in found.ands.iter().copied().chain([text.len()]) {
                let ops = found
                    .ops
                    .iter()
                    .filter(|(at, _, _)| (start..end).contains(at))
                    .map(|&(at, len, op)| (at - start, len, op))
                    .collect();
                parts.push((&text[start..end], ops));
                start = end + 3;
            }
            parts
        } else {
            vec![(text, found.ops)]
        };
        let joined = parts.len() > 1;
        let comparisons = parts
            .into_iter()
            .map(|(part, ops)| {
                let (lhs, op, rhs) = split(part, &ops).map_err(|why| {
                    if joined {
                        invalid(&format!("{why} in `{}`", part.trim()))
                    } else {
                        invalid(why)
                    }
                })?;
                let operand = |side| {
                    Operand::parse(side)
                        .map_err(|e| Error::invalid(format!("invalid condition `{text}`: {e}")))
                };
                Ok(Comparison {
                    lhs: operand(lhs)?,
                    op,
                    rhs: operand(rhs)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Condition {
            text: text.to_owned(),
            comparisons,
        })
    }

    /// The condition as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The comparisons that must all hold, in order.
    pub fn comparisons(&self) -> &[Comparison] {
        &self.comparisons
    }

    /// Every reference the condition holds, in order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.comparisons
            .iter()
            .flat_map(|c| [&c.lhs, &c.rhs])
            .flat_map(Operand::references)
    }

    /// Evaluates the condition against the run's arguments and the outputs produced so far (see
    /// the [module docs](self) for how operands compare). An unknown reference is an error naming
    /// the condition and the reference.
    pub fn evaluate(
        &self,
        args: &Map<String, Value>,
        outputs: &HashMap<String, Map<String, Value>>,
    ) -> Result<bool> {
        for comparison in &self.comparisons {
            let holds = comparison.evaluate(args, outputs).map_err(|e| {
                Error::invalid(format!("cannot evaluate condition `{}`: {e}", self.text))
            })?;
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Comparison {
    fn evaluate(
        &self,
        args: &Map<String, Value>,
        outputs: &HashMap<String, Map<String, Value>>,
    ) -> Result<bool> {
        let (lhs, lhs_number) = self.lhs.resolve(args, outputs)?;
        let (rhs, rhs_number) = self.rhs.resolve(args, outputs)?;
        let ordering = match (lhs_number, rhs_number) {
            (Some(a), Some(b)) => match a.partial_cmp(&b) {
                Some(ordering) => ordering,
                // NaN compares unequal to everything.
                None => return Ok(self.op == CompareOp::Ne),
            },
            _ => lhs.cmp(&rhs),
        };
        Ok(self.op.holds(ordering))
    }
}

impl Operand {
    fn parse(side: &str) -> Result<Operand> {
        let (inner, quoted) = unquote(side);
        Ok(match refs::parse_segments(inner)? {
            ParsedStr::Ref(reference) => Operand::Ref(reference),
            ParsedStr::Text(segments) => Operand::Text(segments),
            ParsedStr::Plain => Operand::Literal(Literal::parse(inner, quoted)),
        })
    }

    fn references(&self) -> impl Iterator<Item = &Reference> {
        let (one, text): (Option<&Reference>, &[Segment]) = match self {
            Operand::Ref(reference) => (Some(reference), &[]),
            Operand::Text(segments) => (None, segments),
            Operand::Literal(_) => (None, &[]),
        };
        one.into_iter().chain(text.iter().filter_map(|s| match s {
            Segment::Ref(r) => Some(r),
            Segment::Text(_) => None,
        }))
    }

    /// The operand as text, and its value when that text parses as a number.
    fn resolve<'a>(
        &'a self,
        args: &'a Map<String, Value>,
        outputs: &'a HashMap<String, Map<String, Value>>,
    ) -> Result<(Cow<'a, str>, Option<f64>)> {
        let text = match self {
            Operand::Literal(literal) => {
                return Ok((Cow::Borrowed(literal.text()), literal.number()))
            }
            Operand::Ref(reference) => refs::text_of(refs::lookup(reference, args, outputs)?),
            Operand::Text(segments) => Cow::Owned(refs::render_text(segments, args, outputs)?),
        };
        let number = text.trim().parse().ok();
        Ok((text, number))
    }
}

impl Literal {
    fn parse(text: &str, quoted: bool) -> Literal {
        let number = text.trim().parse::<f64>().ok();
        match (quoted, text, number) {
            (false, "null", _) => Literal::Null,
            (false, "true", _) => Literal::Bool(true),
            (false, "false", _) => Literal::Bool(false),
            (false, _, Some(value)) => Literal::Number {
                text: text.to_owned(),
                value,
            },
            _ => Literal::String {
                text: text.to_owned(),
                number,
            },
        }
    }

    /// The literal as text, as it compares with strings.
    pub fn text(&self) -> &str {
        match self {
            Literal::Null => "null",
            Literal::Bool(true) => "true",
            Literal::Bool(false) => "false",
            Literal::Number { text, .. } | Literal::String { text, .. } => text,
        }
    }

    /// The literal's value as a number, when its text parses as one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Literal::Null | Literal::Bool(_) => None,
            Literal::Number { value, .. } => Some(*value),
            Literal::String { number, .. } => *number,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn evaluate_condition(
        expr: &str,
        args: &Map<String, Value>,
        outputs: &HashMap<String, Map<String, Value>>,
    ) -> Result<bool> {
        Condition::parse(expr)?.evaluate(args, outputs)
    }

    fn check_condition(expr: &str) -> Result<()> {
        Condition::parse(expr).map(drop)
    }

    use crate::workflow::refs::tests::ctx;

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

    fn arg(name: &str) -> Operand {
        Operand::Ref(Reference::Arg(name.into()))
    }

    fn string(text: &str) -> Operand {
        Operand::Literal(Literal::String {
            text: text.into(),
            number: text.trim().parse().ok(),
        })
    }

    #[test]
    fn parses_typed_operands_once() {
        let parse = |e: &str| Condition::parse(e).unwrap();
        let c = parse("{{steps.a.outputs.rows}} >= 42");
        assert_eq!(c.as_str(), "{{steps.a.outputs.rows}} >= 42");
        assert_eq!(
            c.comparisons(),
            [Comparison {
                lhs: Operand::Ref(Reference::StepOutput {
                    step: "a".into(),
                    key: "rows".into()
                }),
                op: CompareOp::Ge,
                rhs: Operand::Literal(Literal::Number {
                    text: "42".into(),
                    value: 42.0
                }),
            }]
        );
        let rhs = |e: &str| parse(e).comparisons()[0].rhs.clone();
        assert_eq!(rhs("{{args.x}} == null"), Operand::Literal(Literal::Null));
        assert_eq!(
            rhs("{{args.x}} != true"),
            Operand::Literal(Literal::Bool(true))
        );
        assert_eq!(
            rhs("{{args.x}} < false"),
            Operand::Literal(Literal::Bool(false))
        );
        // Quoted, everything is a string, even a number (which still compares as one).
        assert_eq!(rhs("{{args.x}} == 'true'"), string("true"));
        assert_eq!(rhs("{{args.x}} == \"5\""), string("5"));
        assert_eq!(rhs("{{args.x}} == s3://x"), string("s3://x"));
        // A quoted reference is still a reference; text around one is a text operand.
        assert_eq!(rhs("1 == \"{{args.x}}\""), arg("x"));
        assert_eq!(
            rhs("1 == 'n={{args.x}}'"),
            Operand::Text(vec![
                Segment::Text("n=".into()),
                Segment::Ref(Reference::Arg("x".into()))
            ])
        );
        // A big integer keeps every digit as written.
        assert_eq!(
            rhs("{{args.x}} > 123456789012345678901234567890"),
            Operand::Literal(Literal::Number {
                text: "123456789012345678901234567890".into(),
                value: 123456789012345678901234567890.0
            })
        );
        for (text, op) in [
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<", CompareOp::Lt),
            ("<=", CompareOp::Le),
            (">", CompareOp::Gt),
            (">=", CompareOp::Ge),
        ] {
            let c = parse(&format!("{{{{args.x}}}} {text} 1"));
            assert_eq!(c.comparisons()[0].op, op);
            assert_eq!(op.to_string(), text);
        }
    }

    #[test]
    fn every_operator_compares_numbers_strings_bools_and_null() {
        let (mut args, outputs) = ctx();
        args.insert("none".into(), Value::Null);
        args.insert("text".into(), json!("10"));
        let eval = |e: &str| evaluate_condition(e, &args, &outputs).unwrap();
        // (lhs, rhs, [== != < <= > >=])
        for (lhs, rhs, want) in [
            // Numbers, from outputs, args and literals; text that parses compares as a number.
            (
                "{{steps.a.outputs.rows}}",
                "42",
                [true, false, false, true, false, true],
            ),
            (
                "{{args.p1}}",
                "{{args.text}}",
                [false, true, true, true, false, false],
            ),
            ("'9'", "10", [false, true, true, true, false, false]),
            (
                "{{steps.a.outputs.ratio}}",
                "0.25",
                [false, true, false, false, true, true],
            ),
            // Strings compare byte by byte.
            (
                "{{args.name}}",
                "'bob'",
                [true, false, false, true, false, true],
            ),
            (
                "{{args.name}}",
                "bobby",
                [false, true, true, true, false, false],
            ),
            (
                "{{args.name}}",
                "10",
                [false, true, false, false, true, true],
            ),
            // Bools and null compare as their text.
            (
                "{{args.flag}}",
                "true",
                [true, false, false, true, false, true],
            ),
            (
                "{{args.flag}}",
                "false",
                [false, true, false, false, true, true],
            ),
            (
                "{{args.none}}",
                "null",
                [true, false, false, true, false, true],
            ),
            (
                "{{args.none}}",
                "'null'",
                [true, false, false, true, false, true],
            ),
            // NaN is unequal to everything, itself included.
            ("nan", "nan", [false, true, false, false, false, false]),
        ] {
            let got =
                ["==", "!=", "<", "<=", ">", ">="].map(|op| eval(&format!("{lhs} {op} {rhs}")));
            assert_eq!(got, want, "{lhs} ? {rhs}");
        }
        // Big integers stored as text compare by their nearest f64, as they always have.
        assert!(eval(
            "'123456789012345678901234567890' == 123456789012345678901234567891"
        ));
        assert!(eval("12345678901234567890123 == 12345678901234567890000"));
    }

    #[test]
    fn conjunctions_hold_when_every_comparison_holds() {
        let (args, outputs) = ctx();
        let eval = |e: &str| evaluate_condition(e, &args, &outputs).unwrap();
        let c = Condition::parse(
            "{{steps.a.outputs.rows}} > {{args.p1}} and {{args.name}} == \"bob\" and 1 < 2",
        )
        .unwrap();
        assert_eq!(c.comparisons().len(), 3);
        assert_eq!(
            c.references().map(ToString::to_string).collect::<Vec<_>>(),
            ["{{steps.a.outputs.rows}}", "{{args.p1}}", "{{args.name}}"]
        );
        assert!(c.evaluate(&args, &outputs).unwrap());
        assert!(!eval(
            "{{steps.a.outputs.rows}} > 0 and {{args.name}} != bob"
        ));
        assert!(!eval(
            "{{args.name}} != bob and {{steps.a.outputs.rows}} > 0"
        ));
        // Evaluation stops at the first false comparison.
        assert!(!eval("1 > 2 and {{args.zz}} == 1"));
        let err = evaluate_condition("1 < 2 and {{args.zz}} == 1", &args, &outputs)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot evaluate condition `1 < 2 and {{args.zz}} == 1`: unknown reference \
             `{{args.zz}}`: there is no workflow argument `zz`"
        );
        // With one operator, `and` is part of an operand, as it always was.
        assert!(eval("'rock and roll' == rock and roll"));
        assert_eq!(
            Condition::parse("a == b and c")
                .unwrap()
                .comparisons()
                .len(),
            1
        );
        // `and` inside quotes, references or a word does not join.
        assert!(eval("'x and y' != 'y' and band < cand"));
    }

    #[test]
    fn malformed_conjunctions_name_the_condition_and_the_part() {
        for (expr, why) in [
            ("1 < 2 and 3 and 4 > 5", "no comparison operator in `3`"),
            (
                "1 < 2 and 3 < 4 < 5",
                "more than one comparison operator in `3 < 4 < 5`",
            ),
            ("1 < 2 and == 5", "an operand is missing in `== 5`"),
        ] {
            let err = Condition::parse(expr).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "invalid condition `{expr}`: {why}; expected `LHS OP RHS` with OP one of \
                     == != < <= > >="
                )
            );
        }
        let err = Condition::parse("1 < 2 and {{steps.a}} > 0")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid condition `1 < 2 and {{steps.a}} > 0`: malformed reference `{{steps.a}}`; \
             expected `{{args.NAME}}` or `{{steps.STEP.outputs.KEY}}`"
        );
    }
}
