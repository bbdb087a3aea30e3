//! `agent-bench wasm`: the bundled `text` tool (`count`) run two ways in the same run, on the
//! same code: as a WebAssembly component under our sandbox, and natively behind a stdio MCP
//! server (this binary, `agent-bench wasm-peer`, serving `sandboxes/tools/text/src/logic.rs`).
//! - cold: first use; for wasm, compile (empty cache) or load from the disk cache, then load
//!   and call; for MCP, spawn, initialize, list tools and call;
//! - warm: a call on a loaded tool, p50 and p99;
//! - memory: resident memory per live instance against the peer server process's;
//! - CPU metering: epoch deadlines against fuel, warm, on `text` and on a heavy `calc`.

use std::sync::Arc;
use std::time::Instant;

use agent_sandboxes::{Policy, Sandbox, WasmComponent, bundled};
use agent_tools::CallContext;
use agent_tools::mcp::{Hooks, McpConfig, McpServer};
use anyhow::{Context, bail};
use serde_json::{Value, json};

#[path = "../../../sandboxes/tools/text/src/logic.rs"]
mod logic;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn rss_kib(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The pid of our child whose command line mentions `needle` (the peer server).
fn child_pid(needle: &str) -> Option<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let parent = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .unwrap_or("");
            parent == me
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
}

fn row(label: &str, l: &[f64]) {
    println!(
        "{label:<40} {:>9.3} {:>9.3} {:>9.3}",
        percentile(l, 0.5),
        percentile(l, 0.99),
        percentile(l, 1.0)
    );
}

async fn load(
    sandbox: &Arc<Sandbox>,
    name: &str,
    policy: Policy,
) -> anyhow::Result<Arc<WasmComponent>> {
    let bytes = bundled::get(name).context("bundled tool")?.to_vec();
    let compiled = sandbox.compile(name, bytes).await?;
    Ok(WasmComponent::load(sandbox.clone(), name, compiled, policy).await?)
}

async fn start_peer() -> anyhow::Result<Arc<McpServer>> {
    let exe = std::env::current_exe()?;
    let text = json!({"mcpServers": {"text": {"command": exe, "args": ["wasm-peer"]}}}).to_string();
    let cfg = McpConfig::from_json(&text, "bench")?
        .servers
        .remove("text")
        .context("peer config")?;
    Ok(McpServer::start(cfg, Hooks::default()).await?)
}

async fn warm(
    c: &WasmComponent,
    tool: &str,
    args: &Value,
    calls: usize,
    warmup: usize,
) -> anyhow::Result<Vec<f64>> {
    for _ in 0..warmup {
        c.call(tool, args).await;
    }
    let mut l = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let out = c.call(tool, args).await;
        l.push(ms(t));
        if out.is_error {
            bail!("{tool} failed: {}", out.content);
        }
    }
    Ok(sorted(l))
}

pub async fn wasm(
    calls: usize,
    warmup: usize,
    cold: usize,
    instances: usize,
) -> anyhow::Result<()> {
    if calls == 0 || cold == 0 || instances == 0 {
        bail!("--calls, --cold and --instances must be at least 1");
    }
    if instances > agent_sandboxes::MAX_CONCURRENT_CALLS {
        bail!(
            "--instances: at most {} instances live at once",
            agent_sandboxes::MAX_CONCURRENT_CALLS
        );
    }
    let args = json!({"text": "strawberry", "find": "r"});
    let scratch = std::env::temp_dir().join(format!("agent-bench-wasm-{}", std::process::id()));

    // Cold: compile from nothing, then from the disk cache, then an MCP server's start.
    let (mut compile, mut cached, mut mcp_cold) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..cold {
        let dir = scratch.join(format!("cache-{i}"));
        let t = Instant::now();
        let sandbox = Arc::new(Sandbox::new(Some(&dir)).map_err(anyhow::Error::msg)?);
        let c = load(&sandbox, "text", Policy::default()).await?;
        c.call("count", &args).await;
        compile.push(ms(t));
        drop((c, sandbox));
        let t = Instant::now();
        let sandbox = Arc::new(Sandbox::new(Some(&dir)).map_err(anyhow::Error::msg)?);
        let c = load(&sandbox, "text", Policy::default()).await?;
        c.call("count", &args).await;
        cached.push(ms(t));
        let t = Instant::now();
        let peer = start_peer().await?;
        let out = peer
            .call("count", args.clone(), &CallContext::default())
            .await;
        mcp_cold.push(ms(t));
        if out.is_error {
            bail!("the MCP peer failed: {}", out.content);
        }
        peer.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&scratch);

    // Warm: the same call on a loaded tool, both ways.
    let sandbox = Arc::new(Sandbox::new(None).map_err(anyhow::Error::msg)?);
    let text = load(&sandbox, "text", Policy::default()).await?;
    let wasm_warm = warm(&text, "count", &args, calls, warmup).await?;
    let peer = start_peer().await?;
    let cx = CallContext::default();
    for _ in 0..warmup {
        peer.call("count", args.clone(), &cx).await;
    }
    let mut mcp_warm = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let out = peer.call("count", args.clone(), &cx).await;
        mcp_warm.push(ms(t));
        if out.is_error {
            bail!("the MCP peer failed: {}", out.content);
        }
    }
    let mcp_warm = sorted(mcp_warm);
    let peer_rss = child_pid("wasm-peer").and_then(|p| rss_kib(&p));
    peer.shutdown().await;

    // Memory: live instances, each after a call.
    let me = std::process::id().to_string();
    let before = rss_kib(&me).unwrap_or(0);
    let held = text
        .resident(instances, "count", &args)
        .await
        .map_err(anyhow::Error::msg)?;
    let after = rss_kib(&me).unwrap_or(0);
    let per_instance = after.saturating_sub(before) as f64 / held.len() as f64;
    drop(held);

    // Metering: epochs against fuel, on the same calls.
    let heavy = json!({"expression": "(123456789 ^ 300) / (987654321 ^ 200) + 1/7"});
    let long = json!({"text": "strawberry ".repeat(20_000), "find": "r"});
    let fuel = Policy {
        fuel: Some(u64::MAX / 4),
        ..Policy::default()
    };
    let mut metering = Vec::new();
    for (name, tool, a) in [("text", "count", &long), ("calc", "evaluate", &heavy)] {
        let epoch = warm(
            &*load(&sandbox, name, Policy::default()).await?,
            tool,
            a,
            calls.min(200),
            warmup.min(10),
        )
        .await?;
        let fueled = warm(
            &*load(&sandbox, name, fuel.clone()).await?,
            tool,
            a,
            calls.min(200),
            warmup.min(10),
        )
        .await?;
        metering.push((format!("{name}__{tool}"), epoch, fueled));
    }

    println!(
        "the bundled `text` tool, count(\"strawberry\", \"r\"): wasm component vs the same Rust code natively behind a stdio MCP server"
    );
    println!("{:<40} {:>9} {:>9} {:>9}", "", "p50 ms", "p99 ms", "max ms");
    row(
        &format!("cold, wasm compiled ({cold} runs)"),
        &sorted(compile.clone()),
    );
    row(
        &format!("cold, wasm from the disk cache ({cold})"),
        &sorted(cached.clone()),
    );
    row(
        &format!("cold, MCP server start ({cold})"),
        &sorted(mcp_cold.clone()),
    );
    row(&format!("warm, wasm ({calls} calls)"), &wasm_warm);
    row(&format!("warm, MCP stdio ({calls} calls)"), &mcp_warm);
    let (c, m) = (sorted(cached), sorted(mcp_cold));
    println!(
        "cold from cache / MCP start: p50 {:.2}x",
        percentile(&c, 0.5) / percentile(&m, 0.5)
    );
    println!(
        "warm wasm / MCP: p50 {:.2}x, p99 {:.2}x (below 1: wasm is faster)",
        percentile(&wasm_warm, 0.5) / percentile(&mcp_warm, 0.5),
        percentile(&wasm_warm, 0.99) / percentile(&mcp_warm, 0.99)
    );
    println!(
        "memory: {per_instance:.0} KiB resident per live wasm instance ({instances} held); the MCP peer process: {} KiB",
        peer_rss
            .map(|r| r.to_string())
            .unwrap_or_else(|| "?".into())
    );
    println!("CPU metering, warm p50 ms: epoch deadline vs fuel");
    for (label, epoch, fueled) in &metering {
        println!(
            "{label:<40} {:>9.3} {:>9.3}  fuel/epoch {:.2}x",
            percentile(epoch, 0.5),
            percentile(fueled, 0.5),
            percentile(fueled, 0.5) / percentile(epoch, 0.5)
        );
    }
    Ok(())
}

/// The peer: `text`'s logic, natively, as a stdio MCP server.
pub async fn peer() -> anyhow::Result<()> {
    use rmcp::model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    };
    use rmcp::service::{RequestContext, RoleServer};
    use rmcp::{ErrorData, ServerHandler, ServiceExt};

    struct Peer;

    impl ServerHandler for Peer {
        fn get_info(&self) -> ServerConfig {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        }

        async fn list_tools(
            &self,
            _: Option<PaginatedRequestParams>,
            _: RequestContext<RoleServer>,
        ) -> Result<ListToolsResult, ErrorData> {
            let tools = logic::describe()
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let schema = t["parameters"].as_object().cloned().unwrap_or_default();
                    Tool::new(
                        t["name"].as_str().unwrap_or("").to_string(),
                        t["description"].as_str().unwrap_or("").to_string(),
                        Arc::new(schema),
                    )
                })
                .collect();
            Ok(ListToolsResult::with_all_items(tools))
        }

        async fn call_tool(
            &self,
            request: CallToolRequestParams,
            _: RequestContext<RoleServer>,
        ) -> Result<CallToolResponse, ErrorData> {
            let args = Value::Object(request.arguments.clone().unwrap_or_default());
            let result = match logic::call(request.name.as_ref(), &args) {
                Ok(Value::String(s)) => CallToolResult::success(vec![ContentBlock::text(s)]),
                Ok(v) => CallToolResult::success(vec![ContentBlock::text(v.to_string())]),
                Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
            };
            Ok(CallToolResponse::Complete(result))
        }
    }

    Peer.serve(rmcp::transport::stdio_pipes())
        .await?
        .waiting()
        .await?;
    Ok(())
}
