//! Tool results longer than the run's limit: the prompt holds their head and tail around a
//! marker, the whole is kept (beside the trace, and for `read_result`), and the model pages
//! through it. The model is replayed; the tool is a real typed tool.

use std::sync::{Arc, Mutex};

use agent::Agent;
use agent::events::{Collect, Event, ResultCut};
use agent::planner::results;
use agent::replay::Replay;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Ten thousand bytes: a thousand numbered lines of ten bytes.
fn listing() -> String {
    (0..1000).map(|i| format!("line {i:04}\n")).collect()
}

fn call(name: &str, arguments: serde_json::Value) -> String {
    format!(
        "<tool_call>{}</tool_call>",
        json!({"name": name, "arguments": arguments})
    )
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Nothing {}

/// Runs `turns` with a `listing` tool under the given limits; the events, prompts and the
/// folder the whole results went to.
async fn run(
    turns: Vec<String>,
    bytes: Option<u64>,
    tokens: Option<u64>,
) -> (Vec<Event>, Vec<String>, std::path::PathBuf) {
    let model = Arc::new(Replay::chatml(turns));
    let tool = agent::tool("listing", |_: Nothing| async move { listing() });
    let mut builder = Agent::builder().backend(model.clone()).tool(tool);
    if let Some(b) = bytes {
        builder = builder.max_result_bytes(b);
    }
    if let Some(t) = tokens {
        builder = builder.max_result_tokens(t);
    }
    let agent = builder.build().await.unwrap();
    let dir = std::env::temp_dir().join(format!(
        "agent-long-results-{}-{}",
        std::process::id(),
        bytes.unwrap_or(0) + tokens.unwrap_or(0)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = agent.config("List the lines.");
    cfg.results_dir = Some(dir.clone());
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut run = agent.runner();
    run.observe(Box::new(Collect(events.clone())));
    run.run(&cfg, &CancellationToken::new()).await.unwrap();
    let prompts = model.prompts.lock().unwrap().clone();
    let events = events.lock().unwrap().clone();
    (events, prompts, dir)
}

fn cuts(events: &[Event]) -> Vec<(String, Option<ResultCut>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult { name, cut, .. } => Some((name.clone(), cut.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_long_result_is_cut_kept_and_paged_through() {
    let whole = listing();
    // Lines are 10 bytes: a 1,000-byte budget keeps lines 0-49 (500 bytes) and 951-999.
    let shown = results::cut(&whole, 1000, 1).unwrap();
    assert!(shown.contains(
        "line 0049\n\n[… 9010 bytes (901 lines) of this result left out: bytes 500-9510 of \
         10000. read_result with {\"id\": 1, \"offset\": 500} reads on from there …]\nline 0951\n"
    ));
    let turns = vec![
        call("listing", json!({})),
        call("read_result", json!({"id": 1, "offset": 500, "limit": 30})),
        call("final_answer", json!({"answer": "done"})),
    ];
    let (events, prompts, dir) = run(turns, Some(1000), None).await;
    let file = dir.join("result-1.txt");
    assert_eq!(
        cuts(&events),
        vec![
            (
                "listing".to_string(),
                Some(ResultCut {
                    id: 1,
                    bytes: 10_000,
                    shown_bytes: shown.len(),
                    file: Some(file.clone()),
                })
            ),
            ("read_result".to_string(), None),
            ("final_answer".to_string(), None),
        ]
    );
    // The whole result is in the file, and in the trace's event.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), whole);
    assert!(events.iter().any(
        |e| matches!(e, Event::ToolResult { name, content, .. } if name == "listing" && *content == whole)
    ));
    // The model saw the head and tail only, and was offered read_result from then on.
    assert!(prompts[1].contains(&shown), "{}", prompts[1]);
    assert!(!prompts[1].contains("line 0500"));
    assert!(!prompts[0].contains("read_result"));
    assert!(
        prompts[1].contains("\"name\": \"read_result\""),
        "{}",
        prompts[1]
    );
    // The page it asked for.
    assert!(
        prompts[2].contains(
            "line 0050\nline 0051\nline 0052\n\n[… bytes 500-530 of 10000; more from offset 530 …]"
        ),
        "{}",
        prompts[2]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_result_is_cut_to_the_token_limit() {
    let turns = vec![
        call("listing", json!({})),
        call("final_answer", json!({"answer": "done"})),
    ];
    // The replayed model counts a token per 4 bytes: 10,000 bytes are 2,500 tokens.
    let (events, prompts, dir) = run(turns, None, Some(100)).await;
    let cut = cuts(&events)[0].1.clone().unwrap();
    assert!(cut.shown_bytes / 4 <= 100, "{cut:?}");
    assert!(cut.shown_bytes / 4 >= 60, "{cut:?}");
    assert!(prompts[1].contains("of this result left out"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_result_within_the_limits_is_whole_and_read_result_is_not_offered() {
    let turns = vec![
        call("listing", json!({})),
        call("final_answer", json!({"answer": "done"})),
    ];
    let (events, prompts, dir) = run(turns, Some(20_000), None).await;
    assert_eq!(
        cuts(&events),
        vec![
            ("listing".to_string(), None),
            ("final_answer".to_string(), None)
        ]
    );
    assert!(prompts[1].contains(&listing()));
    assert!(!prompts[1].contains("read_result"));
    assert!(!dir.exists());
}
