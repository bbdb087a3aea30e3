//! What an entry's KV depends on besides its tokens: the model's files (by content hash),
//! how they were loaded (device, in-situ quantization) and the build that computed it. Any
//! change gives another namespace, and entries of other namespaces are never read.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

/// Bumped whenever this build's numbers may differ from earlier builds' for the same files.
const NUMERICS: &str = "agent prefix cache 1";

/// The model files and loading choices that decide the KV.
#[derive(Debug, Clone)]
pub struct ModelIdentity {
    /// Every file whose bytes the weights come from (and a checkpoint's config.json).
    pub files: Vec<PathBuf>,
    /// Device kind, dtype and in-situ quantization, as one line.
    pub loading: String,
}

fn io_err(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

/// (length, modification time in ns) of `path`, which a changed file changes.
fn stamp(path: &Path) -> Result<(u64, u128), String> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((meta.len(), mtime))
}

/// SHA-256 of a file's bytes, remembered in `memo_dir` against its length and modification
/// time, so that a 17 GB checkpoint is read once, not at every run.
pub fn file_hash(path: &Path, memo_dir: &Path) -> Result<String, String> {
    let path = std::fs::canonicalize(path).map_err(|e| io_err(path, e))?;
    let (len, mtime) = stamp(&path)?;
    let key = hex::encode(&Sha256::digest(path.to_string_lossy().as_bytes())[..16]);
    let memo = memo_dir.join(key);
    let stamp_line = format!("{len} {mtime} ");
    if let Ok(text) = std::fs::read_to_string(&memo) {
        if let Some(hash) = text.trim_end().strip_prefix(&stamp_line) {
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(hash.to_string());
            }
        }
    }
    let mut file = std::fs::File::open(&path).map_err(|e| io_err(&path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| io_err(&path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hash = hex::encode(h.finalize());
    // The file may have changed while it was read: remember the hash only if it did not.
    if stamp(&path)? == (len, mtime) {
        let _ = std::fs::create_dir_all(memo_dir);
        let tmp = memo.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, format!("{stamp_line}{hash}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &memo);
        }
    }
    Ok(hash)
}

/// The running executable's length and modification time: another build of agent (or of a
/// program using the library) may compute other bits, so its entries are kept apart.
fn build_stamp() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| stamp(&exe).ok())
        .map_or_else(|| "unknown build".into(), |(len, t)| format!("{len} {t}"))
}

/// The namespace (hex) of `identity`: its files' hashes, the loading line and this build.
pub fn namespace(identity: &ModelIdentity, memo_dir: &Path) -> Result<String, String> {
    let mut h = Sha256::new();
    h.update(NUMERICS);
    h.update(format!(
        "\n{}\n{}\n{}\n",
        env!("CARGO_PKG_VERSION"),
        build_stamp(),
        identity.loading
    ));
    for file in &identity.files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        h.update(format!("{name} {}\n", file_hash(file, memo_dir)?));
    }
    Ok(hex::encode(&h.finalize()[..16]))
}
