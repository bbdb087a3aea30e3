//! `final_answer`: the tool a model calls to end the run. Its `answer` argument carries the
//! task's output schema, so a structured answer is validated like any other arguments.

use serde_json::{Value, json};

use crate::{BoxFuture, CallContext, Tool, ToolOutput, ToolSpec};

/// The name of the tool that ends a run.
pub const FINAL_ANSWER: &str = "final_answer";

/// The `final_answer` tool: its result is the answer, as text and as the structured result.
pub struct FinalAnswer {
    spec: ToolSpec,
}

impl FinalAnswer {
    /// `schema`: the JSON Schema the answer must satisfy; plain text when `None`.
    pub fn new(schema: Option<Value>) -> Self {
        let answer = schema.unwrap_or_else(|| json!({"type": "string", "description": "The answer itself, as the task asks for it (a number, a word, a sentence), taken from the tool results."}));
        Self {
            spec: ToolSpec {
                name: FINAL_ANSWER.into(),
                description: "Give the final answer to the task and end the run.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"answer": answer},
                    "required": ["answer"]
                }),
            },
        }
    }
}

impl Tool for FinalAnswer {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn annotations(&self) -> crate::ToolAnnotations {
        crate::ToolAnnotations::READ_ONLY
    }

    fn call(&self, arguments: Value, _cx: CallContext) -> BoxFuture<'_, ToolOutput> {
        let answer = arguments.get("answer").cloned().unwrap_or(Value::Null);
        let content = match &answer {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Box::pin(async move {
            ToolOutput {
                content,
                structured: Some(answer),
                is_error: false,
                attachments: Vec::new(),
            }
        })
    }
}
