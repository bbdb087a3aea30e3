//! One MCP server as a source of tools: started within its `startup_timeout`, its tools listed
//! (all pages) and offered as `SERVER__TOOL`; each call bounded by an idle timeout that
//! progress re-arms and by a total cap, cancelled on the server when the caller gives up, and
//! answered with a tool error when the server dies, which is then restarted on the next call.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CancelledNotificationParam, ClientNotification, ClientRequest,
    Notification, Request, RequestId, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, ServiceError};
use serde_json::Value;
use tokio_stream::StreamExt;

use super::Hooks;
use super::McpEvent;
use super::config::ServerConfig;
use super::connect::{Lifecycle, Live, StderrTail, connect, wants_discover};
use super::content::to_output;
use super::host::{Host, HostState};
use crate::{BoxFuture, CallContext, ProgressUpdate, Tool, ToolAnnotations, ToolOutput, ToolSpec};

/// Separates server and tool in the names the model sees.
pub const SEPARATOR: &str = "__";

/// Consecutive failed restarts after which a server is given up for the run.
const MAX_RESTARTS: u32 = 3;

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Connecting, the handshake or listing the tools failed; from `McpPool`, also a server
    /// waited for that did not start.
    #[error("MCP server `{server}`: {message}")]
    Start {
        /// The server's configured name.
        server: String,
        /// What failed.
        message: String,
    },
    /// The server was not ready within its `startup_timeout`.
    #[error("MCP server `{server}`: did not start within {timeout:?}{stderr}")]
    StartTimeout {
        /// The server's configured name.
        server: String,
        /// The startup timeout that ran out.
        timeout: Duration,
        /// The tail of the server's stderr as a suffix for the message; empty when none.
        stderr: String,
    },
}

impl McpError {
    /// The message without the server's name.
    pub fn detail(&self) -> String {
        match self {
            McpError::Start { message, .. } => message.clone(),
            McpError::StartTimeout {
                timeout, stderr, ..
            } => format!("did not start within {timeout:?}{stderr}"),
        }
    }
}

enum Conn {
    Up(Arc<Live>),
    /// Not connected; `failures` restarts in a row have failed.
    Down {
        failures: u32,
        error: String,
    },
}

/// A started server.
pub struct McpServer {
    config: ServerConfig,
    state: Arc<HostState>,
    conn: tokio::sync::Mutex<Conn>,
    stderr: StderrTail,
    protocol: RwLock<String>,
    /// `notifications/cancelled` still being sent for abandoned calls: shutdown waits for
    /// them, so that a Ctrl-C reaches the server before its connection closes.
    cancels: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl McpServer {
    /// Starts the server and lists its tools, within its `startup_timeout`.
    pub async fn start(config: ServerConfig, hooks: Hooks) -> Result<Arc<McpServer>, McpError> {
        let state = Arc::new(HostState {
            server: config.name.clone(),
            roots: config.roots.clone(),
            hooks,
            progress: Default::default(),
            tools: RwLock::new(Vec::new()),
        });
        let server = McpServer {
            config,
            state,
            conn: tokio::sync::Mutex::new(Conn::Down {
                failures: 0,
                error: String::new(),
            }),
            stderr: StderrTail::default(),
            protocol: RwLock::new(String::new()),
            cancels: Arc::default(),
        };
        let began = Instant::now();
        let service = server.open().await?;
        *server.conn.lock().await = Conn::Up(Arc::new(service));
        server.state.hooks.emit(McpEvent::Started {
            server: server.config.name.clone(),
            tools: server.specs().len(),
            millis: began.elapsed().as_millis() as u64,
            protocol: server.protocol(),
        });
        Ok(Arc::new(server))
    }

    /// Connects, handshakes and lists the tools.
    async fn open(&self) -> Result<Live, McpError> {
        let name = &self.config.name;
        let opened = async {
            let host = || Host(self.state.clone());
            let live =
                match connect(&self.config, host(), &self.stderr, Lifecycle::Initialize).await {
                    Err(e) if wants_discover(&e) => {
                        connect(&self.config, host(), &self.stderr, Lifecycle::Discover).await?
                    }
                    other => other?,
                };
            // A discover session keeps no server info: its version is the one it was opened with.
            let tools = live
                .service
                .list_all_tools()
                .await
                .map_err(|e| format!("tools/list failed: {e}{}", self.stderr.suffix()))?;
            Ok::<_, String>((live, tools))
        };
        let (live, tools) = match tokio::time::timeout(self.config.startup_timeout, opened).await {
            Err(_) => {
                return Err(McpError::StartTimeout {
                    server: name.clone(),
                    timeout: self.config.startup_timeout,
                    stderr: self.stderr.suffix(),
                });
            }
            Ok(Err(message)) => {
                return Err(McpError::Start {
                    server: name.clone(),
                    message,
                });
            }
            Ok(Ok(x)) => x,
        };
        let protocol = live
            .service
            .peer_info()
            .map(|i| i.protocol_version.to_string())
            .unwrap_or_else(|| rmcp::model::ProtocolVersion::V_2026_07_28.to_string());
        if let Ok(mut p) = self.protocol.write() {
            *p = protocol;
        }
        if let Ok(mut t) = self.state.tools.write() {
            *t = tools;
        }
        Ok(live)
    }

    /// The server's configured name, the prefix of its tools' names.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The configuration the server was started with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The protocol version the server answered with.
    pub fn protocol(&self) -> String {
        self.protocol.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// The server's tools that the configuration lets through, as the model sees them.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.listed().into_iter().map(|(spec, _)| spec).collect()
    }

    /// The tools offered now, with their annotations.
    fn listed(&self) -> Vec<(ToolSpec, ToolAnnotations)> {
        let tools = self
            .state
            .tools
            .read()
            .map(|t| t.clone())
            .unwrap_or_default();
        tools
            .iter()
            .filter(|t| {
                self.config
                    .enabled_tools
                    .as_ref()
                    .is_none_or(|e| e.iter().any(|n| *n == t.name))
            })
            .filter(|t| !self.config.disabled_tools.iter().any(|n| *n == t.name))
            .map(|t| {
                let spec = ToolSpec {
                    name: format!("{}{SEPARATOR}{}", self.config.name, t.name),
                    description: t.description.as_deref().unwrap_or("").to_string(),
                    parameters: Value::Object(t.input_schema.as_ref().clone()),
                };
                let annotations = t
                    .annotations
                    .as_ref()
                    .map(|a| ToolAnnotations {
                        read_only: a.read_only_hint,
                        destructive: a.destructive_hint,
                        idempotent: a.idempotent_hint,
                        open_world: a.open_world_hint,
                    })
                    .unwrap_or_default();
                (spec, annotations)
            })
            .collect()
    }

    /// The connection, restarting the server when it is gone (with backoff, at most
    /// [`MAX_RESTARTS`] failures in a row).
    async fn live(&self) -> Result<Arc<Live>, String> {
        let mut conn = self.conn.lock().await;
        if let Conn::Up(s) = &*conn {
            if !s.service.is_transport_closed() {
                return Ok(s.clone());
            }
            let error = format!("the connection closed{}", self.stderr.suffix());
            self.state.hooks.emit(McpEvent::Lost {
                server: self.config.name.clone(),
                error: error.clone(),
            });
            *conn = Conn::Down { failures: 0, error };
        }
        let (failures, error) = match &*conn {
            Conn::Down { failures, error } => (*failures, error.clone()),
            Conn::Up(_) => (0, String::new()),
        };
        if failures >= MAX_RESTARTS {
            return Err(format!(
                "gave up after {failures} failed restarts; last error: {error}"
            ));
        }
        if failures > 0 {
            tokio::time::sleep(Duration::from_millis(250 << failures.min(4))).await;
        }
        match self.open().await {
            Ok(s) => {
                let s = Arc::new(s);
                *conn = Conn::Up(s.clone());
                self.state.hooks.emit(McpEvent::Restarted {
                    server: self.config.name.clone(),
                    attempt: failures + 1,
                });
                Ok(s)
            }
            Err(e) => {
                let error = e.to_string();
                self.state.hooks.emit(McpEvent::Failed {
                    server: self.config.name.clone(),
                    error: error.clone(),
                    required: self.config.required,
                });
                *conn = Conn::Down {
                    failures: failures + 1,
                    error: error.clone(),
                };
                Err(format!("restart failed: {error}"))
            }
        }
    }

    /// Calls one of its tools (by the server's own name). Never hangs past the call timeouts;
    /// dropping the future cancels the call on the server.
    pub async fn call(&self, tool: &str, arguments: Value, cx: &CallContext) -> ToolOutput {
        let server = &self.config.name;
        let live = match self.live().await {
            Ok(s) => s,
            Err(e) => {
                return ToolOutput::error(format!("MCP server `{server}` is unavailable: {e}"));
            }
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Value::Object(args) = arguments {
            params = params.with_arguments(args);
        }
        let opts = PeerRequestOptions::with_timeout(self.config.call_timeout)
            .reset_timeout_on_progress()
            .with_max_total_timeout(self.config.call_total_timeout);
        let service = &live.service;
        let handle = match service
            .send_request_with_option(ClientRequest::CallToolRequest(Request::new(params)), opts)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                return ToolOutput::error(format!(
                    "MCP server `{server}`: cannot send the call: {e}{}",
                    self.stderr.suffix()
                ));
            }
        };
        let mut guard = CancelOnDrop {
            peer: service.peer().clone(),
            id: Some(handle.id.clone()),
            pending: self.cancels.clone(),
        };
        let token = handle.progress_token.clone();
        let mut progress = self.state.progress.subscribe(token.clone()).await;
        let response = handle.await_response();
        tokio::pin!(response);
        let mut reported = false;
        let result = loop {
            tokio::select! {
                r = &mut response => break r,
                Some(p) = progress.next() => {
                    reported = true;
                    cx.progress(ProgressUpdate { progress: p.progress, total: p.total, message: p.message });
                }
            }
        };
        // The last progress notification precedes the result on the wire but is dispatched on
        // its own task: collect what is still in flight.
        while reported
            && let Ok(Some(p)) =
                tokio::time::timeout(Duration::from_millis(20), progress.next()).await
        {
            cx.progress(ProgressUpdate {
                progress: p.progress,
                total: p.total,
                message: p.message,
            });
        }
        guard.id = None;
        self.state.progress.unsubscribe(&token).await;
        match result {
            Ok(ServerResult::CallToolResult(r)) => match serde_json::to_value(&r) {
                Ok(v) => to_output(&v, self.config.max_output),
                Err(e) => {
                    ToolOutput::error(format!("MCP server `{server}`: unreadable result: {e}"))
                }
            },
            Ok(other) => ToolOutput::error(format!(
                "MCP server `{server}`: unexpected answer to tools/call: {}",
                serde_json::to_string(&other).unwrap_or_default()
            )),
            Err(ServiceError::Timeout { timeout }) => {
                let why = if timeout == self.config.call_timeout {
                    "without an answer or progress"
                } else {
                    "in all (the call's total limit)"
                };
                ToolOutput::error(format!(
                    "`{server}{SEPARATOR}{tool}` was stopped after {timeout:?} {why}; the server was told to cancel it"
                ))
            }
            Err(ServiceError::TransportClosed) | Err(ServiceError::TransportSend(_)) => {
                self.stderr.settle().await;
                ToolOutput::error(format!(
                    "MCP server `{server}` closed the connection during the call (it crashed or exited){}; it will be restarted on the next call",
                    self.stderr.suffix()
                ))
            }
            Err(ServiceError::McpError(e)) => {
                ToolOutput::error(format!("MCP server `{server}`: {}", e.message))
            }
            Err(e) => ToolOutput::error(format!("MCP server `{server}`: {e}")),
        }
    }

    /// Each allowed tool as of now, ready for a [`crate::ToolRegistry`].
    pub fn tools(self: &Arc<Self>) -> Vec<Arc<dyn Tool>> {
        self.listed()
            .into_iter()
            .map(|(spec, annotations)| {
                Arc::new(McpTool {
                    server: self.clone(),
                    spec,
                    annotations,
                }) as Arc<dyn Tool>
            })
            .collect()
    }

    /// Closes the connection: stdin closed, then the process group terminated.
    pub async fn shutdown(&self) {
        let pending: Vec<_> = self
            .cancels
            .lock()
            .map(|mut v| v.drain(..).collect())
            .unwrap_or_default();
        for task in pending {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        let conn = std::mem::replace(
            &mut *self.conn.lock().await,
            Conn::Down {
                failures: MAX_RESTARTS,
                error: "shut down".into(),
            },
        );
        if let Conn::Up(live) = conn {
            match Arc::try_unwrap(live) {
                Ok(mut live) => {
                    let _ = live
                        .service
                        .close_with_timeout(Duration::from_secs(8))
                        .await;
                }
                // A call still holds it: cancelling ends the loop, which closes the transport;
                // the process group goes when the call lets go.
                Err(live) => live.service.cancellation_token().cancel(),
            }
        }
    }
}

/// Sends `notifications/cancelled` for a call whose future was dropped (Ctrl-C, a step
/// aborted) so the server stops working on it.
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
    pending: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let peer = self.peer.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let task = rt.spawn(async move {
                let n = Notification::new(CancelledNotificationParam::new(
                    Some(id),
                    Some("the agent stopped waiting for this call".into()),
                ));
                let _ = peer
                    .send_notification(ClientNotification::CancelledNotification(n))
                    .await;
            });
            if let Ok(mut v) = self.pending.lock() {
                v.retain(|t| !t.is_finished());
                v.push(task);
            }
        }
    }
}

struct McpTool {
    server: Arc<McpServer>,
    spec: ToolSpec,
    annotations: ToolAnnotations,
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, arguments: Value, cx: CallContext) -> BoxFuture<'_, ToolOutput> {
        let prefix = format!("{}{SEPARATOR}", self.server.name());
        let tool = self
            .spec
            .name
            .strip_prefix(&prefix)
            .unwrap_or(&self.spec.name)
            .to_string();
        Box::pin(async move { self.server.call(&tool, arguments, &cx).await })
    }

    fn source(&self) -> String {
        format!("mcp:{}", self.server.name())
    }

    fn annotations(&self) -> ToolAnnotations {
        self.annotations
    }
}
