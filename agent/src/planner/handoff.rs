//! An agent as another agent's tool: the caller writes a task, the callee runs it with its own
//! tools, steps and thinking (on the same loaded model, or another) and its answer is the
//! tool's result.

use agent_tools::typed::IntoToolOutput;
use agent_tools::{BoxFuture, CallContext, ProgressUpdate, Tool, ToolOutput, ToolSpec};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Agent;
use crate::events::{Event, Observer};

pub(super) struct AgentTool {
    agent: Agent,
    spec: ToolSpec,
}

impl AgentTool {
    pub(super) fn new(agent: Agent, name: String, description: String) -> Self {
        let spec = ToolSpec {
            name,
            description,
            parameters: json!({
                "type": "object",
                "properties": {"task": {
                    "type": "string",
                    "description": "The task, with everything needed to do it: the callee sees nothing else."
                }},
                "required": ["task"]
            }),
        };
        Self { agent, spec }
    }
}

/// The callee's steps as the call's progress, for the caller's observers.
struct Steps(CallContext);

impl Observer for Steps {
    fn event(&mut self, e: &Event) {
        if let Event::StepStarted {
            step, max_steps, ..
        } = e
        {
            self.0.progress(ProgressUpdate {
                progress: f64::from(*step),
                total: Some(f64::from(*max_steps)),
                message: Some(format!("step {step}")),
            });
        }
    }
}

impl Tool for AgentTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, arguments: Value, cx: CallContext) -> BoxFuture<'_, ToolOutput> {
        let task = arguments
            .get("task")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Box::pin(async move {
            let mut run = self.agent.runner();
            run.observe(Box::new(Steps(cx)));
            // Cancelled by dropping: the caller's run drops this call's future.
            let cfg = self.agent.config(task);
            let answer = run
                .run(&cfg, &CancellationToken::new())
                .await
                .and_then(|o| o.into_answer());
            match answer {
                // As a typed tool's result: text as it is, anything else as JSON.
                Ok(v) => v.into_output(),
                Err(e) => ToolOutput::error(format!("`{}`: {e}", self.spec.name)),
            }
        })
    }
}
