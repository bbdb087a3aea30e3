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
    /// The server started and listed its tools.
    Started {
        /// The server's configured name.
        server: String,
        /// How many of its tools the configuration lets through.
        tools: usize,
        /// Time from the start to the tool list, in milliseconds.
        millis: u64,
        /// The protocol version the server answered with.
        protocol: String,
    },
    /// Start or restart failed; `required` servers fail the run.
    Failed {
        /// The server's configured name.
        server: String,
        /// Why it failed.
        error: String,
        /// Whether the server is `required` by its configuration.
        required: bool,
    },
    /// The connection was lost (the process exited or the HTTP session ended).
    Lost {
        /// The server's configured name.
        server: String,
        /// What was seen of the loss (with the tail of the server's stderr, if any).
        error: String,
    },
    /// The server was started again after its connection was lost.
    Restarted {
        /// The server's configured name.
        server: String,
        /// Which attempt in a row succeeded, from 1.
        attempt: u32,
    },
    /// The server announced a new tool list (`notifications/tools/list_changed`).
    ToolsChanged {
        /// The server's configured name.
        server: String,
        /// How many tools the new list has, before the configuration's filters.
        tools: usize,
    },
    /// The server asked our model for a completion (`sampling/createMessage`).
    Sampling {
        /// The server's configured name.
        server: String,
        /// The request's messages as `(role, text)`.
        messages: Vec<(String, String)>,
        /// The text our model answered with.
        reply: String,
        /// Tokens generated for the reply.
        tokens: usize,
    },
    /// The server asked the user for input (`elicitation/create`); nobody is there to answer.
    ElicitationDeclined {
        /// The server's configured name.
        server: String,
        /// The server's message to the user.
        message: String,
        /// Why we declined.
        reason: String,
    },
}

/// A completion the server asked for: roles and texts as the server sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRequest {
    /// The configured name of the server that asked.
    pub server: String,
    /// The system prompt the server gave, if any.
    pub system: Option<String>,
    /// `(role, text)`, role `user` or `assistant`.
    pub messages: Vec<(String, String)>,
    /// Already bounded by the run's sampling cap.
    pub max_tokens: u32,
    /// The sampling temperature the server asked for, if any.
    pub temperature: Option<f32>,
}

/// What a [`Sampler`] answers a [`SamplingRequest`] with.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingReply {
    /// The generated text.
    pub text: String,
    /// The name of the model that generated it, as the server will be told.
    pub model: String,
    /// Tokens generated.
    pub tokens: usize,
    /// True when the token cap cut the reply.
    pub truncated: bool,
}

/// Answers sampling requests with the local model.
pub trait Sampler: Send + Sync {
    /// Generates a reply to `request`; an error message goes back to the server as the
    /// request's error.
    fn sample(&self, request: SamplingRequest) -> BoxFuture<'_, Result<SamplingReply, String>>;
}

/// Receives each [`McpEvent`] as it happens.
pub type EventSink = Arc<dyn Fn(McpEvent) + Send + Sync>;

/// What servers may ask of us, shared by every server of a run.
#[derive(Clone)]
pub struct Hooks {
    /// Filled once the model is loaded: servers start while it loads, and a sampling request
    /// that comes before gets an error saying so.
    pub sampler: Arc<OnceLock<Arc<dyn Sampler>>>,
    /// Most tokens one sampling request may generate, whatever the server asks.
    pub sampling_max_tokens: u32,
    /// Where events go; none: they are dropped.
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
