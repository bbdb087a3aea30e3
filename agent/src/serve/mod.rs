//! An [`Agent`](crate::Agent) as an MCP server (the `serve` feature): what `agent serve`
//! runs, and what a program embeds to serve its own agent. Clients get `run_task` (a whole
//! run, with progress per step and cancellation, inline or as an MCP task), the agent's wasm
//! tools (the agent as a sandboxed tool host), optionally its MCP servers' tools
//! ([`ServeOptions::gateway`]), the traces of past runs as resources and the example tasks as
//! prompts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use agent::Agent;
//! use agent::serve::{ServeOptions, Server};
//! use tokio_util::sync::CancellationToken;
//!
//! let agent = Agent::builder().builtin("calculator").build().await?;
//! Server::new(agent, ServeOptions::default())?
//!     .serve_stdio(CancellationToken::new())
//!     .await?;
//! # Ok(()) }
//! ```

mod approve;
mod conformance;
mod handler;
mod http;
mod mrtr;
mod run;

pub use handler::{ServeOptions, Server};
pub use http::{HttpOptions, serve_http};

/// Why a server did not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The agent or the options cannot be served (nothing was started).
    #[error("{0}")]
    Setup(String),
    /// The transport failed (stdio closed badly, the address could not be bound).
    #[error("{0}")]
    Transport(String),
}
