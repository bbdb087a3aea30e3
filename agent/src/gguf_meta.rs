//! Reads the metadata of a GGUF file (chat template, special tokens, architecture) without
//! loading tensors, so the family can be detected before the model loads and without mistral.rs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Why a GGUF file's metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file is not GGUF of version 2 or later, or its metadata is damaged or cut off.
    #[error("{path}: {message}")]
    Invalid {
        /// The file, as given.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file could not be opened.
    #[error("{path}: {source}")]
    Io {
        /// The file, as given.
        path: String,
        /// Why it could not be opened.
        source: std::io::Error,
    },
}

/// The metadata values we use; arrays other than the token list are skipped.
#[derive(Debug, Clone, Default)]
pub struct GgufMeta {
    /// String values by key (`tokenizer.chat_template`, `tokenizer.ggml.model`, …).
    pub strings: HashMap<String, String>,
    /// Unsigned integer values (u32 and u64) by key.
    pub ints: HashMap<String, u64>,
    /// The vocabulary (`tokenizer.ggml.tokens`), indexed by token id.
    pub tokens: Vec<String>,
}

impl GgufMeta {
    /// The token whose id the integer value `key` holds (`tokenizer.ggml.bos_token_id`, say).
    pub fn token(&self, key: &str) -> Option<String> {
        let id = *self.ints.get(key)? as usize;
        self.tokens.get(id).cloned()
    }

    /// Each token's bytes, decoded from the vocabulary's spelling: GPT-2 byte-level BPE
    /// (`gpt2`: Qwen3, Llama 4) or SentencePiece (`llama`: `▁` for a space, `<0xNN>` bytes).
    /// Empty for other tokenizers.
    pub fn token_bytes(&self) -> Vec<Vec<u8>> {
        match self.strings.get("tokenizer.ggml.model").map(String::as_str) {
            Some("gpt2") => {
                let decoder = byte_decoder();
                self.tokens
                    .iter()
                    .map(|t| {
                        t.chars()
                            .flat_map(|c| {
                                decoder
                                    .get(&c)
                                    .map_or_else(|| c.to_string().into_bytes(), |b| vec![*b])
                            })
                            .collect()
                    })
                    .collect()
            }
            Some("llama") => self
                .tokens
                .iter()
                .map(|t| {
                    match t
                        .strip_prefix("<0x")
                        .and_then(|h| h.strip_suffix('>'))
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(b) if t.len() == 6 => vec![b],
                        _ => t.replace('\u{2581}', " ").into_bytes(),
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// GPT-2's byte-level alphabet, reversed: the char each byte is spelled with → the byte.
/// Printable bytes stand for themselves; the others are shifted to 256 and up, in order.
fn byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u8| {
        (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut map = HashMap::new();
    let mut shifted = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
        map.insert(c, b);
    }
    map
}

struct Reader<R: Read> {
    r: R,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        Ok(b)
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> std::io::Result<String> {
        let n = self.u64()?;
        if n > 64 << 20 {
            return Err(std::io::Error::other(format!("string of {n} bytes")));
        }
        let mut b = vec![0u8; n as usize];
        self.r.read_exact(&mut b)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())?;
        Ok(())
    }
}

/// GGUF value type ids and the fixed size of the scalar ones.
fn scalar_size(t: u32) -> Option<u64> {
    match t {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Reads the metadata of the GGUF file at `path`, stopping before the tensors.
pub fn read(path: &Path) -> Result<GgufMeta, GgufError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| GgufError::Io {
        path: p.clone(),
        source,
    })?;
    read_from(BufReader::new(file)).map_err(|e| GgufError::Invalid {
        path: p,
        message: e.to_string(),
    })
}

fn read_from<R: Read>(r: R) -> std::io::Result<GgufMeta> {
    let mut r = Reader { r };
    if &r.bytes::<4>()? != b"GGUF" {
        return Err(std::io::Error::other("not a GGUF file (bad magic)"));
    }
    let version = r.u32()?;
    if version < 2 {
        return Err(std::io::Error::other(format!(
            "unsupported GGUF version {version}"
        )));
    }
    let _tensors = r.u64()?;
    let kvs = r.u64()?;
    let mut meta = GgufMeta::default();
    for _ in 0..kvs {
        let key = r.string()?;
        let t = r.u32()?;
        match t {
            8 => {
                let v = r.string()?;
                meta.strings.insert(key, v);
            }
            9 => {
                let et = r.u32()?;
                let n = r.u64()?;
                if et == 8 {
                    let keep = key == "tokenizer.ggml.tokens";
                    for _ in 0..n {
                        let s = r.string()?;
                        if keep {
                            meta.tokens.push(s);
                        }
                    }
                } else {
                    let size = scalar_size(et).ok_or_else(|| {
                        std::io::Error::other(format!("{key}: nested arrays are not supported"))
                    })?;
                    r.skip(size * n)?;
                }
            }
            4 | 10 => {
                let v = if t == 4 { r.u32()? as u64 } else { r.u64()? };
                meta.ints.insert(key, v);
            }
            _ => {
                let size = scalar_size(t).ok_or_else(|| {
                    std::io::Error::other(format!("{key}: unknown value type {t}"))
                })?;
                r.skip(size)?;
            }
        }
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bytes_from_both_spellings() {
        let mut m = GgufMeta::default();
        m.strings
            .insert("tokenizer.ggml.model".into(), "gpt2".into());
        // "Ġ" is GPT-2's space; "Ã©" spells é's two bytes; "ä¸" is the first two bytes of 中.
        m.tokens = ["Ġhello", "Ã©", "ä¸", "<|im_start|>"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            m.token_bytes(),
            vec![
                b" hello".to_vec(),
                "é".as_bytes().to_vec(),
                vec![0xE4, 0xB8],
                b"<|im_start|>".to_vec()
            ]
        );
        m.strings
            .insert("tokenizer.ggml.model".into(), "llama".into());
        m.tokens = ["\u{2581}the", "<0xE4>", "<s>"].map(String::from).to_vec();
        assert_eq!(
            m.token_bytes(),
            vec![b" the".to_vec(), vec![0xE4], b"<s>".to_vec()]
        );
        assert_eq!(byte_decoder().len(), 256);
    }
}
