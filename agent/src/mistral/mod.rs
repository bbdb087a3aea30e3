//! The mistral.rs backend: loads a resolved model in-process and completes raw token prompts.
//! We send `CompletionTokens` (not chat requests) because the loop renders prompts itself; the
//! prefix cache still matches token prefixes, so each step re-processes only the new turns.

mod convert;
pub mod disk_cache;
mod engine_panic;
mod load;
mod sampler;
mod think;
mod trace;

pub use convert::fast_gguf;
pub use load::{Caches, LoadError};
pub use trace::Trace;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use either::Either;
use mistralrs::{
    Constraint, CustomLogitsProcessor, Model, NormalRequest, Request, RequestMessage, Response,
    SamplingParams, StopTokens,
};

use crate::backend::{
    Backend, BackendError, BoxFuture, Finish, GenOutput, GenRequest, GenStats, ModelInfo, OnText,
    Sampling, ThinkLimit, ThinkingUse,
};
use disk_cache::{DiskCacheStats, DiskPrefixCache};
use sampler::{SeededSampling, StepSampler};
use think::{ThinkControl, ThinkTokens};

/// Prompt tokens prefilled by every engine of this process so far (counted by the vendored
/// mistral.rs): what the prefix cache saves shows as tokens not prefilled.
pub fn prefilled_tokens() -> usize {
    mistralrs_core::prefilled_tokens()
}

/// Requests of this process started so far, and those not finished yet.
static REQUESTS_STARTED: AtomicUsize = AtomicUsize::new(0);
static REQUESTS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// What one request prefilled, from the process-wide count: exact when no other request of
/// this process ran while it did, unknown otherwise (the count does not say whose tokens).
struct PrefillMeter {
    ticket: usize,
    alone: bool,
    before: usize,
}

impl PrefillMeter {
    fn start() -> Self {
        let others = REQUESTS_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        Self {
            ticket: REQUESTS_STARTED.fetch_add(1, Ordering::SeqCst),
            alone: others == 0,
            before: prefilled_tokens(),
        }
    }

    /// The prompt tokens that came from a prefix cache, if that is known.
    fn cached(&self, prompt_tokens: usize) -> Option<usize> {
        let prefilled = prefilled_tokens() - self.before;
        let alone = self.alone && REQUESTS_STARTED.load(Ordering::SeqCst) == self.ticket + 1;
        alone.then(|| prompt_tokens.saturating_sub(prefilled))
    }
}

impl Drop for PrefillMeter {
    fn drop(&mut self) {
        REQUESTS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A model loaded in-process by mistral.rs, completing raw token prompts ([`Backend`]).
pub struct MistralBackend {
    model: Model,
    /// The on-disk prefix cache the engine uses, when there is one.
    disk: Option<Arc<DiskPrefixCache>>,
    info: ModelInfo,
    /// The tokenizer's size, when the model's output layer is larger (padded): ids past it are
    /// no token at all, and must never be sampled (a random or confused model can pick one,
    /// and a grammar cannot judge it).
    vocab: Option<usize>,
    /// For thinking budgets: `<think>`/`</think>` ids and the early-stop text's tokens, when the
    /// tokenizer has both markers as single tokens.
    think: Option<ThinkTokens>,
}

impl MistralBackend {
    /// What the on-disk prefix cache did so far (`None` without one).
    pub fn disk_cache_stats(&self) -> Option<DiskCacheStats> {
        self.disk.as_ref().map(|d| d.stats())
    }

    /// The on-disk prefix cache's directory for this model (`None` without one).
    pub fn disk_cache_dir(&self) -> Option<&std::path::Path> {
        self.disk.as_ref().map(|d| d.dir())
    }

    /// The loaded mistral.rs model, for callers that need more than completions.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Tokenizes text exactly as the model will see it (special tokens recognised, no BOS added:
    /// the rendered prompt carries its own).
    pub async fn tokenize(&self, text: &str) -> Result<Vec<u32>, BackendError> {
        self.model
            .tokenize(Either::Right(text.to_string()), None, false, false, None)
            .await
            .map_err(|e| BackendError::Model(e.to_string()))
    }
}

/// A raw-token completion request: the one shape of request this backend sends.
fn completion_request(
    toks: Vec<u32>,
    params: SamplingParams,
    response: tokio::sync::mpsc::Sender<Response>,
    streaming: bool,
    constraint: Constraint,
    processor: Arc<dyn CustomLogitsProcessor>,
) -> Request {
    Request::Normal(Box::new(NormalRequest {
        messages: RequestMessage::CompletionTokens(toks),
        sampling_params: params,
        response,
        return_logprobs: false,
        is_streaming: streaming,
        id: REQUEST_ID.fetch_add(1, Ordering::Relaxed),
        constraint,
        suffix: None,
        tools: None,
        tool_choice: None,
        logits_processors: Some(vec![processor]),
        return_raw_logits: false,
        web_search_options: None,
        model_id: None,
        truncate_sequence: false,
    }))
}

static REQUEST_ID: AtomicUsize = AtomicUsize::new(1);

/// The engine's limit on a step's tokens. `max_tokens` is what the step may write after its
/// reasoning (the answer or the call): a capped reasoning block comes on top of it, with the
/// early-stop sentence (`stop_len` tokens) that closes it, so a budget never eats the answer's
/// room. An uncapped block (`unlimited`) is bounded by the context window alone: `room`, the
/// window's tokens the prompt leaves, bounds every step (mistral.rs itself fails with a tensor
/// error on the first position past the window rather than ending the sequence).
fn step_max_len(
    max_tokens: usize,
    think: ThinkLimit,
    stop_len: usize,
    room: Option<usize>,
) -> Option<usize> {
    let limit = match think.cap {
        Some(cap) => Some(max_tokens.saturating_add(cap).saturating_add(stop_len)),
        None if think.opened => None,
        None => Some(max_tokens),
    };
    match (limit, room) {
        (Some(limit), Some(room)) => Some(limit.min(room)),
        (limit, room) => limit.or(room),
    }
}

fn sampling_params(
    s: &Sampling,
    max_len: Option<usize>,
    stop: Vec<String>,
) -> (SamplingParams, Option<SeededSampling>) {
    let mut p = SamplingParams::deterministic();
    p.max_len = max_len;
    if !stop.is_empty() {
        p.stop_toks = Some(StopTokens::Seqs(stop));
    }
    let seeded = match s.temperature {
        Some(t) if t > 0.0 => Some(SeededSampling {
            temperature: t,
            top_k: s.top_k,
            top_p: s.top_p,
            seed: s.seed.unwrap_or(0),
        }),
        _ => None,
    };
    (p, seeded)
}

impl Backend for MistralBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn disk_cache_stats(&self) -> Option<DiskCacheStats> {
        MistralBackend::disk_cache_stats(self)
    }

    fn count_tokens<'a>(
        &'a self,
        text: &'a str,
    ) -> BoxFuture<'a, Result<Option<usize>, BackendError>> {
        Box::pin(async move { Ok(Some(self.tokenize(text).await?.len())) })
    }

    fn generate<'a>(
        &'a self,
        req: GenRequest,
        on_text: OnText<'a>,
    ) -> BoxFuture<'a, Result<GenOutput, BackendError>> {
        Box::pin(async move { Ok(self.generate_ids(req, on_text, false).await?.0) })
    }
}

impl MistralBackend {
    /// [`Backend::generate`], and with `ids`, the generated token ids (all but the last, which
    /// no sampling step saw as context).
    pub async fn generate_ids(
        &self,
        req: GenRequest,
        on_text: OnText<'_>,
        ids: bool,
    ) -> Result<(GenOutput, Vec<u32>), BackendError> {
        {
            let toks = self.tokenize(&req.prompt).await?;
            let stop_len = self.think.as_ref().map_or(0, |t| t.stop.len());
            let room = self.info.max_context.map(|w| w.saturating_sub(toks.len()));
            if room == Some(0) {
                return Err(BackendError::Model(format!(
                    "the prompt ({} tokens) leaves no room in the model's context window ({} tokens)",
                    toks.len(),
                    self.info.max_context.unwrap_or_default()
                )));
            }
            let max_len = step_max_len(req.max_tokens, req.think, stop_len, room);
            let (params, seeded) = sampling_params(&req.sampling, max_len, req.stop.clone());
            let think = self
                .think
                .clone()
                .map(|t| ThinkControl::new(t, req.think.cap, req.think.opened));
            let ids = ids.then(|| Mutex::new(Vec::new()));
            let sampler = Arc::new(StepSampler {
                prompt_len: toks.len(),
                generated: AtomicUsize::new(0),
                seeded,
                vocab: self.vocab,
                think,
                ids,
            });
            let prompt_tokens = toks.len();
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let constraint = req.grammar.map_or(Constraint::None, Constraint::Lark);
            let request = completion_request(toks, params, tx, true, constraint, sampler.clone());
            let meter = PrefillMeter::start();
            let started = Instant::now();
            let sender = self
                .model
                .inner()
                .get_sender(None)
                .map_err(|e| BackendError::Model(e.to_string()))?;
            sender
                .send(request)
                .await
                .map_err(|e| BackendError::Model(e.to_string()))?;
            let mut text = String::new();
            let mut first: Option<Instant> = None;
            let mut finish = Finish::Stop;
            let mut ended = false;
            while let Some(resp) = rx.recv().await {
                match resp {
                    Response::CompletionChunk(c) => {
                        let Some(choice) = c.choices.into_iter().next() else {
                            continue;
                        };
                        if first.is_none() {
                            first = Some(Instant::now());
                        }
                        if !choice.text.is_empty() {
                            on_text(&choice.text);
                            text.push_str(&choice.text);
                        }
                        if let Some(reason) = choice.finish_reason {
                            if reason == "length" {
                                finish = Finish::Length;
                            }
                            ended = true;
                            break;
                        }
                    }
                    Response::CompletionDone(done) => {
                        if let Some(choice) = done.choices.into_iter().next() {
                            text = choice.text;
                        }
                        ended = true;
                        break;
                    }
                    Response::CompletionModelError(e, _) | Response::ModelError(e, _) => {
                        return Err(BackendError::Model(e));
                    }
                    Response::InternalError(e) | Response::ValidationError(e) => {
                        return Err(BackendError::Model(e.to_string()));
                    }
                    _ => {}
                }
            }
            if !ended {
                // The engine dropped the request without an answer: it died (mistral.rs restarts
                // it on the next request). An empty answer here would read as the model's.
                let why = engine_panic::last()
                    .map(|p| format!(": {p}"))
                    .unwrap_or_else(|| " (it gave no reason)".into());
                return Err(BackendError::Model(format!(
                    "the mistral.rs engine stopped before finishing the request{why}; it restarts on the next request"
                )));
            }
            let end = Instant::now();
            let first = first.unwrap_or(end);
            let total = sampler.generated.load(Ordering::Relaxed);
            let (tokens, capped) = sampler
                .think
                .as_ref()
                .map_or((0, false), |t| t.usage(total));
            let ids = sampler
                .ids
                .as_ref()
                .and_then(|m| m.lock().ok().map(|v| v.clone()))
                .unwrap_or_default();
            let out = GenOutput {
                text,
                finish,
                thinking: ThinkingUse { tokens, capped },
                stats: GenStats {
                    prompt_tokens,
                    completion_tokens: sampler.generated.load(Ordering::Relaxed),
                    prompt_secs: (first - started).as_secs_f64(),
                    decode_secs: (end - first).as_secs_f64(),
                    cached_tokens: meter.cached(prompt_tokens),
                },
            };
            Ok((out, ids))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thinking budget comes on top of the answer's room, never out of it.
    #[test]
    fn the_step_limit_leaves_the_answer_its_room() {
        let limit = |opened, cap| step_max_len(1024, ThinkLimit { opened, cap }, 25, None);
        assert_eq!(limit(true, Some(2048)), Some(1024 + 2048 + 25));
        assert_eq!(limit(true, Some(0)), Some(1024 + 25));
        assert_eq!(limit(true, None), None);
        assert_eq!(limit(false, None), Some(1024));
    }

    /// No step generates past the context window, an uncapped reasoning block included.
    #[test]
    fn the_window_bounds_every_step() {
        let limit = |opened, cap| step_max_len(1024, ThinkLimit { opened, cap }, 25, Some(500));
        assert_eq!(
            [
                limit(true, Some(2048)),
                limit(true, None),
                limit(false, None)
            ],
            [Some(500); 3]
        );
        let roomy = step_max_len(1024, ThinkLimit::default(), 25, Some(4096));
        assert_eq!(roomy, Some(1024));
    }
}
