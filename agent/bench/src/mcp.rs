//! `agent-bench mcp`: round-trip latency of a trivial tool call (`echo`) to a stdio MCP server
//! (server-everything from npm), through our client and through the Python MCP SDK's client,
//! in the same run, against the same server binary: p50 and p99, and their ratios.

use std::process::Command;
use std::time::Instant;

use agent::models::agent_home;
use agent_tools::CallContext;
use agent_tools::mcp::{Hooks, McpConfig, McpServer};
use anyhow::{Context, bail};
use serde_json::{Value, json};

const PY_CLIENT: &str = include_str!("mcp.py");

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn mcp(calls: usize, warmup: usize) -> anyhow::Result<()> {
    if calls == 0 {
        bail!("--calls must be at least 1");
    }
    let fixtures = agent_home().join("fixtures");
    let server = fixtures.join("mcp-servers/node_modules/.bin/mcp-server-everything");
    let python = fixtures.join("python-mcp/bin/python");
    for p in [&server, &python] {
        if !p.exists() {
            bail!("{} is missing: run tests/fixtures/build.sh", p.display());
        }
    }

    // Ours.
    let text =
        json!({"mcpServers": {"everything": {"command": server, "args": ["stdio"]}}}).to_string();
    let cfg = McpConfig::from_json(&text, "bench")?
        .servers
        .remove("everything")
        .context("server config")?;
    let client = McpServer::start(cfg, Hooks::default()).await?;
    let cx = CallContext::default();
    for _ in 0..warmup {
        client.call("echo", json!({"message": "warm"}), &cx).await;
    }
    let mut ours = Vec::with_capacity(calls);
    for i in 0..calls {
        let t = Instant::now();
        let out = client
            .call("echo", json!({"message": format!("ping {i}")}), &cx)
            .await;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        if out.is_error {
            bail!("call failed: {}", out.content);
        }
    }
    let protocol = client.protocol();
    client.shutdown().await;

    // The Python SDK, same server, same calls.
    let script = std::env::temp_dir().join(format!("agent-bench-mcp-{}.py", std::process::id()));
    std::fs::write(&script, PY_CLIENT)?;
    let out = Command::new(&python)
        .arg(&script)
        .arg(calls.to_string())
        .arg(warmup.to_string())
        .arg(&server)
        .arg("stdio")
        .output()?;
    let _ = std::fs::remove_file(&script);
    if !out.status.success() {
        bail!(
            "the Python client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let mut theirs: Vec<f64> = v["latencies_ms"]
        .as_array()
        .context("latencies")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();

    ours.sort_by(f64::total_cmp);
    theirs.sort_by(f64::total_cmp);
    println!(
        "server-everything (npm, stdio), tool `echo`, {calls} calls after {warmup} warm-up, protocol {protocol} / {}",
        v["protocol"].as_str().unwrap_or("?")
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9}",
        "client", "p50 ms", "p99 ms", "max ms"
    );
    for (label, l) in [("agent (rmcp 3.11)", &ours), ("Python mcp 2.3.0", &theirs)] {
        println!(
            "{label:<28} {:>9.3} {:>9.3} {:>9.3}",
            percentile(l, 0.5),
            percentile(l, 0.99),
            percentile(l, 1.0)
        );
    }
    println!(
        "agent / Python: p50 {:.2}x, p99 {:.2}x (below 1: agent is faster)",
        percentile(&ours, 0.5) / percentile(&theirs, 0.5),
        percentile(&ours, 0.99) / percentile(&theirs, 0.99)
    );
    Ok(())
}
