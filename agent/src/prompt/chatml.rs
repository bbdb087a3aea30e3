//! ChatML models without a tool format of their own (SmolLM2 and the like). The conversation is
//! flattened into plain system/user/assistant turns in the Hermes format that Qwen3 uses (the
//! format our parser reads): the tool list goes into the system turn, calls are written as
//! `<tool_call>` blocks, and results come back as a user turn of `<tool_response>` blocks.

use agent_tools::ToolSpec;

use super::{Message, RenderOptions, Role, qwen3};

/// The conversation with tools written into the text, roles limited to system/user/assistant.
pub fn flatten_tools(messages: &[Message], tools: &[ToolSpec]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len() + 1);
    let mut rest = messages;
    if !tools.is_empty() {
        let mut system = String::new();
        if let Some(first) = messages.first().filter(|m| m.role == Role::System) {
            system.push_str(&first.content);
            system.push_str("\n\n");
            rest = &messages[1..];
        }
        system.push_str(&qwen3::tools_block(tools));
        out.push(Message::system(system));
    }
    for m in rest {
        match m.role {
            Role::Assistant => {
                let mut text = m.content.clone();
                for (k, call) in m.tool_calls.iter().enumerate() {
                    if k > 0 || !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&qwen3::tool_call_text(&call.name, &call.arguments));
                }
                out.push(Message::assistant(text));
            }
            Role::Tool => {
                let block = format!("<tool_response>\n{}\n</tool_response>", m.content);
                match out.last_mut() {
                    // Consecutive results share one user turn, as in Qwen3's template.
                    Some(prev)
                        if prev.role == Role::User
                            && prev.content.ends_with("</tool_response>")
                            && prev.content.starts_with("<tool_response>") =>
                    {
                        prev.content.push('\n');
                        prev.content.push_str(&block);
                    }
                    _ => out.push(Message::user(block)),
                }
            }
            _ => out.push(Message::new(m.role, m.content.clone())),
        }
    }
    out
}

pub(super) fn render(
    default_system: Option<&str>,
    messages: &[Message],
    tools: &[ToolSpec],
    opts: RenderOptions,
) -> String {
    let flat = flatten_tools(messages, tools);
    let mut out = String::new();
    if let Some(sys) = default_system
        && flat.first().is_some_and(|m| m.role != Role::System)
    {
        out.push_str("<|im_start|>system\n");
        out.push_str(sys);
        out.push_str("<|im_end|>\n");
    }
    for m in &flat {
        out.push_str("<|im_start|>");
        out.push_str(m.role.as_str());
        out.push('\n');
        out.push_str(&m.content);
        out.push_str("<|im_end|>\n");
    }
    if opts.add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}
