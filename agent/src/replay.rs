//! A backend that plays back recorded model turns (one JSON object per line:
//! `{"text": "...", "finish": "stop"}`), so the loop can be tested exactly without a model.
//! Record a transcript from any real run's trace: its `model_output` events hold the text.
//!
//! A program's own tests use it the same way: the agent below is built exactly as with a real
//! model, and the recorded model calls the typed tool, then answers.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use agent::Agent;
//! use agent::replay::Replay;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Add {
//!     a: i64,
//!     b: i64,
//! }
//!
//! let model = Arc::new(Replay::chatml([
//!     r#"<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>"#,
//!     r#"<tool_call>{"name": "final_answer", "arguments": {"answer": "5"}}</tool_call>"#,
//! ]));
//! let add = agent::tool("add", |x: Add| async move { Ok::<_, String>(x.a + x.b) });
//! let agent = Agent::builder().backend(model.clone()).tool(add).build().await?;
//! let outcome = agent.run("What is 2 + 3?").await?;
//! assert_eq!(outcome.answer_text().as_deref(), Some("5"));
//! // The second prompt holds the tool's result.
//! assert!(model.prompts.lock().unwrap()[1].contains("<tool_response>\n5\n</tool_response>"));
//! # Ok(())
//! # }
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::backend::{
    Backend, BackendError, BoxFuture, Finish, GenOutput, GenRequest, GenStats, ModelInfo, OnText,
};
use crate::prompt::{Family, TemplateInfo};

/// One recorded model turn: what the model wrote, and why it stopped.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedTurn {
    /// The completion's text, as the model wrote it (tool-call markup included).
    pub text: String,
    /// Why the turn ended; `stop` (the model ended it) when a transcript leaves it out.
    #[serde(default = "default_finish")]
    pub finish: Finish,
}

impl From<&str> for RecordedTurn {
    /// A turn the model ended itself.
    fn from(text: &str) -> Self {
        text.to_owned().into()
    }
}

impl From<String> for RecordedTurn {
    /// A turn the model ended itself.
    fn from(text: String) -> Self {
        RecordedTurn {
            text,
            finish: Finish::Stop,
        }
    }
}

fn default_finish() -> Finish {
    Finish::Stop
}

/// A [`Backend`] that answers each request with the next recorded turn, in order, whatever the
/// prompt; a request past the last turn fails with [`BackendError::ReplayExhausted`]. It keeps
/// every request, so a test can check what the loop sent.
pub struct Replay {
    info: ModelInfo,
    turns: Vec<RecordedTurn>,
    next: AtomicUsize,
    /// Every prompt the loop sent, for assertions.
    pub prompts: Mutex<Vec<String>>,
    /// Every request whole (a replayed turn is not checked against its grammar or budget).
    pub requests: Mutex<Vec<GenRequest>>,
}

impl Replay {
    /// Plays `turns` back as the model `info` describes (its family decides how prompts are
    /// rendered and calls parsed).
    pub fn new(info: ModelInfo, turns: Vec<RecordedTurn>) -> Self {
        Self {
            info,
            turns,
            next: AtomicUsize::new(0),
            prompts: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Parses a JSON-lines transcript.
    pub fn from_jsonl(info: ModelInfo, text: &str) -> Result<Self, serde_json::Error> {
        let turns = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        Ok(Self::new(info, turns))
    }

    /// Plays `turns` back as a ChatML model with no template of its own (prompts rendered the
    /// ChatML way, calls written Qwen's way: `<tool_call>{"name": .., "arguments": ..}</tool_call>`),
    /// each turn ended by the model. The shortest way to script a model in a test.
    pub fn chatml<T: Into<RecordedTurn>>(turns: impl IntoIterator<Item = T>) -> Self {
        let info = ModelInfo {
            name: "replay".into(),
            family: Family::ChatMl {
                default_system: None,
            },
            template: TemplateInfo::default(),
            max_context: None,
            special_tokens: Vec::new(),
        };
        Self::new(info, turns.into_iter().map(Into::into).collect())
    }

    /// The same model with a context window of `tokens` (counted a token per four bytes): a
    /// prompt that leaves it no room fails as the real engine's does.
    pub fn with_context(mut self, tokens: usize) -> Self {
        self.info.max_context = Some(tokens);
        self
    }
}

impl Backend for Replay {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// A stand-in count, a token per 4 bytes (as the replayed turns' statistics count).
    fn count_tokens<'a>(
        &'a self,
        text: &'a str,
    ) -> BoxFuture<'a, Result<Option<usize>, BackendError>> {
        Box::pin(async move { Ok(Some(text.len() / 4)) })
    }

    fn generate<'a>(
        &'a self,
        req: GenRequest,
        on_text: OnText<'a>,
    ) -> BoxFuture<'a, Result<GenOutput, BackendError>> {
        Box::pin(async move {
            if let Ok(mut p) = self.prompts.lock() {
                p.push(req.prompt.clone());
            }
            if let Ok(mut r) = self.requests.lock() {
                r.push(req.clone());
            }
            if let Some(window) = self.info.max_context
                && req.prompt.len() / 4 >= window
            {
                return Err(BackendError::Model(format!(
                    "the prompt ({} tokens) leaves no room in the model's context window ({window} tokens)",
                    req.prompt.len() / 4
                )));
            }
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            let turn = self
                .turns
                .get(i)
                .ok_or(BackendError::ReplayExhausted(i + 1))?;
            // Stream word by word so observers see partial output as with a real model.
            let mut count = 0;
            for piece in turn.text.split_inclusive(' ') {
                on_text(piece);
                count += 1;
                tokio::task::yield_now().await;
            }
            Ok(GenOutput {
                text: turn.text.clone(),
                finish: turn.finish,
                thinking: crate::backend::ThinkingUse::default(),
                stats: GenStats {
                    prompt_tokens: req.prompt.len() / 4,
                    completion_tokens: count,
                    prompt_secs: 0.0,
                    cached_tokens: None,
                    decode_secs: 0.0,
                },
            })
        })
    }
}
