//! Qwen3-Coder's XML calls: `<function=NAME>\n<parameter=KEY>\nvalue\n</parameter>\n</function>`.
//! Values are raw text, typed by the tool's JSON Schema when one is known.

use agent_tools::ToolSpec;
use serde_json::{Map, Value};

use super::pythonic;
use crate::prompt::{ToolCall, pyjson};

pub(crate) const FUNCTION_OPEN: &str = "<function=";
pub(crate) const FUNCTION_CLOSE: &str = "</function>";
const PARAM_OPEN: &str = "<parameter=";
const PARAM_CLOSE: &str = "</parameter>";

/// Splits a tool-call body into `<function=…>` segments: each is `(raw, inner)` where `raw` is
/// the exact text (closing tag included when present) and `inner` is what follows `<function=`.
/// Non-blank text outside the segments comes back as `Err(text)`.
pub(crate) fn segments(body: &str) -> Vec<Result<(&str, &str), &str>> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find(FUNCTION_OPEN) {
        let before = rest.get(..start).unwrap_or("");
        if !before.trim().is_empty() {
            out.push(Err(before));
        }
        let after = rest.get(start + FUNCTION_OPEN.len()..).unwrap_or("");
        let close = after.find(FUNCTION_CLOSE);
        let next = after.find(FUNCTION_OPEN);
        let (inner_len, raw_len) = match (close, next) {
            (Some(c), Some(n)) if n < c => (n, n),
            (Some(c), _) => (c, c + FUNCTION_CLOSE.len()),
            (None, Some(n)) => (n, n),
            (None, None) => (after.len(), after.len()),
        };
        let inner = after.get(..inner_len).unwrap_or("");
        let raw = rest
            .get(start..start + FUNCTION_OPEN.len() + raw_len)
            .unwrap_or("");
        out.push(Ok((raw, inner)));
        rest = after.get(raw_len..).unwrap_or("");
    }
    if !rest.trim().is_empty() {
        out.push(Err(rest));
    }
    out
}

/// Strips exactly one leading and one trailing `\n`, the template's own (a `\r` before it
/// belongs to the value).
fn strip_one_newline(v: &str) -> &str {
    let v = v.strip_prefix('\n').unwrap_or(v);
    v.strip_suffix('\n').unwrap_or(v)
}

/// Parses what follows `<function=` up to (not including) `</function>`.
pub(crate) fn parse_function(inner: &str, tools: &[ToolSpec]) -> Result<ToolCall, String> {
    let Some(name_end) = inner.find('>') else {
        return Err("the `<function=NAME>` tag is not closed with `>`".into());
    };
    let name = inner.get(..name_end).unwrap_or("").trim().to_string();
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '<') {
        return Err("the `<function=NAME>` tag has no valid name".into());
    }
    let rest = inner.get(name_end + 1..).unwrap_or("");
    let props = tools
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| t.parameters.get("properties"));
    let Some(first) = rest.find(PARAM_OPEN) else {
        let t = rest.trim();
        if t.is_empty() {
            return Ok(ToolCall {
                name,
                arguments: Value::Object(Map::new()),
            });
        }
        // `<function=name>{json}</function>` also occurs.
        return match serde_json::from_str::<Value>(t) {
            Ok(v @ Value::Object(_)) => Ok(ToolCall { name, arguments: v }),
            _ => Err(format!(
                "the body of `<function={name}>` must be `<parameter=KEY>` tags or a JSON object"
            )),
        };
    };
    if !rest.get(..first).unwrap_or("").trim().is_empty() {
        return Err(format!(
            "unexpected text before the first parameter of `{name}`"
        ));
    }
    let mut args = Map::new();
    let mut rest = rest.get(first..).unwrap_or("");
    while let Some(after) = rest.strip_prefix(PARAM_OPEN) {
        let Some(key_end) = after.find('>') else {
            return Err(format!(
                "a `<parameter=KEY>` tag of `{name}` is not closed with `>`"
            ));
        };
        let key = after.get(..key_end).unwrap_or("").trim().to_string();
        if key.is_empty() {
            return Err(format!("a parameter of `{name}` has no name"));
        }
        let value_region = after.get(key_end + 1..).unwrap_or("");
        let close = value_region.find(PARAM_CLOSE);
        let next = value_region.find(PARAM_OPEN);
        // A missing `</parameter>` ends the value at the next `<parameter=` or the end.
        let (value, remaining) = match (close, next) {
            (Some(c), Some(n)) if n < c => (
                value_region.get(..n).unwrap_or(""),
                value_region.get(n..).unwrap_or(""),
            ),
            (Some(c), _) => (
                value_region.get(..c).unwrap_or(""),
                value_region.get(c + PARAM_CLOSE.len()..).unwrap_or(""),
            ),
            (None, Some(n)) => (
                value_region.get(..n).unwrap_or(""),
                value_region.get(n..).unwrap_or(""),
            ),
            (None, None) => (value_region, ""),
        };
        let raw = strip_one_newline(value);
        let schema = props.and_then(|p| p.get(&key));
        args.insert(key, convert(raw, schema));
        let skip = remaining.find(PARAM_OPEN).unwrap_or(remaining.len());
        if !remaining.get(..skip).unwrap_or("").trim().is_empty() {
            return Err(format!(
                "unexpected text between the parameters of `{name}`"
            ));
        }
        rest = remaining.get(skip..).unwrap_or("");
    }
    Ok(ToolCall {
        name,
        arguments: Value::Object(args),
    })
}

/// The JSON Schema type names a parameter schema admits (`type`, a `type` list, `anyOf`/`oneOf`).
pub fn schema_types(schema: &Value, out: &mut Vec<String>) {
    match schema.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => {
            out.extend(ts.iter().filter_map(|t| t.as_str().map(str::to_string)))
        }
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = schema.get(key) {
            for alt in alts {
                schema_types(alt, out);
            }
        }
    }
}

/// Converts a raw parameter value by the parameter's schema; unknown parameters stay strings.
pub(crate) fn convert(raw: &str, schema: Option<&Value>) -> Value {
    let mut types = Vec::new();
    if let Some(s) = schema {
        schema_types(s, &mut types);
    }
    let has = |t: &str| types.iter().any(|x| x == t);
    let t = raw.trim();
    if has("null") && (t == "null" || t == "None") {
        return Value::Null;
    }
    if has("boolean") {
        match t {
            "true" | "True" => return Value::Bool(true),
            "false" | "False" => return Value::Bool(false),
            _ => {}
        }
    }
    if has("integer")
        && let Ok(i) = t.parse::<i64>()
    {
        return Value::Number(i.into());
    }
    if (has("number") || has("integer"))
        && let Ok(v @ Value::Number(_)) = serde_json::from_str::<Value>(t)
    {
        return v;
    }
    if has("object") || has("array") {
        let parsed = serde_json::from_str::<Value>(t)
            .ok()
            .or_else(|| pythonic::parse_literal(t));
        match parsed {
            Some(v @ Value::Object(_)) if has("object") => return v,
            Some(v @ Value::Array(_)) if has("array") => return v,
            _ => {}
        }
    }
    Value::String(raw.to_string())
}

/// A value as Qwen3-Coder writes it: strings raw, everything else as JSON.
pub(crate) fn raw_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => pyjson::to_string(other),
    }
}

/// One `<tool_call>` block as Qwen3-Coder's template writes it.
pub(crate) fn render_call(call: &ToolCall) -> String {
    let mut out = format!("<tool_call>\n<function={}>\n", call.name);
    if let Value::Object(map) = &call.arguments {
        for (k, v) in map {
            out.push_str(&format!(
                "<parameter={k}>\n{}\n</parameter>\n",
                raw_value(v)
            ));
        }
    }
    out.push_str("</function>\n</tool_call>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_values() {
        let schema = json!({"type": "integer"});
        assert_eq!(convert("42", Some(&schema)), json!(42));
        assert_eq!(convert("4x", Some(&schema)), json!("4x"));
        assert_eq!(convert("1.5", Some(&json!({"type": "number"}))), json!(1.5));
        assert_eq!(
            convert("True", Some(&json!({"type": "boolean"}))),
            json!(true)
        );
        assert_eq!(
            convert(
                "null",
                Some(&json!({"anyOf": [{"type": "string"}, {"type": "null"}]}))
            ),
            json!(null)
        );
        assert_eq!(
            convert("{'a': [1]}", Some(&json!({"type": "object"}))),
            json!({"a": [1]})
        );
        assert_eq!(
            convert("[1, 2]", Some(&json!({"type": "array"}))),
            json!([1, 2])
        );
        assert_eq!(convert("42", None), json!("42"));
    }

    #[test]
    fn function_body() {
        let tools = vec![ToolSpec {
            name: "f".into(),
            description: String::new(),
            parameters: json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
        }];
        assert_eq!(
            parse_function(
                "f>\n<parameter=n>\n7\n</parameter>\n<parameter=code>\n\nx = 1\n\n<parameter=s>\nlast\n",
                &tools
            ),
            Ok(ToolCall {
                name: "f".into(),
                arguments: json!({"n": 7, "code": "\nx = 1\n", "s": "last"})
            })
        );
        assert!(parse_function("f\n<parameter=n>", &tools).is_err());
        assert_eq!(
            segments("junk <function=a>x</function><function=b>").len(),
            3
        );
    }
}
