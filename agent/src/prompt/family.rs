//! Which prompt format a model speaks, detected from its chat template (and config).

use serde::Serialize;

/// Which Qwen3 release a model is, which decides how it thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Qwen3Variant {
    /// Qwen3 (2504) dense and MoE: thinks by default, `enable_thinking=false` switches it off.
    Hybrid,
    /// Qwen3-*-Instruct-2507: never thinks.
    Instruct2507,
    /// Qwen3-*-Thinking-2507: the template opens `<think>` itself; thinking cannot be switched off.
    Thinking2507,
}

/// The prompt format a model speaks: how its turns, tools and tool calls are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "family")]
pub enum Family {
    /// Qwen3: Hermes JSON tool calls in `<tool_call>` tags, tools in the system turn.
    Qwen3(Qwen3Variant),
    /// Qwen3-Coder (30B-A3B, 480B-A35B): XML tool calls (`<function=NAME>`), no thinking. Its
    /// own template renders the conversation, tools and calls included.
    Qwen3Coder,
    /// Llama 4: its own header tokens, tools in the first user turn, results in `ipython`
    /// turns.
    Llama4,
    /// ChatML models without a tool format of their own (SmolLM2): tools are described in the
    /// system turn in the Hermes format and results come back as user turns.
    ChatMl {
        /// The system turn the template inserts when the conversation has none.
        default_system: Option<String>,
    },
    /// Anything else: the model's own Jinja template renders the flattened conversation.
    Template,
}

impl Family {
    /// The family's short name (`qwen3`, `qwen3-coder`, `llama4`, `chatml`, ...), as the
    /// model list shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Qwen3(Qwen3Variant::Hybrid) => "qwen3",
            Family::Qwen3(Qwen3Variant::Instruct2507) => "qwen3-instruct-2507",
            Family::Qwen3(Qwen3Variant::Thinking2507) => "qwen3-thinking-2507",
            Family::Qwen3Coder => "qwen3-coder",
            Family::Llama4 => "llama4",
            Family::ChatMl { .. } => "chatml",
            Family::Template => "template",
        }
    }

    /// Whether the model writes `<think>` blocks at all.
    pub fn thinks(&self) -> bool {
        matches!(
            self,
            Family::Qwen3(Qwen3Variant::Hybrid | Qwen3Variant::Thinking2507)
        )
    }
}

/// Detects the family from the chat template text and, when known, the `architectures` of
/// `config.json` (Llama 4 checkpoints may ship their template separately).
pub fn detect_family(chat_template: Option<&str>, architectures: &[String]) -> Family {
    let t = chat_template.unwrap_or_default();
    if t.contains("<|header_start|>") || architectures.iter().any(|a| a.starts_with("Llama4")) {
        return Family::Llama4;
    }
    if t.contains("<|im_start|>") && t.contains("<tool_call>") && t.contains("<function=") {
        return Family::Qwen3Coder;
    }
    if t.contains("<|im_start|>") && t.contains("<tool_call>") {
        if t.contains("enable_thinking") {
            return Family::Qwen3(Qwen3Variant::Hybrid);
        }
        if t.contains("<|im_start|>assistant\\n<think>\\n") {
            return Family::Qwen3(Qwen3Variant::Thinking2507);
        }
        return Family::Qwen3(Qwen3Variant::Instruct2507);
    }
    if t.contains("<|im_start|>") && !t.contains("<function=") {
        return Family::ChatMl {
            default_system: default_system(t),
        };
    }
    Family::Template
}

/// A ChatML template that inserts a fixed system turn when the conversation has none (SmolLM2
/// does) writes it as a string literal: `'<|im_start|>system\nYou are ...<|im_end|>\n'`.
fn default_system(template: &str) -> Option<String> {
    // The newline is a real one in some templates and an escape (`\n`) in others.
    let (at, open) = ["<|im_start|>system\\n", "<|im_start|>system\n"]
        .iter()
        .find_map(|o| template.find(o).map(|i| (i, *o)))?;
    let start = at + open.len();
    let rest = &template[start..];
    let end = rest.find("<|im_end|>")?;
    let text = &rest[..end];
    // Only a literal: anything that looks like an expression is the user's system message.
    if text.is_empty() || text.contains(['\'', '"', '+', '{', '}']) {
        return None;
    }
    Some(text.replace("\\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn detects_families() {
        assert_eq!(
            detect_family(Some(SMOLLM2), &[]),
            Family::ChatMl {
                default_system: Some(
                    "You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()
                )
            }
        );
        assert_eq!(
            detect_family(Some(&SMOLLM2.replace("\\n", "\n")), &[]),
            Family::ChatMl {
                default_system: Some(
                    "You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()
                )
            }
        );
        assert_eq!(
            detect_family(Some("<|im_start|>{{ x }}<tool_call> enable_thinking"), &[]),
            Family::Qwen3(Qwen3Variant::Hybrid)
        );
        assert_eq!(
            detect_family(
                Some("<|im_start|><tool_call>{{- '<|im_start|>assistant\\n<think>\\n' }}"),
                &[]
            ),
            Family::Qwen3(Qwen3Variant::Thinking2507)
        );
        assert_eq!(
            detect_family(Some("<|im_start|><tool_call>"), &[]),
            Family::Qwen3(Qwen3Variant::Instruct2507)
        );
        // Qwen3-Coder's template: ChatML, `<tool_call>` blocks of XML `<function=NAME>` calls.
        assert_eq!(
            detect_family(
                Some("{{- '<|im_start|>' }}{{- '\\n<tool_call>\\n<function=' + tool_call.name }}"),
                &[]
            ),
            Family::Qwen3Coder
        );
        assert_eq!(
            detect_family(None, &["Llama4ForConditionalGeneration".into()]),
            Family::Llama4
        );
        assert_eq!(
            detect_family(Some("{{ bos_token }}[INST]"), &[]),
            Family::Template
        );
    }
}
