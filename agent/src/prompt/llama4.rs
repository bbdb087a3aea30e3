//! Llama 4's chat format, following the official Hugging Face template: tools (as indented
//! JSON) go into the first user turn, calls are written as `{"name": ..., "parameters": ...}`
//! after a `<|python_start|>…<|python_end|>` wrapper, and results come back in `ipython` turns.
//! Quirks of the official template are kept on purpose (the model was trained on them): the
//! system text is trimmed, the first user message is trimmed when tools are present, and a
//! tool result string is written through `tojson`, i.e. as a quoted JSON string.

use agent_tools::ToolSpec;

use super::{Message, RenderOptions, Role, TemplateInfo, pyjson};

const CALL_FORMAT: &str = "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n";

fn header(out: &mut String, role: &str) {
    out.push_str("<|header_start|>");
    out.push_str(role);
    out.push_str("<|header_end|>\n\n");
}

fn tool_list(out: &mut String, tools: &[ToolSpec]) {
    for t in tools {
        out.push_str(&pyjson::to_string_indent(&t.to_openai(), 4));
        out.push_str("\n\n");
    }
}

pub(super) fn render(
    info: &TemplateInfo,
    messages: &[Message],
    tools: &[ToolSpec],
    opts: RenderOptions,
) -> String {
    let mut out = info
        .bos_token
        .clone()
        .unwrap_or_else(|| "<|begin_of_text|>".into());
    let mut rest = messages;
    if let Some(first) = messages.first().filter(|m| m.role == Role::System) {
        header(&mut out, "system");
        if !tools.is_empty() {
            out.push_str("Environment: ipython\n");
        }
        out.push_str(first.content.trim());
        out.push_str("<|eot|>");
        rest = &rest[1..];
    }
    if !tools.is_empty()
        && let Some((first, tail)) = rest.split_first()
    {
        header(&mut out, "user");
        out.push_str("Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n");
        out.push_str(CALL_FORMAT);
        tool_list(&mut out, tools);
        out.push_str(first.content.trim());
        out.push_str("<|eot|>");
        rest = tail;
    }
    for m in rest {
        match m.role {
            Role::Tool => {
                header(&mut out, "ipython");
                out.push_str(&pyjson::to_string(&serde_json::Value::String(
                    m.content.clone(),
                )));
                out.push_str("<|eot|>");
            }
            Role::Assistant if !m.tool_calls.is_empty() => {
                header(&mut out, "assistant");
                out.push_str("<|python_start|>");
                out.push_str(&m.content);
                out.push_str("<|python_end|>");
                for call in &m.tool_calls {
                    out.push_str("{\"name\": \"");
                    out.push_str(&call.name);
                    out.push_str("\", \"parameters\": ");
                    out.push_str(&pyjson::to_string(&call.arguments));
                    out.push('}');
                }
                out.push_str("<|eot|>");
            }
            _ => {
                header(&mut out, m.role.as_str());
                out.push_str(&m.content);
                out.push_str("<|eot|>");
            }
        }
    }
    if opts.add_generation_prompt {
        header(&mut out, "assistant");
    }
    out
}
