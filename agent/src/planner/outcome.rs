//! How a run ended, or why it failed.

use serde_json::Value;

use crate::backend::BackendError;
use crate::events::StopReason;
use crate::formats::GrammarError;
use crate::prompt::{Message, RenderError};

/// How a run ended: its answer, if any, and the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The answer (a JSON string for text answers); `None` when the run stopped without one.
    pub answer: Option<Value>,
    /// How many steps (model turns) the run took.
    pub steps: u32,
    /// Why the run stopped.
    pub stop: StopReason,
    /// The whole conversation, for library users who continue it.
    pub messages: Vec<Message>,
}

impl Outcome {
    /// The answer as the CLI prints it: text as is, JSON pretty-printed.
    pub fn answer_text(&self) -> Option<String> {
        self.answer.as_ref().map(|a| match a {
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
        })
    }
}

/// Why a run failed, or why its [`Outcome`] holds no answer of the kind asked for.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The model backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A step's prompt could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A step's call grammar could not be written (e.g. `tool_choice` names a tool that is not
    /// enabled).
    #[error(transparent)]
    Grammar(#[from] GrammarError),
    /// A run that had to answer ([`Agent::run_typed`], a sub-agent) stopped without one.
    #[error("the run stopped without an answer ({stop:?} after {steps} steps)")]
    NoAnswer {
        /// Why the run stopped.
        stop: StopReason,
        /// How many steps the run took.
        steps: u32,
    },
    /// The answer passed the output schema but not the Rust type's own checks.
    #[error("the answer does not fit its type: {0}")]
    AnswerType(#[source] serde_json::Error),
}
