//! MCP servers as tool sources: their configuration (`config`), the connection over stdio or
//! streamable HTTP (`connect`), what we answer when a server asks us something (`host`: roots,
//! sampling, elicitation), one server with restarts and bounded calls (`client`), results as
//! the model reads them (`content`), and every configured server of a run (`pool`).

mod client;
mod config;
mod connect;
mod content;
mod host;
mod pool;

pub use client::{McpError, McpServer, SEPARATOR};
pub use config::{
    ConfigError, DEFAULT_CALL_TIMEOUT, DEFAULT_CALL_TOTAL_TIMEOUT, DEFAULT_MAX_OUTPUT,
    DEFAULT_STARTUP_TIMEOUT, McpConfig, PathSeg, ServerConfig, Transport,
};
pub use content::cap_output;
pub use pool::{McpPool, ServerStatus};

use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::BoxFuture;

/// What MCP servers did during a run, for the trace and the progress line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum McpEvent {
    Started {
        server: String,
        tools: usize,
        millis: u64,
        protocol: String,
    },
    /// Start or restart failed; `required` servers fail the run.
    Failed {
        server: String,
        error: String,
        required: bool,
    },
    /// The connection was lost (the process exited or the HTTP session ended).
    Lost {
        server: String,
        error: String,
    },
    Restarted {
        server: String,
        attempt: u32,
    },
    ToolsChanged {
        server: String,
        tools: usize,
    },
    /// The server asked our model for a completion (`sampling/createMessage`).
    Sampling {
        server: String,
        messages: Vec<(String, String)>,
        reply: String,
        tokens: usize,
    },
    /// The server asked the user for input (`elicitation/create`); nobody is there to answer.
    ElicitationDeclined {
        server: String,
        message: String,
        reason: String,
    },
}

/// A completion the server asked for: roles and texts as the server sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRequest {
    pub server: String,
    pub system: Option<String>,
    /// `(role, text)`, role `user` or `assistant`.
    pub messages: Vec<(String, String)>,
    /// Already bounded by the run's sampling cap.
    pub max_tokens: u32,
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingReply {
    pub text: String,
    pub model: String,
    pub tokens: usize,
    /// True when the token cap cut the reply.
    pub truncated: bool,
}

/// Answers sampling requests with the local model.
pub trait Sampler: Send + Sync {
    fn sample(&self, request: SamplingRequest) -> BoxFuture<'_, Result<SamplingReply, String>>;
}

pub type EventSink = Arc<dyn Fn(McpEvent) + Send + Sync>;

/// What servers may ask of us, shared by every server of a run.
#[derive(Clone)]
pub struct Hooks {
    /// Filled once the model is loaded: servers start while it loads, and a sampling request
    /// that comes before gets an error saying so.
    pub sampler: Arc<OnceLock<Arc<dyn Sampler>>>,
    /// Most tokens one sampling request may generate, whatever the server asks.
    pub sampling_max_tokens: u32,
    pub events: Option<EventSink>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            sampler: Arc::new(OnceLock::new()),
            sampling_max_tokens: 512,
            events: None,
        }
    }
}

impl Hooks {
    pub(crate) fn emit(&self, event: McpEvent) {
        if let Some(sink) = &self.events {
            sink(event);
        }
    }
}
