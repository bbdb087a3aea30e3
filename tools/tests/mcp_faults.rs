//! Every way a server fails, with the fault server (tools/examples/mcp_fault_server.rs): each
//! ends in a clear error within its timeout, the next call works where it can, and no process
//! is left (counted by the tag each test gives its server).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_tools::mcp::{Hooks, McpConfig, McpEvent, McpPool, McpServer, ServerStatus};
use agent_tools::{CallContext, ToolProvider};
use serde_json::json;
use support::*;

fn log_path(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("agent-fault-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

async fn logged(path: &std::path::Path, line: &str) -> bool {
    for _ in 0..50 {
        if std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .any(|l| l == line)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_mid_call_then_restart() {
    let (hooks, events) = recording_hooks();
    let server = McpServer::start(fault("crash", &[], json!({})), hooks)
        .await
        .unwrap();
    let cx = CallContext::default();
    let out = server.call("crash", json!({}), &cx).await;
    assert!(out.is_error, "{out:?}");
    assert!(
        out.content
            .contains("closed the connection during the call")
            && out.content.contains("crashing on purpose"),
        "{}",
        out.content
    );
    // The next call restarts the server.
    let out = server.call("echo", json!({"text": "back"}), &cx).await;
    assert_eq!((out.content.as_str(), out.is_error), ("back", false));
    let kinds: Vec<&'static str> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            McpEvent::Started { .. } => "started",
            McpEvent::Lost { .. } => "lost",
            McpEvent::Restarted { .. } => "restarted",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["started", "lost", "restarted"]);
    server.shutdown().await;
    assert!(gone(&tag("crash")).await);
}

/// Restarts are bounded: a server that keeps failing to start is given up, with its error.
#[tokio::test(flavor = "multi_thread")]
async fn restarts_are_bounded() {
    let marker = std::env::temp_dir().join(format!("agent-fault-once-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    // Starts once; after that every start fails (the marker exists).
    let script = format!(
        "if [ -e {m} ]; then echo 'refusing to start again' >&2; exit 1; fi; touch {m}; exec {bin} --tag bounded",
        m = marker.display(),
        bin = fault_server().display()
    );
    let server = McpServer::start(
        config(
            "bounded",
            json!({"command": "sh", "args": ["-c", script], "startup_timeout": "5s"}),
        ),
        Hooks::default(),
    )
    .await
    .unwrap();
    let cx = CallContext::default();
    assert!(server.call("crash", json!({}), &cx).await.is_error);
    let mut errors = Vec::new();
    for _ in 0..5 {
        errors.push(server.call("echo", json!({"text": "x"}), &cx).await.content);
    }
    assert!(
        errors[0].contains("restart failed") && errors[0].contains("refusing to start again"),
        "{errors:?}"
    );
    assert!(
        errors[4].contains("gave up after 3 failed restarts"),
        "{errors:?}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_file(&marker);
    assert!(gone(&tag("bounded")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_call_times_out_and_is_cancelled() {
    let log = log_path("hang");
    let cfg = fault(
        "hang",
        &[],
        json!({"call_timeout": "1s", "env": {"FAULT_LOG": log}}),
    );
    let server = McpServer::start(cfg, Hooks::default()).await.unwrap();
    let out = server
        .call("hang", json!({}), &CallContext::default())
        .await;
    assert_eq!(
        out.content,
        "`hang__hang` was stopped after 1s without an answer or progress; the server was told to cancel it"
    );
    assert!(
        logged(&log, "cancelled hang").await,
        "the server never heard of the cancellation"
    );
    // The server still serves.
    assert_eq!(
        server
            .call("echo", json!({"text": "ok"}), &CallContext::default())
            .await
            .content,
        "ok"
    );
    server.shutdown().await;
    assert!(gone(&tag("hang")).await);
}

/// Progress re-arms the idle timeout; the total cap still holds; dropping a call cancels it.
#[tokio::test(flavor = "multi_thread")]
async fn progress_rearms_the_idle_timeout() {
    let log = log_path("slow");
    let cfg = fault(
        "slow",
        &[],
        json!({"call_timeout": "1s", "call_total_timeout": "4s", "env": {"FAULT_LOG": log}}),
    );
    let server = McpServer::start(cfg, Hooks::default()).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let cx = CallContext::with_progress(move |p| {
        sink.lock().unwrap().push(p.message.unwrap_or_default())
    });
    // 5 steps of 600 ms: 3 s in all, never 1 s without progress.
    let out = server
        .call("slow", json!({"steps": 5, "step_ms": 600}), &cx)
        .await;
    assert_eq!((out.content.as_str(), out.is_error), ("done", false));
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["step 1", "step 2", "step 3", "step 4", "step 5"]
    );
    // 10 steps of 600 ms pass the 4 s total.
    let out = server
        .call(
            "slow",
            json!({"steps": 10, "step_ms": 600}),
            &CallContext::default(),
        )
        .await;
    assert_eq!(
        out.content,
        "`slow__slow` was stopped after 4s in all (the call's total limit); the server was told to cancel it"
    );
    assert!(logged(&log, "cancelled slow").await);
    std::fs::remove_file(&log).unwrap();
    // Dropping the call (Ctrl-C, an aborted step) cancels it on the server.
    let cx = CallContext::default();
    let call = server.call("slow", json!({"steps": 100, "step_ms": 100}), &cx);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), call)
            .await
            .is_err()
    );
    assert!(
        logged(&log, "cancelled slow").await,
        "the server never heard of the dropped call"
    );
    server.shutdown().await;
    assert!(gone(&tag("slow")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_silence_and_slow_start_fail_within_the_startup_timeout() {
    for (name, flags) in [
        ("garbage", vec!["--garbage"]),
        ("latestart", vec!["--delay-start", "30000"]),
    ] {
        let err = match McpServer::start(
            fault(name, &flags, json!({"startup_timeout": "2s"})),
            Hooks::default(),
        )
        .await
        {
            Ok(_) => panic!("{name}: started"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.starts_with(&format!("MCP server `{name}`: did not start within 2s")),
            "{err}"
        );
        assert!(gone(&tag(name)).await, "{name}: process left behind");
    }
    // A shell that is not an MCP server at all: its stderr is in the error.
    let err = McpServer::start(
        config(
            "notmcp",
            json!({"command": "sh", "args": ["-c", "echo 'no such thing' >&2; exit 2"]}),
        ),
        Hooks::default(),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.starts_with("MCP server `notmcp`: initialize failed") && err.contains("no such thing"),
        "{err}"
    );
}

/// A result line over rmcp's 16 MiB cap is dropped by rmcp: the call ends at its idle
/// timeout instead of hanging, and the connection keeps working.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_does_not_hang() {
    let server = McpServer::start(
        fault("huge", &[], json!({"call_timeout": "3s"})),
        Hooks::default(),
    )
    .await
    .unwrap();
    let out = server
        .call(
            "big",
            json!({"chars": 17 * 1024 * 1024}),
            &CallContext::default(),
        )
        .await;
    assert!(
        out.is_error && out.content.contains("was stopped after 3s"),
        "{}",
        &out.content[..out.content.len().min(300)]
    );
    assert_eq!(
        server
            .call(
                "echo",
                json!({"text": "still here"}),
                &CallContext::default()
            )
            .await
            .content,
        "still here"
    );
    server.shutdown().await;
    assert!(gone(&tag("huge")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_output_is_cut_with_a_note() {
    let server = McpServer::start(
        fault("cut", &[], json!({"max_output": 1000})),
        Hooks::default(),
    )
    .await
    .unwrap();
    let out = server
        .call("big", json!({"chars": 50_000}), &CallContext::default())
        .await;
    assert_eq!(
        out.content,
        format!(
            "{}\n[output cut: showed 1000 of 50000 characters; 49000 more not shown]",
            "x".repeat(1000)
        )
    );
    server.shutdown().await;
}

/// The grandchild a server leaves (as `npx` leaves `node`) goes with its process group.
#[tokio::test(flavor = "multi_thread")]
async fn no_grandchild_is_left() {
    let before = processes("sleep 611");
    let server = McpServer::start(
        fault("grandchild", &["--grandchild"], json!({})),
        Hooks::default(),
    )
    .await
    .unwrap();
    assert!(processes("sleep 611") > before);
    server.shutdown().await;
    assert!(gone(&tag("grandchild")).await);
    assert!(gone("sleep 611").await, "the grandchild was left running");
}

/// Pages of two are all read; `list_changed` brings a new tool; a 2026-07-28-only server works.
#[tokio::test(flavor = "multi_thread")]
async fn pagination_list_changed_and_new_protocol() {
    let (hooks, events) = recording_hooks();
    let server = McpServer::start(
        fault("pages", &[], json!({"disabled_tools": ["hang"]})),
        hooks,
    )
    .await
    .unwrap();
    let names: Vec<String> = server.specs().into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "pages__echo",
            "pages__slow",
            "pages__crash",
            "pages__big",
            "pages__image",
            "pages__roots",
            "pages__add_tool"
        ]
    );
    assert_eq!(
        server
            .call("add_tool", json!({}), &CallContext::default())
            .await
            .content,
        "added"
    );
    for _ in 0..50 {
        if server.specs().iter().any(|s| s.name == "pages__extra") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.specs().iter().any(|s| s.name == "pages__extra"),
        "list_changed was not honoured"
    );
    assert!(events.lock().unwrap().contains(&McpEvent::ToolsChanged {
        server: "pages".into(),
        tools: 9
    }));
    assert_eq!(
        server
            .call("extra", json!({}), &CallContext::default())
            .await
            .content,
        "extra ran"
    );
    server.shutdown().await;

    let server = McpServer::start(
        fault("v2026", &["--only-2026"], json!({})),
        Hooks::default(),
    )
    .await
    .unwrap();
    assert_eq!(server.protocol(), "2026-07-28");
    assert_eq!(
        server
            .call("echo", json!({"text": "new"}), &CallContext::default())
            .await
            .content,
        "new"
    );
    server.shutdown().await;
    assert!(gone(&tag("pages")).await && gone(&tag("v2026")).await);
}

/// Servers start in parallel; a slow optional one delays only its own tools; a required one
/// that fails fails the wait, naming it; an optional one that fails is reported and left out.
#[tokio::test(flavor = "multi_thread")]
async fn the_pool_starts_in_parallel() {
    let bin = fault_server();
    let text = json!({"mcpServers": {
        "fast": {"command": bin, "args": ["--tag", "poolfast"]},
        "late": {"command": bin, "args": ["--tag", "poollate", "--delay-start", "2500"]},
        "broken": {"command": "sh", "args": ["-c", "exit 1"], "startup_timeout": "5s"},
    }})
    .to_string();
    let config = McpConfig::from_json(&text, "pool.json").unwrap();
    let pool = McpPool::start(&config, Hooks::default());
    pool.wait_required().await.unwrap();
    for _ in 0..100 {
        if matches!(pool.status()["fast"], ServerStatus::Ready { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<String> = pool.tools().iter().map(|t| t.spec().name.clone()).collect();
    assert!(
        names.contains(&"fast__echo".to_string()) && !names.iter().any(|n| n.starts_with("late__")),
        "{names:?}"
    );
    // Started together: the slow one is already running (not waiting its turn) while the
    // fast one serves.
    assert_eq!(pool.status()["late"], ServerStatus::Starting);
    assert_eq!(processes(&tag("poollate")), 1);
    pool.wait_all().await;
    assert!(pool.tools().iter().any(|t| t.spec().name == "late__echo"));
    assert!(
        matches!(&pool.status()["broken"], ServerStatus::Failed(m) if m.contains("initialize failed")),
        "{:?}",
        pool.status()
    );
    pool.shutdown().await;
    assert!(gone(&tag("poolfast")).await && gone(&tag("poollate")).await);

    let text = json!({"mcpServers": {"needed": {"command": "sh", "args": ["-c", "exit 1"], "required": true}}}).to_string();
    let pool = McpPool::start(
        &McpConfig::from_json(&text, "pool.json").unwrap(),
        Hooks::default(),
    );
    let err = pool.wait_required().await.unwrap_err().to_string();
    assert!(
        err.starts_with("MCP server `needed`: required, but it did not start: initialize failed"),
        "{err}"
    );
}
