//! MCP end to end: the real `agent` binary, the default model (SmolLM2-135M), and the
//! reference servers from npm. The model is forced to the tool under test (`tool_choice`), so
//! what is checked is the path through our client, not a 135M model's judgement.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn write_task(dir: &Path, name: &str, front: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("---\n{front}---\n{body}\n")).unwrap();
    p.display().to_string()
}

fn run_task(dir: &Path, task: &str) -> (std::process::Output, Vec<Value>) {
    run_task_with(dir, task, &[])
}

fn run_task_with(dir: &Path, task: &str, extra: &[&str]) -> (std::process::Output, Vec<Value>) {
    let trace = dir.join("trace.jsonl");
    let _ = std::fs::remove_file(&trace);
    let mut args = vec!["run", task, "--json", "--trace", trace.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = agent_in(dir, &args);
    let ev = events(&o);
    assert_eq!(
        std::fs::read_to_string(&trace).unwrap().lines().count(),
        ev.len(),
        "the trace holds every event"
    );
    (o, ev)
}

fn result_of<'a>(ev: &'a [Value], tool: &str) -> &'a Value {
    ev.iter()
        .find(|e| e["event"] == "tool_result" && e["name"] == tool)
        .unwrap_or_else(|| panic!("no {tool} result in {ev:#?}"))
}

/// server-filesystem, given the task's directory as its `roots`: SmolLM2 lists the
/// directory, then reads a file, through it.
#[test]
fn smollm2_lists_and_reads_files_through_server_filesystem() {
    let dir = tmp_dir("mcp-fs");
    std::fs::write(dir.join("notes.txt"), "the secret word is apricot\n").unwrap();
    std::fs::write(dir.join("shopping.txt"), "milk\n").unwrap();
    let fs = mcp_server_bin("mcp-server-filesystem");
    // The command-line directory is a decoy: the configured roots (the task's directory,
    // relative to the task file) replace it.
    let decoy = tmp_dir("mcp-fs-decoy");
    let server = format!(
        "mcp_servers:\n  fs:\n    command: {}\n    args: [{}]\n    roots: [.]\n    enabled_tools: [list_directory, read_text_file]\n    required: true\n",
        fs.display(),
        decoy.display()
    );
    let list = write_task(
        &dir,
        "list.md",
        &format!("tools: []\nmax_steps: 2\ntool_choice: {{tool: fs__list_directory}}\n{server}"),
        r#"List the files here: call fs__list_directory with {"path": "."}."#,
    );
    let (o, ev) = run_task(&dir, &list);
    // What is checked here is the listing; whether SmolLM2 then words an answer is not.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "stderr: {}",
        stderr(&o)
    );
    let started = ev
        .iter()
        .find(|e| e["event"] == "mcp_server" && e["what"] == "started")
        .expect("server started");
    assert_eq!(
        (started["server"].as_str(), started["tools"].as_u64()),
        (Some("fs"), Some(2))
    );
    let listed = result_of(&ev, "fs__list_directory");
    assert_eq!(listed["is_error"], false, "{listed}");
    let text = listed["content"].as_str().unwrap();
    assert!(
        text.contains("notes.txt") && text.contains("shopping.txt"),
        "{text}"
    );

    let read = write_task(
        &dir,
        "read.md",
        &format!("tools: []\nmax_steps: 2\ntool_choice: {{tool: fs__read_text_file}}\n{server}"),
        r#"Call fs__read_text_file with {"path": "notes.txt"}, then tell me the secret word."#,
    );
    let (o, ev) = run_task(&dir, &read);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let call = ev
        .iter()
        .find(|e| e["event"] == "tool_call" && e["name"] == "fs__read_text_file")
        .unwrap();
    let got = result_of(&ev, "fs__read_text_file");
    assert_eq!(call["arguments"]["path"], "notes.txt", "{call}");
    assert!(
        got["content"].as_str().unwrap().contains("apricot"),
        "{got}"
    );
    // The model read the word and answered with it.
    let last = ev.last().unwrap();
    assert!(last["text"].as_str().unwrap().contains("apricot"), "{last}");
}

/// The same `mcpServers` entry grants the same access as in Claude Desktop or Cursor: with no
/// `roots` configured, server-filesystem serves the directory of its command line, whatever
/// directory `agent` runs in. And a task whose `tool_choice` names an optional server's tool
/// gets that tool at step 1 (the run waits for the server).
#[test]
fn a_server_keeps_its_configured_directories_and_step_one_waits_for_it() {
    let data = tmp_dir("mcp-fs-data");
    let fs = mcp_server_bin("mcp-server-filesystem");
    let task = write_task(
        &data,
        "write.md",
        &format!(
            "tools: []\nmax_steps: 1\ntool_choice: {{tool: fs__write_file}}\nmcp_servers:\n  fs:\n    command: {}\n    args: [{}]\n",
            fs.display(),
            data.display()
        ),
        &format!(
            "Write the word hello to the file {}.",
            data.join("out.txt").display()
        ),
    );
    // From the project folder, not the data directory.
    let call = |path: &Path| {
        agent(&[
            "tools",
            "call",
            "fs__write_file",
            "--task",
            &task,
            "--args",
            &serde_json::json!({"path": path, "content": "hello"}).to_string(),
        ])
    };
    let o = call(&data.join("direct.txt"));
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        std::fs::read_to_string(data.join("direct.txt")).unwrap(),
        "hello"
    );
    let outside = repo_root().join("agent-fs-outside.txt");
    let o = call(&outside);
    let written = outside.exists();
    let _ = std::fs::remove_file(&outside);
    assert!(!o.status.success() && !written, "{}", stdout(&o));
    // Step 1 sees the optional server's tool: the call is made, under the grammar.
    let trace = data.join("trace.jsonl");
    let o = agent(&["run", &task, "--json", "--trace", trace.to_str().unwrap()]);
    let ev = events(&o);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "tool_call" && e["step"] == 1 && e["name"] == "fs__write_file"),
        "stderr: {}\n{ev:#?}",
        stderr(&o)
    );
}

/// server-everything's sampling tool: the server asks our model (SmolLM2 itself) for a
/// completion; the reply is bounded and recorded in the trace.
#[test]
fn sampling_requests_are_answered_by_the_model() {
    let dir = tmp_dir("mcp-sampling");
    let everything = mcp_server_bin("mcp-server-everything");
    let task = write_task(
        &dir,
        "sample.md",
        &format!(
            "tools: []\nmax_steps: 2\ntool_choice: {{tool: everything__trigger-sampling-request}}\npermissions: {{allow: [everything__trigger-sampling-request]}}\nmcp_servers:\n  everything:\n    command: {}\n    args: [stdio]\n    required: true\n",
            everything.display()
        ),
        "Ask the language model to write a haiku about the sea.",
    );
    // A step's token limit also caps what the server's sampling request may generate; 256
    // keeps SmolLM2's two steps short.
    let (o, ev) = run_task_with(&dir, &task, &["--max-tokens", "256"]);
    // SmolLM2 may ramble through its last step without answering (exit 1): not the subject here.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "stderr: {}",
        stderr(&o)
    );
    let sampled = ev
        .iter()
        .find(|e| e["event"] == "mcp_server" && e["what"] == "sampling")
        .unwrap_or_else(|| panic!("no sampling event: {ev:#?}"));
    let tokens = sampled["tokens"].as_u64().unwrap();
    // The run's cap is its per-step token limit.
    assert!(tokens > 0 && tokens <= 256, "{sampled}");
    let reply = sampled["reply"].as_str().unwrap();
    assert!(!reply.is_empty());
    let result = result_of(&ev, "everything__trigger-sampling-request");
    assert_eq!(result["is_error"], false, "{result}");
    assert!(
        result["content"].as_str().unwrap().contains("smollm2"),
        "the model's name is in the server's result: {result}"
    );
}

/// A required server that cannot start fails the run, naming it; an optional one is reported
/// and the run goes on without it.
#[test]
fn required_and_optional_servers() {
    let dir = tmp_dir("mcp-required");
    let required = write_task(
        &dir,
        "req.md",
        "mcp_servers:\n  needed:\n    command: sh\n    args: [-c, 'echo cannot start >&2; exit 3']\n    required: true\n",
        "What is 2+2?",
    );
    let o = agent_in(&dir, &["run", &required]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("MCP server `needed`: required, but it did not start")
            && err.contains("cannot start"),
        "{err}"
    );

    let optional = write_task(
        &dir,
        "opt.md",
        "tools: [builtin]\nmax_steps: 3\ntool_choice: required\nmcp_servers:\n  extra:\n    command: sh\n    args: [-c, 'exit 3']\n",
        "What is 1234 * 5678? Use the calculator tool to compute it, then give the final answer.",
    );
    let (o, ev) = run_task(&dir, &optional);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let failed = ev
        .iter()
        .find(|e| e["event"] == "mcp_server" && e["what"] == "failed")
        .unwrap();
    assert_eq!(
        (failed["server"].as_str(), failed["required"].as_bool()),
        (Some("extra"), Some(false))
    );
}

/// `agent tools` lists what a task would see, with sources and schemas; `agent tools call`
/// calls one directly.
#[test]
fn tools_command_lists_and_calls() {
    let dir = tmp_dir("mcp-tools");
    let everything = mcp_server_bin("mcp-server-everything");
    let task = write_task(
        &dir,
        "t.md",
        &format!(
            "tools: [builtin]\nmcp_servers:\n  ev:\n    command: {}\n    args: [stdio]\n    enabled_tools: [echo, get-sum]\n",
            everything.display()
        ),
        "x",
    );
    let o = agent_in(&dir, &["tools", "--task", &task, "--json"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let names: Vec<(&str, &str)> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("calculator", "builtin"),
            ("ev__echo", "mcp:ev"),
            ("ev__get-sum", "mcp:ev"),
            ("final_answer", "builtin")
        ]
    );
    let echo = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ev__echo")
        .unwrap();
    assert_eq!(
        echo["parameters"]["required"],
        serde_json::json!(["message"])
    );
    assert_eq!(v["mcp_servers"]["ev"]["status"], "ready");

    let o = agent_in(
        &dir,
        &[
            "tools",
            "--task",
            &task,
            "call",
            "ev__get-sum",
            "--args",
            r#"{"a": 2, "b": 40}"#,
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "The sum of 2 and 40 is 42.");
    let o = agent_in(
        &dir,
        &[
            "tools",
            "--task",
            &task,
            "call",
            "ev__get-sum",
            "--args",
            r#"{"a": "two"}"#,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("do not match the schema"),
        "{}",
        stdout(&o)
    );
    let o = agent_in(&dir, &["tools", "call", "nope", "--args", "[1]"]);
    assert_eq!(
        (o.status.code(), stderr(&o).trim()),
        (Some(2), "agent: --args: expected a JSON object")
    );
}

/// Ctrl-C during a call that never answers: the run stops at once with its trace, the server
/// hears `notifications/cancelled`, and no server process is left.
#[test]
fn interrupt_cancels_the_call_in_flight() {
    let dir = tmp_dir("mcp-interrupt");
    let log = dir.join("fault.log");
    let task = write_task(
        &dir,
        "hang.md",
        &format!(
            "tools: []\nmax_steps: 2\ntool_choice: {{tool: fault__hang}}\npermissions: {{allow: [fault__hang]}}\nmcp_servers:\n  fault:\n    command: {}\n    args: [--tag, e2e-interrupt]\n    env: {{FAULT_LOG: {}}}\n    required: true\n",
            fault_server().display(),
            log.display()
        ),
        "Call the hang tool.",
    );
    let trace = dir.join("trace.jsonl");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", &task, "--trace", trace.to_str().unwrap()])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The server logs the call when it has it: the cancellation must then reach it.
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("started hang")
    {
        assert!(
            started.elapsed().as_secs() < 120,
            "the run never called the tool"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let interrupted = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        interrupted.elapsed().as_secs() < 10,
        "took {:?} to stop",
        interrupted.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let lines: Vec<Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["stop"], "cancelled", "{lines:?}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("cancelled hang"),
        "the server never heard of the cancellation"
    );
    assert_eq!(
        processes("mcp_fault_server --tag e2e-interrupt"),
        0,
        "server left running"
    );
}

/// A file far longer than SmolLM2's 8,192-token window, read through server-filesystem with
/// the default limits: the prompt holds the head and tail of the result (an eighth of the
/// window, counted by the model's own tokenizer), the whole is written beside the trace, and
/// the next step's prompt fits the window.
#[test]
fn a_result_longer_than_the_window_is_cut_to_fit() {
    let dir = tmp_dir("mcp-fs-long");
    let whole: String = (0..2000)
        .map(|i| format!("record {i:04}: the quick brown fox jumps over the lazy dog\n"))
        .collect();
    std::fs::write(dir.join("big.txt"), &whole).unwrap();
    let fs = mcp_server_bin("mcp-server-filesystem");
    let task = write_task(
        &dir,
        "long.md",
        &format!(
            "tools: []\nmax_steps: 2\ntool_choice: {{tool: fs__read_text_file}}\nmcp_servers:\n  fs:\n    command: {}\n    args: [{}]\n    required: true\n",
            fs.display(),
            dir.display()
        ),
        r#"Call fs__read_text_file with {"path": "big.txt"}, then say how many records it has."#,
    );
    let (o, ev) = run_task(&dir, &task);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "stderr: {}",
        stderr(&o)
    );
    let window = ev[0]["context_window"].as_u64().unwrap();
    assert_eq!(window, 8192);
    let got = result_of(&ev, "fs__read_text_file");
    // The trace holds the result whole (server-filesystem's structured content and its text).
    let content = got["content"].as_str().unwrap();
    assert!(content.len() >= whole.len(), "{}", content.len());
    assert!(content.contains("record 0000: the") && content.contains("record 1999: the"));
    let cut = &got["cut"];
    assert_eq!(
        (cut["id"].as_u64(), cut["bytes"].as_u64()),
        (Some(1), Some(content.len() as u64))
    );
    let file = cut["file"].as_str().unwrap();
    assert!(std::fs::read_to_string(file).unwrap() == content);
    assert_eq!(
        Path::new(file),
        dir.join("trace.results").join("result-1.txt")
    );
    // Every prompt fits the window; the one after the read holds about an eighth of it more.
    let prompts: Vec<u64> = ev
        .iter()
        .filter(|e| e["event"] == "model_output")
        .map(|e| e["prompt_tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(prompts.len(), 2, "{ev:#?}");
    assert!(prompts.iter().all(|&p| p < window), "{prompts:?}");
    // Step 2's prompt adds the result (at most an eighth of the window), and besides it the
    // call, read_result's description in the tool list and the last-step note (~250 tokens).
    let added = prompts[1] - prompts[0];
    assert!(added <= window / 8 + 300, "{prompts:?}");
    assert!(added >= window / 16, "{prompts:?}");
    assert!(
        cut["shown_bytes"].as_u64().unwrap() < content.len() as u64 / 10,
        "{cut}"
    );
    assert!(ev.last().unwrap()["event"] == "final");
    let _ = std::fs::remove_dir_all(&dir);
}
