//! agent patch 17: a second tier under the in-memory prefix cache. The engine hands finished
//! prompts' KV to a [`PrefixStore`] and asks it for a longer prefix than memory holds before
//! prefilling, so that a new process (another `agent run` of the same task, a restarted
//! `agent serve`) starts from KV computed by an earlier one. `agent` keeps one on disk per
//! model file; the engine only converts between its caches and plain tensors.

use std::sync::Arc;

use candle_core::{Device, Result, Tensor};

use crate::kv_cache::{KvCache, SingleCache};

/// One layer of a stored prefix, with the prefix's rows only.
#[derive(Clone, Debug)]
pub enum StoredLayer {
    /// The model has no cache for this layer.
    Absent,
    /// The layer reads another layer's cache.
    Shared { owner: usize },
    /// Keys and values, `(batch 1, kv heads, positions, head size)` with the positions on
    /// `dim`, and the cache's limit, as the model built it.
    Normal {
        k: Tensor,
        v: Tensor,
        dim: usize,
        max_seq_len: usize,
    },
}

/// A prompt's tokens and the KV the model computed for them, one entry per layer.
#[derive(Clone, Debug)]
pub struct StoredPrefix {
    pub toks: Vec<u32>,
    pub layers: Vec<StoredLayer>,
}

pub trait PrefixStore: Send + Sync {
    /// The stored prefix that shares the most leading tokens with `toks`, if it shares more
    /// than `longer_than`; tensors may be on any device (the engine moves them).
    fn load(&self, toks: &[u32], longer_than: usize) -> Option<StoredPrefix>;
    /// Whether a finished sequence whose prompt had `prompt_len` tokens, `fresh` of them
    /// computed by its prompt step (the rest came from a cache), is worth keeping.
    fn wants(&self, prompt_len: usize, fresh: usize) -> bool;
    /// Keep `prefix` (called on the engine thread; the tensors are the sequence's own).
    fn save(&self, prefix: StoredPrefix);
}

/// The store and the device the engine's caches live on.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    pub store: Arc<dyn PrefixStore>,
    pub device: Device,
}

/// The first `len` rows of a sequence's caches, or `None` when a layer cannot be stored
/// (a sliding window, or fewer rows than `len`).
pub(crate) fn to_stored(
    caches: &[Option<KvCache>],
    len: usize,
) -> Result<Option<Vec<StoredLayer>>> {
    let mut layers = Vec::with_capacity(caches.len());
    for cache in caches {
        let layer = match cache {
            None => StoredLayer::Absent,
            Some(KvCache::Shared { owner }) => StoredLayer::Shared { owner: *owner },
            Some(KvCache::Rotating { .. }) => return Ok(None),
            Some(KvCache::Normal { k, v }) => {
                let (Some(kd), Some(vd)) = (k.all_data(), v.all_data()) else {
                    return Ok(None);
                };
                if k.current_seq_len() < len || v.current_seq_len() < len {
                    return Ok(None);
                }
                StoredLayer::Normal {
                    k: kd.narrow(k.dim(), 0, len)?,
                    v: vd.narrow(v.dim(), 0, len)?,
                    dim: k.dim(),
                    max_seq_len: k.max_seq_len(),
                }
            }
        };
        layers.push(layer);
    }
    if layers
        .iter()
        .all(|l| !matches!(l, StoredLayer::Normal { .. }))
    {
        return Ok(None);
    }
    Ok(Some(layers))
}

/// Caches holding a stored prefix's rows, on `device`; an error when a layer does not have
/// the prefix's length (the store must not hand out such an entry).
pub(crate) fn from_stored(prefix: &StoredPrefix, device: &Device) -> Result<Vec<Option<KvCache>>> {
    let len = prefix.toks.len();
    let mut caches = Vec::with_capacity(prefix.layers.len());
    for layer in &prefix.layers {
        let cache = match layer {
            StoredLayer::Absent => None,
            StoredLayer::Shared { owner } => Some(KvCache::Shared { owner: *owner }),
            StoredLayer::Normal {
                k,
                v,
                dim,
                max_seq_len,
            } => {
                let single = |t: &Tensor| -> Result<SingleCache> {
                    if t.dim(*dim)? != len {
                        candle_core::bail!(
                            "a stored layer has {} rows for a prefix of {len} tokens",
                            t.dim(*dim)?
                        );
                    }
                    Ok(SingleCache {
                        all_data: Some(t.to_device(device)?.contiguous()?),
                        dim: *dim,
                        current_seq_len: len,
                        capacity_seq_len: len,
                        max_seq_len: *max_seq_len,
                    })
                };
                Some(KvCache::Normal {
                    k: single(k)?,
                    v: single(v)?,
                })
            }
        };
        caches.push(cache);
    }
    Ok(caches)
}
