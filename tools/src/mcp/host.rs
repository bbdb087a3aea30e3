//! Our side of an MCP connection: what we declare (`roots`, `sampling`, `elicitation`), the
//! protocol version we ask for, and our answers when a server asks us something.

#![allow(deprecated)] // roots and sampling are deprecated by SEP-2577 but servers still use them

use std::sync::{Arc, RwLock};

use rmcp::ClientHandler;
use rmcp::ErrorData;
use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ElicitationAction, Implementation, ListRootsResult,
    ProgressNotificationParam, ProtocolVersion, Root, SamplingMessage,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient};
use serde_json::Value;

use super::{Hooks, McpEvent, SamplingRequest};

/// Shared by a server's connection and its restarts.
pub(crate) struct HostState {
    pub server: String,
    /// The server's configured `roots`; none: the capability is not declared.
    pub roots: Vec<std::path::PathBuf>,
    pub hooks: Hooks,
    pub progress: ProgressDispatcher,
    /// The server's tools as last listed; refreshed on `notifications/tools/list_changed`.
    pub tools: RwLock<Vec<rmcp::model::Tool>>,
}

#[derive(Clone)]
pub(crate) struct Host(pub Arc<HostState>);

impl ClientHandler for Host {
    fn get_info(&self) -> ClientConfig {
        // Roots only where the user configured them: a server told of roots (server-filesystem)
        // serves those instead of the directories of its command line, so declaring our working
        // directory by default would grant it and take away what the user configured.
        let caps = if self.0.roots.is_empty() {
            ClientCapabilities::builder()
                .enable_sampling()
                .enable_elicitation()
                .build()
        } else {
            ClientCapabilities::builder()
                .enable_roots()
                .enable_sampling()
                .enable_elicitation()
                .build()
        };
        // rmcp's default sends 2026-07-28 inside `initialize`, which conformant servers refuse;
        // a server that answers with 2026-07-28 is still accepted (rmcp then sends per-request
        // metadata).
        ClientConfig::new(
            caps,
            Implementation::new("agent", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.0.progress.handle_notification(params).await;
    }

    async fn on_tool_list_changed(&self, cx: NotificationContext<RoleClient>) {
        // Listing from inside the notification handler would wait on the loop that runs it.
        let state = self.0.clone();
        tokio::spawn(async move {
            match cx.peer.list_all_tools().await {
                Ok(tools) => {
                    let n = tools.len();
                    if let Ok(mut t) = state.tools.write() {
                        *t = tools;
                    }
                    state.hooks.emit(McpEvent::ToolsChanged {
                        server: state.server.clone(),
                        tools: n,
                    });
                }
                // Usually the server going away; the next call reports that.
                Err(e) => {
                    tracing::debug!(server = %state.server, "tools/list after list_changed failed: {e}")
                }
            }
        });
    }

    async fn list_roots(
        &self,
        _: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let roots = self
            .0
            .roots
            .iter()
            .map(|p| Root::new(file_uri(p)))
            .collect();
        Ok(ListRootsResult::new(roots))
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let state = &self.0;
        let Some(sampler) = state.hooks.sampler.get() else {
            return Err(ErrorData::internal_error(
                "the agent's model is not loaded yet; ask again later",
                None,
            ));
        };
        let messages: Vec<(String, String)> = params
            .messages
            .iter()
            .map(|m| {
                // Text parts as they are; other parts named, since our models read only text.
                let v = serde_json::to_value(m).unwrap_or(Value::Null);
                let role = v
                    .get("role")
                    .and_then(Value::as_str)
                    .unwrap_or("user")
                    .to_string();
                let blocks = match v.get("content") {
                    Some(Value::Array(a)) => a.clone(),
                    Some(b) => vec![b.clone()],
                    None => vec![],
                };
                let text: Vec<String> = blocks
                    .iter()
                    .map(|b| match b.get("type").and_then(Value::as_str) {
                        Some("text") => b
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        Some(other) => format!("[{other}]"),
                        None => String::new(),
                    })
                    .collect();
                (role, text.join("\n"))
            })
            .collect();
        let request = SamplingRequest {
            server: state.server.clone(),
            system: params.system_prompt.clone(),
            messages: messages.clone(),
            max_tokens: params
                .max_tokens
                .clamp(1, state.hooks.sampling_max_tokens.max(1)),
            temperature: params.temperature,
        };
        let reply = sampler
            .sample(request)
            .await
            .map_err(|e| ErrorData::internal_error(format!("sampling failed: {e}"), None))?;
        state.hooks.emit(McpEvent::Sampling {
            server: state.server.clone(),
            messages,
            reply: reply.text.clone(),
            tokens: reply.tokens,
        });
        let stop = if reply.truncated {
            CreateMessageResult::STOP_REASON_END_MAX_TOKEN
        } else {
            CreateMessageResult::STOP_REASON_END_TURN
        };
        Ok(
            CreateMessageResult::new(SamplingMessage::assistant_text(reply.text), reply.model)
                .with_stop_reason(stop),
        )
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let message = serde_json::to_value(&params)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
            .unwrap_or_default();
        let reason = "the agent runs headless: no user is there to answer".to_string();
        tracing::warn!(server = %self.0.server, "declined an elicitation request ({reason}): {message}");
        self.0.hooks.emit(McpEvent::ElicitationDeclined {
            server: self.0.server.clone(),
            message,
            reason,
        });
        Ok(ElicitResult::new(ElicitationAction::Decline))
    }
}

/// `file://` URI of a directory, percent-encoding what URIs cannot hold.
pub(crate) fn file_uri(path: &std::path::Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match url::Url::from_directory_path(&abs).or_else(|_| url::Url::from_file_path(&abs)) {
        Ok(u) => u.to_string().trim_end_matches('/').to_string(),
        Err(()) => format!("file://{}", abs.display()),
    }
}
