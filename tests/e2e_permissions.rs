//! Permissions end to end: the real `agent` binary, the default model (SmolLM2-135M, forced
//! to the tool under test by `tool_choice`), the reference filesystem server from npm, a
//! person at a pseudo-terminal, and the Python MCP SDK as the client of `agent serve`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// A task in `dir` whose one step calls server-filesystem's `write_file` (the server serves
/// `dir`), with `front` added to its front matter.
fn write_task(dir: &Path, front: &str, body: &str) -> PathBuf {
    let fs = mcp_server_bin("mcp-server-filesystem");
    let path = dir.join("write.md");
    std::fs::write(
        &path,
        format!(
            "---\ntools: []\nmax_steps: 1\ntool_choice: {{tool: fs__write_file}}\n{front}mcp_servers:\n  fs:\n    command: {}\n    args: [{}]\n    required: true\n---\n{body}\n",
            fs.display(),
            dir.display()
        ),
    )
    .unwrap();
    path
}

fn trace_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The permission events, without their ids and steps.
fn decisions(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event"] == "permission")
        .map(|e| {
            let mut e = e.clone();
            let o = e.as_object_mut().unwrap();
            for k in ["event", "id", "step", "arguments"] {
                o.remove(k);
            }
            e
        })
        .collect()
}

fn tool_results(events: &[Value]) -> Vec<(bool, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "tool_result")
        .map(|e| {
            (
                e["is_error"].as_bool().unwrap(),
                e["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What `agent tools` says of server-filesystem's tools, with no rules: the read-only ones
/// run, the destructive ones are asked about, and so is `create_directory`, which says it
/// writes without destroying (the default for what no hint decides is to ask).
#[test]
fn server_filesystem_annotations_decide_what_no_rule_does() {
    let dir = tmp_dir("perm-annotations");
    let task = write_task(&dir, "", "x");
    let o = agent_in(&dir, &["tools", "--task", task.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let got: BTreeMap<String, (String, String)> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                (
                    t["permission"].as_str().unwrap().to_string(),
                    t["permission_reason"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let read = (
        "allow".to_string(),
        "the tool is annotated readOnlyHint".to_string(),
    );
    let destructive = (
        "ask".to_string(),
        "the tool is annotated destructiveHint".to_string(),
    );
    let default = (
        "ask".to_string(),
        "no rule matches, and the default is used".to_string(),
    );
    let mut want: BTreeMap<String, (String, String)> = [
        "read_file",
        "read_text_file",
        "read_media_file",
        "read_multiple_files",
        "list_directory",
        "list_directory_with_sizes",
        "directory_tree",
        "search_files",
        "get_file_info",
        "list_allowed_directories",
    ]
    .iter()
    .map(|n| (format!("fs__{n}"), read.clone()))
    .collect();
    for n in ["write_file", "edit_file", "move_file"] {
        want.insert(format!("fs__{n}"), destructive.clone());
    }
    want.insert("fs__create_directory".into(), default);
    want.insert(
        "final_answer".into(),
        ("allow".into(), "the answer is never asked about".into()),
    );
    assert_eq!(got, want);
}

/// Runs `agent run TASK --trace TRACE` in `dir` on a pseudo-terminal, typing `answers`.
fn on_a_terminal(dir: &Path, task: &Path, trace: &Path, answers: &[&str]) -> Value {
    let o = Command::new("python3")
        .arg(repo_root().join("tests/pty_approve.py"))
        .arg(serde_json::to_string(answers).unwrap())
        .arg(env!("CARGO_BIN_EXE_agent"))
        .args([
            "run",
            task.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A person at a terminal is shown the call and answers it: yes once, no with a reason
/// (the model reads it), and always, which is saved in the project's settings so that the
/// next run, with nobody at a terminal, needs no question.
#[test]
fn a_person_at_a_terminal_approves_declines_and_always_allows() {
    let dir = tmp_dir("perm-pty");
    let target = dir.join("hello.txt");
    let task = write_task(
        &dir,
        "",
        &format!("Write the word hello to the file {}.", target.display()),
    );
    let trace = dir.join("yes.jsonl");
    let shown = on_a_terminal(&dir, &task, &trace, &["y"]);
    assert_eq!(shown["asked"], 1, "{shown:#}");
    let screen = shown["output"].as_str().unwrap();
    assert!(
        screen.contains("── permission ── fs__write_file (mcp:fs, destructive)")
            && screen.contains("why: the tool is annotated destructiveHint"),
        "{screen}"
    );
    let ev = trace_events(&trace);
    assert_eq!(
        decisions(&ev),
        [
            json!({"name": "fs__write_file", "decision": "allow", "verdict": "ask",
                "by": "annotation", "hint": "destructiveHint", "approver": "terminal", "answer": "once"})
        ]
    );
    let (is_error, content) = &tool_results(&ev)[0];
    assert!(!is_error, "{content}");

    let trace = dir.join("no.jsonl");
    let shown = on_a_terminal(&dir, &task, &trace, &["n not in this folder"]);
    assert_eq!(shown["asked"], 1, "{shown:#}");
    let ev = trace_events(&trace);
    assert_eq!(
        tool_results(&ev),
        [(
            true,
            "the user declined this call: not in this folder".to_string()
        )]
    );

    let trace = dir.join("always.jsonl");
    let shown = on_a_terminal(&dir, &task, &trace, &["A"]);
    assert_eq!(shown["asked"], 1, "{shown:#}");
    let saved = std::fs::read_to_string(dir.join(".agent/settings.yaml")).unwrap();
    assert_eq!(saved, "permissions:\n  allow:\n  - fs__write_file\n");
    // Headless now (no terminal): the saved rule decides.
    let trace = dir.join("headless.jsonl");
    let o = agent_in(
        &dir,
        &[
            "run",
            task.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ],
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    assert_eq!(
        decisions(&trace_events(&trace)),
        [
            json!({"name": "fs__write_file", "decision": "allow", "verdict": "allow",
                "by": "rule", "rule": "fs__write_file"})
        ]
    );
}

/// The model is asked to write outside the one directory the rules allow: the call is
/// refused, the model is told why, and the file does not exist afterwards.
#[test]
fn a_write_outside_the_allowed_directory_is_denied() {
    let dir = tmp_dir("perm-outside");
    std::fs::create_dir_all(dir.join("allowed")).unwrap();
    let outside = dir.join("notes.txt");
    let task = write_task(
        &dir,
        &format!(
            "permissions:\n  allow: ['fs__write_file(path: \"{}/allowed/**\")']\n  default: deny\n",
            dir.display()
        ),
        &format!("Write the word hello to the file {}.", outside.display()),
    );
    let trace = dir.join("trace.jsonl");
    let o = agent_in(
        &dir,
        &[
            "run",
            task.to_str().unwrap(),
            "--json",
            "--trace",
            trace.to_str().unwrap(),
            "--yes",
        ],
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let ev = events(&o);
    // The model's path is its own; whatever it is, it is not under allowed/.
    let call = ev
        .iter()
        .find(|e| e["event"] == "tool_call" && e["name"] == "fs__write_file")
        .expect("a write_file call");
    let path = call["arguments"]["path"].as_str().unwrap_or_default();
    assert!(!path.contains("/allowed/"), "{call}");
    assert_eq!(
        decisions(&ev),
        [
            json!({"name": "fs__write_file", "decision": "deny", "verdict": "deny", "by": "default",
                "message": "permission denied: no rule matches, and the default is used"})
        ]
    );
    assert_eq!(
        tool_results(&ev),
        [(
            true,
            "permission denied: no rule matches, and the default is used".to_string()
        )]
    );
    // Nothing was written anywhere in the folder.
    let files: Vec<String> = walk(&dir);
    assert_eq!(files, ["trace.jsonl", "write.md"], "{path}");
}

/// Every file under `dir`, relative, sorted.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// `agent serve` asks its MCP client (the Python SDK, elicitation declared) about a
/// destructive call, and does what it answers: by an elicitation request on an `initialize`
/// connection, and by an `input_required` result that the SDK answers and retries on a
/// 2026-07-28 one.
#[test]
fn an_mcp_client_approves_and_declines_over_elicitation() {
    let dir = tmp_dir("perm-elicit");
    let fs = mcp_server_bin("mcp-server-filesystem");
    let mcp = dir.join("mcp.json");
    std::fs::write(
        &mcp,
        json!({"mcpServers": {"fs": {"command": fs, "args": [dir]}}}).to_string(),
    )
    .unwrap();
    let task = format!(
        "---\ntools: []\nmax_steps: 1\ntool_choice: {{tool: fs__write_file}}\n---\nWrite the word hello to the file {}.\n",
        dir.join("hello.txt").display()
    );
    let client = |mode: &str, answers: Value| -> Value {
        let o = Command::new(require_fixture("fixtures/python-mcp/bin/python"))
            .arg(repo_root().join("tests/serve_client.py"))
            .args([
                "elicit",
                "stdio",
                env!("CARGO_BIN_EXE_agent"),
                "serve",
                "--mcp-config",
            ])
            .arg(&mcp)
            .env("SERVE_TASK", &task)
            .env("SERVE_ANSWERS", answers.to_string())
            .env("SERVE_MODE", mode)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    for mode in ["legacy", "auto"] {
        let yes = client(mode, json!([{"allow": true}]));
        assert_eq!(
            yes["protocol"],
            if mode == "legacy" {
                "2025-11-25"
            } else {
                "2026-07-28"
            },
            "{yes:#}"
        );
        let questions = yes["questions"].as_array().unwrap();
        assert_eq!(questions.len(), 1, "{mode}: {yes:#}");
        let message = questions[0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("The agent wants to call fs__write_file (mcp:fs, destructive)."),
            "{message}"
        );
        let ev = yes["events"].as_array().unwrap();
        assert_eq!(
            decisions(ev),
            [
                json!({"name": "fs__write_file", "decision": "allow", "verdict": "ask", "by": "annotation",
                    "hint": "destructiveHint", "approver": "mcp client", "answer": "once"})
            ],
            "{mode}"
        );
        assert!(!tool_results(ev)[0].0, "{mode}: {:?}", tool_results(ev));

        let no = client(mode, json!([{"allow": false, "reason": "read only today"}]));
        let ev = no["events"].as_array().unwrap();
        assert_eq!(
            tool_results(ev),
            [(
                true,
                "the user declined this call: read only today".to_string()
            )],
            "{mode}"
        );
    }
    let declined = client("legacy", json!(["decline"]));
    let ev = declined["events"].as_array().unwrap();
    assert_eq!(
        tool_results(ev),
        [(true, "the user declined this call".to_string())]
    );
}

/// Hooks with the real model and server: a pre_tool hook moves the write the model asks for
/// into the one folder the rules allow, and a post_tool hook sees what the server answered.
#[test]
fn hooks_redirect_a_write_and_see_its_result() {
    let dir = tmp_dir("perm-hooks");
    std::fs::create_dir_all(dir.join("safe")).unwrap();
    let rewrite = dir.join("rewrite.py");
    std::fs::write(
        &rewrite,
        format!(
            "import json, os, sys\ncall = json.load(sys.stdin)\nargs = call['arguments']\nname = os.path.basename(args.get('path', '').rstrip('/')) or 'out.txt'\nargs['path'] = os.path.join({safe:?}, name)\nprint(json.dumps({{'arguments': args}}))\n",
            safe = dir.join("safe").display().to_string()
        ),
    )
    .unwrap();
    let seen = dir.join("post.json");
    let task = write_task(
        &dir,
        &format!(
            "permissions:\n  allow: ['fs__write_file(path: \"{d}/safe/**\")']\n  default: deny\nhooks:\n  pre_tool: [{{match: fs__write_file, command: 'python3 {r}'}}]\n  post_tool: [{{match: fs__write_file, command: 'cat > {s}'}}]\n",
            d = dir.display(),
            r = rewrite.display(),
            s = seen.display()
        ),
        &format!(
            "Write the word hello to the file {}.",
            dir.join("notes.txt").display()
        ),
    );
    let trace = dir.join("trace.jsonl");
    let o = agent_in(
        &dir,
        &[
            "run",
            task.to_str().unwrap(),
            "--json",
            "--trace",
            trace.to_str().unwrap(),
        ],
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let ev = events(&o);
    let decided = ev
        .iter()
        .find(|e| e["event"] == "permission")
        .expect("a permission event");
    let path = decided["arguments"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        path.starts_with(&format!("{}/safe/", dir.display())),
        "{decided}"
    );
    assert_eq!(
        (&decided["decision"], &decided["by"]),
        (&json!("allow"), &json!("rule")),
        "{decided}"
    );
    // The server wrote where the hook said, and the post hook saw its answer.
    assert!(Path::new(&path).is_file(), "{path}");
    let post: Value = serde_json::from_str(&std::fs::read_to_string(&seen).unwrap()).unwrap();
    assert_eq!(
        (&post["event"], &post["tool"], &post["arguments"]["path"]),
        (&json!("post_tool"), &json!("fs__write_file"), &json!(path))
    );
    let content = post["result"]["content"].as_str().unwrap_or_default();
    assert!(
        content.contains(&format!("Successfully wrote to {path}")),
        "{post}"
    );
    // Both hooks ran, and nothing was written outside safe/ but this test's own files.
    let hooks: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "hook")
        .map(|e| &e["hook"])
        .collect();
    assert_eq!(hooks, [&json!("pre_tool"), &json!("post_tool")]);
    let outside: Vec<String> = walk(&dir)
        .into_iter()
        .filter(|f| !f.starts_with("safe/"))
        .collect();
    assert_eq!(
        outside,
        ["post.json", "rewrite.py", "trace.jsonl", "write.md"]
    );
}
