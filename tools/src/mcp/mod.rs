//! MCP servers as tool sources: their configuration (`config`) and a client for stdio servers
//! (`client`). Streamable HTTP, restarts, progress and the client capabilities come next.

mod client;
mod config;

pub use client::{McpError, McpServer, SEPARATOR};
pub use config::{ConfigError, DEFAULT_CALL_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, McpConfig, PathSeg, ServerConfig, Transport};
