//! The MCP client against real servers from npm (`@modelcontextprotocol/server-everything`,
//! installed by `tests/fixtures/build.sh`), and against servers that fail: one that never
//! answers, one that writes garbage, a shell that starts the real server as a grandchild (as
//! `npx` starts `node`). No process may be left behind.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agent_tools::mcp::{McpConfig, McpServer, ServerConfig};
use serde_json::json;

fn servers_dir() -> PathBuf {
    let home = std::env::var_os("AGENT_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/agent"));
    let dir = home.join("fixtures/mcp-servers/node_modules/.bin");
    assert!(dir.is_dir(), "{} is missing: run tests/fixtures/build.sh first", dir.display());
    dir
}

fn config(name: &str, command: &str, args: &[&str], startup: &str) -> ServerConfig {
    let json = json!({"mcpServers": {name: {"command": command, "args": args, "startup_timeout": startup, "call_timeout": "20s"}}});
    McpConfig::from_json(&json.to_string(), "test").unwrap().servers.remove(name).unwrap()
}

/// Processes whose command line contains `needle` (this test's own excluded).
fn processes(needle: &str) -> usize {
    let out = std::process::Command::new("pgrep").args(["-f", needle]).output().expect("pgrep");
    let me = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.trim() != me).count()
}

async fn gone(needle: &str) -> bool {
    for _ in 0..50 {
        if processes(needle) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_server_tools_and_calls() {
    let bin = servers_dir().join("mcp-server-everything");
    let server = McpServer::start(config("everything", bin.to_str().unwrap(), &["stdio"], "30s")).await.unwrap();
    let names: Vec<String> = server.specs().into_iter().map(|s| s.name).collect();
    for want in ["everything__echo", "everything__get-sum", "everything__get-structured-content"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let echo = server.specs().into_iter().find(|s| s.name == "everything__echo").unwrap();
    assert_eq!(echo.parameters["properties"]["message"]["type"], "string", "{}", echo.parameters);
    let out = server.call("echo", json!({"message": "héllo 🌍"})).await;
    assert_eq!((out.content.as_str(), out.is_error), ("Echo: héllo 🌍", false));
    let out = server.call("get-sum", json!({"a": 2, "b": 3})).await;
    assert!(!out.is_error && out.content.contains('5'), "{out:?}");
    let out = server.call("get-structured-content", json!({"location": "New York"})).await;
    assert!(out.structured.is_some(), "{out:?}");
    // A bad argument comes back as a tool error, not a failure of the run.
    let out = server.call("get-sum", json!({"a": "two"})).await;
    assert!(out.is_error, "{out:?}");
    server.shutdown().await;
}

/// A shell that starts the server as its child, as `npx` starts `node`: closing the client
/// kills the whole process group.
#[tokio::test(flavor = "multi_thread")]
async fn the_whole_process_tree_goes() {
    let bin = servers_dir().join("mcp-server-everything");
    let marker = format!("{} stdio", bin.display());
    let script = format!("{marker} ; true");
    let server = McpServer::start(config("tree", "sh", &["-c", &script], "30s")).await.unwrap();
    assert!(processes(&bin.to_string_lossy()) >= 1, "the server is not running");
    server.shutdown().await;
    assert!(gone(&bin.to_string_lossy()).await, "processes left behind: {}", processes(&bin.to_string_lossy()));
}

/// A server that never answers, and one that writes garbage: a clear error within the startup
/// timeout, and nothing left running.
#[tokio::test(flavor = "multi_thread")]
async fn silent_and_garbage_servers_fail_in_time() {
    for (name, script) in [("silent", "exec sleep 311"), ("garbage", "echo 'this is not json'; exec sleep 312")] {
        let started = Instant::now();
        let err = match McpServer::start(config(name, "sh", &["-c", script], "2s")).await {
            Ok(_) => panic!("{name}: started"),
            Err(e) => e.to_string(),
        };
        assert!(started.elapsed() < Duration::from_secs(10), "{name}: took {:?}", started.elapsed());
        assert!(err.starts_with(&format!("MCP server `{name}`")), "{err}");
        let needle = script.rsplit(' ').next().unwrap();
        assert!(gone(&format!("sleep {needle}")).await, "{name}: process left behind");
    }
}
