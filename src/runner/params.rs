//! Typing of `-p key=value` params given as text.

use serde_json::Value;

/// Types a param value typed on the command line, like MLRun's `py_eval` (a literal if it reads
/// as one, else the text itself), restricted to what JSON can carry.
///
/// | text | value |
/// |---|---|
/// | `5`, `-3` | integer |
/// | `0.5`, `1e3` | float (non-finite ones such as `inf` stay text) |
/// | `true`/`True`, `false`/`False` | boolean |
/// | `null`/`None` | null |
/// | `{..}`, `[..]`, `".."` that parse as JSON | object, array, string |
/// | anything else (including invalid JSON) | the text unchanged |
pub fn parse_param(text: &str) -> Value {
    match text {
        "true" | "True" => return Value::Bool(true),
        "false" | "False" => return Value::Bool(false),
        "null" | "None" => return Value::Null,
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return n.into();
    }
    if let Ok(n) = text.parse::<u64>() {
        return n.into();
    }
    // `f64::from_str` also reads `inf`, `NaN` and `infinity`; only digit-shaped text is a number.
    let numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'));
    if numeric {
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Value::Number(n);
        }
    }
    if text.starts_with(['{', '[', '"']) {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            if value.is_object() || value.is_array() || value.is_string() {
                return value;
            }
        }
    }
    Value::String(text.to_owned())
}
