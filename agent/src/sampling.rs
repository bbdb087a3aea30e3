//! Answers MCP servers' `sampling/createMessage` with the run's own model: the server's
//! messages rendered with the model's chat template (no tools), reasoning off where the
//! family allows, generation bounded by the request's `maxTokens` (already capped by the run).

use std::sync::Arc;

use agent_tools::BoxFuture;
use agent_tools::mcp::{Sampler, SamplingReply, SamplingRequest};

use crate::backend::{Backend, Finish, GenRequest, Sampling};
use crate::formats;
use crate::planner::call_format;
use crate::prompt::{self, Message, Role};
use crate::thinking;
use crate::thinking::Budget;

/// Answers MCP servers' sampling requests with a backend: the run's own model.
pub struct BackendSampler {
    backend: Arc<dyn Backend>,
}

impl BackendSampler {
    /// A sampler that completes with `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    async fn complete(&self, request: SamplingRequest) -> Result<SamplingReply, String> {
        let info = self.backend.info();
        let mut messages = Vec::new();
        if let Some(s) = request.system.as_deref().filter(|s| !s.is_empty()) {
            messages.push(Message::system(s));
        }
        for (role, text) in &request.messages {
            let role = if role == "assistant" {
                Role::Assistant
            } else {
                Role::User
            };
            messages.push(Message::new(role, text.clone()));
        }
        if messages.iter().all(|m| m.role == Role::System) {
            return Err("the request has no messages".into());
        }
        // A server's sub-question gets a direct answer: no thinking where it can be turned off.
        let think = thinking::plan(&info.family, Budget::Off);
        let mut prompt = prompt::render(&info.family, &info.template, &messages, &[], think.render)
            .map_err(|e| e.to_string())?;
        prompt.push_str(think.prefill);
        let req = GenRequest {
            prompt,
            max_tokens: request.max_tokens as usize,
            sampling: Sampling {
                temperature: request.temperature.map(f64::from),
                top_p: None,
                top_k: None,
                seed: None,
            },
            stop: prompt::stop_strings(&info.family),
            grammar: None,
            think: think.limit,
        };
        let out = self
            .backend
            .generate(req, &mut |_| {})
            .await
            .map_err(|e| e.to_string())?;
        // Reasoning is the model's own business; the server gets the answer.
        let parsed = formats::parse_with_schema(
            call_format(&info.family).0,
            &out.text,
            think.limit.opened,
            &[],
        );
        let text = if parsed.reasoning.is_some() {
            parsed.content
        } else {
            out.text.trim().to_string()
        };
        Ok(SamplingReply {
            text,
            model: info.name.clone(),
            tokens: out.stats.completion_tokens,
            truncated: out.finish == Finish::Length,
        })
    }
}

impl Sampler for BackendSampler {
    fn sample(&self, request: SamplingRequest) -> BoxFuture<'_, Result<SamplingReply, String>> {
        Box::pin(self.complete(request))
    }
}
