//! What parsing a model turn yields (the parsers themselves are in [`crate::formats`]): thinking,
//! content and tool calls; a malformed call becomes a [`CallError`] that the loop sends back to
//! the model.

use serde::Serialize;

use crate::prompt::ToolCall;

/// A tool call the model wrote that cannot be made; the loop sends it back to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallError {
    /// What was wrong, for the model to read.
    pub message: String,
    /// The offending text, as the model wrote it.
    pub raw: String,
}

/// One model turn, parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Parsed {
    /// Text inside `<think>…</think>`, if the turn had any.
    pub reasoning: Option<String>,
    /// True when thinking never closed (the turn ended inside `<think>`).
    pub reasoning_truncated: bool,
    /// Text outside thinking and calls.
    pub content: String,
    /// The well-formed tool calls, in the order written.
    pub calls: Vec<ToolCall>,
    /// The malformed calls, in the order written.
    pub errors: Vec<CallError>,
}
