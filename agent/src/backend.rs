//! The model interface the loop drives: raw text completion of a prompt we rendered ourselves,
//! streamed. The real implementation is mistral.rs (`mistral` module); tests use
//! [`Replay`](crate::replay::Replay), which plays back recorded model turns.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::prompt::{Family, TemplateInfo};

/// Sampling settings for one completion. Greedy unless `temperature` is set above zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    pub prompt: String,
    /// The most tokens the step may write after its reasoning (its answer or call). A capped
    /// reasoning block comes on top, with the early-stop sentence; an uncapped one is bounded
    /// by the context window.
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Strings that end the turn (excluded from the output).
    pub stop: Vec<String>,
    /// When set, decoding is constrained token by token to this Lark grammar (llguidance's
    /// dialect; see [`formats::lark`](crate::formats::lark)).
    pub grammar: Option<String>,
    /// The reasoning block of this completion (thinking models only).
    pub think: ThinkLimit,
}

/// Qwen's early-stop text (Qwen3 Technical Report, §4.3), written when a reasoning block
/// reaches its budget; the model then continues into its answer or call.
pub const EARLY_STOP: &str = "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking directly now.\n</think>\n\n";

/// How a completion's reasoning block is counted and capped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThinkLimit {
    /// The prompt ends inside `<think>` (the reasoning starts with the first token).
    pub opened: bool,
    /// After this many reasoning tokens, [`EARLY_STOP`] is forced; `None`: no cap.
    pub cap: Option<usize>,
}

/// Reasoning tokens a completion used (the forced early-stop text not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinkingUse {
    pub tokens: usize,
    /// The cap ended the reasoning.
    pub capped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model ended its turn (end-of-turn token or stop string).
    Stop,
    /// `max_tokens` was reached.
    Length,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GenStats {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Time to the first generated token: prompt processing (after any prefix-cache reuse).
    pub prompt_secs: f64,
    pub decode_secs: f64,
    /// Prompt tokens a prefix cache (in memory or on disk) supplied, so not prefilled; `None`
    /// when the backend cannot tell (another request ran alongside, or no cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<usize>,
}

impl GenStats {
    pub fn decode_tokens_per_sec(&self) -> f64 {
        if self.decode_secs > 0.0 && self.completion_tokens > 1 {
            (self.completion_tokens - 1) as f64 / self.decode_secs
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenOutput {
    pub text: String,
    pub finish: Finish,
    pub stats: GenStats,
    pub thinking: ThinkingUse,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("model error: {0}")]
    Model(String),
    #[error("the replayed transcript has no turn left for step {0}")]
    ReplayExhausted(usize),
}

/// What the loop needs to know about the loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Name shown to the user (catalogue name or path).
    pub name: String,
    pub family: Family,
    pub template: TemplateInfo,
    /// Context window in tokens, when known.
    pub max_context: Option<usize>,
    /// Which call and reasoning markers ([`formats::MARKERS`](crate::formats::MARKERS)) the
    /// tokenizer has as single tokens: grammars write those as special tokens.
    pub special_tokens: Vec<String>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Called with each piece of generated text as it arrives.
pub type OnText<'a> = &'a mut (dyn FnMut(&str) + Send);

/// What a backend's on-disk prefix cache did in this process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DiskCacheStats {
    /// Prefixes loaded from disk, and their tokens the engine did not prefill.
    pub hits: usize,
    pub tokens_reused: usize,
    /// Entries written.
    pub saved: usize,
    /// Entries found damaged or unreadable, deleted.
    pub rejected: usize,
}

pub trait Backend: Send + Sync {
    fn info(&self) -> &ModelInfo;
    /// What the on-disk prefix cache did, for a backend that keeps one.
    fn disk_cache_stats(&self) -> Option<DiskCacheStats> {
        None
    }
    /// Completes `req.prompt`. Dropping the future cancels the generation.
    fn generate<'a>(
        &'a self,
        req: GenRequest,
        on_text: OnText<'a>,
    ) -> BoxFuture<'a, Result<GenOutput, BackendError>>;
}
