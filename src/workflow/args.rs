//! A run's arguments: the workflow's `args_schema` ([`ArgSchemaEntry`]) and the one place the
//! arguments of a run are merged and typed ([`merge_args`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::arg_types::ArgType;
use super::dag::list;
use super::graph::WorkflowParam;
use crate::error::{Error, Result};

/// One item of a workflow's `args_schema`, in MLRun's shape (`EntrypointParam`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgSchemaEntry {
    /// The argument's name.
    pub name: String,
    /// Its declared type (`str`, `int`, ...). Unlike MLRun, given values are coerced to it, or
    /// refused (see [`merge_args`]).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its default; an absent default inserts `null`, as MLRun does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// Whether the caller must pass it explicitly (even when it has a default).
    #[serde(default)]
    pub required: bool,
    /// Fields this type does not know (e.g. `choices`), kept for round trips.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The arguments a run starts with, following MLRun's `WorkflowSpec.merge_args`, with types
/// checked.
///
/// 1. Each `schema` entry contributes its default (`null` when it has none); a `required` entry
///    must be given by the caller even when it has a default (MLRun's rule).
/// 2. Each graph parameter not set by then contributes its default; one without a default is
///    required.
/// 3. `given` overrides everything and satisfies requirements. A given value is coerced to its
///    argument's declared type: the schema's `type`, else the parameter's, else the type of its
///    default (`-a threshold=1` is `1.0` for a float; `-a zip=01234` stays text for a str).
///
/// Errors are [`Error::InvalidArgument`]s: requirements left over ("Workflow argument(s) a,b are
/// required and were not specified"), a value that is not of its declared type (naming the
/// argument and the type), and a given argument that neither the schema nor the graph declares
/// (listing the declared ones). With `allow_extra` an undeclared argument is only a warning and
/// is passed on as given. MLRun checks none of these; a value of the wrong type silently turns a
/// condition into a string comparison.
pub fn merge_args(
    params: &[WorkflowParam],
    schema: &[ArgSchemaEntry],
    given: &Map<String, Value>,
    allow_extra: bool,
) -> Result<Map<String, Value>> {
    let mut merged = Map::new();
    let mut required: Vec<&str> = Vec::new();
    for entry in schema {
        if !merged.contains_key(&entry.name) {
            merged.insert(
                entry.name.clone(),
                entry.default.clone().unwrap_or(Value::Null),
            );
        }
        if entry.required {
            required.push(&entry.name);
        }
    }
    for param in params {
        if merged.contains_key(&param.name) {
            continue;
        }
        match &param.default {
            Some(default) => {
                merged.insert(param.name.clone(), default.clone());
            }
            None => required.push(&param.name),
        }
    }
    let mut undeclared: Vec<&str> = Vec::new();
    for (key, value) in given {
        let value = match declared_type(key, params, schema) {
            Some(Declared::Typed(ty)) => ty.coerce(key, value.clone())?,
            Some(Declared::Untyped) => value.clone(),
            None => {
                undeclared.push(key);
                value.clone()
            }
        };
        merged.insert(key.clone(), value);
    }
    if !undeclared.is_empty() {
        let names: Vec<String> = undeclared.iter().map(|k| format!("`{k}`")).collect();
        let (noun, verb) = if names.len() == 1 {
            ("argument", "is")
        } else {
            ("arguments", "are")
        };
        if allow_extra {
            tracing::warn!(
                "workflow {noun} {} {verb} not declared by the workflow; passed on as given \
                 (--allow-extra-args)",
                names.join(", ")
            );
        } else {
            let mut declared: Vec<&str> = Vec::new();
            for name in schema
                .iter()
                .map(|e| e.name.as_str())
                .chain(params.iter().map(|p| p.name.as_str()))
            {
                if !declared.contains(&name) {
                    declared.push(name);
                }
            }
            return Err(Error::invalid_with_hint(
                format!(
                    "workflow {noun} {} {verb} not declared; declared arguments: {}",
                    names.join(", "),
                    list(declared)
                ),
                "check the spelling; declare it (a parameter of the pipeline function, \
                 `params: [{name: ...}]` in a YAML workflow, or an `--args-schema` entry); or \
                 pass `--allow-extra-args` to run with it anyway",
            ));
        }
    }
    let mut missing: Vec<&str> = Vec::new();
    for name in required {
        if !given.contains_key(name) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "Workflow argument(s) {} are required and were not specified",
            missing.join(",")
        )));
    }
    Ok(merged)
}

/// Whether an argument is declared, and with what checkable type.
enum Declared {
    Typed(ArgType),
    Untyped,
}

/// The declared type of argument `name`: the schema's `type`, else the parameter's, else the type
/// of a default (the schema's first); `None` when neither the schema nor the graph declares it.
fn declared_type(
    name: &str,
    params: &[WorkflowParam],
    schema: &[ArgSchemaEntry],
) -> Option<Declared> {
    let entry = schema.iter().find(|e| e.name == name);
    let param = params.iter().find(|p| p.name == name);
    if entry.is_none() && param.is_none() {
        return None;
    }
    let explicit = entry
        .and_then(|e| e.kind.as_deref())
        .or_else(|| param.and_then(|p| p.kind.as_deref()));
    let ty = match explicit {
        Some(text) => ArgType::parse(text),
        None => entry
            .and_then(|e| e.default.as_ref())
            .or_else(|| param.and_then(|p| p.default.as_ref()))
            .and_then(ArgType::of),
    };
    Some(ty.map_or(Declared::Untyped, Declared::Typed))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema(v: Value) -> Vec<ArgSchemaEntry> {
        serde_json::from_value(v).unwrap()
    }

    fn params(v: Value) -> Vec<WorkflowParam> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn merge_args_follows_mlrun_rules() {
        let given = json!({"x": 1, "extra": "e"}).as_object().unwrap().clone();
        let merged = merge_args(
            &params(json!([{"name": "p1", "default": 5}, {"name": "s", "default": "graph"}, {"name": "x"}])),
            &schema(json!([
                {"name": "s", "type": "str", "default": "schema", "doc": "d", "choices": ["a"]},
                {"name": "n", "type": "int"},
                {"name": "x", "required": true}
            ])),
            &given,
            true,
        )
        .unwrap();
        assert_eq!(
            Value::Object(merged),
            json!({"s": "schema", "n": null, "x": 1, "p1": 5, "extra": "e"})
        );
    }

    #[test]
    fn merge_args_coerces_to_declared_types_and_refuses_the_rest() {
        let params = params(json!([
            {"name": "f", "type": "float", "default": 0.5},
            {"name": "by_default", "default": 3},
            {"name": "zip", "type": "Optional[str]"},
            {"name": "flags", "type": "List[str]", "default": []},
            {"name": "any"}
        ]));
        let schema = schema(json!([{"name": "on", "type": "Boolean", "default": false}]));
        let given = json!({"f": 1, "by_default": "7", "zip": 1234, "flags": "[\"a\"]", "on": "True", "any": "x"});
        let merged = merge_args(&params, &schema, given.as_object().unwrap(), false).unwrap();
        assert_eq!(
            Value::Object(merged),
            json!({"on": true, "f": 1.0, "by_default": 7, "zip": "1234", "flags": ["a"], "any": "x"})
        );
        let refuse = |given: Value| {
            merge_args(&params, &schema, given.as_object().unwrap(), false)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refuse(json!({"f": "abc", "any": 1})),
            "workflow argument `f` is declared `float`, and `abc` is not a number"
        );
        assert_eq!(
            refuse(json!({"by_default": 2.5, "any": 1})),
            "workflow argument `by_default` is declared `int`, and `2.5` is not an integer"
        );
        assert_eq!(
            refuse(json!({"on": 1, "any": 1})),
            "workflow argument `on` is declared `bool`, and `1` is not a boolean"
        );
        assert_eq!(
            refuse(json!({"nope": 1, "also": 2, "any": 1})),
            "workflow arguments `nope`, `also` are not declared; declared arguments: on, f, \
             by_default, zip, flags, any"
        );
    }

    #[test]
    fn merge_args_reports_missing_required() {
        let e = merge_args(
            &params(json!([{"name": "a"}, {"name": "p", "default": 1}])),
            &schema(json!([{"name": "b", "default": 3, "required": true}, {"name": "c", "required": false}])),
            &Map::new(),
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Workflow argument(s) b,a are required and were not specified"
        );
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument);
    }

    #[test]
    fn arg_schema_round_trips_unknown_fields() {
        let v = json!({"name": "s", "type": "str", "default": "x", "doc": "d", "required": true, "choices": ["x", "y"]});
        let entry: ArgSchemaEntry = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(entry.kind.as_deref(), Some("str"));
        assert_eq!(serde_json::to_value(&entry).unwrap(), v);
    }
}
