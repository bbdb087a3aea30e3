//! The agent runtime: a planner loop that drives a local model (in process, through
//! mistral.rs), parses its tool calls, runs them (Rust functions, MCP servers, wasm components
//! in a sandbox) and sets its thinking budget step by step.
//!
//! The shortest program: the default model, one typed tool.
//!
//! ```no_run
//! use agent::Agent;
//!
//! /// Today's temperature in a city, in degrees Celsius.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Weather {
//!     city: String,
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let weather = agent::tool("weather", |w: Weather| async move { w.city + ": 18 °C" });
//! let agent = Agent::builder().tool(weather).build().await?;
//! println!("{}", agent.run("How warm is it in Lyon today?").await?);
//! # Ok(())
//! # }
//! ```
//!
//! Where things are:
//! - [`Agent`] and its [`builder`](AgentBuilder): a model, tools and settings; runs, typed
//!   answers ([`Agent::run_typed`]), conversations ([`Agent::chat`]), agents as tools.
//! - [`task`]: task files (`agent run TASK.md`), the same settings as the builder's.
//! - [`events`]: what a run reports, as a stream or to an observer; [`thinking`]: budgets and
//!   the policies that pick them; [`backend`]: the model interface, with [`replay`] to script a
//!   model in tests and [`mistral`] the real one.
//! - [`prompt`], [`formats`] and [`parse`]: prompts per model family and their tool-call
//!   formats; [`models`] and [`hub`]: the model catalogue and where weights come from.
//! - [`serve`]: serve an agent over MCP from a program (feature `serve`).

#![deny(missing_docs)]

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
pub mod permissions;
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
pub use backend::Device;
pub use builder::{AgentBuilder, BuildError};
pub use formats::ToolChoice;
pub use planner::{Agent, Chat, Outcome, RunConfig, RunError};
pub use task::Task;
pub use thinking::Budget;
