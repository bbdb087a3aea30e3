//! A stdio MCP server that misbehaves on request, for the client's fault tests (the real
//! servers from npm cover the well-behaved paths). Flags: `--delay-start MS` (slow start),
//! `--garbage` (writes non-JSON to stdout and never answers), `--grandchild` (leaves a
//! `sleep` child behind unless its process group is killed), `--only-2026` (speaks only the
//! 2026-07-28 protocol). `FAULT_LOG=FILE` records calls to `hang` and the cancellations the
//! server receives.
//!
//! Tools: `echo`, `slow` (progress every step), `hang`, `crash` (exits mid-call), `big`
//! (a text of N characters; over 16 MiB it breaks rmcp's line limit), `image`, `roots` (asks
//! the client for its roots), `add_tool` (adds `extra` and announces list_changed). The tool
//! list comes in pages of two.

#![allow(deprecated)] // roots are deprecated by SEP-2577; servers still ask for them

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Value, json};

#[derive(Clone)]
struct Fault {
    extra: Arc<AtomicBool>,
    only_2026: bool,
}

fn tool(name: &str, description: &str, properties: Value) -> Tool {
    let schema = json!({"type": "object", "properties": properties, "additionalProperties": false})
        .as_object()
        .cloned()
        .unwrap_or_default();
    Tool::new(name.to_string(), description.to_string(), Arc::new(schema))
}

fn log(line: &str) {
    if let Ok(path) = std::env::var("FAULT_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

impl Fault {
    fn tools(&self) -> Vec<Tool> {
        let mut t = vec![
            tool(
                "echo",
                "Echoes the text",
                json!({"text": {"type": "string"}}),
            ),
            tool(
                "slow",
                "Runs steps, reporting progress",
                json!({"steps": {"type": "integer"}, "step_ms": {"type": "integer"}}),
            ),
            tool("hang", "Never answers", json!({})),
            tool("crash", "Exits in the middle of the call", json!({})),
            tool(
                "big",
                "Returns a text of N characters",
                json!({"chars": {"type": "integer"}}),
            ),
            tool("image", "Returns an image and a caption", json!({})),
            tool("roots", "Lists the client's roots", json!({})),
            tool("add_tool", "Adds the tool `extra`", json!({})),
        ];
        if self.extra.load(Ordering::SeqCst) {
            t.push(tool("extra", "Added at run time", json!({})));
        }
        t
    }
}

fn text(s: impl Into<String>) -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResponse::Complete(CallToolResult::success(vec![
        ContentBlock::text(s),
    ])))
}

impl ServerHandler for Fault {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        if self.only_2026 {
            Cow::Owned(vec![ProtocolVersion::V_2026_07_28])
        } else {
            Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let all = self.tools();
        let start: usize = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let end = (start + 2).min(all.len());
        let mut page = ListToolsResult::with_all_items(all[start.min(end)..end].to_vec());
        page.next_cursor = (end < all.len()).then(|| end.to_string());
        Ok(page)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let int = |k: &str| args.get(k).and_then(Value::as_u64).unwrap_or(0);
        match request.name.as_ref() {
            "echo" => text(
                args.get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            "slow" => {
                let token = cx.meta.get_progress_token();
                for i in 1..=int("steps") {
                    tokio::select! {
                        _ = cx.ct.cancelled() => { log("cancelled slow"); return Err(ErrorData::internal_error("cancelled", None)); }
                        _ = tokio::time::sleep(Duration::from_millis(int("step_ms"))) => {}
                    }
                    if let Some(t) = &token {
                        let p = ProgressNotificationParam::new(t.clone(), i as f64)
                            .with_total(int("steps") as f64)
                            .with_message(format!("step {i}"));
                        let _ = cx.peer.notify_progress(p).await;
                    }
                }
                text("done")
            }
            "hang" => {
                // Tests wait for this line instead of sleeping: the call is in flight.
                log("started hang");
                cx.ct.cancelled().await;
                log("cancelled hang");
                Err(ErrorData::internal_error("cancelled", None))
            }
            "crash" => {
                eprintln!("fault server: crashing on purpose");
                std::process::exit(3)
            }
            "big" => text("x".repeat(int("chars") as usize)),
            "image" => Ok(CallToolResponse::Complete(CallToolResult::success(vec![
                ContentBlock::image("iVBORw0KGgo=", "image/png"),
                ContentBlock::text("a tiny picture"),
            ]))),
            "roots" => {
                #[allow(deprecated)]
                let roots = cx
                    .peer
                    .list_roots()
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                text(
                    roots
                        .roots
                        .iter()
                        .map(|r| r.uri.clone())
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            }
            "add_tool" => {
                self.extra.store(true, Ordering::SeqCst);
                let _ = cx.peer.notify_tool_list_changed().await;
                text("added")
            }
            "extra" if self.extra.load(Ordering::SeqCst) => text("extra ran"),
            other => Err(ErrorData::invalid_params(
                format!("no tool named {other}"),
                None,
            )),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    if let Some(i) = args.iter().position(|a| a == "--delay-start") {
        let ms: u64 = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if flag("--grandchild") {
        std::process::Command::new("sleep").arg("611").spawn()?;
    }
    if flag("--garbage") {
        let mut out = std::io::stdout();
        loop {
            writeln!(out, "this is not JSON-RPC {{{{")?;
            out.flush()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let server = Fault {
        extra: Arc::new(AtomicBool::new(false)),
        only_2026: flag("--only-2026"),
    };
    server
        .serve(rmcp::transport::stdio_pipes())
        .await?
        .waiting()
        .await?;
    Ok(())
}
