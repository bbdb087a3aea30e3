//! Raw-token completions with the logits kept: the first generated token's (prefix-cache
//! exactness checks) and every greedy step's (a reference implementation of the same
//! checkpoint is compared against these, tests/e2e_published.rs and tests/e2e_gguf.rs).

use std::sync::{Arc, Mutex};

use mistralrs::{
    CompletionResponse, Constraint, CustomLogitsProcessor, Response, SamplingParams, Tensor,
};

use super::{MistralBackend, completion_request, sampling_params};
use crate::backend::{BackendError, Sampling};

/// What the engine computed for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The tokens decoded, in order (the last is an end-of-sequence token when `stopped`):
    /// the greedy choices, or the forced tokens of a [`MistralBackend::forced_trace`].
    pub tokens: Vec<u32>,
    /// The engine's greedy choice at each step (the largest logit among the tokenizer's ids),
    /// whether or not it was the token decoded.
    pub choices: Vec<u32>,
    /// The logits before each token was chosen, over the whole output layer: row 0 is the
    /// prompt's last position (the first forward pass), row i follows `tokens[i - 1]`.
    pub logits: Vec<Vec<f32>>,
    /// Whether decoding ended at an end-of-sequence token before `steps`.
    pub stopped: bool,
}

/// The rows the engine passed to the logits processor, and the context of the latest call.
#[derive(Default)]
struct Seen {
    rows: Vec<Vec<f32>>,
    context: Vec<u32>,
}

impl MistralBackend {
    /// Sends one unconstrained, unstreamed completion of raw token ids, with `processor` seeing
    /// each step's logits, and waits for its end.
    async fn complete_tokens(
        &self,
        tokens: Vec<u32>,
        params: SamplingParams,
        processor: Arc<dyn CustomLogitsProcessor>,
    ) -> Result<CompletionResponse, BackendError> {
        let err = |e: &dyn std::fmt::Display| BackendError::Model(e.to_string());
        // Counted as in flight, so that a step metered meanwhile knows it was not alone.
        let _meter = super::PrefillMeter::start();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let request = completion_request(tokens, params, tx, false, Constraint::None, processor);
        self.model
            .inner()
            .get_sender(None)
            .map_err(|e| err(&e))?
            .send(request)
            .await
            .map_err(|e| err(&e))?;
        while let Some(r) = rx.recv().await {
            match r {
                Response::CompletionDone(d) => return Ok(d),
                Response::CompletionModelError(e, _) => return Err(BackendError::Model(e)),
                Response::InternalError(e) | Response::ValidationError(e) => return Err(err(&e)),
                _ => {}
            }
        }
        Err(BackendError::Model(
            "the engine closed the response channel".into(),
        ))
    }

    /// Greedy completion that also returns the logits of the first generated token and the
    /// prompt-processing time: lets benchmarks and tests check that the prefix cache reuses
    /// KV exactly (the logits must not depend on whether a prefix came from the cache).
    pub async fn generate_with_logits(
        &self,
        prompt: &str,
        max_tokens: usize,
        stop: Vec<String>,
    ) -> Result<(String, Vec<f32>, f64), BackendError> {
        let toks = self.tokenize(prompt).await?;
        let first: Arc<Mutex<Option<Vec<f32>>>> = Arc::new(Mutex::new(None));
        let capture = first.clone();
        let processor = move |logits: &Tensor, _ctx: &[u32]| -> mistralrs::Result<Tensor> {
            if let Ok(mut f) = capture.lock()
                && f.is_none()
            {
                *f = Some(logits.to_vec1::<f32>()?);
            }
            Ok(logits.clone())
        };
        let (params, _) = sampling_params(&Sampling::default(), Some(max_tokens), stop);
        let done = self
            .complete_tokens(toks, params, Arc::new(processor))
            .await?;
        let prompt_secs = done.usage.total_prompt_time_sec as f64;
        let text = done
            .choices
            .into_iter()
            .next()
            .map(|c| c.text)
            .unwrap_or_default();
        let logits = first
            .lock()
            .map_err(|_| BackendError::Model("logits capture poisoned".into()))?
            .take()
            .unwrap_or_default();
        Ok((text, logits, prompt_secs))
    }

    /// Decodes up to `steps` tokens greedily after `prompt` (token ids, sent as they are). The
    /// choice is the largest logit among the tokenizer's ids: an output layer padded past the
    /// tokenizer has rows that are no token, which agent never samples.
    pub async fn greedy_trace(
        &self,
        prompt: Vec<u32>,
        steps: usize,
    ) -> Result<Trace, BackendError> {
        self.trace(prompt, steps, Vec::new()).await
    }

    /// Decodes `forced` after `prompt`, one token per step whatever the engine would choose
    /// (teacher forcing), keeping each step's logits: the engine's distributions along another
    /// implementation's greedy path, comparable step by step even where the two would choose
    /// differently. `tokens` is `forced` up to an end-of-sequence token.
    pub async fn forced_trace(
        &self,
        prompt: Vec<u32>,
        forced: Vec<u32>,
    ) -> Result<Trace, BackendError> {
        if let Some((v, t)) = self
            .vocab
            .and_then(|v| forced.iter().find(|&&t| t as usize >= v).map(|&t| (v, t)))
        {
            return Err(BackendError::Model(format!(
                "cannot force token id {t}: the tokenizer has {v} ids"
            )));
        }
        self.trace(prompt, forced.len(), forced).await
    }

    /// Greedy decoding of `steps` tokens, except that step i takes `forced[i]` where given.
    async fn trace(
        &self,
        prompt: Vec<u32>,
        steps: usize,
        forced: Vec<u32>,
    ) -> Result<Trace, BackendError> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let capture = seen.clone();
        let vocab = self.vocab;
        let to_force = forced.clone();
        let processor = move |logits: &Tensor, ctx: &[u32]| -> mistralrs::Result<Tensor> {
            let mut row = logits.to_vec1::<f32>()?;
            let mut step = 0;
            if let Ok(mut s) = capture.lock() {
                step = s.rows.len();
                s.rows.push(row.clone());
                s.context = ctx.to_vec();
            }
            match to_force.get(step).map(|&t| t as usize) {
                // Every other logit at -inf: the greedy sampler can only take this one.
                Some(t) if t < row.len() => {
                    let keep = row[t];
                    row.fill(f32::NEG_INFINITY);
                    row[t] = keep.max(f32::MIN);
                }
                Some(t) => {
                    return Err(candle_core::Error::Msg(format!(
                        "cannot force token id {t}: the output layer has {} ids",
                        row.len()
                    )));
                }
                None => {
                    if let Some(v) = vocab.filter(|&v| v < row.len()) {
                        row[v..].fill(f32::NEG_INFINITY);
                    }
                }
            }
            Tensor::from_vec(row, logits.dims(), logits.device())
        };
        let prompt_len = prompt.len();
        // One step more than asked, so that the last asked token shows in a context.
        let (params, _) = sampling_params(&Sampling::default(), Some(steps + 1), vec![]);
        let done = self
            .complete_tokens(prompt, params, Arc::new(processor))
            .await?;
        let finish = done.choices.into_iter().next().map(|c| c.finish_reason);
        let seen = std::mem::take(
            &mut *seen
                .lock()
                .map_err(|_| BackendError::Model("logits capture poisoned".into()))?,
        );
        let mut tokens: Vec<u32> = seen.context.get(prompt_len..).unwrap_or(&[]).to_vec();
        let mut logits = seen.rows;
        let stopped = finish.as_deref() == Some("stop") && logits.len() <= steps;
        logits.truncate(steps);
        let choices: Vec<u32> = logits.iter().map(|r| argmax(r, vocab)).collect();
        if stopped {
            // The end-of-sequence token ended decoding, so no later context shows it: it is
            // the last row's token.
            let last = logits.len().checked_sub(1);
            let token = last.and_then(|i| forced.get(i).or(choices.get(i)));
            tokens.extend(token);
        }
        tokens.truncate(steps);
        Ok(Trace {
            tokens,
            choices,
            logits,
            stopped,
        })
    }
}

fn argmax(row: &[f32], vocab: Option<usize>) -> u32 {
    let n = vocab.unwrap_or(row.len()).min(row.len());
    let mut best = 0;
    for (i, v) in row[..n].iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}
