//! One MCP server over stdio, as a source of tools: started with a timeout, in its own
//! process group (so `npx` and the `node` it starts are killed together), its tools listed
//! (all pages) and offered as `SERVER__TOOL`, each call bounded by the server's idle timeout.

use std::sync::Arc;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::Value;

use super::config::{ServerConfig, Transport};
use crate::{BoxFuture, Tool, ToolOutput, ToolSpec};

/// Separates server and tool in the names the model sees.
pub const SEPARATOR: &str = "__";

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP server `{server}`: {message}")]
    Start { server: String, message: String },
    #[error("MCP server `{0}`: did not start within {1:?}")]
    StartTimeout(String, std::time::Duration),
    #[error("MCP server `{0}`: streamable HTTP is configured but not supported yet; use a stdio server")]
    HttpNotYet(String),
}

/// What we tell servers about ourselves.
#[derive(Clone, Default)]
struct Host;

impl ClientHandler for Host {
    fn get_info(&self) -> ClientConfig {
        // rmcp's default sends 2026-07-28 inside `initialize`, which conformant servers refuse.
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("agent", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}

/// A started server.
pub struct McpServer {
    config: ServerConfig,
    service: RunningService<RoleClient, Host>,
    tools: Vec<rmcp::model::Tool>,
}

impl McpServer {
    /// Starts the server and lists its tools, within its `startup_timeout`.
    pub async fn start(config: ServerConfig) -> Result<Arc<McpServer>, McpError> {
        let err = |message: String| McpError::Start { server: config.name.clone(), message };
        let Transport::Stdio { command, args, env, cwd } = &config.transport else {
            return Err(McpError::HttpNotYet(config.name.clone()));
        };
        let mut cmd = CommandWrap::with_new(command, |c| {
            c.args(args).envs(env);
            if let Some(d) = cwd {
                c.current_dir(d);
            }
        });
        cmd.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
        // The server's own log must not reach our stdout (answers) or the progress line.
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| err(format!("cannot start `{command}`: {e}")))?;
        let started = async {
            let service = Host.serve(transport).await.map_err(|e| err(format!("initialize failed: {e}")))?;
            let tools = service.list_all_tools().await.map_err(|e| err(format!("tools/list failed: {e}")))?;
            Ok::<_, McpError>((service, tools))
        };
        let (service, tools) = tokio::time::timeout(config.startup_timeout, started)
            .await
            .map_err(|_| McpError::StartTimeout(config.name.clone(), config.startup_timeout))??;
        Ok(Arc::new(McpServer { config, service, tools }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The server's tools that the configuration lets through, as the model sees them.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .filter(|t| self.config.enabled_tools.as_ref().is_none_or(|e| e.iter().any(|n| *n == t.name)))
            .filter(|t| !self.config.disabled_tools.iter().any(|n| *n == t.name))
            .map(|t| ToolSpec {
                name: format!("{}{SEPARATOR}{}", self.config.name, t.name),
                description: t.description.as_deref().unwrap_or("").to_string(),
                parameters: Value::Object(t.input_schema.as_ref().clone()),
            })
            .collect()
    }

    /// Calls one of its tools (by the server's own name); never hangs past the call timeout.
    pub async fn call(&self, tool: &str, arguments: Value) -> ToolOutput {
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Value::Object(args) = arguments {
            params = params.with_arguments(args);
        }
        // Dropping the call on timeout sends `notifications/cancelled` (rmcp).
        match tokio::time::timeout(self.config.call_timeout, self.service.call_tool(params)).await {
            Err(_) => ToolOutput::error(format!("`{}{SEPARATOR}{tool}` did not answer within {:?}", self.config.name, self.config.call_timeout)),
            Ok(Err(e)) => ToolOutput::error(format!("MCP server `{}`: {e}", self.config.name)),
            Ok(Ok(r)) => {
                let text: Vec<String> = r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect();
                let structured = r.structured_content.clone();
                let content = match (&structured, text.is_empty()) {
                    // Structured content is preferred when present; text stays for the model.
                    (Some(s), true) => s.to_string(),
                    _ => text.join("\n"),
                };
                ToolOutput { content, structured, is_error: r.is_error.unwrap_or(false) }
            }
        }
    }

    /// Each allowed tool, ready for a [`crate::ToolRegistry`].
    pub fn tools(self: &Arc<Self>) -> Vec<Arc<dyn Tool>> {
        self.specs().into_iter().map(|spec| Arc::new(McpTool { server: self.clone(), spec }) as Arc<dyn Tool>).collect()
    }

    /// Closes the connection: stdin closed, then the process group terminated.
    pub async fn shutdown(self: Arc<Self>) {
        if let Ok(server) = Arc::try_unwrap(self) {
            let _ = server.service.cancel().await;
        }
    }
}

struct McpTool {
    server: Arc<McpServer>,
    spec: ToolSpec,
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, ToolOutput> {
        let prefix = format!("{}{SEPARATOR}", self.server.name());
        let tool = self.spec.name.strip_prefix(&prefix).unwrap_or(&self.spec.name).to_string();
        Box::pin(async move { self.server.call(&tool, arguments).await })
    }
}
