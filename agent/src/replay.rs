//! A backend that plays back recorded model turns (one JSON object per line:
//! `{"text": "...", "finish": "stop"}`), so the loop can be tested exactly without a model.
//! Record a transcript from any real run's trace: its `model_output` events hold the text.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::backend::{
    Backend, BackendError, BoxFuture, Finish, GenOutput, GenRequest, GenStats, ModelInfo, OnText,
};

#[derive(Debug, Clone, Deserialize)]
pub struct RecordedTurn {
    pub text: String,
    #[serde(default = "default_finish")]
    pub finish: Finish,
}

fn default_finish() -> Finish {
    Finish::Stop
}

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
}

impl Backend for Replay {
    fn info(&self) -> &ModelInfo {
        &self.info
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
