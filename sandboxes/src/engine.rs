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
/// Most wasm calls running at once (each holds a component instance, and the pooling
/// allocator has this many slots); more calls wait for a slot.
pub const MAX_CONCURRENT_CALLS: usize = 64;
/// Most elements of a guest's tables (function pointers and the like), in every table.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Longest we let a compilation run.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a component could not be compiled or loaded. `path` is the file, or the name the
/// component was compiled or loaded under.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {message}")]
    Read {
        /// The file, or the component's name.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The component is larger than [`MAX_COMPONENT_BYTES`].
    #[error("{path}: {size} bytes is more than the {MAX_COMPONENT_BYTES} a tool may have")]
    TooBig {
        /// The file, or the component's name.
        path: String,
        /// Its size in bytes.
        size: usize,
    },
    /// wasmtime could not compile it.
    #[error("{path}: not a valid WebAssembly component: {message}")]
    Invalid {
        /// The file, or the component's name.
        path: String,
        /// wasmtime's error.
        message: String,
    },
    /// Compiling took longer than the sandbox's limit ([`COMPILE_TIMEOUT`] by default).
    #[error("{path}: compiling took more than {limit:?}; refused")]
    CompileTimeout {
        /// The file, or the component's name.
        path: String,
        /// The limit that ran out.
        limit: Duration,
    },
    /// The component compiled but cannot be used as a tool set: it imports what the policy
    /// does not grant, does not link, offers no tools, or its `describe` failed.
    #[error("{path}: {message}")]
    Refused {
        /// The file, or the component's name.
        path: String,
        /// Why it was refused.
        message: String,
    },
}

/// The process's wasmtime engine: compiles components (through the code cache), ticks CPU
/// deadlines, and bounds how many calls run at once ([`MAX_CONCURRENT_CALLS`]).
pub struct Sandbox {
    engine: Engine,
    /// For policies that meter CPU by fuel (deterministic, counted in instructions) rather
    /// than by epochs; made on first use, since most runs never need it.
    fuel_engine: std::sync::OnceLock<Result<Engine, String>>,
    cache_dir: Option<PathBuf>,
    compile_timeout: Duration,
    /// One permit per instance slot: a call waits for a slot instead of failing.
    slots: Arc<tokio::sync::Semaphore>,
    _ticker: Ticker,
}

/// How a component's CPU use is capped, which decides the engine it is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metering {
    /// Epoch deadlines: cheap, in milliseconds, not deterministic.
    Epoch,
    /// Fuel: a count of executed instructions, the same on every run.
    Fuel,
}

/// A compiled component, with what the host reads from its bytes.
#[derive(Clone)]
pub struct Compiled {
    /// What it was compiled as: its path, or the name given to [`Sandbox::compile`].
    pub name: String,
    /// The compiled component.
    pub component: Component,
    /// How CPU is capped in the engine it was compiled for.
    pub metering: Metering,
    /// The WIT the guest embedded (custom section `agent-tool-wit`), for doc comments.
    pub wit: Option<String>,
    bytes: Arc<Vec<u8>>,
}

/// The custom section in which a guest embeds its WIT source (the component's own type
/// information carries no doc comments).
pub const WIT_SECTION: &str = "agent-tool-wit";
const MAX_WIT_BYTES: usize = 1 << 20;

/// The embedded WIT, searched for in the component and the core modules inside it.
fn embedded_wit(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::CustomSection(s)) = payload
            && s.name() == WIT_SECTION
            && s.data().len() <= MAX_WIT_BYTES
        {
            return std::str::from_utf8(s.data()).ok().map(str::to_string);
        }
    }
    None
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct Ticker(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn config(pooling: bool, metering: Metering) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(metering == Metering::Epoch);
    c.consume_fuel(metering == Metering::Fuel);
    c.max_wasm_stack(512 << 10);
    c.wasm_threads(false);
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(MAX_CONCURRENT_CALLS as u32);
        p.total_core_instances(256);
        p.total_memories(128);
        p.total_tables(128);
        p.max_memory_size(MAX_MEMORY_BYTES as usize);
        p.table_elements(MAX_TABLE_ELEMENTS);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

impl Sandbox {
    /// The engine, with its code cache in `cache_dir` (created 0700; `None`: compile every
    /// time). Falls back to on-demand allocation where the pooling allocator cannot reserve
    /// its address space.
    pub fn new(cache_dir: Option<&Path>) -> Result<Sandbox, String> {
        let engine = new_engine(Metering::Epoch)?;
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
        Ok(Sandbox {
            engine,
            fuel_engine: std::sync::OnceLock::new(),
            cache_dir: cache_dir.map(Path::to_path_buf),
            compile_timeout: COMPILE_TIMEOUT,
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS)),
            _ticker: Ticker(stop),
        })
    }

    /// An instance slot, held for as long as an instance lives.
    pub(crate) async fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        // The semaphore is never closed, so this is always `Some`.
        self.slots.clone().acquire_owned().await.ok()
    }

    /// A shorter limit on compilation than [`COMPILE_TIMEOUT`] (tests of compile bombs).
    pub fn with_compile_timeout(mut self, limit: Duration) -> Sandbox {
        self.compile_timeout = limit;
        self
    }

    /// The epoch-metered engine, the one [`Sandbox::compile`] compiles for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn engine_for(&self, metering: Metering) -> Result<&Engine, String> {
        match metering {
            Metering::Epoch => Ok(&self.engine),
            Metering::Fuel => self
                .fuel_engine
                .get_or_init(|| new_engine(Metering::Fuel))
                .as_ref()
                .map_err(Clone::clone),
        }
    }

    /// The same component compiled for the engine that meters CPU the other way.
    pub async fn recompile(
        &self,
        compiled: &Compiled,
        metering: Metering,
    ) -> Result<Compiled, LoadError> {
        if compiled.metering == metering {
            return Ok(compiled.clone());
        }
        self.compile_with(&compiled.name, compiled.bytes.clone(), metering)
            .await
    }

    /// Reads and compiles a component (from the cache when a checked copy is there).
    pub async fn compile_file(&self, path: &Path) -> Result<Compiled, LoadError> {
        let name = path.display().to_string();
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| LoadError::Read {
                path: name.clone(),
                message: e.to_string(),
            })?;
        if meta.len() > MAX_COMPONENT_BYTES as u64 {
            return Err(LoadError::TooBig {
                path: name,
                size: meta.len() as usize,
            });
        }
        let bytes = tokio::fs::read(path).await.map_err(|e| LoadError::Read {
            path: name.clone(),
            message: e.to_string(),
        })?;
        self.compile(&name, bytes).await
    }

    /// Compiles a component from its bytes, for epoch metering (from the cache when a checked
    /// copy is there); `name` is what errors call it.
    pub async fn compile(&self, name: &str, bytes: Vec<u8>) -> Result<Compiled, LoadError> {
        self.compile_with(name, Arc::new(bytes), Metering::Epoch)
            .await
    }

    async fn compile_with(
        &self,
        name: &str,
        bytes: Arc<Vec<u8>>,
        metering: Metering,
    ) -> Result<Compiled, LoadError> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(LoadError::TooBig {
                path: name.into(),
                size: bytes.len(),
            });
        }
        let engine = self
            .engine_for(metering)
            .map_err(|message| LoadError::Refused {
                path: name.into(),
                message,
            })?
            .clone();
        let done = |component: Component| Compiled {
            name: name.to_string(),
            component,
            metering,
            wit: embedded_wit(&bytes),
            bytes: bytes.clone(),
        };
        // Reading the cache, compiling and writing the cache are blocking (disk, and CPU that
        // can be made slow on purpose): off the async runtime, and abandoned (the thread
        // finishes on its own) after the timeout.
        let (e, b, dir) = (engine.clone(), bytes.clone(), self.cache_dir.clone());
        let job = tokio::task::spawn_blocking(move || {
            let key = cache_key(&e, &b);
            if let Some(c) = read_cached(dir.as_deref(), &e, &key) {
                return Ok(Ready::Cached(c));
            }
            let code = e.precompile_component(&b).map_err(|e| format!("{e:#}"))?;
            write_cached(dir.as_deref(), &key, &code);
            Ok(Ready::Compiled(code))
        });
        let code = match tokio::time::timeout(self.compile_timeout, job).await {
            Err(_) => {
                return Err(LoadError::CompileTimeout {
                    path: name.into(),
                    limit: self.compile_timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(LoadError::Invalid {
                    path: name.into(),
                    message: e.to_string(),
                });
            }
            Ok(Ok(Err(message))) => {
                return Err(LoadError::Invalid {
                    path: name.into(),
                    message,
                });
            }
            Ok(Ok(Ok(Ready::Cached(c)))) => return Ok(done(c)),
            Ok(Ok(Ok(Ready::Compiled(code)))) => code,
        };
        // SAFETY: `code` was produced just now by this engine's `precompile_component`.
        let c =
            unsafe { Component::deserialize(&engine, &code) }.map_err(|e| LoadError::Invalid {
                path: name.into(),
                message: format!("{e:#}"),
            })?;
        Ok(done(c))
    }
}

/// What the blocking half of a compile gives back.
enum Ready {
    Cached(Component),
    Compiled(Vec<u8>),
}

/// A cached compilation, used only when its recorded hash matches its bytes: a file changed
/// behind our back is recompiled, never loaded.
fn read_cached(dir: Option<&Path>, engine: &Engine, key: &str) -> Option<Component> {
    let dir = dir?;
    let code = std::fs::read(dir.join(format!("{key}.cwasm"))).ok()?;
    let recorded = std::fs::read_to_string(dir.join(format!("{key}.sha256"))).ok()?;
    if hex(&Sha256::digest(&code)) != recorded.trim() {
        tracing::warn!("compile cache entry {key} does not match its hash; recompiling");
        return None;
    }
    // SAFETY: the bytes are ones this process's engine (same settings: they are in the key)
    // serialized into a directory only we write, and unchanged since (hash above).
    unsafe { Component::deserialize(engine, &code) }.ok()
}

fn write_cached(dir: Option<&Path>, key: &str, code: &[u8]) {
    let Some(dir) = dir else { return };
    // Write to a temporary name and rename, so a reader never sees half a file.
    let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
    let ok = std::fs::write(&tmp, code).is_ok()
        && std::fs::rename(&tmp, dir.join(format!("{key}.cwasm"))).is_ok()
        && std::fs::write(
            dir.join(format!("{key}.sha256")),
            hex(&Sha256::digest(code)),
        )
        .is_ok();
    if !ok {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!("cannot write the compile cache in {}", dir.display());
    }
}

fn new_engine(metering: Metering) -> Result<Engine, String> {
    match Engine::new(&config(true, metering)) {
        Ok(e) => Ok(e),
        Err(e) => {
            tracing::warn!("pooling allocator unavailable ({e}); allocating per call");
            Engine::new(&config(false, metering)).map_err(|e| e.to_string())
        }
    }
}

/// sha256 of the component and of the engine's compatibility settings (fuel or epochs
/// included).
fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let mut d = Sha256::new();
    d.update(bytes);
    d.update(h.finish().to_le_bytes());
    d.update(env!("CARGO_PKG_VERSION").as_bytes());
    hex(&d.finalize())
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
