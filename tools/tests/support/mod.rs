//! Helpers shared by the MCP client tests: where the servers are, configurations, and counting
//! processes (nothing may be left behind).

#![allow(dead_code)] // each test file uses its own part

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_tools::mcp::{Hooks, McpConfig, McpEvent, ServerConfig};
use serde_json::{Value, json};

pub fn servers_dir() -> PathBuf {
    let home = std::env::var_os("AGENT_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/agent")
        });
    let dir = home.join("fixtures/mcp-servers/node_modules/.bin");
    assert!(
        dir.is_dir(),
        "{} is missing: run tests/fixtures/build.sh first",
        dir.display()
    );
    dir
}

/// The fault server example, which `cargo test` builds beside the tests.
pub fn fault_server() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("examples/mcp_fault_server");
    assert!(
        bin.is_file(),
        "{} is missing: build with `cargo test -p agent-tools`",
        bin.display()
    );
    bin
}

/// One server from an `mcpServers` entry.
pub fn config(name: &str, entry: Value) -> ServerConfig {
    let json = json!({"mcpServers": {name: entry}});
    McpConfig::from_json(&json.to_string(), "test")
        .expect("config")
        .servers
        .remove(name)
        .expect("server")
}

/// The fault server, tagged so that its processes can be counted apart from other tests'.
pub fn fault(name: &str, flags: &[&str], extra: Value) -> ServerConfig {
    let mut args = vec!["--tag".to_string(), name.to_string()];
    args.extend(flags.iter().map(|s| s.to_string()));
    let mut entry = json!({"command": fault_server(), "args": args, "startup_timeout": "20s", "call_timeout": "20s"});
    if let (Some(e), Value::Object(x)) = (entry.as_object_mut(), extra) {
        e.extend(x);
    }
    config(name, entry)
}

pub fn tag(name: &str) -> String {
    format!("mcp_fault_server --tag {name}")
}

/// Processes whose command line contains `needle` (this test's own excluded).
pub fn processes(needle: &str) -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-f", needle])
        .output()
        .expect("pgrep");
    let me = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim() != me)
        .count()
}

/// Waits up to 5 s for every matching process to exit.
pub async fn gone(needle: &str) -> bool {
    for _ in 0..50 {
        if processes(needle) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Hooks that record every event.
pub fn recording_hooks() -> (Hooks, Arc<Mutex<Vec<McpEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let hooks = Hooks {
        events: Some(Arc::new(move |e| sink.lock().expect("events").push(e))),
        ..Hooks::default()
    };
    (hooks, events)
}
