//! The planner loop. A step renders the conversation, generates (streamed), parses tool calls,
//! dispatches them and appends the results; the run ends on a final answer, at `max_steps`, or
//! when cancelled (the trace is kept either way).

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_tools::ToolRegistry;
use agent_tools::builtin::{FINAL_ANSWER, FinalAnswer};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{Finish, GenRequest};
use crate::events::{Event, Events, Observer, Progress, StepKind, StopReason, Usage};
use crate::formats::{self, GrammarError};
use crate::permissions::{Approver, Gate};

use crate::prompt::{self, Message, Role};
use crate::thinking::{self, StepContext};

mod agent;
mod calls;
mod chat;
mod compact;
mod config;
pub mod guard;
mod handoff;
mod outcome;
pub mod results;
pub mod resume;
mod step_grammar;
mod stop;

use compact::{StepPrompt, Window};
use guard::{LoopGuard, Verdict};
use resume::{Checkpoint, ResumePoint};

pub use agent::Agent;
pub(crate) use agent::Origin;
pub use chat::Chat;
pub use config::{DEFAULT_MAX_TOKENS, RunConfig, new_run_id};
pub use outcome::{Outcome, RunError};
use step_grammar::answer_from_text;
pub use step_grammar::{call_format, step_grammar};

/// The agent's standing instructions. Short on purpose: small models follow short prompts.
pub const SYSTEM_PROMPT: &str = "You are a helpful assistant that completes the user's task. Use the tools when they help; call one tool at a time and wait for its result. When you know the answer, call final_answer with it.";

/// [`SYSTEM_PROMPT`] for runs whose turns may make several calls (`max_calls` above 1).
pub const SYSTEM_PROMPT_PARALLEL: &str = "You are a helpful assistant that completes the user's task. Use the tools when they help; calls that do not depend on each other can go in one turn, and their results come back together. When you know the answer, call final_answer with it.";

/// Told to the model before its last allowed step.
const LAST_STEP_NOTE: &str = "You have one step left. Give your final answer now.";

/// One run of an [`Agent`]: its observers, and what it has done so far. Made by
/// [`Agent::runner`]; [`Run::run`] uses it up.
pub struct Run<'a> {
    agent: Agent,
    /// The agent's tools with this run's `final_answer` (shaped by its output schema).
    tools: ToolRegistry,
    /// The conversation this run continues ([`Run::history`]); empty for a new one.
    history: Vec<Message>,
    observers: Vec<Box<dyn Observer + 'a>>,
    /// Calls and replies so far, to notice a model going round in circles.
    guard: LoopGuard,
    /// Reasoning tokens spent so far in the run.
    thinking_used: usize,
    /// Tokens of every completion so far (steps and summaries).
    usage: Usage,
    /// Where the run's task is in the conversation: compaction keeps everything up to it.
    task_index: usize,
    /// How much of the conversation the last checkpoint holds as it still is.
    saved: usize,
    /// The point the run goes on from, when it resumes an earlier one.
    resume: Option<ResumePoint>,
    /// The last tool result's content, for thinking policies.
    last_tool_result: Option<String>,
    /// Events from outside the loop (MCP servers starting, failing, sampling), merged into
    /// the run's events as they come.
    side_events: Option<mpsc::UnboundedReceiver<Event>>,
    /// Whole results that were cut to fit the prompt, for `read_result`.
    kept: results::Kept,
    /// The run's permissions and hooks (made when it starts).
    gate: Option<Arc<Gate>>,
    /// Who is asked in this run, instead of the agent's approver ([`Run::approver`]).
    approver: Option<Arc<dyn Approver>>,
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
    Stop(StopReason),
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

    /// Asks `approver` about this run's calls instead of the agent's approver (an MCP
    /// server asks the client whose task it is).
    pub fn approver(&mut self, approver: Arc<dyn Approver>) {
        self.approver = Some(approver);
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

    /// Goes on from `point` (an interrupted or step-limited run's trace, see [`resume`])
    /// instead of starting: the conversation and counters as they were after its last
    /// complete step, the next step numbered on from it. The run's instructions are not used
    /// (the conversation holds the task); `max_steps` counts the earlier steps too.
    pub fn resume(&mut self, point: ResumePoint) {
        self.resume = Some(point);
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
        self.open_gate(cfg);
        let info = self.agent.backend().info().clone();
        let resumed_after = self.resume.as_ref().map(|p| p.checkpoint.step);
        self.emit(Event::RunStarted {
            run_id: cfg.run_id.clone(),
            task: cfg.task_name.clone(),
            model: info.name.clone(),
            family: info.family.name().into(),
            max_steps: cfg.max_steps,
            tools: self.tools.names(),
            context_window: info.max_context,
            settings: cfg.settings.clone(),
            resumed_after,
        });
        let started = Instant::now();
        let (mut messages, first, mut kind) = match self.resume.take() {
            Some(point) => self.restore(cfg, point),
            None => {
                let mut messages = std::mem::take(&mut self.history);
                if messages.is_empty() {
                    messages.push(Message::system(if cfg.max_calls.is_none_or(|n| n <= 1) {
                        SYSTEM_PROMPT
                    } else {
                        SYSTEM_PROMPT_PARALLEL
                    }));
                }
                messages.push(Message::user(cfg.instructions.clone()));
                self.task_index = messages.len() - 1;
                (messages, 1, StepKind::Plan)
            }
        };
        let time_up = async {
            match cfg.time_limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(time_up);
        for step in first..=cfg.max_steps {
            if step == cfg.max_steps && step > 1 && kind != StepKind::Answer {
                kind = StepKind::Answer;
                messages.push(Message::user(LAST_STEP_NOTE));
            }
            let end = tokio::select! {
                biased;
                () = cancel.cancelled() => Ok(StepEnd::Stop(StopReason::Cancelled)),
                () = &mut time_up => Ok(StepEnd::Stop(StopReason::TimeLimit)),
                r = self.step(cfg, step, kind, &mut messages) => r,
            };
            let stop = |s: &mut Self, answer, stop, messages| {
                s.finish(answer, step, stop, messages, started.elapsed())
            };
            match end {
                // A failed step still ends the trace: the error, then the final event.
                Err(e) => {
                    self.emit(Event::Error {
                        message: e.to_string(),
                    });
                    self.stop_hooks(StopReason::Error, None, cancel).await;
                    stop(self, None, StopReason::Error, messages);
                    return Err(e);
                }
                Ok(StepEnd::Stop(reason)) => {
                    self.stop_hooks(reason, None, cancel).await;
                    return Ok(stop(self, None, reason, messages));
                }
                Ok(StepEnd::Done(answer)) => {
                    // A stop hook may reject the answer: the model is told why and goes on
                    // while it has steps left.
                    let Some(why) = self
                        .stop_hooks(StopReason::Answer, Some(&answer), cancel)
                        .await
                    else {
                        return Ok(stop(self, Some(answer), StopReason::Answer, messages));
                    };
                    stop::not_accepted(&mut messages, &why);
                    if step == cfg.max_steps {
                        return Ok(stop(self, None, StopReason::MaxSteps, messages));
                    }
                    kind = StepKind::Recover;
                    self.checkpoint(step, kind, &messages);
                }
                Ok(StepEnd::Continue(next)) => {
                    kind = next;
                    self.checkpoint(step, next, &messages);
                }
            }
        }
        self.stop_hooks(StopReason::MaxSteps, None, cancel).await;
        Ok(self.finish(
            None,
            cfg.max_steps,
            StopReason::MaxSteps,
            messages,
            started.elapsed(),
        ))
    }

    /// Records the run's state after `step` (see [`resume`]).
    fn checkpoint(&mut self, step: u32, next: StepKind, messages: &[Message]) {
        let from = self.saved.min(messages.len());
        self.saved = messages.len();
        self.emit(Event::Checkpoint(Checkpoint {
            step,
            next,
            task_index: self.task_index,
            from,
            messages: messages[from..].to_vec(),
            thinking_used: self.thinking_used,
            usage: self.usage,
            guard: self.guard.clone(),
        }));
    }

    /// Takes up `point`'s state: the conversation, the first step and its kind.
    fn restore(&mut self, cfg: &RunConfig, point: ResumePoint) -> (Vec<Message>, u32, StepKind) {
        let c = point.checkpoint;
        self.task_index = c.task_index;
        self.thinking_used = c.thinking_used;
        self.usage = c.usage;
        self.guard = c.guard;
        self.last_tool_result = point.last_tool_result;
        for whole in &point.kept {
            self.kept.keep(whole);
        }
        if !point.kept.is_empty() {
            self.offer_read_result(cfg);
        }
        self.saved = c.messages.len();
        (c.messages, c.step + 1, c.next)
    }

    fn finish(
        &mut self,
        answer: Option<Value>,
        steps: u32,
        stop: StopReason,
        messages: Vec<Message>,
        elapsed: Duration,
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
            usage: self.usage,
            elapsed_secs: elapsed.as_secs_f64(),
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
        let view = StepPrompt {
            specs: &specs,
            render: think.render,
            prefill: think.prefill,
        };
        // What the step's prompt takes of the window, before it is sent: compacted when it
        // takes too much, and never sent when it leaves the step no room.
        let (mut prompt, mut prompt_tokens) =
            compact::render_counted(&backend, &view, messages).await?;
        if let (Some(window), Some(tokens)) = (info.max_context, prompt_tokens) {
            let window = Window::new(cfg, window);
            if cfg.compact_at.is_some() && window.wants_compaction(tokens) {
                self.compact(cfg, step, &view, &window, tokens, messages)
                    .await?;
                (prompt, prompt_tokens) =
                    compact::render_counted(&backend, &view, messages).await?;
            }
            let tokens = prompt_tokens.unwrap_or(tokens);
            if !window.fits(tokens) {
                self.emit(Event::Error {
                    message: format!(
                        "step {step}'s prompt ({tokens} tokens) leaves less than {} of the model's {}-token context window",
                        window.min_room, window.tokens
                    ),
                });
                return Ok(StepEnd::Stop(StopReason::ContextFull));
            }
        }
        let prompt_hash = resume::prompt_hash(&prompt);
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
        self.usage.add(&out.stats, out.thinking.tokens);
        self.emit(Event::ModelOutput {
            step,
            text: out.text.clone(),
            reasoning: parsed.reasoning.clone(),
            content: parsed.content.clone(),
            prompt_hash,
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
        // A turn that ends the run is no loop; any other is counted by the guard.
        let answers = parsed.calls.iter().any(|c| c.name == FINAL_ANSWER)
            || (parsed.calls.is_empty()
                && parsed.errors.is_empty()
                && !parsed.content.is_empty()
                && cfg.output_schema.is_none());
        let verdict = if answers {
            Verdict::Fresh
        } else {
            let cut = out.finish == Finish::Length;
            self.guard.turn(
                cfg.loop_repeats,
                &out.text,
                &parsed.content,
                &parsed.calls,
                cut,
            )
        };
        if verdict == Verdict::Stop {
            return Ok(StepEnd::Stop(StopReason::Loop));
        }
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
        let called = messages.len();
        if let Some(answer) = self
            .call_tools(cfg, step, &parsed.calls, &mut progress, messages)
            .await
        {
            return Ok(StepEnd::Done(answer));
        }
        if messages[called..]
            .iter()
            .any(|m| m.role == Role::Tool && m.content.starts_with("Error:"))
        {
            next = StepKind::Recover;
        }
        if let Verdict::Warn(note) = verdict {
            messages.push(Message::user(note));
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
