//! One entry of the on-disk prefix cache: a prompt's tokens and the KV the model computed for
//! them, in one file that is checked whole (length, checksum, the model and build it was
//! written for) before any of it is used.
//!
//! Layout, little-endian: the magic `AGENTKV\0`, a format version (u32), the header's length
//! (u32) and the header (JSON: namespace, token count, one spec per layer), the tokens (u32
//! each), each stored layer's keys then values (row-major), then the SHA-256 of everything
//! before it.

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mistralrs_core::{StoredLayer, StoredPrefix};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"AGENTKV\0";
const VERSION: u32 = 1;
const CHECKSUM_LEN: u64 = 32;
/// No real header comes near this; a larger length field means a damaged file.
const MAX_HEADER: u32 = 16 << 20;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Header {
    namespace: String,
    tokens: usize,
    layers: Vec<LayerSpec>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum LayerSpec {
    Absent,
    Shared {
        owner: usize,
    },
    Normal {
        dim: usize,
        max_seq_len: usize,
        dtype: String,
        k_shape: Vec<usize>,
        v_shape: Vec<usize>,
    },
}

/// Why an entry file was not used; it names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct EntryError {
    /// The entry file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

fn fail(path: &Path, reason: impl Into<String>) -> EntryError {
    EntryError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn dtype_name(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("f32"),
        DType::BF16 => Some("bf16"),
        DType::F16 => Some("f16"),
        _ => None,
    }
}

fn dtype_of(name: &str) -> Option<DType> {
    match name {
        "f32" => Some(DType::F32),
        "bf16" => Some(DType::BF16),
        "f16" => Some(DType::F16),
        _ => None,
    }
}

/// Appends a tensor's elements, row-major, in the host's byte order (the cache refuses
/// big-endian hosts, so this is little-endian), copied to the host from a GPU. One copy and
/// one cast per tensor: per-element code here would run unoptimised in a debug build.
fn extend_with(out: &mut Vec<u8>, t: &Tensor) -> candle_core::Result<()> {
    let t = t.flatten_all()?;
    match t.dtype() {
        DType::F32 => out.extend_from_slice(bytemuck::cast_slice(&t.to_vec1::<f32>()?)),
        DType::BF16 => out.extend_from_slice(bytemuck::cast_slice(&t.to_vec1::<half::bf16>()?)),
        DType::F16 => out.extend_from_slice(bytemuck::cast_slice(&t.to_vec1::<half::f16>()?)),
        other => candle_core::bail!("KV of dtype {other:?} is not stored"),
    }
    Ok(())
}

/// The whole file for `prefix`, written for `namespace`.
pub fn encode(namespace: &str, prefix: &StoredPrefix) -> candle_core::Result<Vec<u8>> {
    let mut specs = Vec::with_capacity(prefix.layers.len());
    let mut data_len = 0;
    for layer in &prefix.layers {
        specs.push(match layer {
            StoredLayer::Absent => LayerSpec::Absent,
            StoredLayer::Shared { owner } => LayerSpec::Shared { owner: *owner },
            StoredLayer::Normal {
                k,
                v,
                dim,
                max_seq_len,
            } => {
                let dtype = match (dtype_name(k.dtype()), k.dtype() == v.dtype()) {
                    (Some(name), true) => name,
                    _ => candle_core::bail!(
                        "KV of dtypes {:?}/{:?} is not stored",
                        k.dtype(),
                        v.dtype()
                    ),
                };
                data_len += (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes();
                LayerSpec::Normal {
                    dim: *dim,
                    max_seq_len: *max_seq_len,
                    dtype: dtype.into(),
                    k_shape: k.dims().to_vec(),
                    v_shape: v.dims().to_vec(),
                }
            }
        });
    }
    let header = Header {
        namespace: namespace.into(),
        tokens: prefix.toks.len(),
        layers: specs,
    };
    let header = serde_json::to_vec(&header).map_err(candle_core::Error::wrap)?;
    let mut out = Vec::with_capacity(16 + header.len() + 4 * prefix.toks.len() + data_len + 32);
    out.extend(MAGIC);
    out.extend(VERSION.to_le_bytes());
    out.extend((header.len() as u32).to_le_bytes());
    out.extend(&header);
    for t in &prefix.toks {
        out.extend(t.to_le_bytes());
    }
    for layer in &prefix.layers {
        if let StoredLayer::Normal { k, v, .. } = layer {
            extend_with(&mut out, k)?;
            extend_with(&mut out, v)?;
        }
    }
    let sum = Sha256::digest(&out);
    out.extend(sum);
    Ok(out)
}

/// Elements in `shape`, or `None` when the count overflows (a damaged header).
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The file's length that `header` implies.
fn expected_len(path: &Path, header: &Header, header_len: usize) -> Result<u64, EntryError> {
    let mut len = 16 + header_len as u64 + 4 * header.tokens as u64 + CHECKSUM_LEN;
    for (i, spec) in header.layers.iter().enumerate() {
        if let LayerSpec::Normal {
            dim,
            dtype,
            k_shape,
            v_shape,
            ..
        } = spec
        {
            let dtype = dtype_of(dtype)
                .ok_or_else(|| fail(path, format!("layer {i}: unknown dtype {dtype:?}")))?;
            for shape in [k_shape, v_shape] {
                if shape.get(*dim) != Some(&header.tokens) {
                    return Err(fail(
                        path,
                        format!(
                            "layer {i}: shape {shape:?} does not hold {} positions on dimension {dim}",
                            header.tokens
                        ),
                    ));
                }
                let bytes = element_count(shape)
                    .and_then(|n| n.checked_mul(dtype.size_in_bytes()))
                    .ok_or_else(|| {
                        fail(path, format!("layer {i}: shape {shape:?} is too large"))
                    })?;
                len = len.saturating_add(bytes as u64);
            }
        }
    }
    Ok(len)
}

/// Reads the fixed start and the header, checking magic, version and namespace.
fn read_header(
    path: &Path,
    r: &mut impl Read,
    namespace: &str,
) -> Result<(Header, usize), EntryError> {
    let io = |e: std::io::Error| fail(path, format!("cannot read: {e}"));
    let mut start = [0u8; 16];
    r.read_exact(&mut start).map_err(io)?;
    if &start[..8] != MAGIC {
        return Err(fail(path, "not a prefix-cache entry (wrong magic)"));
    }
    let version = u32::from_le_bytes([start[8], start[9], start[10], start[11]]);
    if version != VERSION {
        return Err(fail(
            path,
            format!("format version {version}; this build reads version {VERSION}"),
        ));
    }
    let header_len = u32::from_le_bytes([start[12], start[13], start[14], start[15]]);
    if header_len > MAX_HEADER {
        return Err(fail(path, format!("a header of {header_len} bytes")));
    }
    let mut header = vec![0u8; header_len as usize];
    r.read_exact(&mut header).map_err(io)?;
    let header: Header = serde_json::from_slice(&header)
        .map_err(|e| fail(path, format!("the header is not valid: {e}")))?;
    if header.namespace != namespace {
        return Err(fail(path, "written for another model file or build"));
    }
    Ok((header, header_len as usize))
}

fn read_tokens(path: &Path, r: &mut impl Read, n: usize) -> Result<Vec<u32>, EntryError> {
    let mut bytes = vec![0u8; 4 * n];
    r.read_exact(&mut bytes)
        .map_err(|e| fail(path, format!("cannot read the tokens: {e}")))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The tokens of the entry at `path`, from its header and without reading its KV; the
/// file's length must be the one its header describes (a cheap check for a cut-off write).
pub fn tokens(path: &Path, namespace: &str) -> Result<Vec<u32>, EntryError> {
    let mut file =
        std::fs::File::open(path).map_err(|e| fail(path, format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| fail(path, format!("cannot stat: {e}")))?
        .len();
    let mut r = std::io::BufReader::new(&mut file);
    let (header, header_len) = read_header(path, &mut r, namespace)?;
    let want = expected_len(path, &header, header_len)?;
    if len != want {
        return Err(fail(
            path,
            format!("{len} bytes where its header describes {want}: cut off or padded"),
        ));
    }
    read_tokens(path, &mut r, header.tokens)
}

/// The whole entry at `path`, its tensors on the CPU, after checking its length and checksum.
pub fn read(path: &Path, namespace: &str) -> Result<StoredPrefix, EntryError> {
    let bytes = std::fs::read(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    if (bytes.len() as u64) < 16 + CHECKSUM_LEN {
        return Err(fail(path, format!("{} bytes: cut off", bytes.len())));
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN as usize);
    let mut r = body;
    let (header, header_len) = read_header(path, &mut r, namespace)?;
    let want = expected_len(path, &header, header_len)?;
    if bytes.len() as u64 != want {
        return Err(fail(
            path,
            format!(
                "{} bytes where its header describes {want}: cut off or padded",
                bytes.len()
            ),
        ));
    }
    if Sha256::digest(body).as_slice() != sum {
        return Err(fail(
            path,
            "checksum mismatch: changed after it was written",
        ));
    }
    let toks = read_tokens(path, &mut r, header.tokens)?;
    let mut layers = Vec::with_capacity(header.layers.len());
    for (i, spec) in header.layers.into_iter().enumerate() {
        layers.push(match spec {
            LayerSpec::Absent => StoredLayer::Absent,
            LayerSpec::Shared { owner } => StoredLayer::Shared { owner },
            LayerSpec::Normal {
                dim,
                max_seq_len,
                dtype,
                k_shape,
                v_shape,
            } => {
                let dtype = dtype_of(&dtype)
                    .ok_or_else(|| fail(path, format!("layer {i}: unknown dtype {dtype:?}")))?;
                let mut tensor = |shape: &[usize]| -> Result<Tensor, EntryError> {
                    // expected_len checked these sizes against the file's length.
                    let n = element_count(shape)
                        .unwrap_or(usize::MAX)
                        .saturating_mul(dtype.size_in_bytes());
                    if n > r.len() {
                        return Err(fail(path, format!("layer {i}: cut off")));
                    }
                    let (data, rest) = r.split_at(n);
                    r = rest;
                    Tensor::from_raw_buffer(data, dtype, shape, &Device::Cpu)
                        .map_err(|e| fail(path, format!("layer {i}: {e}")))
                };
                let k = tensor(&k_shape)?;
                let v = tensor(&v_shape)?;
                StoredLayer::Normal {
                    k,
                    v,
                    dim,
                    max_seq_len,
                }
            }
        });
    }
    Ok(StoredPrefix { toks, layers })
}
