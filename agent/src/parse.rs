//! A minimal tool-call parser for the Hermes format (Qwen3, and ChatML models that borrow it)
//! and Llama 4's JSON format. It separates thinking, content and calls; a malformed call becomes
//! a [`CallError`] that the loop sends back to the model. (Streaming parsing and the other
//! formats are the tool-call-formats work.)

use serde::Serialize;
use serde_json::Value;

use crate::prompt::ToolCall;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallError {
    /// What was wrong, for the model to read.
    pub message: String,
    /// The offending text, as the model wrote it.
    pub raw: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Parsed {
    /// Text inside `<think>…</think>`, if the turn had any.
    pub reasoning: Option<String>,
    /// True when thinking never closed (the turn ended inside `<think>`).
    pub reasoning_truncated: bool,
    /// Text outside thinking and calls.
    pub content: String,
    pub calls: Vec<ToolCall>,
    pub errors: Vec<CallError>,
}

/// Splits `<think>…</think>` off the front. `opened` says whether the prompt itself opened the
/// block (Qwen3-Thinking-2507), in which case only `</think>` appears in the output.
pub fn split_thinking(text: &str, opened: bool) -> (Option<String>, bool, &str) {
    let trimmed = text.trim_start();
    let (inside, after_open) = match trimmed.strip_prefix("<think>") {
        Some(rest) => (true, rest),
        None => (opened, text),
    };
    if !inside {
        // A stray `</think>` without an opening tag still ends a thought the prompt opened.
        return match text.split_once("</think>") {
            Some((r, c)) if !r.contains("<tool_call>") => (Some(r.trim_matches('\n').to_string()), false, c),
            _ => (None, false, text),
        };
    }
    match after_open.split_once("</think>") {
        Some((r, c)) => (Some(r.trim_matches('\n').to_string()), false, c),
        None => (Some(after_open.trim_matches('\n').to_string()), true, ""),
    }
}

/// Parses a Hermes-format turn: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
/// any number of them, with free text around.
pub fn parse_hermes(text: &str, think_opened: bool) -> Parsed {
    let (reasoning, reasoning_truncated, rest) = split_thinking(text, think_opened);
    let mut parsed = Parsed { reasoning, reasoning_truncated, ..Parsed::default() };
    let mut content = String::new();
    let mut rest = rest;
    while let Some(start) = rest.find("<tool_call>") {
        content.push_str(&rest[..start]);
        let body_start = start + "<tool_call>".len();
        let (body, next) = match rest[body_start..].find("</tool_call>") {
            Some(end) => (&rest[body_start..body_start + end], &rest[body_start + end + "</tool_call>".len()..]),
            // A missing closing tag at the end of the turn still ends the call.
            None => (&rest[body_start..], ""),
        };
        match parse_call_json(body, "arguments") {
            Ok(call) => parsed.calls.push(call),
            Err(message) => parsed.errors.push(CallError { message, raw: format!("<tool_call>{body}</tool_call>") }),
        }
        rest = next;
    }
    content.push_str(rest);
    parsed.content = content.trim().to_string();
    parsed
}

/// Parses a Llama 4 JSON-format turn: `{"name": ..., "parameters": {...}}`, possibly several,
/// possibly wrapped in `<|python_start|>…<|python_end|>`. Text that does not start like a call
/// is content.
pub fn parse_llama4_json(text: &str) -> Parsed {
    let stripped = text.replace("<|python_start|>", "").replace("<|python_end|>", "");
    let trimmed = stripped.trim();
    let mut parsed = Parsed::default();
    if !trimmed.starts_with('{') || !trimmed.contains("\"name\"") {
        parsed.content = trimmed.to_string();
        return parsed;
    }
    let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<Value>();
    loop {
        let offset = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(v)) => match call_from_value(v, "parameters") {
                Ok(call) => parsed.calls.push(call),
                Err(message) => parsed.errors.push(CallError { message, raw: trimmed[offset..stream.byte_offset()].to_string() }),
            },
            Some(Err(e)) => {
                parsed.errors.push(CallError { message: format!("invalid JSON: {e}"), raw: trimmed[offset..].to_string() });
                break;
            }
        }
    }
    parsed
}

fn parse_call_json(body: &str, args_key: &str) -> Result<ToolCall, String> {
    let body = body.trim();
    // Models sometimes fence the JSON inside the tags.
    let body = body.strip_prefix("```json").or_else(|| body.strip_prefix("```")).map_or(body, |b| b.trim_end().trim_end_matches("```")).trim();
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the tool call is not valid JSON: {e}"))?;
    call_from_value(value, args_key)
}

fn call_from_value(value: Value, args_key: &str) -> Result<ToolCall, String> {
    let Value::Object(mut obj) = value else {
        return Err("a tool call must be a JSON object with \"name\" and \"arguments\"".into());
    };
    let name = match obj.remove("name") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err("the tool call has no \"name\" string".into()),
    };
    let arguments = obj.remove(args_key).or_else(|| obj.remove("arguments")).or_else(|| obj.remove("parameters")).unwrap_or(Value::Object(Default::default()));
    // Some models send the arguments as a JSON string: decode it exactly once.
    let arguments = match arguments {
        Value::String(s) => serde_json::from_str::<Value>(&s).ok().filter(Value::is_object).ok_or_else(|| format!("the arguments of `{name}` are a string, not a JSON object"))?,
        v @ Value::Object(_) => v,
        other => return Err(format!("the arguments of `{name}` must be a JSON object, not {other}")),
    };
    Ok(ToolCall { name, arguments })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hermes_calls_thinking_and_content() {
        let text = "<think>\nI should add.\n</think>\n\nLet me compute.\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2+2\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>";
        assert_eq!(
            parse_hermes(text, false),
            Parsed {
                reasoning: Some("I should add.".into()),
                reasoning_truncated: false,
                content: "Let me compute.".into(),
                calls: vec![
                    ToolCall { name: "calculator".into(), arguments: json!({"expression": "2+2"}) },
                    ToolCall { name: "f".into(), arguments: json!({"x": 1}) },
                ],
                errors: vec![],
            }
        );
    }

    #[test]
    fn hermes_errors_and_unclosed() {
        let p = parse_hermes("<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": }\n</tool_call><tool_call>{\"name\": \"b\", \"arguments\": {}}", false);
        assert_eq!(p.calls, vec![ToolCall { name: "b".into(), arguments: json!({}) }]);
        assert_eq!(p.errors.len(), 1);
        assert!(p.errors[0].message.starts_with("the tool call is not valid JSON"), "{:?}", p.errors);
        // A call inside thinking is thinking, not a call.
        let p = parse_hermes("<think>maybe <tool_call>{\"name\":\"a\"}</tool_call>", false);
        assert_eq!(p, Parsed { reasoning: Some("maybe <tool_call>{\"name\":\"a\"}</tool_call>".into()), reasoning_truncated: true, ..Parsed::default() });
        // Thinking opened by the prompt (Qwen3-Thinking-2507).
        let p = parse_hermes("hmm\n</think>\n\n42", true);
        assert_eq!(p, Parsed { reasoning: Some("hmm".into()), content: "42".into(), ..Parsed::default() });
    }

    #[test]
    fn llama4_json() {
        let p = parse_llama4_json("<|python_start|>{\"name\": \"calculator\", \"parameters\": {\"expression\": \"1+1\"}}<|python_end|>");
        assert_eq!(p.calls, vec![ToolCall { name: "calculator".into(), arguments: json!({"expression": "1+1"}) }]);
        assert_eq!(parse_llama4_json("The answer is 2.").content, "The answer is 2.");
    }
}
