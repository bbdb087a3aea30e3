//! Resuming a run from its trace. Every step that the run goes on from ends with a
//! [`Checkpoint`] event (synced to disk): the messages the step added (or, after a
//! compaction, rewrote) and the run's counters. [`ResumePoint::from_trace`] folds them into the
//! conversation as it stood after the last complete step, and a run given that point
//! ([`Run::resume`](super::Run::resume)) renders the very same prompt for its next step as the
//! uninterrupted run would have: the same messages, tools and settings give the same text.

use agent_tools::builtin::FINAL_ANSWER;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::guard::LoopGuard;
use crate::events::{StepKind, Usage};
use crate::prompt::Message;

/// The run's state at the end of a step, as a `checkpoint` event records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The step that ended.
    pub step: u32,
    /// Why the next step runs.
    pub next: StepKind,
    /// Where the run's task is in the conversation (compaction keeps everything up to it).
    pub task_index: usize,
    /// The conversation changed from this message on: `messages` replace the ones from here
    /// (a step appends; a compaction rewrites what follows the task).
    pub from: usize,
    /// The messages from `from` on.
    pub messages: Vec<Message>,
    /// Reasoning tokens spent so far.
    pub thinking_used: usize,
    /// Tokens used so far.
    pub usage: Usage,
    /// The loop guard's counts.
    pub guard: LoopGuard,
}

/// Where a run's trace lets it go on: its settings, and its state after its last complete
/// step with the whole conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    /// The run's id.
    pub run_id: String,
    /// The task's name as the run recorded it (its file, or `<inline>`).
    pub task: String,
    /// How the run was set up ([`RunConfig::settings`](super::RunConfig::settings)), when its
    /// caller recorded it.
    pub settings: Option<Value>,
    /// The state after the last complete step; `messages` is the whole conversation (`from`
    /// is 0).
    pub checkpoint: Checkpoint,
    /// The whole of each result that was cut to fit the prompt, by id (from 1), for
    /// `read_result`.
    pub kept: Vec<String>,
    /// The last tool result's text, for thinking policies.
    pub last_tool_result: Option<String>,
}

/// Why a trace cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// A line is not an event (only the last line may be cut off, by a crash mid-write).
    #[error("line {line}: not a trace event: {message}")]
    BadLine {
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The trace has no `run_started` event.
    #[error("no run starts in it")]
    NoRun,
    /// The run never finished a step, so there is nothing to go on from.
    #[error("the run finished no step: run the task again instead")]
    NoCheckpoint,
}

/// What a trace says so far, folded event by event.
#[derive(Default)]
struct Fold {
    run_id: Option<String>,
    task: String,
    settings: Option<Value>,
    conversation: Vec<Message>,
    kept: Vec<String>,
    last_tool_result: Option<String>,
    /// The last checkpoint, with the kept results and last result as they were then.
    at: Option<(Checkpoint, usize, Option<String>)>,
}

impl ResumePoint {
    /// Reads a trace (JSON lines, as `agent run` writes them; earlier resumptions appended to
    /// it included) up to its last checkpoint.
    pub fn from_trace(text: &str) -> Result<ResumePoint, ResumeError> {
        let mut fold = Fold::default();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event: Value = match serde_json::from_str(line) {
                Ok(v) => v,
                // A crash while the last event was being written leaves it cut off.
                Err(_) if i + 1 == lines.len() => break,
                Err(e) => {
                    return Err(ResumeError::BadLine {
                        line: i + 1,
                        message: e.to_string(),
                    });
                }
            };
            fold.event(&event).map_err(|message| ResumeError::BadLine {
                line: i + 1,
                message,
            })?;
        }
        let run_id = fold.run_id.ok_or(ResumeError::NoRun)?;
        let (checkpoint, kept, last_tool_result) = fold.at.ok_or(ResumeError::NoCheckpoint)?;
        fold.kept.truncate(kept);
        Ok(ResumePoint {
            run_id,
            task: fold.task,
            settings: fold.settings,
            checkpoint,
            kept: fold.kept,
            last_tool_result,
        })
    }
}

impl Fold {
    fn event(&mut self, event: &Value) -> Result<(), String> {
        let text = |k: &str| event[k].as_str().map(str::to_owned);
        match event["event"].as_str() {
            Some("run_started") => {
                self.run_id = text("run_id");
                self.task = text("task").unwrap_or_default();
                if !event["settings"].is_null() {
                    self.settings = Some(event["settings"].clone());
                }
            }
            Some("tool_result") => {
                let content = text("content").unwrap_or_default();
                if !event["cut"].is_null() {
                    self.kept.push(content.clone());
                }
                let answer = event["name"] == FINAL_ANSWER && event["is_error"] == false;
                if !answer {
                    self.last_tool_result = Some(content);
                }
            }
            Some("checkpoint") => {
                let mut c: Checkpoint =
                    serde_json::from_value(event.clone()).map_err(|e| e.to_string())?;
                if c.from > self.conversation.len() {
                    return Err(format!(
                        "the checkpoint of step {} continues the conversation from message {}, but it has {}",
                        c.step,
                        c.from,
                        self.conversation.len()
                    ));
                }
                self.conversation.truncate(c.from);
                self.conversation.append(&mut c.messages);
                c.messages = self.conversation.clone();
                c.from = 0;
                self.at = Some((c, self.kept.len(), self.last_tool_result.clone()));
            }
            _ => {}
        }
        Ok(())
    }
}

/// A prompt's hash for the trace (FNV-1a, 64 bits, as 16 hex digits): stable across builds
/// and machines, unlike std's hasher.
pub fn prompt_hash(text: &str) -> String {
    format!("{:016x}", fnv1a(text.as_bytes()))
}

/// FNV-1a over `bytes`, 64 bits.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_its_published_values() {
        assert_eq!(
            (fnv1a(b""), fnv1a(b"a"), prompt_hash("foobar")),
            (
                0xcbf2_9ce4_8422_2325,
                0xaf63_dc4c_8601_ec8c,
                "85944171f73967e8".to_string()
            )
        );
    }

    #[test]
    fn a_cut_off_last_line_is_ignored_but_a_bad_line_before_it_is_not() {
        let start = r#"{"event":"run_started","run_id":"r1"}"#;
        assert!(matches!(
            ResumePoint::from_trace(&format!("{start}\n{{\"event\":\"chec")),
            Err(ResumeError::NoCheckpoint)
        ));
        assert_eq!(
            ResumePoint::from_trace(&format!("{start}\nnot json\n{start}"))
                .unwrap_err()
                .to_string(),
            "line 2: not a trace event: expected ident at line 1 column 2"
        );
        assert!(matches!(
            ResumePoint::from_trace(""),
            Err(ResumeError::NoRun)
        ));
    }
}
