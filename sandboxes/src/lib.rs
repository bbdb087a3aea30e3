//! Tools as WebAssembly components, run in wasmtime with least privilege: a component sees
//! nothing its policy does not grant, is stopped when it runs too long or asks for too much
//! memory, and is fresh for every call. `engine` compiles and caches; `policy` says what a tool
//! may do; `component` loads a component's tools and runs calls (`typed` derives the schemas of
//! typed exports from their WIT types, `docs` finds their doc comments); `bundled` has the tools that
//! ship with the runtime (sources in `tools/`, built by `build.rs`).
#![deny(missing_docs)]

pub mod bundled;
mod component;
mod docs;
mod engine;
mod policy;
mod typed;

pub use component::{Resident, WasmComponent};
pub use engine::{
    COMPILE_TIMEOUT, Compiled, LoadError, MAX_COMPONENT_BYTES, MAX_CONCURRENT_CALLS, Metering,
    Sandbox, TICK, WIT_SECTION,
};
pub use policy::{MAX_MEMORY_BYTES, Mode, Policy, PolicyError, Preopen};

/// Where `build.rs` put the guests it built, the test-only ones included (for tests).
#[cfg(feature = "test-guests")]
#[doc(hidden)]
pub fn built_guests_dir() -> &'static str {
    env!("OUT_DIR")
}
