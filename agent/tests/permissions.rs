//! Permissions and hooks in a run: rules with argument conditions, annotations, approvers
//! (a program's closure), hook commands that rewrite, block, crash or see results, Rust
//! hooks, and stop hooks; every decision in the events. The model is replayed; the tools are
//! real typed tools that record what they were called with, and the hooks real shell
//! commands.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agent::events::{Collect, Event, StopReason};
use agent::permissions::{Approval, HookEvent};
use agent::planner::Outcome;
use agent::replay::Replay;
use agent::tools::ToolAnnotations;
use agent::tools::permissions::HookAnswer;
use agent::{Agent, AgentBuilder, Task};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn call(name: &str, arguments: Value) -> String {
    format!(
        "<tool_call>\n{}\n</tool_call>",
        json!({"name": name, "arguments": arguments})
    )
}

fn answer(a: &str) -> String {
    call("final_answer", json!({ "answer": a }))
}

/// Write `content` to `path`.
#[derive(Deserialize, JsonSchema)]
struct Write {
    path: String,
    content: String,
}

/// Read `path`.
#[derive(Deserialize, JsonSchema)]
struct Read {
    path: String,
}

/// What the tools were called with.
type Calls = Arc<Mutex<Vec<(String, String)>>>;

/// An agent whose task front matter is `front`, replaying `turns`, with a `write` tool
/// (unannotated) and a `read` tool (read-only) that record their calls.
fn agent(front: &str, turns: Vec<String>, dir: &std::path::Path) -> (AgentBuilder, Calls) {
    let calls: Calls = Arc::default();
    let c = calls.clone();
    let write = agent::tool("write", move |w: Write| {
        let c = c.clone();
        async move {
            c.lock().unwrap().push(("write".into(), w.path.clone()));
            format!("wrote {} bytes to {}", w.content.len(), w.path)
        }
    });
    let c = calls.clone();
    let read = agent::tool("read", move |r: Read| {
        let c = c.clone();
        async move {
            c.lock().unwrap().push(("read".into(), r.path.clone()));
            format!("contents of {}", r.path)
        }
    })
    .annotated(ToolAnnotations::READ_ONLY);
    let task = Task::parse(
        &dir.join("task.md"),
        &format!("---\ntools: []\nmax_steps: 4\n{front}---\nGo.\n"),
    )
    .unwrap();
    let builder = Agent::builder()
        .task(&task)
        .backend(Arc::new(Replay::chatml(turns)))
        .tool(write)
        .tool(read);
    (builder, calls)
}

async fn run(builder: AgentBuilder) -> (Outcome, Vec<Event>) {
    let agent = builder.build().await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut run = agent.runner();
    run.observe(Box::new(Collect(events.clone())));
    let outcome = run
        .run(&agent.config("Go."), &CancellationToken::new())
        .await
        .unwrap();
    let events = events.lock().unwrap().clone();
    (outcome, events)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("agent-perm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The permission events, as (tool, decision, by, detail) rows.
fn decisions(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| matches!(e, Event::Permission(_)))
        .map(|e| {
            let v = serde_json::to_value(e).unwrap();
            let mut row = json!({"name": v["name"], "decision": v["decision"], "by": v["by"]});
            for k in ["rule", "hint", "hook", "approver", "answer", "arguments"] {
                if !v[k].is_null() {
                    row[k] = v[k].clone();
                }
            }
            row
        })
        .collect()
}

/// What the model read back from each tool call, in order.
fn results(events: &[Event]) -> Vec<(String, bool, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult {
                name,
                is_error,
                content,
                ..
            } if name != "final_answer" => Some((name.clone(), *is_error, content.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn rules_with_conditions_deny_then_ask_then_allow() {
    let dir = tmp("rules");
    let front = r#"permissions:
  allow: ['write(path: "/tmp/ok/**")', read]
  ask: ['write(path: "/tmp/ok/secret*")']
  deny: ['write(path: "/tmp/ok/secret.key")', 'read(path: "/etc/**")']
  default: deny
"#;
    let turns = vec![
        call("write", json!({"path": "/tmp/ok/a.txt", "content": "x"})),
        call(
            "write",
            json!({"path": "/tmp/ok/../../etc/passwd", "content": "x"}),
        ),
        call(
            "write",
            json!({"path": "/tmp/ok/secret.key", "content": "x"}),
        ),
        call("read", json!({"path": "/etc/shadow"})),
        answer("done"),
    ];
    let (builder, calls) = agent(front, turns, &dir);
    let asked = Arc::new(AtomicUsize::new(0));
    let a = asked.clone();
    let builder = builder.max_steps(6).approve_with(move |_| {
        a.fetch_add(1, Ordering::SeqCst);
        async { Approval::Once }
    });
    let (outcome, events) = run(builder).await;
    assert_eq!(outcome.stop, StopReason::Answer);
    assert_eq!(
        decisions(&events),
        [
            json!({"name": "write", "decision": "allow", "by": "rule", "rule": "write(path: \"/tmp/ok/**\")"}),
            json!({"name": "write", "decision": "deny", "by": "default"}),
            json!({"name": "write", "decision": "deny", "by": "rule", "rule": "write(path: \"/tmp/ok/secret.key\")"}),
            json!({"name": "read", "decision": "deny", "by": "rule", "rule": "read(path: \"/etc/**\")"}),
        ]
    );
    // Only the first call ran; the model was told why the others did not.
    assert_eq!(
        *calls.lock().unwrap(),
        [("write".to_string(), "/tmp/ok/a.txt".to_string())]
    );
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    assert_eq!(
        results(&events)[1..],
        [
            (
                "write".to_string(),
                true,
                "permission denied: no rule matches, and the default is used".to_string()
            ),
            (
                "write".to_string(),
                true,
                "permission denied: rule `write(path: \"/tmp/ok/secret.key\")`".to_string()
            ),
            (
                "read".to_string(),
                true,
                "permission denied: rule `read(path: \"/etc/**\")`".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn asking_a_program_once_for_the_run_and_no() {
    let dir = tmp("ask");
    let turns = vec![
        call("write", json!({"path": "a", "content": "1"})),
        call("write", json!({"path": "b", "content": "2"})),
        call("write", json!({"path": "c", "content": "3"})),
        call("read", json!({"path": "a"})),
        answer("done"),
    ];
    // Unannotated `write` is asked about; read-only `read` is not.
    let (builder, calls) = agent("permissions: {default: ask}\n", turns, &dir);
    let answers = Arc::new(Mutex::new(vec![
        Approval::No(Some("not b".into())),
        Approval::ForRun,
        Approval::Once,
    ]));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let (an, ak) = (answers.clone(), asked.clone());
    let builder = builder.max_steps(6).approve_with(move |req| {
        ak.lock().unwrap().push((
            req.tool.clone(),
            req.arguments["path"].clone(),
            req.why.clone(),
        ));
        let a = an.lock().unwrap().pop().unwrap();
        async move { a }
    });
    let (_, events) = run(builder).await;
    // Asked twice: "once" for a, "for the run" for b; c ran without asking.
    assert_eq!(
        *asked.lock().unwrap(),
        [
            (
                "write".to_string(),
                json!("a"),
                "no rule matches, and the default is used".to_string()
            ),
            (
                "write".to_string(),
                json!("b"),
                "no rule matches, and the default is used".to_string()
            ),
        ]
    );
    assert_eq!(
        decisions(&events),
        [
            json!({"name": "write", "decision": "allow", "by": "default", "approver": "program", "answer": "once"}),
            json!({"name": "write", "decision": "allow", "by": "default", "approver": "program", "answer": "for_run"}),
            json!({"name": "write", "decision": "allow", "by": "default", "approver": "this run", "answer": "for_run"}),
            json!({"name": "read", "decision": "allow", "by": "annotation", "hint": "readOnlyHint"}),
        ]
    );
    assert_eq!(calls.lock().unwrap().len(), 4);

    // "No" with a reason: the model reads it, and the tool does not run.
    let turns = vec![
        call("write", json!({"path": "x", "content": "1"})),
        answer("ok"),
    ];
    let (builder, calls) = agent("permissions: {default: ask}\n", turns, &dir);
    let builder = builder.approve_with(|_| async { Approval::No(Some("not today".into())) });
    let (_, events) = run(builder).await;
    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(
        results(&events),
        [(
            "write".to_string(),
            true,
            "the user declined this call: not today".to_string()
        )]
    );
}

#[tokio::test]
async fn nobody_to_ask_refuses() {
    let dir = tmp("headless");
    let turns = vec![
        call("write", json!({"path": "a", "content": "1"})),
        answer("ok"),
    ];
    let (builder, calls) = agent("permissions: {default: ask}\n", turns, &dir);
    let (_, events) = run(builder).await;
    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(
        results(&events),
        [(
            "write".to_string(),
            true,
            "permission denied: `write` needs approval (no rule matches, and the default is used) and nobody can be asked (the run is not interactive: allow it in `permissions`, or run with --yes)".to_string()
        )]
    );
}

/// A hook script in `dir`.
fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&p)
        .status()
        .unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn pre_tool_hooks_rewrite_block_and_fail_closed() {
    let dir = tmp("pre");
    // Rewrites every path under `safe/`; the rules then see the new path.
    let rewrite = script(
        &dir,
        "rewrite.sh",
        r#"python3 -c 'import json,sys; i=json.load(sys.stdin); a=i["arguments"]; a["path"]="safe/"+a["path"]; print(json.dumps({"arguments": a}))'"#,
    );
    let block = script(&dir, "block.sh", "echo 'secrets stay put' >&2; exit 2");
    let crash = script(&dir, "crash.sh", "echo 'hook bug' >&2; exit 1");
    let front = format!(
        r#"permissions:
  allow: ['write(path: "safe/**")']
  default: deny
hooks:
  pre_tool:
    - {{match: 'write(path: "*.txt")', command: {rewrite}}}
    - {{match: 'write(path: "*.key")', command: {block}}}
    - {{match: 'write(path: "*.bin")', command: {crash}}}
"#
    );
    let turns = vec![
        call("write", json!({"path": "a.txt", "content": "1"})),
        call("write", json!({"path": "id.key", "content": "2"})),
        call("write", json!({"path": "x.bin", "content": "3"})),
        call("write", json!({"path": "y.md", "content": "4"})),
        answer("done"),
    ];
    let (builder, calls) = agent(&front, turns, &dir);
    let (_, events) = run(builder.max_steps(6)).await;
    // Only the rewritten call ran, with the rewritten path.
    assert_eq!(
        *calls.lock().unwrap(),
        [("write".to_string(), "safe/a.txt".to_string())]
    );
    assert_eq!(
        decisions(&events),
        [
            json!({"name": "write", "decision": "allow", "by": "rule", "rule": "write(path: \"safe/**\")",
                   "arguments": {"path": "safe/a.txt", "content": "1"}}),
            json!({"name": "write", "decision": "deny", "by": "hook", "hook": block}),
            json!({"name": "write", "decision": "deny", "by": "hook", "hook": crash}),
            json!({"name": "write", "decision": "deny", "by": "default"}),
        ]
    );
    let told: Vec<String> = results(&events).into_iter().map(|r| r.2).collect();
    assert_eq!(
        told,
        [
            "wrote 1 bytes to safe/a.txt".to_string(),
            "blocked by a hook: secrets stay put".to_string(),
            format!(
                "blocked: the hook `{crash}` failed (exited with status 1: hook bug), and a failed hook blocks the call"
            ),
            "permission denied: no rule matches, and the default is used".to_string(),
        ]
    );
    // Each hook run is in the events, with what it printed.
    let hooks: Vec<(String, Option<i64>, Option<String>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Hook(h) => Some((
                h.run.command.clone(),
                h.run.exit_code.map(i64::from),
                h.run.error.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        hooks,
        [
            (rewrite, Some(0), None),
            (block, Some(2), None),
            (
                crash.clone(),
                Some(1),
                Some("exited with status 1: hook bug".into())
            ),
        ]
    );
}

#[tokio::test]
async fn post_tool_hooks_see_results_and_stop_hooks_judge_the_answer() {
    let dir = tmp("post");
    let seen = dir.join("seen.jsonl");
    let log = script(&dir, "log.sh", &format!("cat >> {}; echo", seen.display()));
    let note = script(
        &dir,
        "note.sh",
        r#"echo '{"reason": "checked by note.sh"}'"#,
    );
    let judge = script(
        &dir,
        "judge.sh",
        r#"grep -q '"answer":"42"' || { echo 'the answer must be 42' >&2; exit 2; }"#,
    );
    let front = format!(
        "hooks:\n  post_tool: [{log}, {{match: read, command: {note}}}]\n  stop: [{judge}]\n"
    );
    let turns = vec![
        call("read", json!({"path": "n.txt"})),
        answer("41"),
        answer("42"),
    ];
    let (builder, _) = agent(&front, turns, &dir);
    let (outcome, events) = run(builder).await;
    // The first answer was sent back; the second accepted.
    assert_eq!(
        (outcome.stop, outcome.answer_text().as_deref()),
        (StopReason::Answer, Some("42"))
    );
    assert_eq!(outcome.steps, 3);
    let last_tool_message = outcome
        .messages
        .iter()
        .rev()
        .find(|m| m.content.starts_with("Error: the answer"))
        .map(|m| m.content.clone());
    assert_eq!(
        last_tool_message.as_deref(),
        Some("Error: the answer was not accepted: the answer must be 42")
    );
    // The post hook saw the call and its result; the note reached the model.
    let seen: Vec<Value> = std::fs::read_to_string(&seen)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (
            &seen[0]["event"],
            &seen[0]["tool"],
            &seen[0]["arguments"],
            &seen[0]["result"]["content"],
            &seen[0]["annotations"]["read_only"],
            &seen[0]["cwd"],
        ),
        (
            &json!("post_tool"),
            &json!("read"),
            &json!({"path": "n.txt"}),
            &json!("contents of n.txt"),
            &json!(true),
            &json!(dir.display().to_string()),
        )
    );
    assert_eq!(
        results(&events)[0].2,
        "contents of n.txt\n\n[hook] checked by note.sh"
    );
}

#[tokio::test]
async fn rust_hooks_and_a_deny_rule_that_no_hook_overrides() {
    let dir = tmp("rust");
    let turns = vec![
        call("write", json!({"path": "a", "content": "1"})),
        call("write", json!({"path": "locked", "content": "2"})),
        answer("done"),
    ];
    let (builder, calls) = agent(
        "permissions: {deny: ['write(path: \"locked\")'], default: deny}\n",
        turns,
        &dir,
    );
    // A hook that allows every write: it lifts the default, not the deny rule.
    let builder = builder.hook(
        HookEvent::PreTool,
        "allow-writes",
        Some("write".parse().unwrap()),
        |_| async {
            HookAnswer {
                decision: Some(agent::permissions::Mode::Allow),
                reason: None,
                arguments: None,
            }
        },
    );
    let (_, events) = run(builder).await;
    assert_eq!(
        decisions(&events),
        [
            json!({"name": "write", "decision": "allow", "by": "hook", "hook": "allow-writes"}),
            json!({"name": "write", "decision": "deny", "by": "rule", "rule": "write(path: \"locked\")"}),
        ]
    );
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_stop_hook_rejects_the_answer_and_the_turn_stays_well_formed() {
    let dir = tmp("stop-fails");
    let fails = script(&dir, "tests.sh", "echo '2 tests failed' >&2; exit 1");
    let front = format!("max_calls: 2\nhooks:\n  stop: [{fails}]\n");
    // One turn: a call, then the answer.
    let turn = format!("{}\n{}", call("read", json!({"path": "a"})), answer("done"));
    let (builder, _) = agent(&front, vec![turn, answer("done")], &dir);
    let (outcome, _) = run(builder.max_steps(2)).await;
    // The hook failed both times: no answer is accepted.
    assert_eq!((outcome.stop, outcome.answer), (StopReason::MaxSteps, None));
    let tail: Vec<(String, String)> = outcome.messages[2..]
        .iter()
        .map(|m| (format!("{:?}", m.role), m.content.clone()))
        .collect();
    let rejected = format!(
        "Error: the answer was not accepted: the stop hook `{fails}` failed (exited with status 1: 2 tests failed)"
    );
    assert_eq!(
        tail,
        [
            ("Assistant".to_string(), String::new()),
            ("Tool".to_string(), "contents of a".to_string()),
            // The final_answer call's own result: the turn's calls each have one.
            ("Tool".to_string(), rejected.clone()),
            (
                "User".to_string(),
                "You have one step left. Give your final answer now.".to_string()
            ),
            ("Assistant".to_string(), String::new()),
            ("Tool".to_string(), rejected),
        ]
    );
}
