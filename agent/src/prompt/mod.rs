//! Prompt rendering per model family. We render prompts ourselves, token-exact to each family's
//! official chat template, and drive the model with raw completions: the loop then owns tool
//! rendering, `<think>` handling and stop strings. Tests compare every renderer against the
//! model's own Jinja template (see `jinja`).

mod chatml;
mod family;
pub mod jinja;
mod llama4;
pub mod pyjson;
pub(crate) mod qwen3;

pub use family::{Family, Qwen3Variant, detect_family};

use agent_tools::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The system prompt: instructions that frame the whole conversation.
    System,
    /// The user: the task and any follow-up messages.
    User,
    /// The model.
    Assistant,
    /// A tool's result, answering one call of the previous assistant turn.
    Tool,
}

impl Role {
    /// The role's name in chat templates: `system`, `user`, `assistant` or `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A call of one tool, as the model asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// The arguments, by parameter name (a JSON object when the call was read correctly).
    pub arguments: Value,
}

/// One turn of the conversation, in the shape chat templates take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote the turn.
    pub role: Role,
    /// The turn's text (an assistant turn's thinking and calls are in their own fields).
    pub content: String,
    /// The model's thinking for this assistant turn, without the `<think>` tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The calls this assistant turn made, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

impl Message {
    /// A message from `role` with text only: no reasoning, no calls.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            reasoning: None,
            tool_calls: Vec::new(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// A tool result message.
    pub fn tool(content: impl Into<String>) -> Self {
        Self::new(Role::Tool, content)
    }

    /// The message as a chat-template `messages` entry (OpenAI shape), for Jinja rendering.
    pub fn to_template_value(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("role".into(), Value::String(self.role.as_str().into()));
        m.insert("content".into(), Value::String(self.content.clone()));
        if let Some(r) = &self.reasoning {
            m.insert("reasoning_content".into(), Value::String(r.clone()));
        }
        if !self.tool_calls.is_empty() {
            let calls = self
                .tool_calls
                .iter()
                .map(|c| serde_json::json!({"type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                .collect();
            m.insert("tool_calls".into(), Value::Array(calls));
        }
        Value::Object(m)
    }
}

/// Per-render switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// End with the assistant header so the model writes the next turn.
    pub add_generation_prompt: bool,
    /// Qwen3 hybrid's template switch; `None` leaves the template's default (thinking on).
    pub enable_thinking: Option<bool>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            add_generation_prompt: true,
            enable_thinking: None,
        }
    }
}

/// Why a prompt could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The model's chat template is missing, or failed to compile or to render.
    #[error("chat template error: {0}")]
    Template(String),
    /// There are no messages to render.
    #[error("the conversation is empty")]
    Empty,
}

/// Everything a renderer needs to know about the model beyond its family.
#[derive(Debug, Clone, Default)]
pub struct TemplateInfo {
    /// The model's own chat template (used by the generic family and by tests).
    pub chat_template: Option<String>,
    /// The beginning-of-sequence token's text, for templates that write it.
    pub bos_token: Option<String>,
    /// The end-of-sequence token's text, for templates that write it.
    pub eos_token: Option<String>,
}

/// Renders `messages` (and the tool list) into the exact prompt text the model expects.
pub fn render(
    family: &Family,
    info: &TemplateInfo,
    messages: &[Message],
    tools: &[ToolSpec],
    opts: RenderOptions,
) -> Result<String, RenderError> {
    if messages.is_empty() {
        return Err(RenderError::Empty);
    }
    match family {
        Family::Qwen3(variant) => Ok(qwen3::render(*variant, messages, tools, opts)),
        Family::Llama4 => Ok(llama4::render(info, messages, tools, opts)),
        Family::ChatMl { default_system } => Ok(chatml::render(
            default_system.as_deref(),
            messages,
            tools,
            opts,
        )),
        Family::Qwen3Coder => jinja::render(own_template(info)?, messages, tools, opts, info),
        Family::Template => {
            let flat = chatml::flatten_tools(messages, tools);
            jinja::render(own_template(info)?, &flat, &[], opts, info)
        }
    }
}

fn own_template(info: &TemplateInfo) -> Result<&str, RenderError> {
    info.chat_template
        .as_deref()
        .ok_or_else(|| RenderError::Template("the model has no chat template".into()))
}

/// Stop strings that end an assistant turn, per family.
pub fn stop_strings(family: &Family) -> Vec<String> {
    match family {
        Family::Qwen3(_) | Family::Qwen3Coder | Family::ChatMl { .. } => {
            vec!["<|im_end|>".into(), "<|endoftext|>".into()]
        }
        Family::Llama4 => vec!["<|eot|>".into(), "<|eom|>".into(), "<|end_of_text|>".into()],
        Family::Template => Vec::new(),
    }
}
