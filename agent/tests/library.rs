//! The library as programs use it: the builder (its settings are a task file's, checked the
//! same way), typed tools and answers, conversations, event channels, agents as tools, and MCP
//! servers that stop with the last agent. The model is replayed; the MCP server is real.

use std::sync::Arc;

use agent::events::{Event, StopReason};
use agent::planner::RunError;
use agent::replay::Replay;
use agent::{Agent, BuildError, RunConfig, Task};
use agent::{Budget, ToolChoice};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn replay(turns: &[&str]) -> Arc<Replay> {
    Arc::new(Replay::chatml(turns.iter().copied()))
}

fn call(name: &str, arguments: serde_json::Value) -> String {
    format!(
        "<tool_call>\n{}\n</tool_call>",
        json!({"name": name, "arguments": arguments})
    )
}

fn answer(a: serde_json::Value) -> String {
    call("final_answer", json!({ "answer": a }))
}

/// Two numbers to add.
#[derive(Deserialize, JsonSchema)]
struct Add {
    a: i64,
    b: i64,
}

#[tokio::test]
async fn a_built_agent_runs_with_its_settings_and_tools() {
    let model = replay(&[&call("add", json!({"a": 2, "b": 3})), &answer(json!("5"))]);
    let add = agent::tool("add", |x: Add| async move { Ok::<_, String>(x.a + x.b) });
    let agent = Agent::builder()
        .backend(model.clone())
        .tool(add)
        .max_steps(3)
        .tool_choice(ToolChoice::Required)
        .build()
        .await
        .unwrap();
    let mut run = agent.runner();
    let events = run.events();
    let outcome = run
        .run(&agent.config("What is 2 + 3?"), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (outcome.answer, outcome.stop, outcome.steps),
        (Some(json!("5")), StopReason::Answer, 2)
    );
    let events = drain(events);
    let Some(Event::RunStarted {
        max_steps, tools, ..
    }) = events.first()
    else {
        panic!("{events:?}")
    };
    // The task-file default (every built-in) beside the program's own tool.
    assert_eq!(
        (*max_steps, tools.clone()),
        (
            3,
            vec!["add".into(), "calculator".into(), "final_answer".into()]
        )
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::ToolResult { name, content, .. } if name == "add" && content == "5")),
        "{events:?}"
    );
    // Under `required`, the grammar makes every step a call.
    let grammar = model.requests.lock().unwrap()[0].grammar.clone().unwrap();
    assert!(grammar.contains("body: calls\n"), "{grammar}");
}

fn drain(mut events: agent::events::Events) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = events.try_next() {
        out.push(e);
    }
    out
}

/// A task file and the same settings made in code give one configuration.
#[tokio::test]
async fn a_task_file_is_the_builders_settings() {
    let task = Task::parse_inline(
        "---\nmax_steps: 5\ntool_choice: required\nthinking: 64\nsampling: {temperature: 0.5, seed: 7}\n---\nAdd 2 and 3.",
    )
    .unwrap();
    let from_file = Agent::builder()
        .backend(replay(&[]))
        .task(&task)
        .build()
        .await
        .unwrap();
    let in_code = Agent::builder()
        .backend(replay(&[]))
        .max_steps(5)
        .tool_choice(ToolChoice::Required)
        .thinking(Budget::Tokens(64))
        .sampling(agent::task::Sampling {
            temperature: Some(0.5),
            seed: Some(7),
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    let same = |cfg: RunConfig| RunConfig {
        run_id: String::new(),
        ..cfg
    };
    let file_cfg = same(from_file.config("Add 2 and 3."));
    assert_eq!(file_cfg, same(in_code.config("Add 2 and 3.")));
    assert_eq!(
        file_cfg,
        RunConfig {
            task_name: file_cfg.task_name.clone(),
            // What `agent resume` sets the run up from again.
            settings: Some(json!({
                "front": task.front,
                "base": std::env::current_dir().unwrap(),
                "max_tokens": 1024
            })),
            ..RunConfig::for_task(&task.front, &task, String::new(), 1024, None)
        }
    );
}

#[tokio::test]
async fn settings_made_in_code_are_checked_like_a_task_files() {
    let err =
        |b: agent::AgentBuilder| async move { b.backend(replay(&[])).build().await.err().unwrap() };
    let e = err(Agent::builder().max_steps(0)).await;
    assert!(
        matches!(&e, BuildError::Setting(m) if m.starts_with("max_steps: ")),
        "{e}"
    );
    let e = err(Agent::builder().builtin("nope")).await;
    assert!(
        matches!(&e, BuildError::Tools(m) if m.contains("unknown built-in tool `nope`")),
        "{e}"
    );
    let add = || {
        agent::tool(
            "calculator",
            |x: Add| async move { Ok::<_, String>(x.a + x.b) },
        )
    };
    let e = err(Agent::builder().tool(add())).await;
    assert!(
        matches!(&e, BuildError::Tools(m) if m == "tools: two tools are named `calculator`"),
        "{e}"
    );
    assert!(e.is_bad_input());
}

/// A city, as the answer of a structured task.
#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
struct City {
    name: String,
    population: u64,
}

#[tokio::test]
async fn a_typed_run_returns_its_type_and_constrains_the_answer_to_it() {
    let model = replay(&[&answer(json!({"name": "Paris", "population": 2100000}))]);
    let agent = Agent::builder()
        .backend(model.clone())
        .build()
        .await
        .unwrap();
    let city: City = agent.run_typed("The capital of France?").await.unwrap();
    assert_eq!(
        city,
        City {
            name: "Paris".into(),
            population: 2_100_000
        }
    );
    // The answer's schema is in the step's grammar (the field names are constrained).
    let grammar = model.requests.lock().unwrap()[0].grammar.clone().unwrap();
    assert!(grammar.contains("population"), "{grammar}");
    // A run that ends without an answer is an error saying so.
    let model = replay(&[&call("calculator", json!({"expression": "1+1"}))]);
    let agent = Agent::builder()
        .backend(model)
        .max_steps(1)
        .build()
        .await
        .unwrap();
    let e = agent.run_typed::<City>("?").await.err().unwrap();
    assert!(
        matches!(
            e,
            RunError::NoAnswer {
                stop: StopReason::MaxSteps,
                steps: 1
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_chat_continues_its_conversation() {
    let model = replay(&[&answer(json!("Hello, Ada.")), &answer(json!("Ada"))]);
    let agent = Agent::builder()
        .backend(model.clone())
        .build()
        .await
        .unwrap();
    let mut chat = agent.chat();
    let first = chat.send("My name is Ada.").await.unwrap();
    let second = chat.send("What is my name?").await.unwrap();
    assert_eq!(
        (first.answer, second.answer),
        (Some(json!("Hello, Ada.")), Some(json!("Ada")))
    );
    let prompts = model.prompts.lock().unwrap().clone();
    // The second turn's prompt is the first conversation, then the new question: the model's
    // prefix cache holds all of it but the question.
    assert!(prompts[1].starts_with(&prompts[0]), "{}", prompts[1]);
    assert!(
        prompts[1].contains(r#"{"answer": "Hello, Ada."}"#),
        "{}",
        prompts[1]
    );
    assert!(
        prompts[1].ends_with("What is my name?<|im_end|>\n<|im_start|>assistant\n"),
        "{}",
        prompts[1]
    );
    assert_eq!(chat.messages().len(), 5);
}

#[tokio::test]
async fn an_agent_calls_another_as_a_tool() {
    // One model for both: the caller's turn, the callee's two, the caller's answer.
    let model = replay(&[
        &call("helper", json!({"task": "What is 17 * 23?"})),
        &call("calculator", json!({"expression": "17 * 23"})),
        &answer(json!("391")),
        &answer(json!("17 * 23 = 391")),
    ]);
    let callee = Agent::builder()
        .backend(model.clone())
        .builtin("calculator")
        .max_steps(2)
        .build()
        .await
        .unwrap();
    let caller = Agent::builder()
        .backend(model.clone())
        .tools([])
        .tool(callee.as_tool("helper", "Does arithmetic with a calculator."))
        .build()
        .await
        .unwrap();
    let mut run = caller.runner();
    let events = run.events();
    let outcome = run
        .run(
            &caller.config("What is 17 * 23?"),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.answer, Some(json!("17 * 23 = 391")));
    let events = drain(events);
    let results: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult { name, content, .. } => Some((name.as_str(), content.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        vec![("helper", "391"), ("final_answer", "17 * 23 = 391")]
    );
    // The callee's steps reach the caller as the call's progress.
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolProgress { message, .. } => message.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(progress, vec!["step 1", "step 2"]);
    // The callee's prompt holds the task it was given, not the caller's conversation.
    let prompts = model.prompts.lock().unwrap().clone();
    assert!(
        prompts[1].contains("calculator") && !prompts[1].contains("helper"),
        "{}",
        prompts[1]
    );
}

/// Processes whose command line has `arg`, after up to 5 s for killed ones to go.
fn processes_with_arg(arg: &str) -> usize {
    let count = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| c.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
            .count()
    };
    for _ in 0..500 {
        if count() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    count()
}

/// The reference filesystem server (npm), started by the builder, stops when the last clone
/// of the agent is dropped: no orphan process, without a call to `shutdown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_agent_dropped_stops_its_mcp_servers() {
    let server = agent::models::agent_home()
        .join("fixtures/mcp-servers/node_modules/.bin/mcp-server-filesystem");
    assert!(
        server.exists(),
        "{} is missing: run tests/fixtures/build.sh",
        server.display()
    );
    let root = std::env::temp_dir().join(format!("agent-drop-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let root_arg = root.to_str().unwrap().to_string();
    let agent = Agent::builder()
        .backend(replay(&[]))
        .mcp_servers(json!({"fs": {"command": server, "args": [root_arg], "required": true}}))
        .build()
        .await
        .unwrap();
    assert!(
        agent.tools().names().iter().any(|n| n.starts_with("fs__")),
        "{:?}",
        agent.tools().names()
    );
    assert_eq!(count_now(&root_arg), 1);
    let clone = agent.clone();
    drop(agent);
    assert_eq!(count_now(&root_arg), 1, "a clone still uses the server");
    drop(clone);
    assert_eq!(
        processes_with_arg(&root_arg),
        0,
        "the server outlived its agent"
    );
    let _ = std::fs::remove_dir_all(&root);
}

fn count_now(arg: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
        .count()
}

/// The builder checks its settings by writing them as a task file's front matter: every task
/// file in the repository comes through that unchanged and accepted.
#[test]
fn every_task_file_passes_the_builders_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("examples/calculator.md")];
    for dir in ["examples/tasks", "tests/data"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "md") {
                files.push(e.path());
            }
        }
    }
    for f in &files {
        let task = Task::load(f).unwrap();
        assert_eq!(task.front.check(), Ok(()), "{}", f.display());
    }
    // And a setting a task file writes as a mapping.
    let task = Task::parse_inline("---\ntool_choice: {tool: calculator}\n---\nGo.").unwrap();
    assert_eq!(task.front.check(), Ok(()));
}
