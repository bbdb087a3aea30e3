//! The mistral.rs backend: loads a resolved model in-process and completes raw token prompts.
//! We send `CompletionTokens` (not chat requests) because the loop renders prompts itself; the
//! prefix cache still matches token prefixes, so each step re-processes only the new turns.

mod convert;
mod engine_panic;
mod sampler;
mod think;
mod trace;

pub use convert::fast_gguf;
pub use trace::Trace;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use either::Either;
use mistralrs::{
    Constraint, CustomLogitsProcessor, GgufModelBuilder, Model, ModelDType, MultimodalLoaderType,
    MultimodalModelBuilder, NormalRequest, Request, RequestMessage, Response, SamplingParams,
    StopTokens, TextModelBuilder, TokenSource,
};

use crate::backend::{
    Backend, BackendError, BoxFuture, EARLY_STOP, Finish, GenOutput, GenRequest, GenStats,
    ModelInfo, OnText, Sampling, ThinkLimit, ThinkingUse,
};
use crate::models::{ModelSource, ResolvedModel};
use crate::task::Device;
use sampler::{SeededSampling, StepSampler};
use think::{ThinkControl, ThinkTokens};

/// Prompt tokens prefilled by every engine of this process so far (counted by the vendored
/// mistral.rs): what the prefix cache saves shows as tokens not prefilled.
pub fn prefilled_tokens() -> usize {
    mistralrs_core::prefilled_tokens()
}

/// Sequences kept in the prefix cache. One run needs one (the growing conversation); a few more
/// let `agent serve` keep several runs warm.
const PREFIX_CACHE_SEQS: usize = 4;

pub struct MistralBackend {
    model: Model,
    info: ModelInfo,
    /// The tokenizer's size, when the model's output layer is larger (padded): ids past it are
    /// no token at all, and must never be sampled (a random or confused model can pick one,
    /// and a grammar cannot judge it).
    vocab: Option<usize>,
    /// For thinking budgets: `<think>`/`</think>` ids and the early-stop text's tokens, when the
    /// tokenizer has both markers as single tokens.
    think: Option<ThinkTokens>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "this build of agent has no CUDA support; rebuild with `--features cuda`, or use --device cpu"
    )]
    NoCuda,
    #[error("cannot load {name}: {message}")]
    Load { name: String, message: String },
}

fn use_cpu(device: Device) -> Result<bool, LoadError> {
    match device {
        Device::Cpu => Ok(true),
        Device::Cuda if !cfg!(feature = "cuda") => Err(LoadError::NoCuda),
        Device::Cuda => Ok(false),
        Device::Auto => Ok(!cfg!(feature = "cuda")),
    }
}

impl MistralBackend {
    pub async fn load(m: &ResolvedModel, device: Device) -> Result<Self, LoadError> {
        Self::load_with_prefix_cache(m, device, Some(PREFIX_CACHE_SEQS)).await
    }

    /// Like [`load`](Self::load) with the prefix cache sized (or off with `None`), for
    /// benchmarks that compare the two.
    pub async fn load_with_prefix_cache(
        m: &ResolvedModel,
        device: Device,
        prefix_cache: Option<usize>,
    ) -> Result<Self, LoadError> {
        let cpu = use_cpu(device)?;
        engine_panic::watch();
        let err = |e: anyhow::Error| LoadError::Load {
            name: m.name.clone(),
            message: format!("{e:#}"),
        };
        let refuse = |message: String| LoadError::Load {
            name: m.name.clone(),
            message,
        };
        // Asked for (any device), or the catalogue's advice on a GPU.
        let isq_name = m.isq.as_deref().or(if cpu { None } else { m.gpu_isq });
        let isq = isq_name
            .map(|q| mistralrs::parse_isq_value(q, None).map_err(refuse))
            .transpose()?;
        if let ModelSource::Gguf { file } = &m.source {
            if isq.is_some() && m.isq.is_some() {
                return Err(refuse(format!(
                    "--isq quantizes safetensors checkpoints while loading; {} is a GGUF file, quantized already",
                    file.display()
                )));
            }
        }
        if cpu {
            crate::models::check_memory(m, isq_name).map_err(|e| refuse(e.to_string()))?;
        }
        let model = match &m.source {
            ModelSource::Gguf { file } => {
                let file = &if cpu {
                    fast_gguf(file).map_err(|e| LoadError::Load {
                        name: m.name.clone(),
                        message: e,
                    })?
                } else {
                    file.clone()
                };
                let dir = file
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| ".".into());
                let name = file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut b = GgufModelBuilder::new(dir, vec![name])
                    .with_token_source(TokenSource::None)
                    .with_prefix_cache_n(prefix_cache);
                if cpu {
                    b = b.with_force_cpu();
                }
                guarded(async move { b.build().await }).await.map_err(err)?
            }
            ModelSource::Dir { dir, architectures } => {
                let dir = dir.display().to_string();
                if architectures
                    .iter()
                    .any(|a| a == "Llama4ForConditionalGeneration")
                {
                    // mistral.rs loads Llama 4 only through its multimodal loader, whose prefix
                    // cache is off unless asked for.
                    let mut b = MultimodalModelBuilder::new(dir)
                        .with_loader_type(MultimodalLoaderType::Llama4)
                        .with_token_source(TokenSource::None)
                        .with_prefix_cache_n(prefix_cache);
                    if cpu {
                        b = b.with_force_cpu().with_dtype(ModelDType::F32);
                    }
                    if let Some(q) = isq {
                        b = b.with_isq(q);
                    }
                    guarded(async move { b.build().await }).await.map_err(err)?
                } else {
                    let mut b = TextModelBuilder::new(dir)
                        .with_token_source(TokenSource::None)
                        .with_prefix_cache_n(prefix_cache);
                    if cpu {
                        // bf16 matmuls are slower than f32 on CPU in candle 0.10.
                        b = b.with_force_cpu().with_dtype(ModelDType::F32);
                    }
                    if let Some(q) = isq {
                        b = b.with_isq(q);
                    }
                    guarded(async move { b.build().await }).await.map_err(err)?
                }
            }
        };
        let max_context = model.max_sequence_length().ok().flatten();
        let info = ModelInfo {
            name: m.name.clone(),
            family: m.family.clone(),
            template: m.template.clone(),
            max_context,
            special_tokens: Vec::new(),
        };
        let vocab = match &m.source {
            ModelSource::Dir { dir, .. } => tokenizer_size(&dir.join("tokenizer.json")),
            ModelSource::Gguf { .. } => None,
        };
        let mut backend = Self {
            model,
            info,
            vocab,
            think: None,
        };
        let load_err = |e: BackendError| LoadError::Load {
            name: m.name.clone(),
            message: e.to_string(),
        };
        let mut ids = std::collections::HashMap::new();
        for marker in crate::formats::MARKERS {
            if let [id] = backend.tokenize(marker).await.map_err(load_err)?[..] {
                backend.info.special_tokens.push(marker.to_string());
                ids.insert(marker, id);
            }
        }
        if let (Some(&open), Some(&close)) = (ids.get("<think>"), ids.get("</think>")) {
            let stop = backend.tokenize(EARLY_STOP).await.map_err(load_err)?;
            let bytes = match &m.source {
                ModelSource::Dir { dir, .. } => token_bytes(&dir.join("tokenizer.json")),
                ModelSource::Gguf { file } => crate::gguf_meta::read(file)
                    .map(|meta| meta.token_bytes())
                    .unwrap_or_default(),
            };
            backend.think = Some(ThinkTokens {
                open,
                close,
                stop,
                bytes,
            });
        }
        Ok(backend)
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

/// Runs a model build on a task of its own, so that a panic inside mistral.rs's loader (an
/// `unwrap` on a file it expected, say) becomes one error naming what failed instead of a
/// crash with a backtrace.
async fn guarded<F>(build: F) -> anyhow::Result<Model>
where
    F: std::future::Future<Output = anyhow::Result<Model>> + Send + 'static,
{
    match tokio::spawn(build).await {
        Ok(built) => built,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned());
            let why = engine_panic::last()
                .or(message)
                .unwrap_or_else(|| "no reason given".into());
            Err(anyhow::anyhow!("the engine failed while loading it: {why}"))
        }
        Err(e) => Err(anyhow::anyhow!("loading was cancelled: {e}")),
    }
}

/// Each token's bytes, from a `tokenizer.json` (special tokens: none, they are whole); empty
/// when it cannot be read.
fn token_bytes(path: &std::path::Path) -> Vec<Vec<u8>> {
    let Ok(bt) = toktrie_hf_tokenizers::ByteTokenizer::from_file(path) else {
        return Vec::new();
    };
    bt.token_bytes()
        .into_iter()
        .map(|b| {
            if b.first() == Some(&0xFF) {
                Vec::new()
            } else {
                b
            }
        })
        .collect()
}

/// The number of ids a `tokenizer.json` defines (its largest id + 1).
fn tokenizer_size(path: &std::path::Path) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let vocab = v
        .pointer("/model/vocab")?
        .as_object()?
        .values()
        .filter_map(serde_json::Value::as_u64)
        .max();
    let added = v
        .get("added_tokens")
        .and_then(|a| a.as_array())
        .and_then(|a| a.iter().filter_map(|t| t.get("id")?.as_u64()).max());
    Some(vocab.max(added)? as usize + 1)
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
/// room. An uncapped block (`unlimited`) is bounded by the context window alone.
fn step_max_len(max_tokens: usize, think: ThinkLimit, stop_len: usize) -> Option<usize> {
    match think.cap {
        Some(cap) => Some(max_tokens.saturating_add(cap).saturating_add(stop_len)),
        None if think.opened => None,
        None => Some(max_tokens),
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
            let max_len = step_max_len(req.max_tokens, req.think, stop_len);
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
        let limit = |opened, cap| step_max_len(1024, ThinkLimit { opened, cap }, 25);
        assert_eq!(limit(true, Some(2048)), Some(1024 + 2048 + 25));
        assert_eq!(limit(true, Some(0)), Some(1024 + 25));
        assert_eq!(limit(true, None), None);
        assert_eq!(limit(false, None), Some(1024));
    }
}
