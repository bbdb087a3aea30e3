//! The logits processor every generation runs through: it counts tokens, forces the thinking
//! budget's early-stop text, masks padded vocabulary ids, and samples with a per-request seed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use mistralrs::{CustomLogitsProcessor, Tensor};

use super::think::ThinkControl;

/// Counts generated tokens exactly (it runs once per sampled token) and, with a temperature,
/// samples with its own seeded noise (the engine then decodes greedily): mistral.rs 0.8.1
/// seeds one engine-wide RNG, so per-request seeds need sampling here.
pub(super) struct StepSampler {
    pub(super) prompt_len: usize,
    pub(super) generated: AtomicUsize,
    pub(super) seeded: Option<SeededSampling>,
    pub(super) vocab: Option<usize>,
    pub(super) think: Option<ThinkControl>,
    /// The generated ids as of the last sampling step, when asked for (tests, benchmarks).
    pub(super) ids: Option<Mutex<Vec<u32>>>,
}

pub(super) struct SeededSampling {
    pub(super) temperature: f64,
    pub(super) top_k: Option<u32>,
    pub(super) top_p: Option<f64>,
    pub(super) seed: u64,
}

/// splitmix64: a tiny, well-distributed generator; reproducibility is what matters here.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SeededSampling {
    /// Logits whose argmax is a sample: the Gumbel-max trick. `l/T + Gumbel noise` has its
    /// maximum at token i with probability softmax(l/T)_i, so the engine's greedy pick samples.
    /// Unlike forcing one token, this composes with grammar constraints: when the engine masks
    /// tokens the grammar rejects, the argmax of what remains is a sample from the distribution
    /// renormalised over the allowed tokens. top-k and top-p cut the candidates first.
    fn noised(&self, logits: &[f32], position: usize) -> Vec<f32> {
        let mut keep: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect();
        let by_logit = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]);
        if let Some(k) = self.top_k.map(|k| (k as usize).max(1))
            && k < keep.len()
        {
            keep.select_nth_unstable_by(k - 1, by_logit);
            keep.truncate(k);
        }
        if let Some(p) = self.top_p.filter(|p| *p < 1.0) {
            keep.sort_unstable_by(by_logit);
            let max = keep.first().map_or(0.0, |&i| logits[i] as f64);
            let weights: Vec<f64> = keep
                .iter()
                .map(|&i| ((logits[i] as f64 - max) / self.temperature).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut acc = 0.0;
            let n = weights.iter().position(|w| {
                acc += w / total;
                acc >= p
            });
            keep.truncate(n.map_or(keep.len(), |k| k + 1));
        }
        let mut out = vec![f32::NEG_INFINITY; logits.len()];
        // The noise depends only on (seed, position, token): a run is reproducible.
        let base = splitmix(self.seed ^ splitmix(position as u64));
        for i in keep {
            let u = ((splitmix(base ^ i as u64) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            out[i] = (logits[i] as f64 / self.temperature - (-u.ln()).ln()) as f32;
        }
        out
    }
}

impl CustomLogitsProcessor for StepSampler {
    fn apply(&self, logits: &Tensor, context: &[u32]) -> mistralrs::Result<Tensor> {
        self.generated.fetch_add(1, Ordering::Relaxed);
        if let Some(ids) = &self.ids
            && let Ok(mut ids) = ids.lock()
        {
            *ids = context.get(self.prompt_len..).unwrap_or(&[]).to_vec();
        }
        let n = logits.dims1()?;
        if let Some(forced) = self
            .think
            .as_ref()
            .and_then(|t| t.next_forced(context.get(self.prompt_len..).unwrap_or(&[])))
        {
            let mut only = vec![f32::NEG_INFINITY; n];
            if let Some(x) = only.get_mut(forced as usize) {
                *x = 0.0;
            }
            return Tensor::from_vec(only, n, logits.device());
        }
        let padded = self.vocab.filter(|&v| v < n);
        if self.seeded.is_none() && padded.is_none() {
            return Ok(logits.clone());
        }
        let mut values: Vec<f32> = logits.to_vec1()?;
        if let Some(v) = padded {
            values[v..].fill(f32::NEG_INFINITY);
        }
        if let Some(s) = &self.seeded {
            values = s.noised(&values, context.len().saturating_sub(self.prompt_len));
        }
        Tensor::from_vec(values, n, logits.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gumbel-max sampling draws tokens with their softmax probabilities, reproducibly.
    #[test]
    fn noised_logits_sample_the_softmax() {
        let s = SeededSampling {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            seed: 42,
        };
        let logits = [0.0f32, 3f32.ln(), f32::NEG_INFINITY];
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .unwrap()
        };
        let draws: Vec<usize> = (0..4000)
            .map(|pos| argmax(&s.noised(&logits, pos)))
            .collect();
        let ones = draws.iter().filter(|&&i| i == 1).count() as f64 / draws.len() as f64;
        assert!((ones - 0.75).abs() < 0.03, "P(token 1) = {ones}");
        assert!(!draws.contains(&2));
        assert_eq!(
            draws,
            (0..4000)
                .map(|pos| argmax(&s.noised(&logits, pos)))
                .collect::<Vec<_>>()
        );
        // top-k 1 is greedy.
        let greedy = SeededSampling {
            top_k: Some(1),
            ..s
        };
        assert!((0..100).all(|pos| argmax(&greedy.noised(&logits, pos)) == 1));
    }
}
