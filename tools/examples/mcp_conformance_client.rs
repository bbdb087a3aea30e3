//! A small MCP client on our client code, for the official conformance suite's client mode:
//! `conformance client --command "mcp_conformance_client" --scenario NAME` runs it with the
//! scenario's server URL as the last argument and the scenario's name in
//! `MCP_CONFORMANCE_SCENARIO`. Exits 0 when the scenario's steps all succeeded.

use std::process::ExitCode;

use agent_tools::CallContext;
use agent_tools::mcp::{Hooks, McpConfig, McpServer};
use serde_json::json;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(url) = std::env::args()
        .nth(1)
        .filter(|a| a.starts_with("http"))
        .or_else(|| std::env::args().last())
    else {
        eprintln!("usage: mcp_conformance_client URL");
        return ExitCode::from(2);
    };
    let scenario =
        std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_else(|_| "initialize".into());
    let text = json!({"mcpServers": {"conformance": {"url": url, "startup_timeout": "20s", "call_timeout": "20s"}}}).to_string();
    let config = match McpConfig::from_json(&text, "conformance") {
        Ok(mut c) => match c.servers.remove("conformance") {
            Some(s) => s,
            None => return ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let server = match McpServer::start(config, Hooks::default()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "connected: protocol {}, {} tools",
        server.protocol(),
        server.specs().len()
    );
    let ok = match scenario.as_str() {
        "tools_call" => {
            let out = server
                .call(
                    "add_numbers",
                    json!({"a": 2, "b": 3}),
                    &CallContext::default(),
                )
                .await;
            println!("{}", out.content);
            !out.is_error
        }
        _ => true,
    };
    server.shutdown().await;
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
