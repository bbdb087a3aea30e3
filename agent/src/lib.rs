//! The agent runtime: task files, prompts per model family, tool-call parsing, the planner
//! loop, and (with the `mistralrs` feature) the in-process model backend.

pub mod backend;
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
pub mod task;
pub mod thinking;
pub mod toolbox;
pub mod toolset;
