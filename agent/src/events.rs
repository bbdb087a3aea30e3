//! What a run reports: one [`Event`] per thing that happened, written to the trace (one JSON
//! object per line, flushed as it happens, so a killed run leaves a readable trace) and, with
//! `--json`, to stdout. Live progress goes through [`Observer::progress`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{Finish, GenStats};
use crate::thinking::Budget;

/// Why a step runs; each kind gets its own thinking budget (see `docs/TASK_FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model gave its final answer.
    Answer,
    /// `max_steps` ran out first.
    MaxSteps,
    /// The user interrupted the run.
    Cancelled,
    /// The run failed (the model backend, or a prompt that could not be rendered); the error
    /// event before the final one says why.
    Error,
    /// The model went on repeating a call or a reply after it was told (`loop_repeats`).
    Loop,
    /// The next prompt would not fit the context window, even compacted (or compaction is
    /// off).
    ContextFull,
    /// The run's `time_limit` ran out.
    TimeLimit,
}

impl StopReason {
    /// Why a run that took `steps` steps ended, in words (for people; empty for an answer).
    pub fn describe(self, steps: u32) -> String {
        match self {
            StopReason::Answer => String::new(),
            StopReason::MaxSteps => format!("no final answer after {steps} steps"),
            StopReason::Cancelled => format!("interrupted at step {steps}"),
            StopReason::Error => format!("the run failed at step {steps}"),
            StopReason::Loop => {
                format!("stopped at step {steps}: the model kept repeating itself")
            }
            StopReason::ContextFull => format!(
                "stopped at step {steps}: the conversation no longer fits the context window"
            ),
            StopReason::TimeLimit => format!("stopped at step {steps}: the time limit ran out"),
        }
    }
}

impl Usage {
    /// Adds one completion's counts: its statistics and its reasoning tokens.
    pub fn add(&mut self, stats: &GenStats, thinking_tokens: usize) {
        self.prompt_tokens += stats.prompt_tokens;
        self.cached_tokens += stats.cached_tokens.unwrap_or(0);
        self.generated_tokens += stats.completion_tokens;
        self.thinking_tokens += thinking_tokens;
    }
}

/// Tokens a run used in all (see [`Event::Final`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens of every completion (steps and summaries), cached ones included.
    pub prompt_tokens: usize,
    /// Of those, tokens a prefix cache supplied (as far as the backend could tell).
    pub cached_tokens: usize,
    /// Tokens generated, reasoning included.
    pub generated_tokens: usize,
    /// Of those, reasoning tokens.
    pub thinking_tokens: usize,
}

/// One thing that happened in a run. In a trace, each is a JSON object whose `event` field is
/// the variant's name in snake case (`{"event": "tool_call", "step": 2, ...}`); `step` counts
/// from 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run began: always the first event.
    RunStarted {
        /// The run's id (also the trace file's name).
        run_id: String,
        /// The instructions, as given.
        task: String,
        /// The model's name (catalogue name or path).
        model: String,
        /// The prompt and call format family the model was recognised as.
        family: String,
        /// The most steps the run may take.
        max_steps: u32,
        /// The names of the tools the model is offered.
        tools: Vec<String>,
        /// The model's context window in tokens, when known: no prompt may be longer.
        #[serde(skip_serializing_if = "Option::is_none")]
        context_window: Option<usize>,
        /// How the run was set up, as its caller recorded it for `agent resume`
        /// ([`RunConfig::settings`](crate::RunConfig::settings)).
        #[serde(skip_serializing_if = "Option::is_none")]
        settings: Option<Value>,
        /// The run continues an earlier one from the end of this step (`agent resume`).
        #[serde(skip_serializing_if = "Option::is_none")]
        resumed_after: Option<u32>,
    },
    /// A step (one model turn, then its tool calls) began.
    StepStarted {
        /// This step's number.
        step: u32,
        /// The most steps the run may take.
        max_steps: u32,
        /// Why the step runs, which picks its thinking budget.
        kind: StepKind,
        /// The budget the policy chose for this step.
        thinking_budget: Budget,
        /// False for models that do not think: the budget is recorded, not applied.
        thinking_applies: bool,
    },
    /// The model finished its turn.
    ModelOutput {
        /// The step the turn belongs to.
        step: u32,
        /// The raw completion, exactly as generated.
        text: String,
        /// The reasoning block's text, when the model reasoned.
        #[serde(skip_serializing_if = "Option::is_none")]
        reasoning: Option<String>,
        /// The completion without its reasoning block (the answer or the call).
        content: String,
        /// A hash of the exact prompt text (FNV-1a, 64 bits, hex): equal prompts, equal
        /// hashes, so a resumed run can be checked against an uninterrupted one.
        prompt_hash: String,
        /// Why generation stopped.
        finish: Finish,
        /// Token counts and timings of the completion.
        #[serde(flatten)]
        stats: GenStats,
        /// Decode speed of the completion.
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
    /// The model called a tool (a well-formed call; a malformed one is a
    /// [`Event::ParseError`]).
    ToolCall {
        /// The step whose turn made the call.
        step: u32,
        /// The call's id, which its progress and result events repeat.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments, as parsed from the call.
        arguments: Value,
    },
    /// A running call reported progress (MCP `notifications/progress`).
    ToolProgress {
        /// The step whose call is running.
        step: u32,
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
        /// Work done so far, in the tool's own unit.
        progress: f64,
        /// The work in all, when the tool knows it.
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<f64>,
        /// What the tool is doing, in its words.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A tool call ended; its result (or error) goes back to the model.
    ToolResult {
        /// The step whose call this is.
        step: u32,
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
        /// The result as text, as the model sees it.
        content: String,
        /// The call failed (bad arguments, the tool's own error, a timeout, a stopped guest).
        is_error: bool,
        /// The tool's structured (JSON) result, when it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        structured: Option<Value>,
        /// Images, audio and resources the tool returned, whole.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<agent_tools::Attachment>,
        /// The result was too long for the prompt, which holds only its head and tail
        /// (`content` here is the whole of it).
        #[serde(skip_serializing_if = "Option::is_none")]
        cut: Option<ResultCut>,
    },
    /// An MCP server started, failed, was restarted, changed its tools, asked our model for a
    /// completion, or asked for user input (declined).
    McpServer(agent_tools::mcp::McpEvent),
    /// A tool call was let through or refused: what decided, who was asked, what they said.
    Permission(crate::permissions::Decision),
    /// A hook ran (before or after a call, or at the end of the run).
    Hook(crate::permissions::HookRecord),
    /// A malformed tool call, sent back to the model as a tool error.
    ParseError {
        /// The step whose turn held the call.
        step: u32,
        /// What is wrong with it (what the model is told).
        message: String,
        /// The call's text as the model wrote it.
        raw: String,
    },
    /// The run ended: always the last event.
    Final {
        /// The answer (`null` when the run stopped without one).
        answer: Value,
        /// The answer as text (empty when there is none).
        text: String,
        /// Steps the run took.
        steps: u32,
        /// Why the run ended.
        stop: StopReason,
        /// Tokens the run used in all.
        usage: Usage,
        /// How long the run took, in seconds.
        elapsed_secs: f64,
    },
    /// A step ended: the run's state, which `agent resume` continues from. The trace is
    /// synced to disk after it.
    Checkpoint(crate::planner::resume::Checkpoint),
    /// The conversation was compacted before a step, to fit the context window.
    Compacted {
        /// The step whose prompt did not fit.
        step: u32,
        /// The prompt's tokens before.
        before_tokens: usize,
        /// The prompt's tokens after.
        after_tokens: usize,
        /// Messages replaced by the summary.
        summarized: usize,
        /// The summary's tokens (`None` when no summary could be written).
        #[serde(skip_serializing_if = "Option::is_none")]
        summary_tokens: Option<usize>,
        /// Tool results dropped (their text replaced by a note), oldest first.
        dropped_results: usize,
        /// The summary as the conversation now holds it.
        summary: String,
        /// Seconds the compaction took (the summary's generation, mostly).
        secs: f64,
    },
    /// Something went wrong that the model is not told about: the backend failed, a prompt
    /// could not be rendered, or a tool was left out of a step.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// A tool result the prompt holds only part of (see [`Event::ToolResult`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultCut {
    /// The id `read_result` reads it by (from 1 in each run).
    pub id: usize,
    /// The whole result's bytes.
    pub bytes: usize,
    /// The bytes the prompt holds: head, marker and tail.
    pub shown_bytes: usize,
    /// The file the whole result was written to, when the run keeps them on disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// Live state of the current step, for progress displays.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The current step's number (from 1).
    pub step: u32,
    /// The most steps the run may take.
    pub max_steps: u32,
    /// Tokens the model has written in this step so far.
    pub tokens: usize,
    /// Decode speed so far in this step.
    pub tokens_per_sec: f64,
    /// The step's prompt in tokens, when the backend counts them.
    pub prompt_tokens: Option<usize>,
    /// The model's context window in tokens, when known.
    pub context_window: Option<usize>,
    /// The tool being called, if any.
    pub tool: Option<String>,
    /// Its last progress report: `3/4 copying`.
    pub tool_progress: Option<String>,
}

/// Sees a run as it happens (attach with [`Run::observe`](crate::planner::Run::observe)); every
/// method has an empty default, so an observer implements only what it draws. Called on the
/// run's task: keep them quick.
pub trait Observer: Send {
    /// Each event, in order, as it happens.
    fn event(&mut self, _event: &Event) {}
    /// The current step's state, updated as the model writes (many times a second).
    fn progress(&mut self, _progress: &Progress) {}
    /// Reasoning text as the model streams it (the whole of it is also in `ModelOutput`).
    fn reasoning(&mut self, _step: u32, _text: &str) {}
}

/// A run's events as they happen ([`Run::events`](crate::planner::Run::events)), ending when
/// the run ends: `while let Some(e) = events.next().await`, or any `Stream` combinator
/// (`futures::StreamExt`, `tokio_stream::StreamExt`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use agent::events::Event;
/// use agent::replay::Replay;
/// use agent::Agent;
/// use tokio_util::sync::CancellationToken;
///
/// let model = Arc::new(Replay::chatml([
///     r#"<tool_call>{"name": "final_answer", "arguments": {"answer": "4"}}</tool_call>"#,
/// ]));
/// let agent = Agent::builder().backend(model).build().await?;
/// let mut run = agent.runner();
/// let mut events = run.events();
/// let task = agent.config("What is 2 + 2?");
/// let cancel = CancellationToken::new();
/// let draw = async {
///     let mut seen = Vec::new();
///     while let Some(event) = events.next().await {
///         if let Event::StepStarted { step, .. } = event {
///             seen.push(format!("step {step}"));
///         }
///     }
///     seen
/// };
/// let (outcome, seen) = tokio::join!(run.run(&task, &cancel), draw);
/// assert_eq!((outcome?.answer_text().as_deref(), seen), (Some("4"), vec!["step 1".to_string()]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Events(pub(crate) tokio::sync::mpsc::UnboundedReceiver<Event>);

impl Events {
    /// The next event; `None` once the run has ended and every event was read.
    pub async fn next(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// The next event if one is there already, without waiting (after a run: each event it
    /// sent, in order).
    pub fn try_next(&mut self) -> Option<Event> {
        self.0.try_recv().ok()
    }
}

impl futures_core::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.0.poll_recv(cx)
    }
}

/// One event as a JSON line. An event that cannot be serialised becomes an error event that
/// says so, so that a reader sees the gap; the error is returned too.
pub fn event_line(event: &Event) -> (String, Option<String>) {
    match serde_json::to_string(event) {
        Ok(line) => (line, None),
        Err(e) => {
            let why = format!("an event could not be written as JSON: {e}");
            let stand_in = Event::Error {
                message: why.clone(),
            };
            let line = serde_json::to_string(&stand_in).unwrap_or_else(|_| {
                r#"{"event":"error","message":"an event could not be written as JSON"}"#.into()
            });
            (line, Some(why))
        }
    }
}

/// The first thing that went wrong writing a trace, shared with whoever started the run.
#[derive(Debug, Clone, Default)]
pub struct TraceFailure(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl TraceFailure {
    fn set(&self, why: String) {
        if let Ok(mut f) = self.0.lock()
            && f.is_none()
        {
            *f = Some(why);
        }
    }

    /// What went wrong first, if anything did.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|f| f.clone())
    }
}

/// Appends each event to a JSON-lines file and flushes it at once.
pub struct TraceWriter {
    file: File,
    path: PathBuf,
    failure: TraceFailure,
}

impl TraceWriter {
    /// Opens `path` for appending (making its folder), or fails with the I/O error.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            failure: TraceFailure::default(),
        })
    }

    /// The trace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a failure to write this trace is reported (checked when the run ends).
    pub fn failure(&self) -> TraceFailure {
        self.failure.clone()
    }
}

impl Observer for TraceWriter {
    fn event(&mut self, event: &Event) {
        let (mut line, error) = event_line(event);
        if let Some(why) = error {
            self.failure.set(why);
        }
        line.push('\n');
        // One write per event and a flush: a crash loses at most the event being written. A
        // checkpoint reaches the disk before the run goes on: a run killed after it resumes
        // from it, even if the machine goes down.
        let checkpoint = matches!(event, Event::Checkpoint(_));
        if let Err(e) = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .and_then(|()| {
                if checkpoint {
                    self.file.sync_data()
                } else {
                    Ok(())
                }
            })
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write trace");
            self.failure
                .set(format!("cannot write {}: {e}", self.path.display()));
        }
    }
}

/// `--json`: every event as one line on stdout.
pub struct JsonLines<W: Write + Send>(pub W);

impl<W: Write + Send> Observer for JsonLines<W> {
    fn event(&mut self, event: &Event) {
        // A reader that went away (a closed pipe) is not the run's failure.
        let _ = writeln!(self.0, "{}", event_line(event).0);
        let _ = self.0.flush();
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

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn events_are_a_stream_that_ends_with_the_run() {
        use futures_core::Stream;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut events = super::Events(rx);
        let event = |m: &str| super::Event::Error { message: m.into() };
        tx.send(event("one")).unwrap();
        tx.send(event("two")).unwrap();
        drop(tx);
        let first = std::future::poll_fn(|cx| std::pin::Pin::new(&mut events).poll_next(cx)).await;
        assert_eq!(
            (first, events.next().await, events.next().await),
            (Some(event("one")), Some(event("two")), None)
        );
    }

    use super::*;

    /// A trace that cannot be written is reported, not only logged.
    #[test]
    fn a_failed_trace_write_is_reported() {
        let mut trace = TraceWriter::create(Path::new("/dev/full")).unwrap();
        let failure = trace.failure();
        assert_eq!(failure.get(), None);
        trace.event(&Event::Error {
            message: "x".into(),
        });
        assert_eq!(
            failure.get(),
            Some("cannot write /dev/full: No space left on device (os error 28)".into())
        );
    }
}
