//! What a step's output may be: the family's call format, the grammar over the step's tools,
//! and a structured answer written as text.

use agent_tools::builtin::FINAL_ANSWER;
use serde_json::Value;

use super::RunConfig;
use crate::backend::ModelInfo;
use crate::events::StepKind;
use crate::formats::{self, Format, GrammarError, GrammarOptions, Thinking, ToolChoice};
use crate::prompt::{Family, Qwen3Variant};

/// The tool-call format a family writes, and whether its prompt opens the thinking block.
pub fn call_format(family: &Family) -> (Format, bool) {
    match family {
        Family::Llama4 => (Format::Llama4Json, false),
        Family::Qwen3Coder => (Format::Qwen3Coder, false),
        Family::Qwen3(Qwen3Variant::Thinking2507) => (Format::Qwen3, true),
        _ => (Format::Qwen3, false),
    }
}

/// The grammar of one step: the task's tool choice over the enabled tools, except that on the
/// last step the only call left to make is the answer.
/// `thinking`: what the step's thinking plan lets come before the answer.
pub fn step_grammar(
    info: &ModelInfo,
    cfg: &RunConfig,
    kind: StepKind,
    specs: &[agent_tools::ToolSpec],
    thinking: Thinking,
) -> Result<String, GrammarError> {
    let format = cfg.format.unwrap_or(call_format(&info.family).0);
    let opts = GrammarOptions {
        format,
        thinking,
        special_tokens: info.special_tokens.clone(),
        max_string_chars: cfg.max_string_chars,
        max_calls: cfg.max_calls,
    };
    if kind == StepKind::Answer && specs.iter().any(|s| s.name == FINAL_ANSWER) {
        let choice = match cfg.tool_choice {
            ToolChoice::Auto => ToolChoice::Auto,
            ToolChoice::None => ToolChoice::None,
            ToolChoice::Required | ToolChoice::Tool(_) => ToolChoice::Tool(FINAL_ANSWER.into()),
        };
        let answer: Vec<_> = specs
            .iter()
            .filter(|s| s.name == FINAL_ANSWER)
            .cloned()
            .collect();
        return formats::lark(&opts, &answer, &choice);
    }
    formats::lark(&opts, specs, &cfg.tool_choice)
}

/// A structured answer given as plain text: JSON, possibly fenced, valid against `schema`.
pub(super) fn answer_from_text(text: &str, schema: &Value) -> Result<Value, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .map_or(t, |b| b.trim_end().trim_end_matches("```"))
        .trim();
    let v: Value = serde_json::from_str(t).map_err(|e| format!("not valid JSON ({e})"))?;
    agent_tools::validate_arguments(schema, &v).map_err(|e| e.to_string())?;
    Ok(v)
}
