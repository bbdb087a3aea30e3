//! A step's tool calls: run concurrently (up to `parallel_calls`, each within `tool_timeout`)
//! with their progress and the MCP servers' side events reaching observers, their results
//! fitted to the prompt ([`results`](super::results)) and recorded in call order.

use std::sync::Arc;
use std::time::Duration;

use agent_tools::builtin::FINAL_ANSWER;
use agent_tools::{CallContext, ToolOutput, ToolRegistry};
use serde_json::Value;
use tokio::sync::mpsc;

use futures_util::StreamExt;

use super::{Run, RunConfig, results};
use crate::events::{Event, Progress, ResultCut};
use crate::permissions::{CallInfo, Checked, Gate};
use crate::prompt::{Message, ToolCall};

impl Run<'_> {
    /// Runs a turn's calls and appends their results in call order; returns the answer when
    /// one was a valid `final_answer` (calls after it are not made). Calls up to an answer
    /// run at once, `parallel_calls` at a time.
    pub(super) async fn call_tools(
        &mut self,
        cfg: &RunConfig,
        step: u32,
        calls: &[ToolCall],
        progress: &mut Progress,
        messages: &mut Vec<Message>,
    ) -> Option<Value> {
        let mut start = 0;
        while start < calls.len() {
            // A batch: the calls before the next answer, or the answer alone.
            let end = match calls[start..].iter().position(|c| c.name == FINAL_ANSWER) {
                Some(0) => start + 1,
                Some(i) => start + i,
                None => calls.len(),
            };
            let outs = self
                .run_batch(cfg, step, start, &calls[start..end], progress)
                .await;
            for (k, (call, out)) in (start..end).zip(calls[start..end].iter().zip(outs)) {
                if let Some(answer) = self.record(cfg, step, k, call, out, messages).await {
                    return Some(answer);
                }
            }
            start = end;
        }
        None
    }

    /// Runs `calls` (numbered from `first` in the turn) concurrently, their progress and the
    /// MCP servers' side events reaching observers as they come; outputs in call order.
    async fn run_batch(
        &mut self,
        cfg: &RunConfig,
        step: u32,
        first: usize,
        calls: &[ToolCall],
        progress: &mut Progress,
    ) -> Vec<ToolOutput> {
        let id = |k: usize| format!("call_{step}_{}", first + k);
        for (k, call) in calls.iter().enumerate() {
            self.emit(Event::ToolCall {
                step,
                id: id(k),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            });
        }
        progress.tool = Some(
            calls
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
        for o in &mut self.observers {
            o.progress(progress);
        }
        let (tx, mut reports) = mpsc::unbounded_channel();
        // Permission decisions and hooks, as they happen.
        let (decided, mut decisions) = mpsc::unbounded_channel();
        let tools = self.tools.clone();
        let gate = self.gate.clone();
        let running = calls.iter().enumerate().map(|(k, call)| {
            let tx = tx.clone();
            // Progress reports and side events reach observers while the call runs.
            let cx = CallContext::with_progress(move |p| {
                let _ = tx.send((k, p));
            });
            let one = One {
                tools: tools.clone(),
                gate: gate.clone(),
                step,
                id: id(k),
                events: decided.clone(),
                timeout: cfg.tool_timeout,
            };
            one.run(call.clone(), cx)
        });
        let running: Vec<_> = running.collect();
        drop((tx, decided));
        let running = futures_util::stream::iter(running)
            .buffered(cfg.parallel_calls.max(1))
            .collect::<Vec<_>>();
        tokio::pin!(running);
        let outs = loop {
            let side = async {
                match &mut self.side_events {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                outs = &mut running => break outs,
                Some(e) = decisions.recv() => self.emit(e),
                Some((k, p)) = reports.recv() => {
                    progress.tool_progress = Some(match p.total {
                        Some(t) => format!("{}/{}", p.progress, t),
                        None => format!("{}", p.progress),
                    } + &p.message.as_deref().map(|m| format!(" {m}")).unwrap_or_default());
                    for o in &mut self.observers {
                        o.progress(progress);
                    }
                    self.emit(Event::ToolProgress { step, id: id(k), name: calls[k].name.clone(), progress: p.progress, total: p.total, message: p.message });
                }
                Some(e) = side => self.emit(e),
            }
        };
        while let Ok((k, p)) = reports.try_recv() {
            self.emit(Event::ToolProgress {
                step,
                id: id(k),
                name: calls[k].name.clone(),
                progress: p.progress,
                total: p.total,
                message: p.message,
            });
        }
        while let Ok(e) = decisions.try_recv() {
            self.emit(e);
        }
        progress.tool_progress = None;
        outs
    }

    /// Records call `k`'s output: its event, and its result (fitted) in the conversation;
    /// returns the answer when it was a valid `final_answer`.
    async fn record(
        &mut self,
        cfg: &RunConfig,
        step: u32,
        k: usize,
        call: &ToolCall,
        out: ToolOutput,
        messages: &mut Vec<Message>,
    ) -> Option<Value> {
        let answer = call.name == FINAL_ANSWER && !out.is_error;
        let (shown, cut) = if answer {
            (String::new(), None)
        } else {
            self.fit(cfg, &out.content).await
        };
        self.emit(Event::ToolResult {
            step,
            id: format!("call_{step}_{k}"),
            name: call.name.clone(),
            content: out.content.clone(),
            is_error: out.is_error,
            structured: out.structured.clone(),
            attachments: out.attachments.clone(),
            cut,
        });
        if answer {
            return out.structured;
        }
        self.last_tool_result = Some(out.content);
        messages.push(Message::tool(if out.is_error {
            format!("Error: {shown}")
        } else {
            shown
        }));
        None
    }

    /// Offers the model `read_result` over the results kept so far.
    pub(super) fn offer_read_result(&mut self, cfg: &RunConfig) {
        let max_bytes = cfg
            .max_result_bytes
            .unwrap_or(results::DEFAULT_RESULT_BYTES);
        self.tools.replace(Arc::new(results::ReadResult::new(
            self.kept.clone(),
            max_bytes,
        )));
    }

    /// `content` as the prompt may hold it: whole, or cut to the run's limits on a result
    /// (bytes, and tokens when the backend counts them), with the whole kept for
    /// `read_result`, which the model is offered from the first cut on.
    async fn fit(&mut self, cfg: &RunConfig, content: &str) -> (String, Option<ResultCut>) {
        let backend = self.agent.backend().clone();
        let max_bytes = cfg
            .max_result_bytes
            .unwrap_or(results::DEFAULT_RESULT_BYTES);
        let max_tokens = cfg
            .max_result_tokens
            .or_else(|| results::default_result_tokens(backend.info().max_context));
        let id = self.kept.len() + 1;
        let mut budget = max_bytes.min(content.len());
        let mut shown = results::cut(content, budget, id);
        // Bytes first (cheap, and it bounds what is tokenized), then tokens: the head and tail
        // shrink in proportion to the overshoot, with a margin, until the count fits (a few
        // tries: the marker's own tokens make it converge from above).
        if let Some(max_tokens) = max_tokens {
            for _ in 0..6 {
                let text = shown.as_deref().unwrap_or(content);
                let Ok(Some(tokens)) = backend.count_tokens(text).await else {
                    break;
                };
                if tokens <= max_tokens {
                    break;
                }
                budget = (budget as u128 * max_tokens as u128 * 9 / 10 / tokens as u128)
                    .try_into()
                    .unwrap_or(usize::MAX);
                shown = results::cut(content, budget, id);
            }
        }
        let Some(shown) = shown else {
            return (content.to_owned(), None);
        };
        self.kept.keep(content);
        let file = cfg.results_dir.as_ref().and_then(|dir| {
            let path = results::result_file(dir, id);
            match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, content)) {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot keep a tool result");
                    None
                }
            }
        });
        self.offer_read_result(cfg);
        let cut = ResultCut {
            id,
            bytes: content.len(),
            shown_bytes: shown.len(),
            file,
        };
        (shown, Some(cut))
    }
}

/// One call and what it needs: refused when meaningless or not permitted, cancelled
/// (dropped: an MCP server is told) when it outlasts `timeout`.
struct One {
    tools: ToolRegistry,
    gate: Option<Arc<Gate>>,
    step: u32,
    id: String,
    events: mpsc::UnboundedSender<Event>,
    timeout: Option<Duration>,
}

impl One {
    async fn run(self, call: ToolCall, cx: CallContext) -> ToolOutput {
        // Valid by the schema but meaningless (see `echoed_description`): refused here, for
        // the model, rather than in the registry, which also serves people and MCP clients.
        let echoed = self
            .tools
            .get(&call.name)
            .and_then(|t| agent_tools::echoed_description(&t.spec().parameters, &call.arguments));
        if let Some(p) = echoed {
            return ToolOutput::error(format!(
                "tool `{}`: `{p}` holds the parameter's description, not a value: write the actual {p} the task gives",
                call.name
            ));
        }
        // An unknown tool or bad arguments go back to the model before anyone is asked.
        let tool = match self.tools.checked(&call.name, &call.arguments) {
            Ok(t) => t,
            Err(e) => return *e,
        };
        // The answer is how a run ends, not a call on the world: never gated.
        let gate = self.gate.clone().filter(|_| call.name != FINAL_ANSWER);
        let Some(gate) = gate else {
            return self.timed(&call.name, call.arguments, cx).await;
        };
        let at = CallInfo {
            step: self.step,
            id: &self.id,
            tool: tool.as_ref(),
        };
        let arguments = match gate.before(&at, call.arguments, &self.events).await {
            Checked::Run(a) => a,
            Checked::Refused(why) => return ToolOutput::error(why),
        };
        let out = self.timed(&call.name, arguments.clone(), cx).await;
        gate.after(&at, &arguments, out, &self.events).await
    }

    /// The call itself, within the run's `tool_timeout`.
    async fn timed(&self, name: &str, arguments: Value, cx: CallContext) -> ToolOutput {
        let running = self.tools.call(name, arguments, cx);
        match self.timeout {
            None => running.await,
            Some(limit) => match tokio::time::timeout(limit, running).await {
                Ok(out) => out,
                Err(_) => ToolOutput::error(format!(
                    "tool `{name}` did not finish within {}s (the run's tool_timeout) and was cancelled",
                    limit.as_secs()
                )),
            },
        }
    }
}
