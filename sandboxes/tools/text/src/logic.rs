//! The logic of the `text` tool, with no WebAssembly in it: the guest (`lib.rs`) wraps it in
//! the JSON contract, and `agent-bench wasm` serves the same code natively over MCP to compare
//! the two ways of running a tool.

use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

/// The tools, as the JSON contract describes them.
pub fn describe() -> Value {
    sorted(describe_unsorted())
}

fn describe_unsorted() -> Value {
    json!([
        {
            "name": "count",
            "description": "Count how many times `find` occurs in `text` (a letter, a word, any substring; without overlaps). Set ignore_case to count upper and lower case together.",
            "parameters": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "The text to search"},
                    "find": {"type": "string", "description": "What to count, e.g. a single letter"},
                    "ignore_case": {"type": "boolean", "description": "Count A and a alike (default false)"}
                },
                "required": ["text", "find"],
                "additionalProperties": false
            }
        },
        {
            "name": "length",
            "description": "The length of `text`: characters as a reader sees them, words, lines and UTF-8 bytes.",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string", "description": "The text to measure"}},
                "required": ["text"],
                "additionalProperties": false
            }
        }
    ])
}

/// Non-overlapping occurrences, matched on grapheme boundaries so that a letter inside a
/// combined character is not counted.
fn count(text: &str, find: &str, ignore_case: bool) -> Result<Value, String> {
    if find.is_empty() {
        return Err("`find` is empty: give the letter or text to count".into());
    }
    let fold = |s: &str| {
        if ignore_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let hay: Vec<String> = text.graphemes(true).map(fold).collect();
    let needle: Vec<String> = find.graphemes(true).map(fold).collect();
    let mut n = 0;
    let mut positions = Vec::new();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if hay[i..i + needle.len()] == needle[..] {
            n += 1;
            positions.push(i + 1);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    // A sentence: what a small model reads best, and says back.
    let times = if n == 1 { "time" } else { "times" };
    let at = if positions.is_empty() {
        String::new()
    } else {
        format!(
            " (at characters {})",
            positions
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(json!(format!(
        "\"{find}\" occurs {n} {times} in \"{text}\"{at}. The count is {n}."
    )))
}

fn length(text: &str) -> Value {
    json!({
        "characters": text.graphemes(true).count(),
        "code_points": text.chars().count(),
        "words": text.unicode_words().count(),
        "lines": if text.is_empty() { 0 } else { text.lines().count() },
        "bytes": text.len(),
    })
}

/// Runs tool `name` on its arguments.
pub fn call(name: &str, args: &Value) -> Result<Value, String> {
    let s = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{k}` must be a string"))
    };
    match name {
        "count" => count(
            s("text")?,
            s("find")?,
            args.get("ignore_case")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        "length" => Ok(length(s("text")?)),
        other => Err(format!("no tool named `{other}`")),
    }
}

/// Object keys in sorted order. The order of schema keys reaches the prompt; this order (what
/// serde_json gave before the guests' workspace turned on `preserve_order`) and the result
/// sentences are what `agent-bench questions` measures over 17 questions of the seed tasks'
/// kinds (docs/WASM_TOOLS.md), not only the two seeds.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut pairs: Vec<(String, Value)> = o.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}
