//! Loading a resolved model into mistral.rs: the builder for its format and device, its
//! prefix caches (in memory, and on disk through [`DiskPrefixCache`]), and what the loop
//! needs from the tokenizer (special markers, thinking-budget tokens).

use std::sync::Arc;

use mistralrs::{
    GgufModelBuilder, Model, ModelDType, MultimodalLoaderType, MultimodalModelBuilder, Request,
    TextModelBuilder, TokenSource,
};

use super::disk_cache::{DiskCacheOptions, DiskPrefixCache, ModelIdentity};
use super::think::ThinkTokens;
use super::{MistralBackend, engine_panic, fast_gguf};
use crate::backend::Device;
use crate::backend::{BackendError, EARLY_STOP, ModelInfo};
use crate::models::{GpuDtype, ModelSource, ResolvedModel};

/// Sequences kept in the prefix cache. One run needs one (the growing conversation); a few more
/// let several runs (an `agent serve`'s, a program's) stay warm.
use crate::builder::PREFIX_CACHE_SEQS;

/// The prefix caches a backend keeps: sequences in memory (`None`: no prefix cache at all),
/// and prompts on disk across processes (used only with the memory cache, which loads them).
#[derive(Debug, Clone, PartialEq)]
pub struct Caches {
    /// Sequences the in-memory prefix cache keeps; `None`: no prefix cache at all.
    pub memory: Option<usize>,
    /// Where the on-disk cache lives and its bound; `None`: no disk cache.
    pub disk: Option<DiskCacheOptions>,
}

impl Caches {
    /// What `agent run` and `agent serve` use: a few sequences in memory, and
    /// `$AGENT_HOME/prefix-cache` on disk.
    pub fn standard() -> Self {
        Self {
            memory: Some(PREFIX_CACHE_SEQS),
            disk: Some(DiskCacheOptions::standard()),
        }
    }

    /// `memory` sequences, and the disk cache bounded by `disk_mib` MiB (0: none).
    pub fn sized(memory: Option<usize>, disk_mib: u64) -> Self {
        let disk = (disk_mib > 0).then(|| DiskCacheOptions {
            max_bytes: disk_mib << 20,
            ..DiskCacheOptions::standard()
        });
        Self { memory, disk }
    }
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// CUDA was asked for in a build without the `cuda` feature.
    #[error(
        "this build of agent has no CUDA support; rebuild with `--features cuda`, or use --device cpu"
    )]
    NoCuda,
    /// Loading failed, or the model was refused first (too large for the memory, `--isq` with
    /// a GGUF file).
    #[error("cannot load {name}: {message}")]
    Load {
        /// The model's name.
        name: String,
        /// What went wrong.
        message: String,
    },
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
    /// Loads with the standard caches ([`Caches::standard`]).
    pub async fn load(m: &ResolvedModel, device: Device) -> Result<Self, LoadError> {
        Self::load_with(m, device, Caches::standard()).await
    }

    /// Like [`load`](Self::load) with only the in-memory prefix cache, sized (or off with
    /// `None`), for tests and benchmarks that compare the two.
    pub async fn load_with_prefix_cache(
        m: &ResolvedModel,
        device: Device,
        prefix_cache: Option<usize>,
    ) -> Result<Self, LoadError> {
        let caches = Caches {
            memory: prefix_cache,
            disk: None,
        };
        Self::load_with(m, device, caches).await
    }

    /// Loads `m` on `device` with `caches`. On a CPU the model must fit in the memory
    /// available ([`check_memory`](crate::models::check_memory)); a disk cache that cannot be
    /// opened is left out with a warning.
    pub async fn load_with(
        m: &ResolvedModel,
        device: Device,
        caches: Caches,
    ) -> Result<Self, LoadError> {
        let prefix_cache = caches.memory;
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
        // Hashing the model's files (once; remembered after) runs while the model loads.
        let disk = caches
            .disk
            .filter(|_| prefix_cache.is_some())
            .map(|options| {
                let identity = model_identity(m, cpu, isq_name);
                std::thread::spawn(move || DiskPrefixCache::open(&options, &identity))
            });
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
                    } else if let Some(d) = m.gpu_dtype {
                        b = b.with_dtype(model_dtype(d));
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
                    } else if let Some(d) = m.gpu_dtype {
                        b = b.with_dtype(model_dtype(d));
                    }
                    if let Some(q) = isq {
                        b = b.with_isq(q);
                    }
                    guarded(async move { b.build().await }).await.map_err(err)?
                }
            }
        };
        let disk = match disk.map(|t| t.join()) {
            None => None,
            Some(Ok(Ok(cache))) => {
                let cache = Arc::new(cache);
                let store: Arc<dyn mistralrs_core::PrefixStore> = cache.clone();
                let sender = model
                    .inner()
                    .get_sender(None)
                    .map_err(|e| refuse(e.to_string()))?;
                sender
                    .send(Request::SetPrefixStore(store))
                    .await
                    .map_err(|e| refuse(format!("the engine stopped: {e}")))?;
                Some(cache)
            }
            // Without its disk cache a run is slower, never wrong: say so and go on.
            Some(Ok(Err(e))) => {
                tracing::warn!("{e}; running without the on-disk prefix cache");
                None
            }
            Some(Err(_)) => {
                tracing::warn!(
                    "hashing the model panicked; running without the on-disk prefix cache"
                );
                None
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
            disk,
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
}

/// What the KV of `m` depends on: its weight files (and a checkpoint's config), the device and
/// dtype it computes in (float32 on a CPU, see the builders above) and in-situ quantization.
fn model_identity(m: &ResolvedModel, cpu: bool, isq: Option<&str>) -> ModelIdentity {
    let files = match &m.source {
        ModelSource::Gguf { file } => vec![file.clone()],
        ModelSource::Dir { dir, .. } => {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "safetensors")
                        || p.file_name().is_some_and(|n| n == "config.json")
                })
                .collect();
            files.sort();
            files
        }
    };
    let device = match (cpu, m.gpu_dtype) {
        (true, _) => "cpu f32".to_string(),
        (false, None) => "cuda auto".to_string(),
        (false, Some(d)) => format!("cuda {d:?}"),
    };
    ModelIdentity {
        files,
        loading: format!("{device} isq={}", isq.unwrap_or("none")),
    }
}

fn model_dtype(d: GpuDtype) -> ModelDType {
    match d {
        GpuDtype::F32 => ModelDType::F32,
        GpuDtype::Bf16 => ModelDType::BF16,
        GpuDtype::F16 => ModelDType::F16,
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
