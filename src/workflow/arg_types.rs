//! Declared types of workflow arguments, and coercion of given values to them.
//!
//! A type comes from the argument schema's `type`, else the pipeline parameter's annotation (the
//! tracer records `threshold: float` as `type: float`; a YAML workflow writes it), else the type
//! of its default. Types are Python's names (`int`, `float`, `str`, `bool`, `list`, `dict`), with
//! `typing` forms (`Optional[int]`, `List[str]`) and KFP's names (`Integer`, `Float`, `String`,
//! `Boolean`, `JsonArray`, `JsonObject`) read as the same. Any other type is not checked.
//!
//! MLRun never checks argument types; baton does, because an unchecked `-a threshold=abc` turns a
//! condition such as `{{args.threshold}} > 0.5` into a silent string comparison.

use std::fmt;

use serde_json::{Number, Value};

use crate::error::{Error, Result};

/// A type baton can check and coerce to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgType {
    Int,
    Float,
    Str,
    Bool,
    List,
    Dict,
}

impl fmt::Display for ArgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArgType::Int => "int",
            ArgType::Float => "float",
            ArgType::Str => "str",
            ArgType::Bool => "bool",
            ArgType::List => "list",
            ArgType::Dict => "dict",
        })
    }
}

impl ArgType {
    /// Reads a declared type name; `None` for a type baton does not check.
    pub(crate) fn parse(declared: &str) -> Option<ArgType> {
        let mut name = declared.trim();
        name = name.strip_prefix("typing.").unwrap_or(name);
        if let Some(inner) = name
            .strip_prefix("Optional[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return ArgType::parse(inner);
        }
        if let Some(inner) = name
            .strip_suffix("| None")
            .or_else(|| name.strip_suffix("|None"))
        {
            return ArgType::parse(inner);
        }
        let base = name.split('[').next().unwrap_or(name).to_ascii_lowercase();
        Some(match base.as_str() {
            "int" | "integer" => ArgType::Int,
            "float" | "number" => ArgType::Float,
            "str" | "string" | "text" => ArgType::Str,
            "bool" | "boolean" => ArgType::Bool,
            "list" | "tuple" | "jsonarray" => ArgType::List,
            "dict" | "jsonobject" => ArgType::Dict,
            _ => return None,
        })
    }

    /// The type of a default value; `None` for `null`.
    pub(crate) fn of(value: &Value) -> Option<ArgType> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => ArgType::Bool,
            Value::Number(n) if n.is_f64() => ArgType::Float,
            Value::Number(_) => ArgType::Int,
            Value::String(_) => ArgType::Str,
            Value::Array(_) => ArgType::List,
            Value::Object(_) => ArgType::Dict,
        })
    }

    /// `value` as this type: an exact match as is, text that reads as this type converted, an
    /// int where a float is wanted widened, anything where text is wanted as its text. `null`
    /// (Python's `None`) fits every type. Anything else is an [`Error::InvalidArgument`] naming
    /// the argument, its type and the value.
    pub(crate) fn coerce(self, name: &str, value: Value) -> Result<Value> {
        let refused = |value: &Value| {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Error::invalid_with_hint(
                format!(
                    "workflow argument `{name}` is declared `{self}`, and `{shown}` is not {}",
                    self.noun()
                ),
                format!("pass {}: `-a {name}={}`", self.noun(), self.example()),
            )
        };
        let original = value.clone();
        let coerced = match (self, value) {
            (_, Value::Null) => Some(Value::Null),
            (ArgType::Int, Value::Number(n)) if !n.is_f64() => Some(Value::Number(n)),
            (ArgType::Int, Value::String(s)) => {
                let t = s.trim();
                t.parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| t.parse::<u64>().map(Value::from))
                    .ok()
                    // Past 64 bits the digits stay text, as `-p` keeps them.
                    .or_else(|| is_integer_text(t).then(|| Value::String(s.clone())))
            }
            (ArgType::Float, Value::Number(n)) => {
                n.as_f64().and_then(Number::from_f64).map(Value::Number)
            }
            (ArgType::Float, Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number),
            (ArgType::Str, Value::String(s)) => Some(Value::String(s)),
            (ArgType::Str, other) => Some(Value::String(other.to_string())),
            (ArgType::Bool, Value::Bool(b)) => Some(Value::Bool(b)),
            (ArgType::Bool, Value::String(s)) => match s.trim() {
                "true" | "True" => Some(Value::Bool(true)),
                "false" | "False" => Some(Value::Bool(false)),
                _ => None,
            },
            (ArgType::List, Value::Array(a)) => Some(Value::Array(a)),
            (ArgType::Dict, Value::Object(o)) => Some(Value::Object(o)),
            (ArgType::List | ArgType::Dict, Value::String(s)) => {
                match serde_json::from_str::<Value>(&s) {
                    Ok(v @ Value::Array(_)) if self == ArgType::List => Some(v),
                    Ok(v @ Value::Object(_)) if self == ArgType::Dict => Some(v),
                    _ => None,
                }
            }
            _ => None,
        };
        coerced.ok_or_else(|| refused(&original))
    }

    fn noun(self) -> &'static str {
        match self {
            ArgType::Int => "an integer",
            ArgType::Float => "a number",
            ArgType::Str => "text",
            ArgType::Bool => "a boolean",
            ArgType::List => "a list",
            ArgType::Dict => "a dict",
        }
    }

    fn example(self) -> &'static str {
        match self {
            ArgType::Int => "3",
            ArgType::Float => "0.5",
            ArgType::Str => "text",
            ArgType::Bool => "true",
            ArgType::List => "[1,2]",
            ArgType::Dict => "{\"k\":1}",
        }
    }
}

fn is_integer_text(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}
