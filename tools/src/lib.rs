//! The tool model shared by every tool source: a tool has a name, a description and a JSON
//! Schema for its arguments; a call returns text (and optionally structured JSON) or a tool
//! error that goes back to the model. Sources (built-in Rust tools, MCP servers, and wasm
//! components later) all plug into one [`ToolRegistry`]: fixed tools one by one, sources whose
//! tools change while a run goes on (an MCP server that starts late or announces a new list)
//! as a [`ToolProvider`].
#![deny(missing_docs)]

pub mod builtin;
pub mod mcp;
pub mod permissions;
mod registry;
mod schema;
pub mod typed;

pub use registry::{RegistryError, ToolProvider, ToolRegistry};
pub use schema::{
    SchemaCache, SchemaError, argument_error, echoed_description, unknown_tool, validate_arguments,
};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the model sees of a tool: the OpenAI-shaped function definition that chat templates
/// render (`{"type": "function", "function": {name, description, parameters}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls the tool by; unique within a [`ToolRegistry`].
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

impl ToolSpec {
    /// The function definition in the shape chat templates expect, keys in template order.
    pub fn to_openai(&self) -> Value {
        let mut function = serde_json::Map::new();
        function.insert("name".into(), Value::String(self.name.clone()));
        function.insert(
            "description".into(),
            Value::String(self.description.clone()),
        );
        function.insert("parameters".into(), self.parameters.clone());
        let mut tool = serde_json::Map::new();
        tool.insert("type".into(), Value::String("function".into()));
        tool.insert("function".into(), Value::Object(function));
        Value::Object(tool)
    }
}

/// What a tool says of itself, as MCP's tool annotations do: hints that permissions use to
/// decide calls no rule decides (read-only tools run; destructive ones are asked about).
/// Unknown (`None`) unless the tool says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolAnnotations {
    /// It does not change its environment (MCP `readOnlyHint`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub read_only: Option<bool>,
    /// A change it makes may destroy something (MCP `destructiveHint`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destructive: Option<bool>,
    /// Calling it again with the same arguments does nothing more (MCP `idempotentHint`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub idempotent: Option<bool>,
    /// It reaches the world outside (the network) (MCP `openWorldHint`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub open_world: Option<bool>,
}

impl ToolAnnotations {
    /// A tool that only reads, and nothing outside the machine.
    pub const READ_ONLY: ToolAnnotations = ToolAnnotations {
        read_only: Some(true),
        destructive: Some(false),
        idempotent: Some(true),
        open_world: Some(false),
    };

    /// `readOnlyHint, destructiveHint` as a short phrase for people (`read-only`,
    /// `destructive`, `writes`, or `unannotated`).
    pub fn describe(&self) -> &'static str {
        match (self.read_only, self.destructive) {
            (Some(true), _) => "read-only",
            (_, Some(true)) => "destructive",
            (Some(false), _) | (_, Some(false)) => "writes",
            (None, None) => "unannotated",
        }
    }
}

/// The result of one call, as the model will see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Text sent back to the model.
    pub content: String,
    /// Structured result, when the tool has one (kept in the trace).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub structured: Option<Value>,
    /// True when the call failed: the model sees the content as a tool error.
    #[serde(default)]
    pub is_error: bool,
    /// Images, audio and resources the tool returned, kept for the trace (the model reads a
    /// one-line note about each in `content`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub attachments: Vec<Attachment>,
}

/// A non-text part of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `image`, `audio`, `resource` or `resource_link`.
    pub kind: String,
    /// The MIME type, when the tool gave one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mime_type: Option<String>,
    /// The resource's URI, for a resource or a resource link.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uri: Option<String>,
    /// Base64 data or the resource's text, when it came inline.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<String>,
}

/// A progress report from a running call (MCP `notifications/progress`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressUpdate {
    /// Progress so far, in units the tool chooses (MCP has it increase with each update).
    pub progress: f64,
    /// The value `progress` will reach when the call is done, when the tool knows it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<f64>,
    /// A human-readable note on the current step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
}

/// What a call can report back while it runs. Cancelling a call is dropping its future: an
/// MCP call then tells its server (`notifications/cancelled`).
#[derive(Clone, Default)]
pub struct CallContext {
    progress: Option<Arc<dyn Fn(ProgressUpdate) + Send + Sync>>,
}

impl CallContext {
    /// A context that passes each progress report to `f`.
    pub fn with_progress(f: impl Fn(ProgressUpdate) + Send + Sync + 'static) -> Self {
        Self {
            progress: Some(Arc::new(f)),
        }
    }

    /// Reports progress to whoever made the call; does nothing when nobody listens.
    pub fn progress(&self, update: ProgressUpdate) {
        if let Some(f) = &self.progress {
            f(update);
        }
    }
}

impl ToolOutput {
    /// A successful result with `content` as its only text.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            structured: None,
            is_error: false,
            attachments: Vec::new(),
        }
    }

    /// A tool error: the model reads `content` as the reason the call failed.
    pub fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            structured: None,
            is_error: true,
            attachments: Vec::new(),
        }
    }
}

/// A boxed future, so tools can be stored as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A tool the model can call. Arguments are validated against `spec().parameters` by the
/// registry before `call` runs, so implementations may rely on the schema's shape.
pub trait Tool: Send + Sync {
    /// The tool's name, description and argument schema.
    fn spec(&self) -> &ToolSpec;
    /// Runs the tool with validated `arguments`. Failures are returned as a
    /// [`ToolOutput::error`] for the model to read, not as a Rust error.
    fn call(&self, arguments: Value, cx: CallContext) -> BoxFuture<'_, ToolOutput>;

    /// Where the tool comes from, for `agent tools` (`builtin`, `mcp:SERVER`).
    fn source(&self) -> String {
        "builtin".into()
    }

    /// What the tool says of itself (unknown unless it says); permissions read it.
    fn annotations(&self) -> ToolAnnotations {
        ToolAnnotations::default()
    }
}
