//! JSON written the way Python's `json.dumps(x, ensure_ascii=False)` writes it, which is what
//! Hugging Face's `tojson` filter produces when a chat template is rendered by transformers:
//! `", "` between items, `": "` after keys, non-ASCII left as is. Models were trained on prompts
//! rendered this way, so our renderers use it for tool definitions and call arguments.

use serde_json::Value;

/// Python's `repr(float)`, which `json.dumps` uses: `1.0`, `1e+20`, `1e-05`.
fn python_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    let s = format!("{v}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// Serializes `value` like Python's `json.dumps(value, ensure_ascii=False)`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value, None, 0);
    out
}

/// Like `json.dumps(value, ensure_ascii=False, indent=indent)` (Jinja's `tojson(indent=4)`):
/// items end with `,` and a newline, keys are followed by `": "`.
pub fn to_string_indent(value: &Value, indent: usize) -> String {
    let mut out = String::new();
    write(&mut out, value, Some(indent), 0);
    out
}

fn newline(out: &mut String, indent: Option<usize>, depth: usize) {
    if let Some(n) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', n * depth));
    }
}

fn write(out: &mut String, value: &Value, indent: Option<usize>, depth: usize) {
    let sep = if indent.is_some() { "," } else { ", " };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        // serde_json escapes exactly the characters Python escapes with ensure_ascii=False.
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, indent, depth + 1);
                write(out, item, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, indent, depth + 1);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write(out, v, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_json_dumps() {
        // Expected strings produced by CPython 3.11 json.dumps(..., ensure_ascii=False).
        assert_eq!(
            to_string(&json!({"a": 1, "b": [1, 2, {"c": "é"}]})),
            r#"{"a": 1, "b": [1, 2, {"c": "é"}]}"#
        );
        assert_eq!(
            to_string(&json!({"x": 1.5, "y": 1e20, "z": 0.00001, "w": 2.0})),
            r#"{"x": 1.5, "y": 1e+20, "z": 1e-05, "w": 2.0}"#
        );
        assert_eq!(
            to_string(&json!("<tag> & 'q' \"d\"\n")),
            r#""<tag> & 'q' \"d\"\n""#
        );
        assert_eq!(to_string(&json!({})), "{}");
        assert_eq!(to_string(&json!([])), "[]");
        assert_eq!(
            to_string_indent(&json!({"a": [1, {}], "b": "x"}), 4),
            "{\n    \"a\": [\n        1,\n        {}\n    ],\n    \"b\": \"x\"\n}"
        );
    }
}
