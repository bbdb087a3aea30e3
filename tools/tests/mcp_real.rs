//! The MCP client against real servers from npm, installed by `tests/fixtures/build.sh`:
//! `@modelcontextprotocol/server-everything` over stdio and streamable HTTP, and
//! `@modelcontextprotocol/server-filesystem` given our roots. Sampling is answered by a
//! stand-in model here (the agent's tests answer with the real one).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_tools::mcp::{Hooks, McpEvent, McpServer, Sampler, SamplingReply, SamplingRequest};
use agent_tools::{BoxFuture, CallContext, ProgressUpdate};
use serde_json::json;
use support::*;

/// Answers every sampling request with the same text and keeps the requests.
struct Fixed(Mutex<Vec<SamplingRequest>>);

impl Sampler for Fixed {
    fn sample(&self, request: SamplingRequest) -> BoxFuture<'_, Result<SamplingReply, String>> {
        self.0.lock().unwrap().push(request);
        Box::pin(async {
            Ok(SamplingReply {
                text: "sampled by the stand-in".into(),
                model: "stand-in".into(),
                tokens: 5,
                truncated: false,
            })
        })
    }
}

fn hooks_with_sampler() -> (Hooks, Arc<Fixed>, Arc<Mutex<Vec<McpEvent>>>) {
    let (mut hooks, events) = recording_hooks();
    let sampler = Arc::new(Fixed(Mutex::new(Vec::new())));
    hooks.sampler.set(sampler.clone()).ok().unwrap();
    hooks.sampling_max_tokens = 64;
    (hooks, sampler, events)
}

/// Every feature the acceptance asks of server-everything, over one connection.
async fn exercise_everything(
    server: &McpServer,
    sampler: &Fixed,
    events: &Mutex<Vec<McpEvent>>,
    root: &std::path::Path,
) {
    let cx = CallContext::default();
    let names: Vec<String> = server.specs().into_iter().map(|s| s.name).collect();
    for want in [
        "everything__echo",
        "everything__get-sum",
        "everything__get-structured-content",
        "everything__trigger-sampling-request",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let echo = server
        .specs()
        .into_iter()
        .find(|s| s.name == "everything__echo")
        .unwrap();
    assert_eq!(
        echo.parameters["properties"]["message"]["type"], "string",
        "{}",
        echo.parameters
    );
    let out = server
        .call("echo", json!({"message": "héllo 🌍"}), &cx)
        .await;
    assert_eq!(
        (out.content.as_str(), out.is_error),
        ("Echo: héllo 🌍", false)
    );
    let out = server.call("get-sum", json!({"a": 2, "b": 3}), &cx).await;
    assert!(!out.is_error && out.content.contains('5'), "{out:?}");
    let out = server
        .call(
            "get-structured-content",
            json!({"location": "New York"}),
            &cx,
        )
        .await;
    let structured = out.structured.clone().expect("structured content");
    assert!(
        out.content.starts_with(&structured.to_string()),
        "structured content first: {out:?}"
    );
    // A bad argument comes back as a tool error, not a failure of the run.
    let out = server.call("get-sum", json!({"a": "two"}), &cx).await;
    assert!(out.is_error, "{out:?}");

    // Progress: the long-running operation reports each step.
    let seen = Arc::new(Mutex::new(Vec::<ProgressUpdate>::new()));
    let sink = seen.clone();
    let cx = CallContext::with_progress(move |p| sink.lock().unwrap().push(p));
    let out = server
        .call(
            "trigger-long-running-operation",
            json!({"duration": 1, "steps": 4}),
            &cx,
        )
        .await;
    assert!(
        !out.is_error && out.content.contains("completed"),
        "{out:?}"
    );
    let progress: Vec<(f64, Option<f64>)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| (p.progress, p.total))
        .collect();
    assert_eq!(
        progress,
        vec![
            (1.0, Some(4.0)),
            (2.0, Some(4.0)),
            (3.0, Some(4.0)),
            (4.0, Some(4.0))
        ]
    );

    // Sampling: the server's request reaches our sampler, bounded in tokens, and is recorded.
    let out = server
        .call(
            "trigger-sampling-request",
            json!({"prompt": "say hi", "maxTokens": 1000}),
            &CallContext::default(),
        )
        .await;
    assert!(
        !out.is_error && out.content.contains("sampled by the stand-in"),
        "{out:?}"
    );
    let req = sampler.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (req.max_tokens, req.system.as_deref()),
        (64, Some("You are a helpful test server."))
    );
    assert!(req.messages[0].1.contains("say hi"), "{req:?}");
    assert!(events.lock().unwrap().iter().any(
        |e| matches!(e, McpEvent::Sampling { reply, .. } if reply == "sampled by the stand-in")
    ));

    // Images are kept as attachments and named for the model.
    let out = server
        .call("get-tiny-image", json!({}), &CallContext::default())
        .await;
    assert!(
        out.attachments.iter().any(|a| a.kind == "image"
            && a.mime_type.as_deref() == Some("image/png")
            && a.data.is_some()),
        "{out:?}"
    );
    assert!(out.content.contains("[image: image/png"), "{}", out.content);

    // Roots: the server sees the directory configured as its `roots`.
    let out = server
        .call("get-roots-list", json!({}), &CallContext::default())
        .await;
    assert!(
        out.content.contains(&format!("file://{}", root.display())),
        "{out:?}"
    );

    // Elicitation: declined (headless), with the reason recorded.
    if names
        .iter()
        .any(|n| n == "everything__trigger-elicitation-request")
    {
        let out = server
            .call(
                "trigger-elicitation-request",
                json!({}),
                &CallContext::default(),
            )
            .await;
        assert!(out.content.to_lowercase().contains("decline"), "{out:?}");
        assert!(
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, McpEvent::ElicitationDeclined { .. }))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_over_stdio() {
    let root = std::env::temp_dir();
    let (hooks, sampler, events) = hooks_with_sampler();
    let bin = servers_dir().join("mcp-server-everything");
    let server = McpServer::start(
        config(
            "everything",
            json!({"command": bin, "args": ["stdio"], "call_timeout": "20s", "roots": [root]}),
        ),
        hooks,
    )
    .await
    .unwrap();
    assert_eq!(server.protocol(), "2025-11-25");
    exercise_everything(&server, &sampler, &events, &root).await;
    server.shutdown().await;
    assert!(
        gone(&format!("{} stdio", bin.display())).await,
        "server left running"
    );
}

/// The same server over streamable HTTP.
#[tokio::test(flavor = "multi_thread")]
async fn everything_over_http() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bin = servers_dir().join("mcp-server-everything");
    let mut child = tokio::process::Command::new(&bin)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let root = std::env::temp_dir();
    let (hooks, sampler, events) = hooks_with_sampler();
    let server = McpServer::start(
        config(
            "everything",
            json!({"url": url, "headers": {"X-Test": "1"}, "call_timeout": "20s", "roots": [root]}),
        ),
        hooks,
    )
    .await
    .unwrap();
    exercise_everything(&server, &sampler, &events, &root).await;
    server.shutdown().await;
    child.kill().await.unwrap();
}

/// A shell that starts the server as its child, as `npx` starts `node`: closing the client
/// kills the whole process group.
#[tokio::test(flavor = "multi_thread")]
async fn the_whole_process_tree_goes() {
    let bin = servers_dir().join("mcp-server-everything");
    let marker = format!("{} stdio", bin.display());
    let script = format!("{marker} ; true");
    let before = processes(&bin.to_string_lossy());
    let server = McpServer::start(
        config("tree", json!({"command": "sh", "args": ["-c", script]})),
        Hooks::default(),
    )
    .await
    .unwrap();
    assert!(
        processes(&bin.to_string_lossy()) > before,
        "the server is not running"
    );
    server.shutdown().await;
    assert!(
        gone(&marker).await,
        "processes left behind: {}",
        processes(&marker)
    );
}

/// server-filesystem serves the directories of its command line, as under Claude Desktop or
/// Cursor, when no roots are configured for it (we then do not declare the capability).
#[tokio::test(flavor = "multi_thread")]
async fn filesystem_serves_its_command_line_without_roots() {
    let dir = std::env::temp_dir().join(format!("agent-fs-plain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let bin = servers_dir().join("mcp-server-filesystem");
    let server = McpServer::start(
        config("fs", json!({"command": bin, "args": [dir]})),
        Hooks::default(),
    )
    .await
    .unwrap();
    let cx = CallContext::default();
    let listed = server
        .call("list_allowed_directories", json!({}), &cx)
        .await
        .content;
    assert!(listed.contains(dir.to_str().unwrap()), "{listed}");
    let out = server
        .call(
            "write_file",
            json!({"path": dir.join("a.txt"), "content": "written"}),
            &cx,
        )
        .await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("a.txt")).unwrap(),
        "written"
    );
    // The directory the tests run in is not granted.
    let here = std::env::current_dir().unwrap().join("agent-fs-probe.txt");
    let out = server
        .call("write_file", json!({"path": here, "content": "x"}), &cx)
        .await;
    let written = here.exists();
    let _ = std::fs::remove_file(&here);
    assert!(out.is_error && !written, "{out:?}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `roots` configured, server-filesystem serves those instead of its command line's.
#[tokio::test(flavor = "multi_thread")]
async fn filesystem_serves_configured_roots() {
    let root = std::env::temp_dir().join(format!("agent-fs-roots-{}", std::process::id()));
    let other = std::env::temp_dir().join(format!("agent-fs-cmdline-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(root.join("notes.txt"), "the answer is 42\n").unwrap();
    let bin = servers_dir().join("mcp-server-filesystem");
    let server = McpServer::start(
        config(
            "fs",
            json!({"command": bin, "args": [other], "roots": [root]}),
        ),
        Hooks::default(),
    )
    .await
    .unwrap();
    let cx = CallContext::default();
    // The server swaps in the client's roots after `initialized`; give it a moment.
    let mut listed = String::new();
    for _ in 0..50 {
        listed = server
            .call("list_allowed_directories", json!({}), &cx)
            .await
            .content;
        if listed.contains(root.to_str().unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        listed.contains(root.to_str().unwrap()) && !listed.contains(other.to_str().unwrap()),
        "{listed}"
    );
    let out = server
        .call("list_directory", json!({"path": root}), &cx)
        .await;
    assert!(
        !out.is_error && out.content.contains("notes.txt"),
        "{out:?}"
    );
    let out = server
        .call(
            "read_text_file",
            json!({"path": root.join("notes.txt")}),
            &cx,
        )
        .await;
    assert!(
        !out.is_error && out.content.contains("the answer is 42"),
        "{out:?}"
    );
    let out = server
        .call("read_text_file", json!({"path": "/etc/passwd"}), &cx)
        .await;
    assert!(out.is_error, "{out:?}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&other);
}
