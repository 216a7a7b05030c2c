//! Typing of `-p key=value` params given as text.
//!
//! Typing never changes a value without a word: text that is not exactly a JSON-representable
//! literal stays text, an integer that does not fit in 64 bits stays text with a warning (JSON
//! numbers in baton are 64-bit integers or doubles, and a double would drop digits), and a value
//! nested deeper than [`MAX_VALUE_DEPTH`] is refused.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// How deeply lists and objects may nest in a param or a result value.
///
/// Run records carry values a few levels down (`status.results.<key>`, a workflow run's
/// `steps[i].outputs.<key>`) and are read back with serde_json, which stops at 128 levels: values
/// deeper than this would make the record unreadable. The bootstrap uses the same limit for
/// results.
pub const MAX_VALUE_DEPTH: usize = 100;

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
/// | `01234`, `-007.5` (leading zeros are not a number) | the text unchanged |
/// | an integer outside the 64-bit range | the text unchanged (see [`parse_params`]) |
/// | anything else (including invalid JSON) | the text unchanged |
///
/// A list or object nested deeper than [`MAX_VALUE_DEPTH`] is an [`Error::InvalidArgument`].
pub fn parse_param(text: &str) -> Result<Value> {
    match text {
        "true" | "True" => return Ok(Value::Bool(true)),
        "false" | "False" => return Ok(Value::Bool(false)),
        "null" | "None" => return Ok(Value::Null),
        _ => {}
    }
    if has_leading_zero(text) {
        return Ok(Value::String(text.to_owned()));
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n.into());
    }
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n.into());
    }
    if is_integer_text(text) {
        // Too big for 64 bits: a double would silently drop digits.
        return Ok(Value::String(text.to_owned()));
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
            return Ok(Value::Number(n));
        }
    }
    if text.starts_with(['{', '[', '"']) {
        let depth = nesting_depth(text);
        if depth > MAX_VALUE_DEPTH {
            return Err(Error::invalid(format!(
                "the value nests {depth} levels deep; at most {MAX_VALUE_DEPTH} are allowed"
            )));
        }
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            if value.is_object() || value.is_array() || value.is_string() {
                return Ok(value);
            }
        }
    }
    Ok(Value::String(text.to_owned()))
}

/// Types `key=value` pairs with [`parse_param`]. Errors name the key; an integer kept as text
/// because it does not fit in 64 bits is reported with a warning.
pub fn parse_params(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<Map<String, Value>> {
    pairs
        .into_iter()
        .map(|(key, text)| {
            let value = parse_param(&text).map_err(|e| {
                Error::invalid_with_hint(
                    format!("parameter `{key}`: {e}"),
                    "pass a flatter value, or put the data in a file and pass its path as an input",
                )
            })?;
            if value.is_string() && is_integer_text(&text) && !has_leading_zero(&text) {
                tracing::warn!(
                    "parameter `{key}` = {text} does not fit in a 64-bit integer; it is passed \
                     as the string \"{text}\" so that no digit is lost"
                );
            }
            Ok((key, value))
        })
        .collect()
}

/// `-?[0-9]+` (an optional `+` too).
fn is_integer_text(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A number-shaped text whose integer part starts with a zero followed by another digit
/// (`01234`, `-007.5`): Python refuses such literals, and a zip code or an id is text.
fn has_leading_zero(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    digits.len() > 1 && digits[0] == b'0' && digits[1].is_ascii_digit()
}

/// The deepest nesting of `[`/`{` in JSON-like text, ignoring brackets inside strings.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_and_big_integers_stay_text() {
        for text in ["01234", "-007", "00.5", "+01"] {
            assert_eq!(parse_param(text).unwrap(), Value::String(text.into()));
        }
        for text in ["0", "-0", "0.5", "-0.25", "0e3"] {
            assert!(parse_param(text).unwrap().is_number(), "{text}");
        }
        let big = "123456789012345678901234567890";
        assert_eq!(parse_param(big).unwrap(), Value::String(big.into()));
        assert_eq!(
            parse_param("-9223372036854775809").unwrap(),
            Value::String("-9223372036854775809".into())
        );
    }

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert_eq!(nesting_depth(r#"[1, {"a": [2]}]"#), 3);
        assert_eq!(nesting_depth(r#"["[[[", "\"[["]"#), 1);
        let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
        let err = parse_params([("x".to_owned(), deep)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter `x`: the value nests 101 levels deep; at most 100 are allowed"
        );
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_param(&ok).unwrap().is_array());
    }
}
