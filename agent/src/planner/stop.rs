//! A run's gate (its permissions and hooks) and its end: the `stop` hooks, which may send an
//! answer back to the model.

use std::sync::Arc;

use agent_tools::builtin::FINAL_ANSWER;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Run, RunConfig};
use crate::events::StopReason;
use crate::permissions::Gate;
use crate::prompt::Message;

impl Run<'_> {
    /// Sets up the run's gate: the run's permissions and hooks, the agent's approver (or
    /// the run's own), its Rust hooks; hooks run in the agent's base folder, absolute.
    pub(super) fn open_gate(&mut self, cfg: &RunConfig) {
        let mut access = self.agent.access().clone();
        if let Some(a) = self.approver.clone() {
            access.approver = Some(a);
        }
        let base = &self.agent.origin().base;
        let cwd = std::path::absolute(base)
            .ok()
            .filter(|_| !base.as_os_str().is_empty())
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        self.gate = Some(Arc::new(Gate::new(
            cfg.permissions.clone(),
            cfg.hooks.clone(),
            access,
            cfg.run_id.clone(),
            cfg.trace.clone(),
            cwd,
        )));
    }

    /// Runs the `stop` hooks; returns why, when one rejected the answer. A cancelled run
    /// runs none, and cancelling stops them: an interrupt does not wait on a hook.
    pub(super) async fn stop_hooks(
        &mut self,
        stop: StopReason,
        answer: Option<&Value>,
        cancel: &CancellationToken,
    ) -> Option<String> {
        let gate = self.gate.clone()?;
        if stop == StopReason::Cancelled {
            return None;
        }
        let name = serde_json::to_value(stop)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let rejected = tokio::select! {
            r = gate.stop(&name, answer, &tx) => r,
            () = cancel.cancelled() => None,
        };
        drop(tx);
        while let Ok(e) = rx.try_recv() {
            self.emit(e);
        }
        rejected
    }
}

/// Tells the model its answer was not accepted, keeping the conversation well formed: after
/// a turn of calls, the `final_answer` call gets the refusal as its result (and calls after
/// it, which never ran, say so); after a reply, the user says it.
pub(super) fn not_accepted(messages: &mut Vec<Message>, why: &str) {
    let note = format!("Error: the answer was not accepted: {why}");
    let turn = messages
        .iter()
        .rposition(|m| m.role == crate::prompt::Role::Assistant);
    let calls = turn
        .map(|i| messages[i].tool_calls.clone())
        .unwrap_or_default();
    match calls.iter().position(|c| c.name == FINAL_ANSWER) {
        Some(at) => {
            messages.push(Message::tool(note));
            for _ in at + 1..calls.len() {
                messages.push(Message::tool(
                    "Error: not run: the answer came before this call".to_string(),
                ));
            }
        }
        None => messages.push(Message::user(note)),
    }
}
