//! Every example in `examples/` runs, as a user would run it, with the default model
//! (SmolLM2-135M, greedy) and real peers: the reference filesystem MCP server, a bundled wasm
//! component, the Python MCP SDK as the embedded server's client. A model this small answers
//! badly; what is checked is what each example promises to do (its tools are there, its
//! output has its shape, it ends), while the mechanisms themselves are checked exactly, with
//! a replayed model, in `agent/tests/library.rs`. (`cargo test` builds the examples; this
//! finds them beside the test binaries.)

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo test` or `cargo build -p agent --examples`",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> (String, Output) {
    let o = Command::new(example(name))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{name}: {out}\n{}", stderr(&o));
    (out, o)
}

#[test]
fn hello_answers() {
    let (out, _) = run("hello", &[]);
    assert!(!out.trim().is_empty(), "{out}");
}

/// The shortest useful program (a model and one typed tool) fits in 15 lines, `use` lines
/// included, comments not.
#[test]
fn typed_tool_is_short_and_runs() {
    let text = std::fs::read_to_string(repo_root().join("examples/typed_tool.rs")).unwrap();
    let code = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//") || l.trim_start().starts_with("///"))
        .count();
    assert!(code <= 15, "{code} lines:\n{text}");
    let (out, _) = run("typed_tool", &[]);
    assert!(!out.trim().is_empty(), "{out}");
}

#[test]
fn structured_output_is_its_type() {
    let (out, _) = run("structured_output", &[]);
    // Every field of the Rust type was there: the grammar made the answer fit it.
    let line = out.trim();
    assert!(
        line.contains(" (")
            && (line.ends_with("): its capital") || line.ends_with("): not its capital")),
        "{out}"
    );
}

#[test]
fn chat_keeps_the_conversation() {
    let (out, _) = run("chat", &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"> My name is Ada and I like sailing."),
        "{out}"
    );
    assert!(lines.contains(&"> What is my name?"), "{out}");
    // The system prompt, then per turn the question and at least the answer.
    let count: usize = lines
        .last()
        .and_then(|l| {
            l.strip_prefix('(')?
                .strip_suffix(" messages)")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert!(count >= 5, "{out}");
}

#[test]
fn concurrent_agents_answer_every_question() {
    let (out, _) = run("concurrent_agents", &[]);
    // In order, each with its answer (which may run over several lines).
    let mut at = 0;
    for q in [
        "What is 17 * 23?",
        "What is 2 to the power of 10?",
        "What is 1001 / 7?",
    ] {
        let found = out[at..]
            .find(&format!("{q} -> "))
            .unwrap_or_else(|| panic!("{q}: {out}"));
        at += found + q.len();
    }
}

#[test]
fn agent_as_tool_answers() {
    let (out, _) = run("agent_as_tool", &[]);
    assert!(!out.trim().is_empty(), "{out}");
}

#[test]
fn streaming_events_draws_each_step() {
    let (out, _) = run("streaming_events", &[]);
    assert!(out.starts_with("[step 1: Plan]\n"), "{out}");
    assert!(out.contains(" tokens\n"), "{out}");
    assert!(out.contains("\nanswer: "), "{out}");
}

#[test]
fn approvals_decides_each_call() {
    let (out, _) = run("approvals", &[]);
    let lines: Vec<&str> = out.lines().collect();
    // Step 1 must call `delete` (the task forces it); the hook sees it before the decision.
    assert!(lines[0].starts_with("hook: delete {"), "{out}");
    assert!(
        lines[1].starts_with(
            "decision: delete allow (the tool is annotated destructiveHint, asked program)"
        ) || lines[1].starts_with(
            "decision: delete deny (the tool is annotated destructiveHint, asked program)"
        ) || lines[1].starts_with("decision: delete deny (rule `delete(path: \"/etc/**\")`)"),
        "{out}"
    );
    assert!(out.contains("\nstop: "), "{out}");
}

#[test]
fn mcp_filesystem_uses_the_reference_server() {
    let server = mcp_server_bin("mcp-server-filesystem");
    let dir = tmp_dir("example-fs");
    std::fs::write(dir.join("notes.txt"), "hello\n").unwrap();
    let (out, _) = run(
        "mcp_filesystem",
        &[dir.to_str().unwrap(), server.to_str().unwrap()],
    );
    let tools = out.lines().next().unwrap();
    assert!(
        tools.starts_with("tools: ")
            && tools.contains("fs__list_directory")
            && tools.contains("final_answer"),
        "{out}"
    );
}

#[test]
fn wasm_tool_runs_the_component_under_its_policy() {
    let dir = tmp_dir("example-wasm");
    std::fs::write(dir.join("notes.txt"), "hello\n").unwrap();
    let (out, _) = run("wasm_tool", &[dir.to_str().unwrap()]);
    let tools = out.lines().next().unwrap();
    assert!(
        tools.starts_with("tools: ") && tools.contains("files__list"),
        "{out}"
    );
}

/// The embedded server, driven by a client nobody here wrote (the Python MCP SDK).
#[test]
fn embed_server_serves_run_task_to_the_python_sdk() {
    let python = require_fixture("fixtures/python-mcp/bin/python");
    let o = Command::new(python)
        .arg(repo_root().join("tests/serve_client.py"))
        .args(["run", "stdio"])
        .arg(example("embed_server"))
        .env(
            "SERVE_TASK",
            "What does MoE stand for? Look it up in the glossary.",
        )
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        out["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "run_task"),
        "{out}"
    );
    let result = &out["result"]["structured"];
    assert!(
        result["stop"].is_string() && result["steps"].as_u64() >= Some(1),
        "{out}"
    );
    // The run's trace is served back as a resource.
    assert!(out["trace_lines"].as_u64() >= Some(3), "{out}");
}
