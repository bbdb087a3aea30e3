//! The on-disk prefix cache: the KV of prompts the engine computed afresh, kept across
//! processes, so that the same task run again (or another task with the same system prompt
//! and tools, or a restarted `agent serve`) skips prefilling what an earlier run computed.
//!
//! The engine (vendored mistral.rs, patch 17) offers each finished prompt and asks for a
//! longer prefix than its memory holds before prefilling; this store answers from files
//! under `root/NAMESPACE/`, where the namespace hashes the model's files, how they were loaded
//! and the build (identity.rs). An entry is one file (entry.rs) checked whole before use: one
//! that is cut off, changed, or of another format is deleted and never trusted, and the
//! prompt is prefilled as if it were absent, which writes the entry again. Entries are
//! written to a temporary name and renamed, so readers never see half a file; the cache as a
//! whole is kept under `max_bytes`, least recently used entries removed first.

mod entry;
mod identity;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mistralrs_core::{PrefixStore, StoredPrefix};
use sha2::{Digest, Sha256};

pub use entry::EntryError;
pub use identity::{ModelIdentity, file_hash};

/// The default bound on the cache's size on disk.
pub const DEFAULT_MAX_BYTES: u64 = crate::builder::DISK_CACHE_MIB << 20;

/// A prompt step must compute at least this many tokens afresh, and at least half of its
/// prompt, for the prompt to be kept: shorter prefills are quick anyway, and a later step of
/// a run (mostly served from memory) would otherwise write the whole conversation again.
const MIN_FRESH: usize = 256;

/// Temporary files older than this were left by a writer that died.
const STALE_TMP: Duration = Duration::from_secs(600);

/// Where the on-disk prefix cache lives and how large it may grow.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskCacheOptions {
    /// Holds one directory per namespace.
    pub root: PathBuf,
    /// The bound on every entry's bytes together (every namespace).
    pub max_bytes: u64,
}

impl DiskCacheOptions {
    /// `$AGENT_HOME/prefix-cache`, bounded by [`DEFAULT_MAX_BYTES`].
    pub fn standard() -> Self {
        Self {
            root: crate::models::agent_home().join("prefix-cache"),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

pub use crate::backend::DiskCacheStats;

/// Why the on-disk prefix cache could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskCacheError {
    /// The model's directory could not be created.
    #[error("the prefix cache directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why it could not be created.
        source: std::io::Error,
    },
    /// A file of the model could not be hashed.
    #[error("cannot identify the model for the prefix cache: {0}")]
    Identity(String),
    /// This machine is big-endian; entries are written little-endian.
    #[error("the prefix cache's files are little-endian; this machine is big-endian")]
    BigEndian,
}

/// One model's on-disk prefix cache: the store the engine asks for prefixes before prefilling
/// and offers the prompts it computed.
pub struct DiskPrefixCache {
    root: PathBuf,
    dir: PathBuf,
    namespace: String,
    max_bytes: u64,
    stats: Mutex<DiskCacheStats>,
}

impl DiskPrefixCache {
    /// The cache of `model` under `options.root` (hashing the model's files, or reading their
    /// hashes remembered from an earlier run).
    pub fn open(options: &DiskCacheOptions, model: &ModelIdentity) -> Result<Self, DiskCacheError> {
        if cfg!(target_endian = "big") {
            return Err(DiskCacheError::BigEndian);
        }
        let namespace = identity::namespace(model, &options.root.join("hashes"))
            .map_err(DiskCacheError::Identity)?;
        let dir = options.root.join(&namespace);
        std::fs::create_dir_all(&dir).map_err(|source| DiskCacheError::Dir {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            root: options.root.clone(),
            dir,
            namespace,
            max_bytes: options.max_bytes,
            stats: Mutex::new(DiskCacheStats::default()),
        })
    }

    /// This model's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the cache did so far in this process.
    pub fn stats(&self) -> DiskCacheStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn count(&self, f: impl FnOnce(&mut DiskCacheStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    /// The entry files of this namespace.
    fn entries(&self) -> Vec<PathBuf> {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        read.flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "kv"))
            .collect()
    }

    /// Deletes a damaged entry, so that the next prefill writes it again.
    fn reject(&self, e: &EntryError) {
        tracing::warn!("prefix cache: ignoring and deleting {e}");
        let _ = std::fs::remove_file(&e.path);
        self.count(|s| s.rejected += 1);
    }

    fn entry_path(&self, toks: &[u32]) -> PathBuf {
        let mut h = Sha256::new();
        for t in toks {
            h.update(t.to_le_bytes());
        }
        self.dir
            .join(format!("{}.kv", hex::encode(&h.finalize()[..16])))
    }

    /// Removes the least recently used entries (of every namespace) while the cache is over
    /// its bound, and temporary files that a dead writer left.
    fn evict(&self) {
        let now = SystemTime::now();
        let mut files = Vec::new();
        for ns in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let path = f.path();
                let Ok(meta) = f.metadata() else { continue };
                let modified = meta.modified().unwrap_or(now);
                let name = f.file_name().to_string_lossy().into_owned();
                if name.contains(".tmp") {
                    if now.duration_since(modified).unwrap_or_default() > STALE_TMP {
                        let _ = std::fs::remove_file(&path);
                    }
                } else if name.ends_with(".kv") {
                    files.push((modified, meta.len(), path));
                }
            }
        }
        files.sort();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                tracing::info!("prefix cache: evicted {}", path.display());
                total -= len;
            }
        }
    }
}

/// Marks an entry as just used (eviction removes the least recently used first).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn shared_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixStore for DiskPrefixCache {
    fn load(&self, toks: &[u32], longer_than: usize) -> Option<StoredPrefix> {
        // The prompt's last token is always computed: it gives the next token's logits.
        let usable = toks.len().saturating_sub(1);
        let mut candidates = Vec::new();
        for path in self.entries() {
            match entry::tokens(&path, &self.namespace) {
                Ok(stored) => {
                    let shared = shared_prefix(toks, &stored).min(usable);
                    if shared > longer_than {
                        candidates.push((shared, path));
                    }
                }
                Err(e) => self.reject(&e),
            }
        }
        candidates.sort_by(|a, b| b.0.cmp(&a.0));
        for (shared, path) in candidates {
            let started = std::time::Instant::now();
            match entry::read(&path, &self.namespace) {
                Ok(prefix) => {
                    touch(&path);
                    tracing::info!(
                        "prefix cache: {shared} of {} prompt tokens from {} ({:.3} s)",
                        toks.len(),
                        path.display(),
                        started.elapsed().as_secs_f64()
                    );
                    self.count(|s| {
                        s.hits += 1;
                        s.tokens_reused += shared;
                    });
                    return Some(prefix);
                }
                Err(e) => self.reject(&e),
            }
        }
        None
    }

    fn wants(&self, prompt_len: usize, fresh: usize) -> bool {
        fresh >= MIN_FRESH && fresh.saturating_mul(2) >= prompt_len
    }

    fn save(&self, prefix: StoredPrefix) {
        let started = std::time::Instant::now();
        let path = self.entry_path(&prefix.toks);
        if entry::tokens(&path, &self.namespace).is_ok_and(|t| t == prefix.toks) {
            touch(&path);
            return;
        }
        let bytes = match entry::encode(&self.namespace, &prefix) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("prefix cache: cannot store a prompt's KV: {e}");
                return;
            }
        };
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let tmp = path.with_extension(format!(
            "kv.tmp{}-{}",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => {
                tracing::info!(
                    "prefix cache: kept {} tokens in {} ({} bytes, {:.3} s)",
                    prefix.toks.len(),
                    path.display(),
                    bytes.len(),
                    started.elapsed().as_secs_f64()
                );
                self.count(|s| s.saved += 1);
                self.evict();
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!("prefix cache: cannot write {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests;
