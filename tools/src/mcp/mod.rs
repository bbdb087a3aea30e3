//! MCP servers as tool sources. So far: their configuration (`config`); the client comes next.

mod config;

pub use config::{ConfigError, DEFAULT_CALL_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, McpConfig, PathSeg, ServerConfig, Transport};
