//! What a run reports: one [`Event`] per thing that happened, written to the trace (one JSON
//! object per line, flushed as it happens, so a killed run leaves a readable trace) and, with
//! `--json`, to stdout. Live progress goes through [`Observer::progress`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::backend::{Finish, GenStats};
use crate::task::Budget;

/// Why a step runs; each kind gets its own thinking budget (see `docs/TASK_FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The first step: read the task and plan.
    Plan,
    /// After tool results.
    Act,
    /// After a tool error or a malformed call.
    Recover,
    /// The last allowed step: the model must answer now.
    Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model gave its final answer.
    Answer,
    /// `max_steps` ran out first.
    MaxSteps,
    /// The user interrupted the run.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted { run_id: String, task: String, model: String, family: String, max_steps: u32, tools: Vec<String> },
    StepStarted {
        step: u32,
        max_steps: u32,
        kind: StepKind,
        /// The budget the policy chose for this step.
        thinking_budget: Budget,
        /// False for models that do not think: the budget is recorded, not applied.
        thinking_applies: bool,
    },
    ModelOutput {
        step: u32,
        /// The raw completion, exactly as generated.
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reasoning: Option<String>,
        content: String,
        finish: Finish,
        #[serde(flatten)]
        stats: GenStats,
        tokens_per_sec: f64,
        /// Reasoning tokens (the forced early-stop text not counted).
        thinking_tokens: usize,
        /// The budget ended the reasoning.
        thinking_capped: bool,
        /// The turn ended inside its reasoning (the token limit came first): `reasoning` is
        /// a truncated thought.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        reasoning_truncated: bool,
    },
    ToolCall { step: u32, id: String, name: String, arguments: Value },
    /// A running call reported progress (MCP `notifications/progress`).
    ToolProgress {
        step: u32,
        id: String,
        name: String,
        progress: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    ToolResult {
        step: u32,
        id: String,
        name: String,
        content: String,
        is_error: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        structured: Option<Value>,
        /// Images, audio and resources the tool returned, whole.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<agent_tools::Attachment>,
    },
    /// An MCP server started, failed, was restarted, changed its tools, asked our model for a
    /// completion, or asked for user input (declined).
    McpServer(agent_tools::mcp::McpEvent),
    /// A malformed tool call, sent back to the model as a tool error.
    ParseError { step: u32, message: String, raw: String },
    Final { answer: Value, text: String, steps: u32, stop: StopReason },
    Error { message: String },
}

/// Live state of the current step, for progress displays.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub step: u32,
    pub max_steps: u32,
    pub tokens: usize,
    pub tokens_per_sec: f64,
    /// The tool being called, if any.
    pub tool: Option<String>,
    /// Its last progress report: `3/4 copying`.
    pub tool_progress: Option<String>,
}

pub trait Observer: Send {
    fn event(&mut self, _event: &Event) {}
    fn progress(&mut self, _progress: &Progress) {}
    /// Reasoning text as the model streams it (the whole of it is also in `ModelOutput`).
    fn reasoning(&mut self, _step: u32, _text: &str) {}
}

/// Appends each event to a JSON-lines file and flushes it at once.
pub struct TraceWriter {
    file: File,
    path: PathBuf,
}

impl TraceWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Observer for TraceWriter {
    fn event(&mut self, event: &Event) {
        if let Ok(mut line) = serde_json::to_string(event) {
            line.push('\n');
            // One write per event and a flush: a crash loses at most the event being written.
            if let Err(e) = self.file.write_all(line.as_bytes()).and_then(|()| self.file.flush()) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot write trace");
            }
        }
    }
}

/// `--json`: every event as one line on stdout.
pub struct JsonLines<W: Write + Send>(pub W);

impl<W: Write + Send> Observer for JsonLines<W> {
    fn event(&mut self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(self.0, "{line}");
            let _ = self.0.flush();
        }
    }
}

/// Collects events in memory (tests, and library users who want the whole run).
#[derive(Default)]
pub struct Collect(pub std::sync::Arc<std::sync::Mutex<Vec<Event>>>);

impl Observer for Collect {
    fn event(&mut self, event: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}
