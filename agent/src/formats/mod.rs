//! Tool-call formats: Qwen3 (Hermes JSON in `<tool_call>`), Qwen3-Coder (XML parameters),
//! Llama 4 pythonic (`[f(a=1)]`) and Llama 4 JSON (`{"name": …, "parameters": …}`).
//!
//! [`StreamParser`] separates reasoning, content and calls from text arriving in chunks of any
//! size; [`parse`] runs it over a whole turn. [`validate`] checks calls against the tools'
//! schemas, and [`render_calls`] writes calls back exactly as each model writes them.

mod coder;
mod grammar;
mod grammar_values;
mod pyliteral;
mod pythonic;
mod stream;

use std::fmt;
use std::str::FromStr;

use agent_tools::{SchemaCache, ToolSpec, argument_error, unknown_tool};
use serde_json::Value;

pub use crate::parse::{CallError, Parsed};
use crate::prompt::{ToolCall, pyjson};
pub use coder::schema_types;
pub use grammar::{
    GrammarError, GrammarOptions, MARKERS, Thinking, ToolChoice, constrained_schema, lark,
};
pub use stream::StreamParser;

/// How a model writes its tool calls (`tool_format` in a task file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// Hermes JSON inside `<tool_call>` tags.
    #[serde(rename = "qwen3")]
    Qwen3,
    /// XML `<function=…>` with `<parameter=…>` tags, inside `<tool_call>` or bare.
    #[serde(rename = "qwen3-coder")]
    Qwen3Coder,
    /// `[f(a=1), g()]`, optionally inside `<|python_start|>…<|python_end|>`.
    #[serde(rename = "llama4-pythonic")]
    Llama4Pythonic,
    /// `{"name": …, "parameters": {…}}`, possibly several, separated by `;` or newlines.
    #[serde(rename = "llama4-json")]
    Llama4Json,
}

impl Format {
    /// Every format, in the order error messages list them.
    pub const ALL: [Format; 4] = [
        Format::Qwen3,
        Format::Qwen3Coder,
        Format::Llama4Pythonic,
        Format::Llama4Json,
    ];

    /// The format's name, as task files and the command line write it (`qwen3-coder`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Qwen3 => "qwen3",
            Format::Qwen3Coder => "qwen3-coder",
            Format::Llama4Pythonic => "llama4-pythonic",
            Format::Llama4Json => "llama4-json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown tool-call format `{s}` (expected one of: {})",
                    Format::ALL.map(Format::name).join(", ")
                )
            })
    }
}

impl Format {
    /// How a call is written in this format, for telling a model that wrote one wrongly: the
    /// hint must show the syntax the step's grammar and parser expect, not another model's.
    pub fn call_syntax(self) -> &'static str {
        match self {
            Format::Qwen3 => {
                "<tool_call>\n{\"name\": \"TOOL\", \"arguments\": {\"PARAMETER\": VALUE}}\n</tool_call>"
            }
            Format::Qwen3Coder => {
                "<tool_call>\n<function=TOOL>\n<parameter=PARAMETER>\nVALUE\n</parameter>\n</function>\n</tool_call>"
            }
            Format::Llama4Pythonic => "[TOOL(PARAMETER=VALUE)]",
            Format::Llama4Json => "{\"name\": \"TOOL\", \"parameters\": {\"PARAMETER\": VALUE}}",
        }
    }
}

/// What the stream parser recognised in the text so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Text inside `<think>…</think>` (tags removed).
    Reasoning(String),
    /// Text outside thinking and calls.
    Content(String),
    /// A complete call, emitted as soon as it closes.
    Call(ToolCall),
    /// A call that could not be read; `raw` holds the text as the model wrote it.
    Error(CallError),
}

/// Parses a whole turn (no schema: Qwen3-Coder values stay strings).
pub fn parse(format: Format, text: &str, think_opened: bool) -> Parsed {
    parse_with_schema(format, text, think_opened, &[])
}

/// Parses a whole turn; the tools' schemas type Qwen3-Coder's raw parameter values.
pub fn parse_with_schema(
    format: Format,
    text: &str,
    think_opened: bool,
    tools: &[ToolSpec],
) -> Parsed {
    let mut parser = StreamParser::with_tools(format, think_opened, tools);
    let events = parser.push(text);
    collect(parser, events)
}

/// The turn a parser has read: `events` are everything its `push` calls returned, in order.
/// The planner parses a step's output once, as it streams, and ends it here.
pub fn collect(parser: StreamParser, mut events: Vec<Event>) -> Parsed {
    let truncated = parser.in_reasoning();
    let saw_reasoning = parser.saw_reasoning();
    events.extend(parser.finish());
    let mut reasoning = String::new();
    let mut content = String::new();
    let mut parsed = Parsed::default();
    for e in events {
        match e {
            Event::Reasoning(r) => reasoning.push_str(&r),
            Event::Content(c) => content.push_str(&c),
            Event::Call(c) => parsed.calls.push(c),
            Event::Error(e) => parsed.errors.push(e),
        }
    }
    parsed.reasoning = saw_reasoning.then(|| reasoning.trim_matches('\n').to_string());
    parsed.reasoning_truncated = saw_reasoning && truncated;
    parsed.content = content.trim().to_string();
    parsed
}

/// Checks each call against the available tools, with the registry's checks and wording
/// (for `agent parse`; a run's calls are checked by the registry when they are made).
pub fn validate(calls: &[ToolCall], tools: &[ToolSpec]) -> Vec<CallError> {
    let schemas = SchemaCache::default();
    let names: Vec<String> = tools.iter().map(|t| t.name.clone()).collect();
    let mut errors = Vec::new();
    for call in calls {
        let raw = format!(
            "{{\"name\": {}, \"arguments\": {}}}",
            Value::String(call.name.clone()),
            pyjson::to_string(&call.arguments)
        );
        let message = match tools.iter().find(|t| t.name == call.name) {
            None => unknown_tool(&call.name, &names),
            Some(tool) => match schemas.validate(&tool.name, &tool.parameters, &call.arguments) {
                Ok(()) => continue,
                Err(e) => argument_error(&call.name, &e),
            },
        };
        errors.push(CallError { message, raw });
    }
    errors
}

/// One call as the model writes it.
pub fn render_call(format: Format, call: &ToolCall) -> String {
    render_calls(format, std::slice::from_ref(call))
}

/// The calls of one assistant turn, exactly as the model writes them.
pub fn render_calls(format: Format, calls: &[ToolCall]) -> String {
    match format {
        // The renderer the prompt uses (the official template's form).
        Format::Qwen3 => calls
            .iter()
            .map(|c| crate::prompt::qwen3::tool_call_text(&c.name, &c.arguments))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Qwen3Coder => calls
            .iter()
            .map(coder::render_call)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Llama4Pythonic => format!(
            "[{}]",
            calls
                .iter()
                .map(pythonic::render_call)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Format::Llama4Json => calls
            .iter()
            .map(|c| {
                format!(
                    "{{\"name\": {}, \"parameters\": {}}}",
                    Value::String(c.name.clone()),
                    pyjson::to_string(&c.arguments)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Reads a Python literal as `ast.literal_eval` would, into JSON (see `pyliteral`): the
/// value, or why it is not one (including values with no JSON form, such as sets and bytes).
pub fn python_literal(text: &str) -> Result<Value, String> {
    pyliteral::parse_literal_explained(text)
}

/// Strips a code fence (```` ```json ````, ```` ```xml ```` or bare) around a call body.
fn strip_fence(body: &str) -> &str {
    let t = body.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest
        .strip_prefix("json")
        .or_else(|| rest.strip_prefix("xml"))
        .unwrap_or(rest);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

/// A JSON call object → a call. `args_key` is tried first, then `arguments`/`parameters`.
fn call_from_value(value: Value) -> Result<ToolCall, String> {
    let Value::Object(mut obj) = value else {
        return Err("a tool call must be a JSON object with \"name\" and \"arguments\"".into());
    };
    let name = match obj.remove("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        _ => return Err("the tool call has no \"name\" string".into()),
    };
    let arguments = obj
        .remove("arguments")
        .or_else(|| obj.remove("parameters"))
        .unwrap_or(Value::Object(Default::default()));
    // Some models send the arguments as a JSON string: decode it exactly once.
    let arguments = match arguments {
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(format!(
                    "the arguments of `{name}` are a string, not a JSON object"
                ));
            }
        },
        v @ Value::Object(_) => v,
        other => {
            return Err(format!(
                "the arguments of `{name}` must be a JSON object, not {other}"
            ));
        }
    };
    Ok(ToolCall { name, arguments })
}

/// Reads a call written as JSON (Hermes body, or one Llama 4 JSON object).
fn call_from_json(text: &str) -> Result<ToolCall, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the tool call is not valid JSON: {e}"))?;
    call_from_value(value)
}

/// The events for the body of one `<tool_call>` (or one bare `<function=…>`): Hermes JSON or
/// Qwen3-Coder XML, whichever it is. `raw` is the whole call as written, for errors.
fn body_events(body: &str, raw: &str, tools: &[ToolSpec]) -> Vec<Event> {
    let t = strip_fence(body);
    if t.is_empty() {
        return vec![Event::Error(CallError {
            message: "the tool call is empty".into(),
            raw: raw.to_string(),
        })];
    }
    if !t.starts_with(coder::FUNCTION_OPEN) {
        return vec![match call_from_json(t) {
            Ok(c) => Event::Call(c),
            Err(message) => Event::Error(CallError {
                message,
                raw: raw.to_string(),
            }),
        }];
    }
    let segs = coder::segments(t);
    let single = segs.len() == 1;
    segs.into_iter()
        .map(|seg| match seg {
            Ok((seg_raw, inner)) => match coder::parse_function(inner, tools) {
                Ok(c) => Event::Call(c),
                Err(message) => Event::Error(CallError {
                    message,
                    raw: if single {
                        raw.to_string()
                    } else {
                        seg_raw.to_string()
                    },
                }),
            },
            Err(text) => Event::Error(CallError {
                message: "unexpected text outside `<function=…>` in a tool call".into(),
                raw: text.to_string(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        assert!("hermes".parse::<Format>().is_err());
    }

    #[test]
    fn fences_and_string_arguments() {
        assert_eq!(strip_fence("\n```json\n{}\n```\n"), "{}");
        assert_eq!(
            call_from_json(r#"{"name": "f", "arguments": "{\"x\": \"{\\\"y\\\": 1}\"}"}"#),
            Ok(ToolCall {
                name: "f".into(),
                arguments: json!({"x": "{\"y\": 1}"})
            })
        );
        assert!(call_from_json(r#"{"name": "f", "arguments": "hello"}"#).is_err());
    }
}
