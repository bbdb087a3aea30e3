//! One tool call of a step: run with its progress and the MCP servers' side events reaching
//! observers, its result fitted to the prompt ([`results`](super::results)), and recorded.

use std::sync::Arc;

use agent_tools::builtin::FINAL_ANSWER;
use agent_tools::{CallContext, ToolOutput};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Run, RunConfig, results};
use crate::events::{Event, Progress, ResultCut};
use crate::prompt::{Message, ToolCall};

impl Run<'_> {
    /// Runs one call; returns the answer when it was a valid `final_answer`.
    pub(super) async fn call_tool(
        &mut self,
        cfg: &RunConfig,
        step: u32,
        k: usize,
        call: &ToolCall,
        progress: &mut Progress,
        messages: &mut Vec<Message>,
    ) -> Option<Value> {
        let id = format!("call_{step}_{k}");
        self.emit(Event::ToolCall {
            step,
            id: id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        });
        progress.tool = Some(call.name.clone());
        for o in &mut self.observers {
            o.progress(progress);
        }
        // Progress reports and side events reach observers while the call runs.
        let (tx, mut reports) = mpsc::unbounded_channel();
        let cx = CallContext::with_progress(move |p| {
            let _ = tx.send(p);
        });
        let tools = self.tools.clone();
        // Valid by the schema but meaningless (see `echoed_description`): refused here, for the
        // model, rather than in the registry, which also serves people and MCP clients.
        let echoed = tools
            .get(&call.name)
            .and_then(|t| agent_tools::echoed_description(&t.spec().parameters, &call.arguments));
        let running = async {
            match echoed {
                Some(p) => ToolOutput::error(format!(
                    "tool `{}`: `{p}` holds the parameter's description, not a value: write the actual {p} the task gives",
                    call.name
                )),
                None => tools.call(&call.name, call.arguments.clone(), cx).await,
            }
        };
        tokio::pin!(running);
        let out = loop {
            let side = async {
                match &mut self.side_events {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                out = &mut running => break out,
                Some(p) = reports.recv() => {
                    progress.tool_progress = Some(match p.total {
                        Some(t) => format!("{}/{}", p.progress, t),
                        None => format!("{}", p.progress),
                    } + &p.message.as_deref().map(|m| format!(" {m}")).unwrap_or_default());
                    for o in &mut self.observers {
                        o.progress(progress);
                    }
                    self.emit(Event::ToolProgress { step, id: id.clone(), name: call.name.clone(), progress: p.progress, total: p.total, message: p.message });
                }
                Some(e) = side => self.emit(e),
            }
        };
        while let Ok(p) = reports.try_recv() {
            self.emit(Event::ToolProgress {
                step,
                id: id.clone(),
                name: call.name.clone(),
                progress: p.progress,
                total: p.total,
                message: p.message,
            });
        }
        progress.tool_progress = None;
        let answer = call.name == FINAL_ANSWER && !out.is_error;
        let (shown, cut) = if answer {
            (String::new(), None)
        } else {
            self.fit(cfg, &out.content).await
        };
        self.emit(Event::ToolResult {
            step,
            id,
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
        self.tools.replace(Arc::new(results::ReadResult::new(
            self.kept.clone(),
            max_bytes,
        )));
        let cut = ResultCut {
            id,
            bytes: content.len(),
            shown_bytes: shown.len(),
            file,
        };
        (shown, Some(cut))
    }
}
