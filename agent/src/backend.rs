//! The model interface the loop drives: raw text completion of a prompt we rendered ourselves,
//! streamed. The real implementation is mistral.rs (`mistral` module); tests use
//! [`Replay`](crate::replay::Replay), which plays back recorded model turns.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::prompt::{Family, TemplateInfo};

/// Where the model runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The CPU, even in a build with CUDA support.
    Cpu,
    /// A CUDA GPU; loading fails in a build without the `cuda` feature.
    Cuda,
    /// CUDA when available, otherwise CPU.
    #[default]
    Auto,
}

/// `cpu`, `cuda` or `auto`: what a task file's `device:` and `--device` accept.
impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            "auto" => Ok(Device::Auto),
            _ => Err(format!("{s:?} is not a device: one of cpu, cuda, auto")),
        }
    }
}

/// Sampling settings for one completion. Greedy unless `temperature` is set above zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Divides the logits before sampling; `None` or 0 decodes greedily.
    pub temperature: Option<f64>,
    /// Nucleus sampling: only the most likely tokens whose probabilities add up to this mass
    /// are candidates (with a temperature only).
    pub top_p: Option<f64>,
    /// Only the k most likely tokens are candidates (with a temperature only).
    pub top_k: Option<u32>,
    /// Seeds the sampling noise, so that a run can be repeated; the mistral.rs backend takes
    /// `None` as 0.
    pub seed: Option<u64>,
}

/// One completion: the prompt and how to generate after it.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// The whole prompt, rendered by the caller with the model's template; special tokens are
    /// recognised in it and no BOS is added (the rendered prompt carries its own).
    pub prompt: String,
    /// The most tokens the step may write after its reasoning (its answer or call). A capped
    /// reasoning block comes on top, with the early-stop sentence; an uncapped one is bounded
    /// by the context window.
    pub max_tokens: usize,
    /// How each token is chosen.
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
    /// Reasoning tokens written.
    pub tokens: usize,
    /// The cap ended the reasoning.
    pub capped: bool,
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model ended its turn (end-of-turn token or stop string).
    Stop,
    /// `max_tokens` was reached.
    Length,
}

/// Token counts and timings of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GenStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Time to the first generated token: prompt processing (after any prefix-cache reuse).
    pub prompt_secs: f64,
    /// Time from the first generated token to the last.
    pub decode_secs: f64,
    /// Prompt tokens a prefix cache (in memory or on disk) supplied, so not prefilled; `None`
    /// when the backend cannot tell (another request ran alongside, or no cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<usize>,
}

impl GenStats {
    /// Decoding speed: the tokens after the first over `decode_secs`; 0 when there is nothing
    /// to measure (no time, or at most one token).
    pub fn decode_tokens_per_sec(&self) -> f64 {
        if self.decode_secs > 0.0 && self.completion_tokens > 1 {
            (self.completion_tokens - 1) as f64 / self.decode_secs
        } else {
            0.0
        }
    }
}

/// What a completion produced.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOutput {
    /// The generated text, reasoning included; a stop string that ended it is not.
    pub text: String,
    /// Why generation ended.
    pub finish: Finish,
    /// Token counts and timings.
    pub stats: GenStats,
    /// The reasoning tokens used, and whether the cap ended the reasoning.
    pub thinking: ThinkingUse,
}

/// Why a completion failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The model or its engine failed; the message says how.
    #[error("model error: {0}")]
    Model(String),
    /// A [`Replay`](crate::replay::Replay) was asked for more turns than it holds; the
    /// request's number (1-based).
    #[error("the replayed transcript has no turn left for step {0}")]
    ReplayExhausted(usize),
}

/// What the loop needs to know about the loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Name shown to the user (catalogue name or path).
    pub name: String,
    /// The prompt family: how prompts are rendered and calls parsed.
    pub family: Family,
    /// The chat template and BOS/EOS tokens from the model's files.
    pub template: TemplateInfo,
    /// Context window in tokens, when known.
    pub max_context: Option<usize>,
    /// Which call and reasoning markers ([`formats::MARKERS`](crate::formats::MARKERS)) the
    /// tokenizer has as single tokens: grammars write those as special tokens.
    pub special_tokens: Vec<String>,
}

/// A boxed future that can be sent between threads, as [`Backend::generate`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Called with each piece of generated text as it arrives.
pub type OnText<'a> = &'a mut (dyn FnMut(&str) + Send);

/// What a backend's on-disk prefix cache did in this process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DiskCacheStats {
    /// Prefixes loaded from disk.
    pub hits: usize,
    /// The prompt tokens those prefixes held, which the engine did not prefill.
    pub tokens_reused: usize,
    /// Entries written.
    pub saved: usize,
    /// Entries found damaged or unreadable, deleted.
    pub rejected: usize,
}

/// A loaded model that completes prompts: what the loop drives.
pub trait Backend: Send + Sync {
    /// What the loop needs to know about the model.
    fn info(&self) -> &ModelInfo;
    /// What the on-disk prefix cache did, for a backend that keeps one.
    fn disk_cache_stats(&self) -> Option<DiskCacheStats> {
        None
    }
    /// How many tokens `text` is as a prompt (tokenized as [`Backend::generate`] tokenizes
    /// it), or `None` when the backend cannot tell.
    fn count_tokens<'a>(
        &'a self,
        text: &'a str,
    ) -> BoxFuture<'a, Result<Option<usize>, BackendError>> {
        let _ = text;
        Box::pin(async { Ok(None) })
    }
    /// Completes `req.prompt`. Dropping the future cancels the generation.
    fn generate<'a>(
        &'a self,
        req: GenRequest,
        on_text: OnText<'a>,
    ) -> BoxFuture<'a, Result<GenOutput, BackendError>>;
}
