//! Compaction: when a step's prompt would fill more of the context window than the run allows
//! (`compact_at`), the turns between the task and the most recent ones give way to a summary
//! the model writes itself; tool results are dropped, oldest first, when the summary cannot be
//! written or is not enough. The system prompt, the tools and the task are never touched, so
//! the prefix cache still holds them after a compaction; the summary is asked for right after
//! the turns it replaces, so its own prompt is a prefix the cache already holds.

use std::sync::Arc;

use agent_tools::ToolSpec;

use super::{Run, RunConfig, RunError};
use crate::backend::{Backend, BackendError, GenRequest};
use crate::events::Event;
use crate::formats::{self, GrammarOptions, ToolChoice};
use crate::prompt::{self, Message, RenderOptions, Role};
use crate::thinking::{self, Budget};

/// Asked of the model for a summary.
const SUMMARY_REQUEST: &str = "Pause the task. Summarize the conversation so far for yourself, in at most 150 words: what you have done, what you learned (names, numbers and facts you will need), and what is left to do. Write only the summary; call no tool.";

/// Opens the message that holds the summary in the compacted conversation.
const SUMMARY_HEADER: &str = "Earlier steps were removed to save space. Your summary of them:";

/// In place of earlier steps when no summary could be written.
const REMOVED_NOTE: &str = "Earlier steps were removed to save space.";

/// In place of a dropped tool result.
const DROPPED_NOTE: &str =
    "[This tool result was dropped to fit the context window; call the tool again if you need it.]";

/// The summary's own thinking budget: enough to order its thoughts, small beside the window.
const SUMMARY_THINKING: Budget = Budget::Tokens(256);

/// A step's prompt, rendered the same way for the step and for its compaction.
pub(super) struct StepPrompt<'a> {
    pub specs: &'a [ToolSpec],
    pub render: RenderOptions,
    pub prefill: &'static str,
}

/// How a run fits its prompts into the model's context window.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    /// The window's tokens.
    pub tokens: usize,
    /// Compact above this many prompt tokens; `None`: never.
    pub threshold: Option<usize>,
    /// The least room a step needs to write its turn.
    pub min_room: usize,
}

impl Window {
    pub fn new(cfg: &RunConfig, tokens: usize) -> Window {
        Window {
            tokens,
            threshold: cfg.compact_at.map(|f| (tokens as f64 * f) as usize),
            // A step's whole turn where the window is large; a sixteenth of a small one, so
            // that an 8k window is not half reserved.
            min_room: cfg.max_tokens_per_step.min(tokens / 16).max(1),
        }
    }

    /// A prompt of `tokens` leaves the step room to write.
    pub fn fits(&self, tokens: usize) -> bool {
        tokens.saturating_add(self.min_room) <= self.tokens
    }

    /// A prompt of `tokens` should be compacted first.
    pub fn wants_compaction(&self, tokens: usize) -> bool {
        self.threshold.is_some_and(|t| tokens > t) || !self.fits(tokens)
    }

    /// What a compacted prompt should come down to: under the threshold with room to spare.
    fn target(&self) -> usize {
        self.threshold.unwrap_or(self.tokens - self.min_room)
    }
}

/// What a compaction did, for its trace event.
struct Done {
    summarized: usize,
    summary: Option<(String, usize)>,
    dropped: usize,
}

/// Renders `messages` as `view` says and counts the prompt's tokens.
pub(super) async fn render_counted(
    backend: &Arc<dyn Backend>,
    view: &StepPrompt<'_>,
    messages: &[Message],
) -> Result<(String, Option<usize>), RunError> {
    let info = backend.info();
    let mut prompt = prompt::render(
        &info.family,
        &info.template,
        messages,
        view.specs,
        view.render,
    )?;
    prompt.push_str(view.prefill);
    let tokens = backend.count_tokens(&prompt).await?;
    Ok((prompt, tokens))
}

/// About what `m` adds to a prompt: its text and calls (the template's few tokens around it
/// not counted, nor reasoning, which templates drop from past turns).
async fn message_tokens(backend: &Arc<dyn Backend>, m: &Message) -> Result<usize, RunError> {
    let mut n = backend.count_tokens(&m.content).await?.unwrap_or(0);
    if !m.tool_calls.is_empty() {
        let calls = serde_json::to_string(&m.tool_calls).unwrap_or_default();
        n += backend.count_tokens(&calls).await?.unwrap_or(0);
    }
    Ok(n + 4)
}

impl Run<'_> {
    /// Compacts `messages` (whose prompt has `before` tokens) towards `window`'s target and
    /// records it; the caller renders again and checks that the step fits.
    pub(super) async fn compact(
        &mut self,
        cfg: &RunConfig,
        step: u32,
        view: &StepPrompt<'_>,
        window: &Window,
        before: usize,
        messages: &mut Vec<Message>,
    ) -> Result<(), RunError> {
        let started = std::time::Instant::now();
        let backend = self.agent.backend().clone();
        let task = self.task_index;
        // The recent turns kept whole: as many, from the end, as a third of the target holds,
        // and at least the last (whose results are dropped below if it alone is too big). A
        // third leaves room for a few steps before the next compaction.
        let keep = window.target() / 3;
        let mut split = messages.len();
        let mut kept = 0;
        for i in (task + 1..messages.len()).rev() {
            kept += message_tokens(&backend, &messages[i]).await?;
            if messages[i].role == Role::Assistant {
                if kept > keep && split != messages.len() {
                    break;
                }
                split = i;
                if kept > keep {
                    break;
                }
            }
        }
        let mut done = Done {
            summarized: 0,
            summary: None,
            dropped: 0,
        };
        if split > task + 1 && split < messages.len() {
            let summary = self
                .summarize(cfg, view, window, &messages[..split])
                .await?;
            let note = match &summary {
                Some((text, _)) => format!("{SUMMARY_HEADER}\n\n{text}"),
                None => REMOVED_NOTE.to_string(),
            };
            done.summarized = split - task - 1;
            done.summary = summary;
            messages.splice(task + 1..split, [Message::user(note)]);
        }
        // Still too long: drop tool results, oldest first, until the prompt is under target.
        let mut tokens = render_counted(&backend, view, messages)
            .await?
            .1
            .unwrap_or(0);
        let mut at = task + 1;
        while tokens > window.target() {
            let Some(i) = (at..messages.len()).find(|&i| is_droppable(&messages[i])) else {
                break;
            };
            messages[i].content = DROPPED_NOTE.to_string();
            done.dropped += 1;
            at = i + 1;
            tokens = render_counted(&backend, view, messages)
                .await?
                .1
                .unwrap_or(0);
        }
        // The results those calls gave are gone from the conversation: calling again is no
        // longer a repeat.
        self.guard.forget_calls();
        // What follows the task changed: the next checkpoint holds it anew.
        self.saved = self.saved.min(task + 1);
        let (summary, summary_tokens) = match done.summary {
            Some((text, n)) => (text, Some(n)),
            None => (String::new(), None),
        };
        self.emit(Event::Compacted {
            step,
            before_tokens: before,
            after_tokens: tokens,
            summarized: done.summarized,
            summary_tokens,
            dropped_results: done.dropped,
            summary,
            secs: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// The model's summary of `earlier` (the conversation up to the turns kept), and its
    /// tokens; `None` when its prompt cannot be made to fit or it wrote nothing.
    async fn summarize(
        &mut self,
        cfg: &RunConfig,
        view: &StepPrompt<'_>,
        window: &Window,
        earlier: &[Message],
    ) -> Result<Option<(String, usize)>, RunError> {
        let backend = self.agent.backend().clone();
        let info = backend.info();
        // Room for the 150 words asked for (about 200 tokens) on an 8k window, more on larger
        // ones: a small model otherwise rambles on to the cap.
        let max_tokens = (window.tokens / 32).clamp(128, 1024);
        let think = thinking::plan(&info.family, SUMMARY_THINKING);
        let room = max_tokens + think.limit.cap.unwrap_or(0) + 64;
        let summary_view = StepPrompt {
            specs: view.specs,
            render: think.render,
            prefill: think.prefill,
        };
        let mut msgs = earlier.to_vec();
        msgs.push(Message::user(SUMMARY_REQUEST));
        let task = self.task_index;
        // The summary's own prompt must fit: drop old tool results from it, oldest first.
        let mut at = task + 1;
        let prompt = loop {
            let (prompt, tokens) = render_counted(&backend, &summary_view, &msgs).await?;
            if tokens.is_none_or(|n| n + room <= window.tokens) {
                break prompt;
            }
            match (at..msgs.len()).find(|&i| is_droppable(&msgs[i])) {
                Some(i) => {
                    msgs[i].content = DROPPED_NOTE.to_string();
                    at = i + 1;
                }
                None => return Ok(None),
            }
        };
        let format = cfg.format.unwrap_or(super::call_format(&info.family).0);
        // Free text only: with the tools in view (the prompt's prefix is the step's), a small
        // model would otherwise call one.
        let grammar = if cfg.constrain_calls {
            let opts = GrammarOptions {
                format,
                thinking: think.grammar,
                special_tokens: info.special_tokens.clone(),
                max_string_chars: None,
                max_calls: Some(1),
            };
            Some(formats::lark(&opts, view.specs, &ToolChoice::None)?)
        } else {
            None
        };
        let req = GenRequest {
            prompt,
            max_tokens,
            sampling: cfg.sampling,
            stop: prompt::stop_strings(&info.family),
            grammar,
            think: think.limit,
        };
        let out = match backend.generate(req, &mut |_| {}).await {
            Ok(out) => out,
            // Not fatal: the conversation is cut without a summary instead.
            Err(BackendError::Model(m)) => {
                self.emit(Event::Error {
                    message: format!("the summary for compaction failed: {m}"),
                });
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        self.usage.add(&out.stats, out.thinking.tokens);
        let text = formats::parse(format, &out.text, think.limit.opened).content;
        let text = super::guard::without_repeats(&text).trim().to_string();
        if text.is_empty() {
            return Ok(None);
        }
        let tokens = backend.count_tokens(&text).await?.unwrap_or(0);
        Ok(Some((text, tokens)))
    }
}

/// A tool result not dropped yet.
fn is_droppable(m: &Message) -> bool {
    m.role == Role::Tool && m.content != DROPPED_NOTE
}
