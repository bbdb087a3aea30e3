//! `agent serve` end to end: the real binary with SmolLM2, driven by clients nobody here wrote:
//! the Python MCP SDK (mcp 2.3.0, `tests/serve_client.py`) over stdio and HTTP, and the MCP
//! Inspector's CLI; rmcp's client for `run_task` as an MCP task (the tasks extension, which the
//! Python SDK does not speak); the official conformance suite in `mcp_conformance_server`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Server defaults: the bundled text and number tools, served as MCP tools too.
fn defaults() -> PathBuf {
    // A directory per call: tests run in parallel, and tmp_dir empties the one it returns.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = tmp_dir(&format!(
        "serve-defaults-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let path = dir.join("serve.yaml");
    std::fs::write(
        &path,
        "tools: [builtin, wasm:text, wasm:number]\nmax_steps: 4\n",
    )
    .unwrap();
    path
}

fn strawberry() -> String {
    std::fs::read_to_string(repo_root().join("examples/tasks/strawberry.md")).unwrap()
}

fn python() -> PathBuf {
    require_fixture("fixtures/python-mcp/bin/python")
}

/// Runs tests/serve_client.py and returns what it printed.
fn client(scenario: &str, transport_args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/serve_client.py"))
        .arg(scenario)
        .args(transport_args)
        .current_dir(repo_root());
    cmd.env("SERVE_TASK", strawberry());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "serve_client.py {scenario} failed:\n{}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad output {e}: {}", stdout(&o)))
}

/// A running `agent serve --http`; killed on drop. Its stderr is kept for messages.
struct HttpServer {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_server(extra: &[&str]) -> HttpServer {
    let defaults = defaults();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--defaults",
            defaults.to_str().unwrap(),
        ])
        .args(extra)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("agent serve: ready on ") {
                let _ = tx.send(url.to_string());
            }
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(300))
        .unwrap_or_else(|_| panic!("the server did not start:\n{}", log.lock().unwrap()));
    HttpServer { child, url, log }
}

fn stdio_args(defaults: &std::path::Path) -> Vec<String> {
    [
        "stdio",
        env!("CARGO_BIN_EXE_agent"),
        "serve",
        "--defaults",
        defaults.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn check_run(out: &Value) {
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for t in ["run_task", "text__count", "number__compare"] {
        assert!(tools.contains(&t), "{t} not in {tools:?}");
    }
    assert_eq!(
        out["prompts"],
        serde_json::json!(["decimals", "strawberry"])
    );
    let r = &out["result"];
    assert_eq!(
        (r["is_error"].as_bool(), r["text"].as_str().map(str::trim)),
        (Some(false), Some("3")),
        "{out:#}"
    );
    let s = &r["structured"];
    assert_eq!(s["stop"], "answer");
    assert!(
        s["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "text__count"),
        "{s:#}"
    );
    assert!(s["run_id"].as_str().is_some_and(|id| !id.is_empty()));
    // A notification per step (and per tool call), step n of max.
    let progress = out["progress"].as_array().unwrap();
    assert!(
        progress
            .iter()
            .any(|p| p[2].as_str().unwrap_or("").starts_with("step 1 of 4")),
        "{progress:?}"
    );
    assert!(progress.iter().all(|p| p[1] == 4.0), "{progress:?}");
    assert!(out["trace_lines"].as_u64().unwrap_or(0) >= 4, "{out:#}");
}

#[test]
fn python_sdk_over_stdio_runs_a_task_and_survives_a_cancelled_one() {
    let d = defaults();
    let args = stdio_args(&d);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check_run(&client("run", &args, &[]));
    let out = client("cancel", &args, &[]);
    assert!(
        out.get("long_run_finished").is_none(),
        "the long run was not cancelled: {out:#}"
    );
    assert!(!out["progress_before_cancel"].as_array().unwrap().is_empty());
    assert_eq!(
        out["after"]["text"].as_str().map(str::trim),
        Some("3"),
        "{out:#}"
    );
}

#[test]
fn python_sdk_over_http_runs_a_task_and_survives_a_cancelled_one() {
    let server = http_server(&[]);
    let out = client("run", &["http", &server.url], &[]);
    check_run(&out);
    let out = client("cancel", &["http", &server.url], &[]);
    assert!(out.get("long_run_finished").is_none(), "{out:#}");
    assert_eq!(
        out["after"]["text"].as_str().map(str::trim),
        Some("3"),
        "{out:#}\n{}",
        server.log.lock().unwrap()
    );
    // The cancelled run left its trace, and says so.
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
}

/// Eight runs at once on one connection, four at a time (the rest queued): each answers, right,
/// with its own run and trace, and the four beyond the limit are told they wait.
#[test]
fn eight_concurrent_runs_all_complete() {
    let server = http_server(&["--max-concurrent", "4"]);
    let out = client("concurrent", &["http", &server.url], &[("SERVE_N", "8")]);
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    let mut ids = std::collections::BTreeSet::new();
    for r in results {
        let s = &r["structured"];
        assert_eq!(s["stop"], "answer", "{out:#}");
        assert!(
            s["tool_calls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "text__count"),
            "{out:#}"
        );
        ids.insert(s["run_id"].as_str().unwrap().to_string());
        assert_eq!(r["text"].as_str().map(str::trim), Some("3"), "{out:#}");
    }
    assert_eq!(ids.len(), 8, "{ids:?}");
    // The four beyond the limit were told they wait.
    let messages = out["progress_messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m.as_str().unwrap_or("").starts_with("queued: ")),
        "{messages:?}"
    );
    assert!(
        !server.log.lock().unwrap().contains("panicked"),
        "{}",
        server.log.lock().unwrap()
    );
}

/// The MCP Inspector's CLI (npm, Node 22) lists and calls tools over both transports.
#[test]
fn inspector_cli_lists_and_calls_tools() {
    let conf = require_fixture("fixtures/mcp-conformance/node_modules/.bin");
    let inspector = |target: &[&str], method: &[&str]| -> Value {
        let path = format!(
            "{}:{}",
            conf.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // A URL goes first (`--tool-arg` takes the words after it); a command goes last (after
        // `--`, everything is the server's command line).
        let args: Vec<&str> = if target[0] == "--" {
            [method, target].concat()
        } else {
            [target, method].concat()
        };
        let o = Command::new(conf.join("mcp-inspector"))
            .arg("--cli")
            .args(&args)
            .env("PATH", path)
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "inspector {method:?}: {}\n{}",
            stdout(&o),
            stderr(&o)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
    };
    let d = defaults();
    let server = http_server(&[]);
    let stdio = [
        "--",
        env!("CARGO_BIN_EXE_agent"),
        "serve",
        "--defaults",
        d.to_str().unwrap(),
    ];
    for target in [
        &stdio[..],
        &[server.url.as_str(), "--transport", "http"][..],
    ] {
        let list = inspector(target, &["--method", "tools/list"]);
        let names: Vec<&str> = list["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(
            names.contains(&"run_task") && names.contains(&"text__count"),
            "{names:?}"
        );
        let call = inspector(
            target,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "text__count",
                "--tool-arg",
                "text=strawberry",
                "find=r",
            ],
        );
        let text = call["content"][0]["text"].as_str().unwrap_or("");
        assert!(text.ends_with("The count is 3."), "{call:#}");
    }
}

/// Sends a raw HTTP/1.1 request; returns the status code and the body.
fn raw(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let addr = url.trim_start_matches("http://").trim_end_matches("/mcp");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer before reading a body it refuses.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn bad_requests_are_refused_and_the_server_stays_up() {
    // Non-loopback without a token: refused before anything loads.
    let o = agent(&["serve", "--http", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a loopback address: set --token"),
        "{}",
        stderr(&o)
    );
    let o = agent(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--allow-origin",
        "app.example",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("--allow-origin \"app.example\": write an origin as SCHEME://HOST:PORT"),
        "{}",
        stderr(&o)
    );

    let server = http_server(&[
        "--token",
        "s3cret",
        "--max-body",
        "65536",
        "--allow-origin",
        "https://app.example:443",
    ]);
    let auth = ("Authorization", "Bearer s3cret");
    let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    let (status, body) = raw(&server.url, &[], init);
    assert_eq!(status, 401, "{body}");
    let (status, body) = raw(&server.url, &[("Authorization", "Bearer wrong")], init);
    assert_eq!(status, 401, "{body}");
    let (status, body) = raw(&server.url, &[auth], b"{this is not json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"code\":-32700"), "{body}");
    let big = vec![b' '; 200_000];
    let (status, body) = raw(&server.url, &[auth], &big);
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("\"code\":-32600") && body.contains("larger than 65536 bytes"),
        "{body}"
    );
    // DNS rebinding: a foreign Host is refused.
    let (status, body) = raw(&server.url, &[auth, ("Host", "evil.example")], init);
    assert!((400..500).contains(&status), "{body}");
    // A web page elsewhere: its Origin is refused; a loopback page's and an allowed one pass.
    let (status, body) = raw(
        &server.url,
        &[auth, ("Origin", "https://evil.example")],
        init,
    );
    assert_eq!(status, 403, "{body}");
    for origin in ["http://localhost:5173", "https://app.example"] {
        let (status, body) = raw(&server.url, &[auth, ("Origin", origin)], init);
        assert_eq!(status, 200, "{origin}: {body}");
    }
    // Still serving.
    let (status, body) = raw(&server.url, &[auth], init);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");
    let t = Instant::now();
    let out = client("run", &["http", &server.url, "s3cret"], &[]);
    check_run(&out);
    assert!(t.elapsed() < Duration::from_secs(600));
}

/// The official conformance suite, server mode, over HTTP: every scenario that applies passes
/// (initialize, ping, tools-list, tools-call with text, errors and progress, multiple SSE
/// streams, resources-list, prompts-list, DNS rebinding); the others are listed with
/// reasons in tests/conformance-baseline.yml, and the suite fails if one of them passes.
#[test]
fn mcp_conformance_server() {
    let bin = require_fixture("fixtures/mcp-conformance/node_modules/.bin");
    let server = http_server(&["--conformance-fixtures"]);
    let out = tmp_dir("conformance-server");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new(bin.join("conformance"))
        .args([
            "server",
            "--url",
            &server.url,
            "--suite",
            "all",
            "--expected-failures",
        ])
        .arg(repo_root().join("tests/conformance-baseline.yml"))
        .arg("-o")
        .arg(&out)
        .env("PATH", path)
        .output()
        .unwrap();
    let text = stdout(&o);
    assert!(
        o.status.success(),
        "conformance failed:\n{}\n{}",
        text,
        stderr(&o)
    );
    for scenario in [
        "server-initialize",
        "ping",
        "tools-list",
        "tools-call-error",
        "tools-call-with-progress",
        "server-sse-multiple-streams",
        "resources-list",
        "prompts-list",
        "dns-rebinding-protection",
    ] {
        assert!(
            text.contains(&format!("✓ {scenario}:")),
            "{scenario} did not pass:\n{text}"
        );
    }
}

/// A wasm tool and an MCP server of the same name would serve two `NAME__…` tool sets under one
/// prefix, one shadowing the other: refused at start, naming both.
#[test]
fn a_wasm_tool_and_an_mcp_server_of_one_name_are_refused() {
    let dir = tmp_dir("serve-clash");
    let mcp = dir.join("mcp.json");
    let cfg = serde_json::json!({"mcpServers": {"text": {"command": "true"}}});
    std::fs::write(&mcp, cfg.to_string()).unwrap();
    let d = defaults();
    let o = agent(&[
        "serve",
        "--gateway",
        "--mcp-config",
        mcp.to_str().unwrap(),
        "--defaults",
        d.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "agent serve: the wasm tool `text` and the MCP server `text` would both name their tools `text__…`: rename the MCP server (its key in mcp_servers)\n"
    );
}

/// `--gateway`: the upstream MCP servers' tools are served too, as `SERVER__TOOL`, under their
/// configuration (here `enabled_tools`), and calls go through to the real server.
#[test]
fn gateway_serves_upstream_mcp_tools() {
    let conf = require_fixture("fixtures/mcp-conformance/node_modules/.bin");
    let everything = mcp_server_bin("mcp-server-everything");
    let dir = tmp_dir("serve-gateway");
    let mcp = dir.join("mcp.json");
    let cfg = serde_json::json!({"mcpServers": {"ev": {"command": everything, "args": ["stdio"], "enabled_tools": ["echo"]}}});
    std::fs::write(&mcp, cfg.to_string()).unwrap();
    let d = defaults();
    let path = format!(
        "{}:{}",
        conf.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let inspector = |method: &[&str]| -> Value {
        let server = [
            env!("CARGO_BIN_EXE_agent"),
            "serve",
            "--gateway",
            "--mcp-config",
            mcp.to_str().unwrap(),
            "--defaults",
            d.to_str().unwrap(),
        ];
        let o = Command::new(conf.join("mcp-inspector"))
            .arg("--cli")
            .args(method)
            .arg("--")
            .args(server)
            .env("PATH", &path)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "inspector {method:?}: {}\n{}",
            stdout(&o),
            stderr(&o)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
    };
    let list = inspector(&["--method", "tools/list"]);
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"ev__echo")
            && !names.contains(&"ev__get-sum")
            && names.contains(&"run_task"),
        "{names:?}"
    );
    let call = inspector(&[
        "--method",
        "tools/call",
        "--tool-name",
        "ev__echo",
        "--tool-arg",
        "message=through the gateway",
    ]);
    assert!(
        call["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("through the gateway"),
        "{call:#}"
    );
}

/// A client of the tasks extension (rmcp's, declaring `io.modelcontextprotocol/tasks`): it
/// records the progress notifications it gets.
#[derive(Clone, Default)]
struct TaskClient {
    progress: Arc<Mutex<Vec<String>>>,
    version: Option<rmcp::model::ProtocolVersion>,
}

impl rmcp::ClientHandler for TaskClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
        let config = ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::new("e2e-tasks", "0"),
        );
        match &self.version {
            Some(v) => config.with_protocol_version(v.clone()),
            None => config,
        }
    }

    async fn on_progress(
        &self,
        p: rmcp::model::ProgressNotificationParam,
        _: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap()
            .push(p.message.unwrap_or_default());
    }
}

/// Polls `tasks/get` until the task leaves `working`, keeping each new status message.
async fn settle(
    peer: &rmcp::Peer<rmcp::RoleClient>,
    id: &str,
    seen: &mut Vec<String>,
) -> rmcp::model::GetTaskResult {
    use rmcp::model::{GetTaskParams, TaskStatus};
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let t = peer.get_task(GetTaskParams::new(id)).await.unwrap();
        if let Some(m) = &t.task.task.status_message
            && seen.last() != Some(m)
        {
            seen.push(m.clone());
        }
        if !matches!(
            t.task.status(),
            TaskStatus::Working | TaskStatus::InputRequired
        ) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} still working: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `run_task` and expects a task handle back.
async fn start_task(peer: &rmcp::Peer<rmcp::RoleClient>, task: &str) -> String {
    use rmcp::model::{CallToolRequestParams, CallToolResponse};
    let args = serde_json::json!({"task": task})
        .as_object()
        .cloned()
        .unwrap();
    match peer
        .call_tool_once(CallToolRequestParams::new("run_task").with_arguments(args))
        .await
        .unwrap()
    {
        CallToolResponse::Task(t) => t.task.task_id,
        other => panic!("run_task did not become a task: {other:?}"),
    }
}

/// `run_task` as an MCP task: the answer through `tasks/get`, status messages per step while
/// it works, a refused call refused at once (no task), `tasks/cancel` stopping a long run
/// (settled `cancelled`, its trace readable), and the server running the next one.
async fn tasks_scenario(peer: &rmcp::Peer<rmcp::RoleClient>) {
    use rmcp::model::{
        CallToolRequestParams, CancelTaskParams, ReadResourceRequestParams, TaskPayload, TaskStatus,
    };
    let bad = peer
        .call_tool_once(
            CallToolRequestParams::new("run_task").with_arguments(serde_json::Map::new()),
        )
        .await;
    assert!(
        format!("{bad:?}").contains("`task` (a string) is required"),
        "{bad:?}"
    );
    let args = serde_json::json!({"task": "Count.", "options": {"tools": ["builtin:nope"]}})
        .as_object()
        .cloned()
        .unwrap();
    let bad = peer
        .call_tool_once(CallToolRequestParams::new("run_task").with_arguments(args))
        .await;
    assert!(
        format!("{bad:?}").contains("nope"),
        "a bad tool list must be refused before a task is made: {bad:?}"
    );

    let id = start_task(peer, &strawberry()).await;
    let mut seen = Vec::new();
    let done = settle(peer, &id, &mut seen).await;
    let TaskPayload::Completed { result } = &done.task.payload else {
        panic!("{done:?}")
    };
    assert_eq!(
        result["content"][0]["text"].as_str().map(str::trim),
        Some("3"),
        "{result:?}"
    );
    assert_eq!(result["structuredContent"]["stop"], "answer", "{result:?}");
    assert!(
        seen.iter().any(|m| m.starts_with("step 1 of 4")),
        "status messages: {seen:?}"
    );

    let long_task = "---\nmax_steps: 40\ntool_choice: none\n---\nWrite a very long story about the sea, one chapter per step.";
    let id = start_task(peer, long_task).await;
    let started = Instant::now();
    loop {
        let t = peer
            .get_task(rmcp::model::GetTaskParams::new(&id))
            .await
            .unwrap();
        // Step 1 is writing the story (one long generation): cancel in the middle of it.
        if t.task
            .task
            .status_message
            .as_deref()
            .is_some_and(|m| m.starts_with("step 1"))
        {
            break;
        }
        assert_eq!(t.task.status(), TaskStatus::Working, "{:?}", t.task.task);
        assert!(started.elapsed() < Duration::from_secs(600));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peer.cancel_task(CancelTaskParams::new(&id)).await.unwrap();
    let mut seen = Vec::new();
    let done = settle(peer, &id, &mut seen).await;
    assert_eq!(
        done.task.status(),
        TaskStatus::Cancelled,
        "{:?}",
        done.task.task
    );
    let message = done.task.task.status_message.clone().unwrap_or_default();
    assert!(message.starts_with("cancelled at step"), "{message}");
    let uri = message
        .split("trace: ")
        .nth(1)
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{message}"));
    let trace = peer
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap();
    assert!(format!("{trace:?}").contains("step_started"), "{trace:?}");

    let id = start_task(peer, &strawberry()).await;
    let done = settle(peer, &id, &mut Vec::new()).await;
    let TaskPayload::Completed { result } = &done.task.payload else {
        panic!("{done:?}")
    };
    assert_eq!(
        result["content"][0]["text"].as_str().map(str::trim),
        Some("3"),
        "{result:?}"
    );
}

/// `agent serve` over stdio with `defaults()`, as rmcp's client transport.
fn stdio_serve() -> rmcp::transport::TokioChildProcess {
    let d = defaults();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent"));
    cmd.args(["serve", "--defaults", d.to_str().unwrap()])
        .current_dir(repo_root());
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    transport
}

#[tokio::test(flavor = "multi_thread")]
async fn run_task_as_an_mcp_task_over_stdio() {
    use rmcp::ClientServiceExt;
    use rmcp::model::ProtocolVersion;
    use rmcp::service::ClientLifecycleMode;
    let transport = stdio_serve();
    let client = TaskClient::default();
    let progress = client.progress.clone();
    let service = client
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    tasks_scenario(service.peer()).await;
    // Over stdio the progress notifications keep coming after the call has been answered
    // with the task.
    assert!(
        progress
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.starts_with("step 1 of 4")),
        "{:?}",
        progress.lock().unwrap()
    );
    let _ = service.cancel().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_task_as_an_mcp_task_over_http() {
    use rmcp::ClientServiceExt;
    use rmcp::model::ProtocolVersion;
    use rmcp::service::ClientLifecycleMode;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let server = http_server(&[]);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.as_str()),
    );
    let client = TaskClient {
        version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
        ..TaskClient::default()
    };
    let service = client
        .serve_with_lifecycle(transport, ClientLifecycleMode::Initialize)
        .await
        .unwrap();
    tasks_scenario(service.peer()).await;
    let _ = service.cancel().await;
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
}

/// Runs `task` as the only task of a new `agent serve` (stdio) and returns its step 1's
/// (prompt tokens, cached tokens) from the run's trace (named in the task's result, answered or
/// not: `agent://runs/ID`).
async fn step_one_in_a_new_server(task: &str) -> (u64, Option<u64>) {
    use rmcp::ClientServiceExt;
    use rmcp::service::ClientLifecycleMode;
    let transport = stdio_serve();
    let service = TaskClient::default()
        .serve_with_lifecycle(transport, ClientLifecycleMode::Initialize)
        .await
        .unwrap();
    let id = start_task(service.peer(), task).await;
    let done = settle(service.peer(), &id, &mut Vec::new()).await;
    let _ = service.cancel().await;
    let text = format!("{done:?}");
    let run_id: String = text
        .split("agent://runs/")
        .nth(1)
        .unwrap_or_else(|| panic!("the result names no trace: {text}"))
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let trace =
        std::fs::read_to_string(agent_home().join("runs").join(format!("{run_id}.jsonl"))).unwrap();
    let step = trace
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "model_output")
        .expect("a model output in the trace");
    (
        step["prompt_tokens"].as_u64().unwrap(),
        step["cached_tokens"].as_u64(),
    )
}

/// The on-disk prefix cache is shared with `agent serve` and outlives it: the same task in a
/// restarted server prefills one token of its first prompt.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_starts_a_known_task_from_the_disk_cache() {
    let nonce = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // The unique part first: other runs share at most what comes before the question.
    let task = format!("---\nmax_steps: 1\n---\n(Question {nonce}.) Add 2 and 3.");
    let (n, cached) = step_one_in_a_new_server(&task).await;
    let from_disk = cached.unwrap();
    assert!(
        from_disk + 256 <= n,
        "{from_disk} of {n} tokens came from disk: the first run must compute its question"
    );
    assert_eq!(step_one_in_a_new_server(&task).await, (n, Some(n - 1)));
}
