//! One wasmtime engine per process: components compiled once (size- and time-capped, since
//! wasmtime does not treat compile-time denial of service as its problem), cached on disk in a
//! directory only we write, keyed by content hash and engine settings, and checked against a
//! hash of the cached code before it is trusted; an epoch ticker for CPU deadlines; the
//! pooling allocator so that a call costs an instantiation, not an allocation.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::policy::MAX_MEMORY_BYTES;

/// How often the epoch advances: the granularity of CPU deadlines.
pub const TICK: Duration = Duration::from_millis(10);
/// Largest component we compile.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;
/// Longest we let a compilation run.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {size} bytes is more than the {MAX_COMPONENT_BYTES} a tool may have")]
    TooBig { path: String, size: usize },
    #[error("{path}: not a valid WebAssembly component: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: compiling took more than {COMPILE_TIMEOUT:?}; refused")]
    CompileTimeout { path: String },
    #[error("{path}: {message}")]
    Refused { path: String, message: String },
}

pub struct Sandbox {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    _ticker: Ticker,
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct Ticker(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.max_wasm_stack(512 << 10);
    c.wasm_threads(false);
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(64);
        p.total_core_instances(256);
        p.total_memories(128);
        p.total_tables(128);
        p.max_memory_size(MAX_MEMORY_BYTES as usize);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

impl Sandbox {
    /// The engine, with its code cache in `cache_dir` (created 0700; `None`: compile every
    /// time). Falls back to on-demand allocation where the pooling allocator cannot reserve
    /// its address space.
    pub fn new(cache_dir: Option<&Path>) -> Result<Sandbox, String> {
        let engine = match Engine::new(&config(true)) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e}); allocating per call");
                Engine::new(&config(false)).map_err(|e| e.to_string())?
            }
        };
        if let Some(dir) = cache_dir {
            create_private_dir(dir).map_err(|e| format!("cache {}: {e}", dir.display()))?;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (e, s) = (engine.weak(), stop.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match e.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Sandbox { engine, cache_dir: cache_dir.map(Path::to_path_buf), _ticker: Ticker(stop) })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads and compiles a component (from the cache when a checked copy is there).
    pub async fn compile_file(&self, path: &Path) -> Result<Component, LoadError> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| LoadError::Read { path: name.clone(), message: e.to_string() })?;
        if meta.len() > MAX_COMPONENT_BYTES as u64 {
            return Err(LoadError::TooBig { path: name, size: meta.len() as usize });
        }
        let bytes = std::fs::read(path).map_err(|e| LoadError::Read { path: name.clone(), message: e.to_string() })?;
        self.compile(&name, bytes).await
    }

    pub async fn compile(&self, name: &str, bytes: Vec<u8>) -> Result<Component, LoadError> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(LoadError::TooBig { path: name.into(), size: bytes.len() });
        }
        let key = self.cache_key(&bytes);
        if let Some(c) = self.cached(&key) {
            return Ok(c);
        }
        let engine = self.engine.clone();
        // Compilation is CPU-bound and can be made slow on purpose: off the async runtime, and
        // abandoned (the thread finishes on its own) after the timeout.
        let job = tokio::task::spawn_blocking(move || engine.precompile_component(&bytes).map_err(|e| format!("{e:#}")));
        let code = match tokio::time::timeout(COMPILE_TIMEOUT, job).await {
            Err(_) => return Err(LoadError::CompileTimeout { path: name.into() }),
            Ok(Err(e)) => return Err(LoadError::Invalid { path: name.into(), message: e.to_string() }),
            Ok(Ok(Err(message))) => return Err(LoadError::Invalid { path: name.into(), message }),
            Ok(Ok(Ok(code))) => code,
        };
        self.store_cached(&key, &code);
        // SAFETY: `code` was produced just now by this engine's `precompile_component`.
        unsafe { Component::deserialize(&self.engine, &code) }.map_err(|e| LoadError::Invalid { path: name.into(), message: format!("{e:#}") })
    }

    /// sha256 of the component and of the engine's compatibility settings.
    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let mut d = Sha256::new();
        d.update(bytes);
        d.update(h.finish().to_le_bytes());
        d.update(env!("CARGO_PKG_VERSION").as_bytes());
        hex(&d.finalize())
    }

    /// A cached compilation, used only when its recorded hash matches its bytes: a file changed
    /// behind our back is recompiled, never loaded.
    fn cached(&self, key: &str) -> Option<Component> {
        let dir = self.cache_dir.as_ref()?;
        let code = std::fs::read(dir.join(format!("{key}.cwasm"))).ok()?;
        let recorded = std::fs::read_to_string(dir.join(format!("{key}.sha256"))).ok()?;
        if hex(&Sha256::digest(&code)) != recorded.trim() {
            tracing::warn!("compile cache entry {key} does not match its hash; recompiling");
            return None;
        }
        // SAFETY: the bytes are ones this process's engine (same settings: they are in the
        // key) serialized into a directory only we write, and unchanged since (hash above).
        unsafe { Component::deserialize(&self.engine, &code) }.ok()
    }

    fn store_cached(&self, key: &str, code: &[u8]) {
        let Some(dir) = &self.cache_dir else { return };
        // Write to a temporary name and rename, so a reader never sees half a file.
        let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        let ok = std::fs::write(&tmp, code).is_ok()
            && std::fs::rename(&tmp, dir.join(format!("{key}.cwasm"))).is_ok()
            && std::fs::write(dir.join(format!("{key}.sha256")), hex(&Sha256::digest(code))).is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("cannot write the compile cache in {}", dir.display());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
