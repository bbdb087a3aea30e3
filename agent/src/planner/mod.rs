//! The planner loop. A step renders the conversation, generates (streamed), parses tool calls,
//! dispatches them and appends the results; the run ends on a final answer, at `max_steps`, or
//! when cancelled (the trace is kept either way).

use std::sync::Arc;
use std::time::Instant;

use agent_tools::ToolRegistry;
use agent_tools::builtin::{FINAL_ANSWER, FinalAnswer};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{BackendError, Finish, GenRequest, ModelInfo};
use crate::events::{Event, Events, Observer, Progress, StepKind, StopReason};
use crate::formats::ToolChoice;
use crate::formats::{self, Format, GrammarError, GrammarOptions, Thinking};
use crate::prompt::{self, Family, Message, Qwen3Variant, RenderError, Role};
use crate::thinking::{self, StepContext};

mod agent;
mod calls;
mod chat;
mod config;
mod handoff;
pub mod results;

pub use agent::Agent;
pub(crate) use agent::Origin;
pub use chat::Chat;
pub use config::{DEFAULT_MAX_TOKENS, RunConfig, new_run_id};

/// The agent's standing instructions. Short on purpose: small models follow short prompts.
pub const SYSTEM_PROMPT: &str = "You are a helpful assistant that completes the user's task. Use the tools when they help; call one tool at a time and wait for its result. When you know the answer, call final_answer with it.";

/// Told to the model when it repeats a call it already made.
const REPEAT_NOTE: &str =
    "You already made that call and have its result above. Give your final answer now.";

/// Told to the model before its last allowed step.
const LAST_STEP_NOTE: &str = "You have one step left. Give your final answer now.";

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

/// One run of an [`Agent`]: its observers, and what it has done so far. Made by
/// [`Agent::runner`]; [`Run::run`] uses it up.
pub struct Run<'a> {
    agent: Agent,
    /// The agent's tools with this run's `final_answer` (shaped by its output schema).
    tools: ToolRegistry,
    /// The conversation this run continues ([`Run::history`]); empty for a new one.
    history: Vec<Message>,
    observers: Vec<Box<dyn Observer + 'a>>,
    /// Calls made so far (name and arguments), to notice a model going round in circles.
    seen_calls: std::collections::HashSet<String>,
    /// Reasoning tokens spent so far in the run.
    thinking_used: usize,
    /// The last tool result's content, for thinking policies.
    last_tool_result: Option<String>,
    /// Events from outside the loop (MCP servers starting, failing, sampling), merged into
    /// the run's events as they come.
    side_events: Option<mpsc::UnboundedReceiver<Event>>,
    /// Whole results that were cut to fit the prompt, for `read_result`.
    kept: results::Kept,
}

/// Forwards a run's events to [`Run::events`]'s channel.
struct Forward(mpsc::UnboundedSender<Event>);

impl Observer for Forward {
    fn event(&mut self, event: &Event) {
        // A reader that went away misses the rest; the run goes on.
        let _ = self.0.send(event.clone());
    }
}

enum StepEnd {
    Continue(StepKind),
    Done(Value),
}

impl<'a> Run<'a> {
    /// Merges events sent on `rx` into the run's (see [`Run::side_events`]).
    pub fn side_events(&mut self, rx: mpsc::UnboundedReceiver<Event>) {
        self.side_events = Some(rx);
    }

    fn drain_side_events(&mut self) {
        let mut pending = Vec::new();
        if let Some(rx) = &mut self.side_events {
            while let Ok(e) = rx.try_recv() {
                pending.push(e);
            }
        }
        for e in pending {
            self.emit(e);
        }
    }

    /// Adds an observer: it is told every event of the run, as it happens.
    pub fn observe(&mut self, observer: Box<dyn Observer + 'a>) {
        self.observers.push(observer);
    }

    /// The run's events as they happen, on a channel that closes when the run ends: read it
    /// while [`Run::run`] goes (`tokio::join!`, or a spawned task) to draw your own progress.
    pub fn events(&mut self) -> Events {
        let (tx, rx) = mpsc::unbounded_channel();
        self.observe(Box::new(Forward(tx)));
        Events(rx)
    }

    /// Continues `messages` (an earlier [`Outcome::messages`]) instead of starting a new
    /// conversation: the run's instructions are the next user message. See [`Chat`].
    pub fn history(&mut self, messages: Vec<Message>) {
        self.history = messages;
    }

    fn emit(&mut self, event: Event) {
        for o in &mut self.observers {
            o.event(&event);
        }
    }

    /// Runs the task to its end. Cancelling `cancel` stops at once (in-flight generation and
    /// tool calls are dropped) and returns an outcome with [`StopReason::Cancelled`].
    pub async fn run(
        mut self,
        cfg: &RunConfig,
        cancel: &CancellationToken,
    ) -> Result<Outcome, RunError> {
        // The agent's MCP server events join this run's, unless the run was given its own;
        // they go back to the agent for its next run.
        let lent = if self.side_events.is_none() {
            self.side_events = self.agent.take_server_events();
            self.side_events.is_some()
        } else {
            false
        };
        let outcome = self.run_task(cfg, cancel).await;
        if lent && let Some(rx) = self.side_events.take() {
            self.agent.return_server_events(rx);
        }
        outcome
    }

    async fn run_task(
        &mut self,
        cfg: &RunConfig,
        cancel: &CancellationToken,
    ) -> Result<Outcome, RunError> {
        // `final_answer` is how a run ends with a checked answer: always there, shaped by
        // this run's output schema.
        self.tools = self.agent.tools().clone();
        self.tools
            .replace(Arc::new(FinalAnswer::new(cfg.output_schema.clone())));
        let info = self.agent.backend().info().clone();
        self.emit(Event::RunStarted {
            run_id: cfg.run_id.clone(),
            task: cfg.task_name.clone(),
            model: info.name.clone(),
            family: info.family.name().into(),
            max_steps: cfg.max_steps,
            tools: self.tools.names(),
            context_window: info.max_context,
        });
        let mut messages = std::mem::take(&mut self.history);
        if messages.is_empty() {
            messages.push(Message::system(SYSTEM_PROMPT));
        }
        messages.push(Message::user(cfg.instructions.clone()));
        let mut kind = StepKind::Plan;
        for step in 1..=cfg.max_steps {
            if step == cfg.max_steps && step > 1 && kind != StepKind::Answer {
                kind = StepKind::Answer;
                messages.push(Message::user(LAST_STEP_NOTE));
            }
            let end = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                r = self.step(cfg, step, kind, &mut messages) => Some(r),
            };
            // A failed step still ends the trace: the error, then the final event.
            let end = match end {
                Some(Err(e)) => {
                    self.emit(Event::Error {
                        message: e.to_string(),
                    });
                    self.finish(None, step, StopReason::Error, messages);
                    return Err(e);
                }
                Some(Ok(end)) => Some(end),
                None => None,
            };
            match end {
                None => return Ok(self.finish(None, step, StopReason::Cancelled, messages)),
                Some(StepEnd::Done(answer)) => {
                    return Ok(self.finish(Some(answer), step, StopReason::Answer, messages));
                }
                Some(StepEnd::Continue(next)) => kind = next,
            }
        }
        Ok(self.finish(None, cfg.max_steps, StopReason::MaxSteps, messages))
    }

    fn finish(
        &mut self,
        answer: Option<Value>,
        steps: u32,
        stop: StopReason,
        messages: Vec<Message>,
    ) -> Outcome {
        self.drain_side_events();
        let outcome = Outcome {
            answer,
            steps,
            stop,
            messages,
        };
        let text = outcome.answer_text().unwrap_or_default();
        self.emit(Event::Final {
            answer: outcome.answer.clone().unwrap_or(Value::Null),
            text,
            steps,
            stop,
        });
        outcome
    }

    async fn step(
        &mut self,
        cfg: &RunConfig,
        step: u32,
        kind: StepKind,
        messages: &mut Vec<Message>,
    ) -> Result<StepEnd, RunError> {
        // Its own handle: `info` stays borrowed while the step emits events.
        let backend = self.agent.backend().clone();
        let info = backend.info();
        let cx = StepContext {
            kind,
            step,
            thinking_used: self.thinking_used,
            last_tool_result: self.last_tool_result.as_deref(),
        };
        let budget = cfg.thinking.budget(&cx);
        self.drain_side_events();
        let think = thinking::plan(&info.family, budget);
        self.emit(Event::StepStarted {
            step,
            max_steps: cfg.max_steps,
            kind,
            thinking_budget: budget,
            thinking_applies: think.applies,
        });
        let format = cfg.format.unwrap_or(call_format(&info.family).0);
        let mut specs = self.tools.specs();
        // A tool whose schema cannot be compiled (an MCP server's odd schema) is left out of
        // the step, and said so, rather than ending the run.
        let grammar = loop {
            if !cfg.constrain_calls {
                break None;
            }
            match step_grammar(info, cfg, kind, &specs, think.grammar) {
                Ok(g) => break Some(g),
                Err(GrammarError::BadSchema {
                    tool,
                    path,
                    message,
                }) if specs.iter().any(|s| s.name == tool) && tool != FINAL_ANSWER => {
                    specs.retain(|s| s.name != tool);
                    self.emit(Event::Error { message: format!("tool `{tool}` is left out of step {step}: its schema is not usable at {path}: {message}") });
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut prompt =
            prompt::render(&info.family, &info.template, messages, &specs, think.render)?;
        prompt.push_str(think.prefill);
        // What the step's prompt takes of the window, before it is sent.
        let prompt_tokens = backend.count_tokens(&prompt).await?;
        let req = GenRequest {
            prompt,
            max_tokens: cfg.max_tokens_per_step,
            sampling: cfg.sampling,
            stop: prompt::stop_strings(&info.family),
            grammar,
            think: think.limit,
        };

        let mut progress = Progress {
            step,
            max_steps: cfg.max_steps,
            prompt_tokens,
            context_window: info.max_context,
            ..Progress::default()
        };
        for o in &mut self.observers {
            o.progress(&progress);
        }
        let started = Instant::now();
        let observers = &mut self.observers;
        // The output is parsed once, as it streams: reasoning reaches observers at once
        // (`--show-thinking`), and the calls are read from the same events.
        let mut live = formats::StreamParser::with_tools(format, think.limit.opened, &specs);
        let mut seen = Vec::new();
        let mut on_text = |chunk: &str| {
            progress.tokens += 1;
            let secs = started.elapsed().as_secs_f64();
            progress.tokens_per_sec = if secs > 0.0 {
                progress.tokens as f64 / secs
            } else {
                0.0
            };
            let events = live.push(chunk);
            let reasoning: String = events
                .iter()
                .filter_map(|e| match e {
                    formats::Event::Reasoning(r) => Some(r.as_str()),
                    _ => None,
                })
                .collect();
            seen.extend(events);
            for o in observers.iter_mut() {
                o.progress(&progress);
                if !reasoning.is_empty() {
                    o.reasoning(step, &reasoning);
                }
            }
        };
        let out = backend.generate(req, &mut on_text).await?;
        let parsed = formats::collect(live, seen);

        self.thinking_used += out.thinking.tokens;
        self.emit(Event::ModelOutput {
            step,
            text: out.text.clone(),
            reasoning: parsed.reasoning.clone(),
            content: parsed.content.clone(),
            finish: out.finish,
            stats: out.stats,
            tokens_per_sec: out.stats.decode_tokens_per_sec(),
            thinking_tokens: out.thinking.tokens,
            thinking_capped: out.thinking.capped,
            reasoning_truncated: parsed.reasoning_truncated,
        });
        let mut assistant = Message::assistant(parsed.content.clone());
        assistant.reasoning = parsed.reasoning.clone();
        assistant.tool_calls = parsed.calls.clone();
        // Keep a malformed call's text in the turn, so the model sees what it wrote.
        for e in &parsed.errors {
            if !assistant.content.is_empty() {
                assistant.content.push('\n');
            }
            assistant.content.push_str(&e.raw);
        }
        messages.push(assistant);

        let mut next = StepKind::Act;
        // A turn that only repeats earlier calls has nothing new to learn: the results are in
        // the conversation already, so the next step is for the answer.
        let mut fresh = false;
        for c in &parsed.calls {
            fresh |= self.seen_calls.insert(format!("{}{}", c.name, c.arguments));
        }
        let repeats = !fresh
            && !parsed.calls.is_empty()
            && parsed.calls.iter().all(|c| c.name != FINAL_ANSWER);
        for e in &parsed.errors {
            self.emit(Event::ParseError {
                step,
                message: e.message.clone(),
                raw: e.raw.clone(),
            });
            messages.push(Message::tool(format!(
                "Error: {}. Write the call as {}",
                e.message,
                format.call_syntax()
            )));
            next = StepKind::Recover;
        }
        for (k, call) in parsed.calls.iter().enumerate() {
            if let Some(answer) = self
                .call_tool(cfg, step, k, call, &mut progress, messages)
                .await
            {
                return Ok(StepEnd::Done(answer));
            }
            if messages
                .last()
                .is_some_and(|m| m.role == Role::Tool && m.content.starts_with("Error:"))
            {
                next = StepKind::Recover;
            }
        }
        if repeats && next == StepKind::Act {
            messages.push(Message::user(REPEAT_NOTE));
            return Ok(StepEnd::Continue(StepKind::Answer));
        }
        if !parsed.calls.is_empty() || !parsed.errors.is_empty() {
            return Ok(StepEnd::Continue(next));
        }

        // No call: the reply itself is the answer, if it is one.
        if parsed.content.is_empty() {
            let why = if out.finish == Finish::Length {
                "Your reply was cut off before it gave an answer."
            } else {
                "Your reply was empty."
            };
            messages.push(Message::user(format!(
                "{why} Continue the task and give your final answer."
            )));
            return Ok(StepEnd::Continue(StepKind::Recover));
        }
        match &cfg.output_schema {
            None => Ok(StepEnd::Done(Value::String(parsed.content))),
            Some(schema) => match answer_from_text(&parsed.content, schema) {
                Ok(v) => Ok(StepEnd::Done(v)),
                Err(why) => {
                    messages.push(Message::user(format!("Your answer must be JSON matching the output schema: {why}. Call final_answer with it.")));
                    Ok(StepEnd::Continue(StepKind::Recover))
                }
            },
        }
    }
}

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
fn answer_from_text(text: &str, schema: &Value) -> Result<Value, String> {
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
