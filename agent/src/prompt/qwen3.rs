//! Qwen3's chat format (Hermes tool calls), following the official template step by step:
//! tools in the system turn, `<tool_call>` blocks re-rendered from structured calls, tool
//! results merged into one user turn of `<tool_response>` blocks, and thoughts kept only for
//! assistant turns after the last real user query.

use agent_tools::ToolSpec;

use super::{Message, Qwen3Variant, RenderOptions, Role, pyjson};

const TOOLS_HEADER: &str = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>";
const TOOLS_FOOTER: &str = "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>";

/// The system-turn tool block, shared with ChatML models that borrow the Hermes format.
pub(super) fn tools_block(tools: &[ToolSpec]) -> String {
    let mut out = String::from(TOOLS_HEADER);
    for t in tools {
        out.push('\n');
        out.push_str(&pyjson::to_string(&t.to_openai()));
    }
    out.push_str(TOOLS_FOOTER);
    out
}

/// One `<tool_call>` block as the template writes it.
pub(crate) fn tool_call_text(name: &str, arguments: &serde_json::Value) -> String {
    // A string `arguments` is pasted raw by the template; ours are always structured.
    let args = match arguments {
        serde_json::Value::String(s) => s.clone(),
        v => pyjson::to_string(v),
    };
    format!("<tool_call>\n{{\"name\": \"{name}\", \"arguments\": {args}}}\n</tool_call>")
}

fn is_tool_response_turn(m: &Message) -> bool {
    m.content.starts_with("<tool_response>") && m.content.ends_with("</tool_response>")
}

pub(super) fn render(
    variant: Qwen3Variant,
    messages: &[Message],
    tools: &[ToolSpec],
    opts: RenderOptions,
) -> String {
    let mut out = String::new();
    let first_is_system = messages.first().is_some_and(|m| m.role == Role::System);
    if !tools.is_empty() {
        out.push_str("<|im_start|>system\n");
        if first_is_system {
            out.push_str(&messages[0].content);
            out.push_str("\n\n");
        }
        out.push_str(&tools_block(tools));
        out.push_str("<|im_end|>\n");
    } else if first_is_system {
        out.push_str("<|im_start|>system\n");
        out.push_str(&messages[0].content);
        out.push_str("<|im_end|>\n");
    }

    // The last user turn that is a real query (not a wrapped tool response) decides which
    // assistant turns keep their thinking.
    let last_query = messages
        .iter()
        .rposition(|m| m.role == Role::User && !is_tool_response_turn(m))
        .unwrap_or(messages.len() - 1);

    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::User => push_turn(&mut out, "user", &m.content),
            Role::System if i > 0 => push_turn(&mut out, "system", &m.content),
            Role::System => {}
            Role::Assistant => {
                render_assistant(&mut out, m, i, i + 1 == messages.len(), last_query)
            }
            Role::Tool => {
                if i == 0 || messages[i - 1].role != Role::Tool {
                    out.push_str("<|im_start|>user");
                }
                out.push_str("\n<tool_response>\n");
                out.push_str(&m.content);
                out.push_str("\n</tool_response>");
                if i + 1 == messages.len() || messages[i + 1].role != Role::Tool {
                    out.push_str("<|im_end|>\n");
                }
            }
        }
    }

    if opts.add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
        match variant {
            Qwen3Variant::Hybrid if opts.enable_thinking == Some(false) => {
                out.push_str("<think>\n\n</think>\n\n")
            }
            Qwen3Variant::Thinking2507 => out.push_str("<think>\n"),
            _ => {}
        }
    }
    out
}

fn push_turn(out: &mut String, role: &str, content: &str) {
    out.push_str("<|im_start|>");
    out.push_str(role);
    out.push('\n');
    out.push_str(content);
    out.push_str("<|im_end|>\n");
}

fn render_assistant(out: &mut String, m: &Message, index: usize, last: bool, last_query: usize) {
    let reasoning = m.reasoning.as_deref().unwrap_or("");
    // Every release's template (the 2507 Instruct one too) keeps the thoughts of the turns
    // after the last real query, and gives the last assistant turn a block even when empty.
    let keeps_thinking = index > last_query && (last || !reasoning.is_empty());
    out.push_str("<|im_start|>assistant\n");
    if keeps_thinking {
        out.push_str("<think>\n");
        out.push_str(reasoning.trim_matches('\n'));
        out.push_str("\n</think>\n\n");
        out.push_str(m.content.trim_start_matches('\n'));
    } else {
        out.push_str(&m.content);
    }
    for (k, call) in m.tool_calls.iter().enumerate() {
        if k > 0 || !m.content.is_empty() {
            out.push('\n');
        }
        out.push_str(&tool_call_text(&call.name, &call.arguments));
    }
    out.push_str("<|im_end|>\n");
}
