//! Grammars that make a malformed call impossible. [`lark`] writes, for one step, a Lark grammar
//! (the dialect of llguidance, which mistral.rs runs as `Constraint::Lark`) from the enabled
//! tools: reasoning, then free text or calls, whose names and arguments must match the tools'
//! JSON Schemas, in the model's own call format.
//!
//! JSON arguments go through llguidance's `%json{…}` (the JSON Schema compiled as is); pythonic
//! and Qwen3-Coder arguments have no such built-in, so their value grammars are written here
//! from the schema (see `grammar_values`). A call's markers (`<tool_call>`, `<think>`,
//! `<|python_start|>`) are written as special tokens when the tokenizer has them as one token,
//! otherwise as text, which free text then must not contain.

use agent_tools::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Format;
use super::grammar_values::{Values, bound_strings, close_objects, enum_conflict, lit};

/// Which calls a step may make (`tool_choice` in a task file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    /// Free text, or calls: the grammar takes hold once the model opens a call.
    #[default]
    Auto,
    /// At least one call, nothing but calls.
    Required,
    /// No call: free text that does not open one.
    None,
    /// Calls of this tool only.
    Tool(String),
}

/// How the model's turn begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    /// No reasoning block.
    Off,
    /// The model may open `<think>…</think>` first.
    Optional,
    /// The prompt already opened `<think>`: the turn starts inside the reasoning.
    Open,
}

/// What [`lark`] needs beyond the tools: the call format and how the turn is written.
#[derive(Debug, Clone)]
pub struct GrammarOptions {
    /// The call format the grammar writes calls in.
    pub format: Format,
    /// How the turn begins.
    pub thinking: Thinking,
    /// Markers the tokenizer has as single (special) tokens, e.g. `<tool_call>`.
    pub special_tokens: Vec<String>,
    /// Upper bound on the characters of every string argument without a `maxLength` of its
    /// own. A random or confused model may otherwise never close a string.
    pub max_string_chars: Option<usize>,
    /// Upper bound on the calls in one turn (`None`: any number).
    pub max_calls: Option<usize>,
}

impl GrammarOptions {
    /// Options for `format` with no reasoning block, no special tokens and no bounds.
    pub fn new(format: Format) -> Self {
        GrammarOptions {
            format,
            thinking: Thinking::Off,
            special_tokens: Vec::new(),
            max_string_chars: None,
            max_calls: None,
        }
    }
}

/// Why no grammar could be written for a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// `tool_choice` names a tool that is not enabled: the name, and the enabled tools' names
    /// separated by `, `.
    #[error("tool_choice names `{0}`, which is not an enabled tool (enabled: {1})")]
    UnknownTool(String, String),
    /// `tool_choice` is `required` but no tool is enabled.
    #[error("tool_choice is `required` but no tool is enabled")]
    NoTools,
    /// A tool's parameters schema cannot be turned into a grammar.
    #[error("the parameters schema of tool `{tool}` is not valid JSON Schema at {path}: {message}")]
    BadSchema {
        /// The tool's name.
        tool: String,
        /// Where in the schema the problem is, as a JSON pointer (`/` for the root).
        path: String,
        /// What is wrong there.
        message: String,
    },
}

/// Markers every format may use.
pub const MARKERS: [&str; 6] = [
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "<|python_start|>",
    "<|python_end|>",
];

/// The Lark grammar of one assistant turn.
pub fn lark(
    opts: &GrammarOptions,
    tools: &[ToolSpec],
    choice: &ToolChoice,
) -> Result<String, GrammarError> {
    let allowed: Vec<&ToolSpec> = match choice {
        ToolChoice::Tool(name) => match tools.iter().find(|t| &t.name == name) {
            Some(t) => vec![t],
            None => {
                let names = tools
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(GrammarError::UnknownTool(name.clone(), names));
            }
        },
        _ => tools.iter().collect(),
    };
    if *choice == ToolChoice::Required && allowed.is_empty() {
        return Err(GrammarError::NoTools);
    }
    for t in &allowed {
        check_types(&t.parameters, "").map_err(|(path, message)| GrammarError::BadSchema {
            tool: t.name.clone(),
            path: if path.is_empty() { "/".into() } else { path },
            message,
        })?;
    }
    let calls_allowed = *choice != ToolChoice::None && !allowed.is_empty();
    let calls_forced = matches!(choice, ToolChoice::Required | ToolChoice::Tool(_));
    let mut g = Builder {
        opts,
        values: Values::new(opts.max_string_chars),
    };
    let text = g.text_terminal();
    let lead = g.lead_terminal();
    let body = match (calls_allowed, calls_forced) {
        (false, _) => "TEXT?".to_string(),
        (true, true) => "calls".to_string(),
        (true, false) => match (opts.format, &lead) {
            // Hermes-style formats: content, then calls. A textual opener ends the text inside
            // one terminal (`LEAD`): free text cannot stop just before a string it excludes.
            (Format::Qwen3 | Format::Qwen3Coder, None) => "TEXT? calls?".to_string(),
            (Format::Qwen3 | Format::Qwen3Coder, Some(_)) => {
                format!("TEXT? | LEAD call_rest {} WS?", g.more_calls())
            }
            // Llama 4: a turn is either calls or an answer.
            (Format::Llama4Pythonic | Format::Llama4Json, _) => "calls | TEXT".to_string(),
        },
    };
    let mut out = String::new();
    let think = match g.thinking() {
        Thinking::Off => "",
        Thinking::Optional => "think? ",
        Thinking::Open => "THINK </think> ",
    };
    out.push_str(&format!("start: {think}body\nbody: {body}\n"));
    if g.thinking() == Thinking::Optional {
        out.push_str("think: <think> THINK </think>\n");
    }
    out.push_str("THINK: /(.|\\n)*/\n");
    out.push_str(&format!("TEXT: {text}\n"));
    if let Some(lead) = lead {
        out.push_str(&format!("LEAD: {lead}\n"));
    }
    out.push_str("WS: /[ \\t\\n]{1,8}/\n");
    if calls_allowed {
        let calls = g.calls(&allowed);
        out.push_str(&calls);
    }
    out.push_str(&g.values.rules());
    Ok(out)
}

struct Builder<'a> {
    opts: &'a GrammarOptions,
    values: Values,
}

impl Builder<'_> {
    fn special(&self, marker: &str) -> bool {
        self.opts.special_tokens.iter().any(|s| s == marker)
    }

    /// A marker as a grammar item: the special token, or its text.
    fn marker(&self, m: &str) -> String {
        if self.special(m) {
            m.to_string()
        } else {
            lit(m)
        }
    }

    /// Reasoning needs `<think>`/`</think>` as special tokens: as text, the free-text regex
    /// could not be kept from writing them.
    fn thinking(&self) -> Thinking {
        match self.opts.thinking {
            Thinking::Off => Thinking::Off,
            t if self.special("<think>") && self.special("</think>") => t,
            _ => Thinking::Off,
        }
    }

    /// Free text: it must not open a call (or close one: the parser drops stray closers).
    /// Special-token markers cannot appear in regex text at all; textual ones are excluded.
    fn text_terminal(&self) -> String {
        match self.opts.format {
            Format::Qwen3 | Format::Qwen3Coder => text_regex("+", &self.textual_markers()),
            Format::Llama4Pythonic | Format::Llama4Json => {
                // An answer that starts like a call list would be read as one.
                let start = if self.opts.format == Format::Llama4Pythonic {
                    "\\["
                } else {
                    "{"
                };
                let mut t = format!("/[ \\t\\n]*[^ \\t\\n{start}](.|\\n)*/");
                if !self.special("<|python_start|>") {
                    t.push_str(" & ~/[ \\t\\n]*<\\|python_start\\|>(.|\\n)*/");
                }
                t
            }
        }
    }

    /// What free text must not contain in the Hermes-style formats: the call and reasoning
    /// markers that are text for this tokenizer, and Qwen3-Coder's bare `<function=`.
    fn textual_markers(&self) -> Vec<&'static str> {
        let mut banned: Vec<&str> = ["<tool_call>", "</tool_call>", "</think>"]
            .into_iter()
            .filter(|m| !self.special(m))
            .collect();
        if self.opts.format == Format::Qwen3Coder {
            banned.push("<function=");
        }
        banned
    }

    /// With a textual call opener: free text up to and including the opener, one terminal.
    fn lead_terminal(&self) -> Option<String> {
        if !matches!(self.opts.format, Format::Qwen3 | Format::Qwen3Coder)
            || self.special("<tool_call>")
        {
            return None;
        }
        Some(format!(
            "({}) {}",
            text_regex("*", &self.textual_markers()),
            lit("<tool_call>")
        ))
    }

    fn separator(&self) -> &'static str {
        match self.opts.format {
            Format::Qwen3 | Format::Qwen3Coder => "WS?",
            Format::Llama4Pythonic => "\",\" \" \"?",
            Format::Llama4Json => "(\";\" \" \"? | \";\"? \"\\n\")",
        }
    }

    /// The calls after the first.
    fn more_calls(&self) -> String {
        let sep = self.separator();
        match self.opts.max_calls {
            Some(0 | 1) => String::new(),
            Some(n) => format!("(({sep}) call){{0,{}}}", n - 1),
            None => format!("(({sep}) call)*"),
        }
    }

    /// The `calls` rule and everything under it.
    fn calls(&mut self, tools: &[&ToolSpec]) -> String {
        let mut out = String::new();
        let list = format!("call {}", self.more_calls());
        let (open, close) = (self.marker("<tool_call>"), self.marker("</tool_call>"));
        match self.opts.format {
            Format::Qwen3 | Format::Qwen3Coder => {
                out.push_str(&format!("calls: WS? {list} WS?\ncall: {open} call_rest\n"));
                let rest = if self.opts.format == Format::Qwen3 {
                    format!("%json {}", self.json_calls(tools, "arguments"))
                } else {
                    let fns: Vec<String> = tools.iter().map(|t| self.coder_function(t)).collect();
                    format!("({})", fns.join(" | "))
                };
                out.push_str(&format!("call_rest: \"\\n\" {rest} \"\\n\" {close}\n"));
            }
            Format::Llama4Pythonic => {
                let (start, end) = (
                    self.marker("<|python_start|>"),
                    self.marker("<|python_end|>"),
                );
                out.push_str(&format!(
                    "calls: {start} \"[\" {list} \"]\" {end}? | \"[\" {list} \"]\"\n"
                ));
                let fns: Vec<String> = tools.iter().map(|t| self.python_function(t)).collect();
                out.push_str(&format!("call: {}\n", fns.join(" | ")));
            }
            Format::Llama4Json => {
                let (start, end) = (
                    self.marker("<|python_start|>"),
                    self.marker("<|python_end|>"),
                );
                out.push_str(&format!("calls: {start} {list} {end}? | {list}\n"));
                out.push_str(&format!(
                    "call: %json {}\n",
                    self.json_calls(tools, "parameters")
                ));
            }
        }
        out
    }

    /// One JSON Schema for a call object (`{"name": …, args_key: {…}}`) of any of the tools.
    /// Arguments objects are closed unless their schema says otherwise (a small model would
    /// otherwise invent parameters until its token limit); whitespace is free but bounded.
    fn json_calls(&self, tools: &[&ToolSpec], args_key: &str) -> String {
        let alternatives: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut params = t.parameters.clone();
                close_objects(&mut params);
                if let Some(n) = self.opts.max_string_chars {
                    bound_strings(&mut params, n);
                }
                let mut props = serde_json::Map::new();
                props.insert("name".into(), json!({"const": t.name}));
                props.insert(args_key.into(), params);
                json!({"type": "object", "properties": props, "required": ["name", args_key], "additionalProperties": false})
            })
            .collect();
        let schema =
            json!({"anyOf": alternatives, "x-guidance": {"whitespace_pattern": "[ \\t\\n]{1,8}"}});
        schema.to_string()
    }

    /// `<function=NAME>\n` parameters `</function>\n`, parameters in schema order.
    fn coder_function(&mut self, tool: &ToolSpec) -> String {
        let params = self
            .values
            .ordered_params(&tool.parameters, "", |v, k, value| {
                let value = v.coder_value(value);
                format!("{} {value}", lit(&format!("<parameter={k}>\n")))
            });
        format!(
            "({} {params} {})",
            lit(&format!("<function={}>\n", tool.name)),
            lit("</function>")
        )
    }

    /// `name(k=v, …)`, keyword arguments in schema order.
    fn python_function(&mut self, tool: &ToolSpec) -> String {
        let params = self
            .values
            .ordered_params(&tool.parameters, "PYSEP", |v, k, value| {
                let value = v.py_value(value);
                format!("{} {value}", lit(&format!("{k}=")))
            });
        format!("({} {params} \")\")", lit(&format!("{}(", tool.name)))
    }
}

/// The arguments schema a grammar enforces for a tool: its own, with objects closed (see
/// `close_objects`). A call the grammar admits is valid against it.
pub fn constrained_schema(parameters: &Value) -> Value {
    let mut s = parameters.clone();
    close_objects(&mut s);
    s
}

/// The JSON types a schema may name.
const TYPES: [&str; 7] = [
    "string", "integer", "number", "boolean", "null", "array", "object",
];

/// Every `type` in the schema names JSON types (llguidance refuses anything else, and so would
/// a validator): `Err((JSON pointer, message))` otherwise.
fn check_types(schema: &Value, path: &str) -> Result<(), (String, String)> {
    let Value::Object(o) = schema else {
        return Ok(());
    };
    let bad = |t: &Value| !t.as_str().is_some_and(|t| TYPES.contains(&t));
    if let Some(t) = o.get("type") {
        let wrong = match t {
            Value::Array(ts) => ts.iter().find(|t| bad(t)),
            t if bad(t) => Some(t),
            _ => None,
        };
        if let Some(w) = wrong {
            return Err((
                format!("{path}/type"),
                format!(
                    "{w} is not a JSON type (expected one of {})",
                    TYPES.join(", ")
                ),
            ));
        }
    }
    let required: Vec<&str> = o
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            if required.contains(&name.as_str()) && enum_conflict(sub) {
                let p = format!(
                    "{path}/properties/{}",
                    name.replace('~', "~0").replace('/', "~1")
                );
                return Err((
                    p,
                    "no value of its `enum` has its `type`, and the property is required".into(),
                ));
            }
        }
    }
    for (k, v) in o {
        match (k.as_str(), v) {
            ("properties" | "$defs" | "definitions" | "patternProperties", Value::Object(m)) => {
                for (name, sub) in m {
                    check_types(
                        sub,
                        &format!("{path}/{k}/{}", name.replace('~', "~0").replace('/', "~1")),
                    )?;
                }
            }
            ("items" | "additionalProperties" | "not" | "contains", sub) => {
                check_types(sub, &format!("{path}/{k}"))?
            }
            ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(a)) => {
                for (i, sub) in a.iter().enumerate() {
                    check_types(sub, &format!("{path}/{k}/{i}"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Free text (`reps`: `+` or `*` characters) that contains none of `banned`.
fn text_regex(reps: &str, banned: &[&str]) -> String {
    let mut t = format!("/(.|\\n){reps}/");
    for b in banned {
        t.push_str(&format!(" & ~/(.|\\n)*{}(.|\\n)*/", regex_escape(b)));
    }
    t
}

/// Escapes text for a Lark `/regex/`.
pub(crate) fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        // Not `<`/`>`: escaped, they are word boundaries in the regex dialect.
        if "\\.+*?()|[]{}^$/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
