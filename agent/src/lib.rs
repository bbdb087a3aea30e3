//! The agent runtime: task files, prompts per model family, tool-call parsing, the planner
//! loop, and (with the `mistralrs` feature) the in-process model backend.

pub mod backend;
pub mod builder;
pub mod events;
pub mod formats;
pub mod gguf_meta;
pub mod hub;
#[cfg(feature = "mistralrs")]
pub mod mistral;
pub mod models;
pub mod parse;
pub mod planner;
pub mod prompt;
pub mod replay;
pub mod sampling;
#[cfg(feature = "serve")]
pub mod serve;
pub mod task;
pub mod thinking;
pub mod toolbox;
pub mod toolset;

/// The wasm sandbox (policies, components).
pub use agent_sandboxes as sandboxes;
/// The tool model (registry, typed tools, MCP client), for programs that need more of it.
pub use agent_tools as tools;
pub use agent_tools::typed::tool;
pub use builder::{AgentBuilder, BuildError};
pub use planner::{Agent, Chat, Outcome, RunConfig, RunError};
pub use task::Task;
