//! Whether a model fits in memory, decided before loading: a model that does not fit would
//! push the machine into swap or get the process killed halfway through a long load.

use std::path::Path;

use serde_json::Value;

use super::{ModelError, ModelSource, ResolvedModel};

/// Room kept beside the weights: KV cache, activations, the runtime.
const HEADROOM: u64 = 512 << 20;

/// Bits per weight after in-situ quantization (mistral.rs ISQ names), blocks' scales included.
fn isq_bits(isq: &str) -> Option<f64> {
    Some(match isq.to_ascii_uppercase().as_str() {
        "Q2K" => 2.625,
        "Q3K" => 3.4375,
        "Q4K" | "Q4_0" | "Q4_1" => 4.5,
        "Q5K" | "Q5_0" | "Q5_1" => 5.5,
        "Q6K" => 6.5625,
        "Q8_0" | "Q8_1" | "Q8K" => 8.5,
        "HQQ4" => 4.5,
        "HQQ8" => 8.5,
        "F8E4M3" => 8.0,
        _ => return None,
    })
}

/// Whether `name` is an ISQ type mistral.rs accepts (any case).
pub fn is_isq(name: &str) -> bool {
    isq_bits(name).is_some()
}

/// Bytes of one weight in the checkpoint's files (`torch_dtype`, or transformers 5's `dtype`).
fn stored_bytes_per_weight(config: &Value) -> f64 {
    let dtype = ["torch_dtype", "dtype"]
        .iter()
        .find_map(|k| {
            config
                .get(k)
                .or_else(|| config.get("text_config").and_then(|t| t.get(k)))
        })
        .and_then(Value::as_str)
        .unwrap_or("bfloat16");
    match dtype {
        "float32" => 4.0,
        "float8_e4m3fn" | "float8" => 1.0,
        _ => 2.0,
    }
}

fn dir_bytes(dir: &Path, ext: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == ext))
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// The memory the model takes once loaded on the CPU: a GGUF file as it is, safetensors
/// weights widened to float32 (how the CPU computes) or quantized by `isq`.
pub fn needed_on_cpu(m: &ResolvedModel, isq: Option<&str>) -> u64 {
    let weights = match &m.source {
        ModelSource::Gguf { file } => {
            let dir = file.parent().unwrap_or(Path::new("."));
            // All parts of a split file.
            if file.to_string_lossy().contains("-of-") {
                dir_bytes(dir, "gguf")
            } else {
                std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
            }
        }
        ModelSource::Dir { dir, .. } => {
            let config = std::fs::read_to_string(dir.join("config.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            let stored = dir_bytes(dir, "safetensors") as f64;
            let weights = stored / stored_bytes_per_weight(&config);
            let bits = isq.and_then(isq_bits).unwrap_or(32.0);
            (weights * bits / 8.0) as u64
        }
    };
    weights + HEADROOM
}

/// `MemAvailable` from /proc/meminfo (Linux); `None` where it cannot be read.
pub fn available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a model that needs more memory than is available. `AGENT_NO_MEMORY_CHECK=1` skips
/// the check (for machines whose swap the user wants used).
pub fn check_cpu(m: &ResolvedModel, isq: Option<&str>) -> Result<(), ModelError> {
    if std::env::var("AGENT_NO_MEMORY_CHECK").is_ok_and(|v| v == "1") {
        return Ok(());
    }
    let Some(available) = available() else {
        return Ok(());
    };
    decide(&m.name, needed_on_cpu(m, isq), available, isq.is_some())
}

fn decide(name: &str, needed: u64, available: u64, quantized: bool) -> Result<(), ModelError> {
    if needed <= available {
        return Ok(());
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let hint = if quantized {
        "a smaller quantization or a smaller model".to_string()
    } else {
        "`--isq Q4K` (quantize while loading), a GGUF quantization (`NAME:q4_k_m`), or a smaller model".to_string()
    };
    Err(ModelError::TooBig {
        name: name.into(),
        needed_gib: gib(needed),
        available_gib: gib(available),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_that_does_not_fit_is_refused_with_the_sizes() {
        assert!(decide("m", 10 << 30, 11 << 30, false).is_ok());
        let e = decide("qwen3-30b-a3b", 122 << 30, 22 << 30, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "qwen3-30b-a3b needs about 122.0 GiB of memory on the CPU and 22.0 GiB is available: use `--isq Q4K` (quantize while loading), a GGUF quantization (`NAME:q4_k_m`), or a smaller model (AGENT_NO_MEMORY_CHECK=1 loads it anyway)"
        );
    }

    #[test]
    fn quantization_shrinks_what_is_needed() {
        assert_eq!(isq_bits("q4k"), Some(4.5));
        assert_eq!(isq_bits("Q9K"), None);
        let bf16 = serde_json::json!({"torch_dtype": "bfloat16"});
        let tf5 = serde_json::json!({"text_config": {"dtype": "float32"}});
        assert_eq!(
            (
                stored_bytes_per_weight(&bf16),
                stored_bytes_per_weight(&tf5)
            ),
            (2.0, 4.0)
        );
    }
}
