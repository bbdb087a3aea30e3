//! Long runs: compaction (the system prompt and the task kept, older turns summarized by the
//! model, results dropped when that is not enough), the context window as a hard limit, the
//! loop guard, a turn's calls run at once, and time limits. The model is replayed (a token per
//! four bytes, failing as the engine does on a prompt that fills its window); the tools are
//! real typed tools.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::events::{Collect, Event, StopReason};
use agent::planner::Outcome;
use agent::planner::resume::ResumePoint;
use agent::replay::Replay;
use agent::{Agent, AgentBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The replayed model's window, in tokens (8,000 bytes).
const WINDOW: usize = 2000;

fn call(name: &str, arguments: serde_json::Value) -> String {
    format!(
        "<tool_call>\n{}\n</tool_call>",
        json!({"name": name, "arguments": arguments})
    )
}

fn answer(a: &str) -> String {
    call("final_answer", json!({ "answer": a }))
}

fn page_call(n: u32) -> String {
    call("page", json!({ "n": n }))
}

/// Which page to read.
#[derive(Deserialize, JsonSchema)]
struct Page {
    n: u32,
}

/// Page `n` of a long document: `bytes` bytes that name it.
fn page(n: u32, bytes: usize) -> String {
    let head = format!("page {n}:");
    let mut text = head.clone();
    while text.len() < bytes {
        text.push_str(" lorem ipsum");
    }
    text.truncate(bytes);
    text
}

/// An agent on `turns` with a `page` tool whose pages have `bytes` bytes, and the model.
fn agent(turns: Vec<String>, bytes: usize) -> (AgentBuilder, Arc<Replay>) {
    let model = Arc::new(Replay::chatml(turns).with_context(WINDOW));
    let tool = agent::tool("page", move |p: Page| async move { page(p.n, bytes) });
    let builder = Agent::builder()
        .backend(model.clone())
        .tools([])
        .tool(tool)
        .max_steps(10);
    (builder, model)
}

async fn run(builder: AgentBuilder, task: &str) -> (Outcome, Vec<Event>) {
    let agent = builder.build().await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut run = agent.runner();
    run.observe(Box::new(Collect(events.clone())));
    let outcome = run
        .run(&agent.config(task), &CancellationToken::new())
        .await
        .unwrap();
    let events = events.lock().unwrap().clone();
    (outcome, events)
}

fn compactions(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| matches!(e, Event::Compacted { .. }))
        .cloned()
        .collect()
}

/// The prompt up to the end of the task's message: what every later prompt must start with.
fn through_task(prompt: &str, task: &str) -> String {
    let end = prompt.find(task).unwrap() + task.len();
    prompt[..end].to_string()
}

const TASK: &str = "Read pages 1 to 4 and tell me what page 4 says.";
const SUMMARY: &str = "I read pages 1 and 2: they hold lorem ipsum. Pages 3 and 4 are left.";

/// Four pages read, the summary asked for at step 4 in between, and the answer. With pages of
/// 2,000 bytes (500 tokens), the fourth step's prompt passes 80% of the window.
fn compacting_turns() -> Vec<String> {
    vec![
        page_call(1),
        page_call(2),
        page_call(3),
        SUMMARY.to_string(),
        page_call(4),
        answer("lorem ipsum"),
    ]
}

#[tokio::test]
async fn compaction_summarizes_older_turns_and_keeps_the_system_prompt_and_the_task() {
    let turns = compacting_turns();
    let (builder, model) = agent(turns, 2000);
    let (outcome, events) = run(builder.max_result_tokens(600), TASK).await;
    assert_eq!(
        (outcome.answer, outcome.stop, outcome.steps),
        (Some(json!("lorem ipsum")), StopReason::Answer, 5)
    );
    let prompts = model.prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 6);
    // The summary was asked for right after the turns it replaces (a prefix of the last
    // step's prompt, which the cache holds), as a request of its own.
    let summary_prompt = &prompts[3];
    assert!(
        summary_prompt.contains("Summarize the conversation so far"),
        "{summary_prompt}"
    );
    assert!(summary_prompt.contains("page 2:") && !summary_prompt.contains("page 3:"));
    let [
        Event::Compacted {
            step,
            before_tokens,
            after_tokens,
            summarized,
            summary_tokens,
            dropped_results,
            summary,
            ..
        },
    ] = &compactions(&events)[..]
    else {
        panic!("one compaction expected: {events:?}");
    };
    let after = &prompts[4];
    assert_eq!(
        (
            *step,
            *after_tokens,
            *summarized,
            *summary_tokens,
            *dropped_results,
            summary.as_str()
        ),
        (4, after.len() / 4, 4, Some(SUMMARY.len() / 4), 0, SUMMARY)
    );
    assert!(*before_tokens > WINDOW * 8 / 10 && *after_tokens <= WINDOW * 8 / 10);
    // The system prompt and the task are untouched, the summary follows them, then the
    // most recent turn whole; the older results are gone.
    assert!(
        after.starts_with(&through_task(&prompts[0], TASK)),
        "{after}"
    );
    assert!(
        after.contains(SUMMARY) && after.contains("page 3:"),
        "{after}"
    );
    assert!(
        !after.contains("page 1:") && !after.contains("page 2:"),
        "{after}"
    );
    // No prompt ever reached the window.
    assert!(prompts.iter().all(|p| p.len() / 4 < WINDOW));
}

#[tokio::test]
async fn a_result_the_window_cannot_hold_is_dropped_rather_than_sent() {
    // 12,000 bytes is 3,000 tokens: more than the whole window.
    let (builder, model) = agent(vec![page_call(1), answer("too long")], 12_000);
    let (outcome, events) = run(builder.max_result_tokens(10_000_000), TASK).await;
    assert_eq!(
        (outcome.answer, outcome.stop),
        (Some(json!("too long")), StopReason::Answer)
    );
    let compacted = compactions(&events);
    let [
        Event::Compacted {
            summarized,
            summary_tokens,
            dropped_results,
            ..
        },
    ] = &compacted[..]
    else {
        panic!("{events:?}");
    };
    // Nothing older to summarize: the result itself goes.
    assert_eq!(
        (*summarized, *summary_tokens, *dropped_results),
        (0, None, 1)
    );
    let prompts = model.prompts.lock().unwrap().clone();
    assert!(prompts[1].contains("dropped to fit the context window"));
    assert!(!prompts[1].contains("page 1:"));
}

#[tokio::test]
async fn without_compaction_the_run_stops_before_the_window_not_in_the_engine() {
    let turns = (1..=6).map(page_call).collect();
    let (builder, model) = agent(turns, 2000);
    let (outcome, events) = run(builder.max_result_tokens(600).compact_at(None), TASK).await;
    assert_eq!(
        (outcome.answer, outcome.stop, outcome.steps),
        (None, StopReason::ContextFull, 4)
    );
    assert!(compactions(&events).is_empty());
    // Three prompts went out; the fourth would have left the step no room.
    assert_eq!(model.prompts.lock().unwrap().len(), 3);
    assert!(events.iter().any(|e| matches!(e, Event::Error { message } if message.contains("step 4's prompt") && message.contains("2000-token context window"))), "{events:?}");
}

#[tokio::test]
async fn a_model_that_repeats_a_call_is_told_once_then_stopped() {
    let turns = vec![page_call(1), page_call(1), page_call(1)];
    let (builder, model) = agent(turns, 100);
    let (outcome, _) = run(builder, TASK).await;
    assert_eq!(
        (outcome.answer, outcome.stop, outcome.steps),
        (None, StopReason::Loop, 3)
    );
    let prompts = model.prompts.lock().unwrap().clone();
    assert!(prompts[2].contains("You already made that call"));

    // With `loop_repeats: 3`, the second time is no loop yet; the third is told.
    let turns = vec![page_call(1), page_call(1), page_call(1), answer("done")];
    let (builder, model) = agent(turns, 100);
    let (outcome, _) = run(builder.loop_repeats(3), TASK).await;
    assert_eq!(
        (outcome.answer, outcome.stop, outcome.steps),
        (Some(json!("done")), StopReason::Answer, 4)
    );
    let prompts = model.prompts.lock().unwrap().clone();
    assert!(!prompts[2].contains("You already made that call"));
    assert!(prompts[3].contains("You already made that call"));
}

/// A call at the meeting point, until it returns or is dropped.
struct Here(Arc<AtomicUsize>);

impl Here {
    fn arrive(running: Arc<AtomicUsize>) -> Here {
        running.fetch_add(1, Ordering::SeqCst);
        Here(running)
    }
}

impl Drop for Here {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Who arrives at the meeting point.
#[derive(Deserialize, JsonSchema)]
struct Meet {
    who: String,
}

/// A turn with two `meet` calls, `a` then `b`: each returns only when both are running, so the
/// turn finishes only if they run at once (or times out otherwise); `a` returns last.
async fn meet(parallel: u32) -> (Outcome, Vec<Event>, Vec<String>) {
    let running = Arc::new(AtomicUsize::new(0));
    let met = Arc::new(AtomicBool::new(false));
    let tool = agent::tool("meet", move |m: Meet| {
        let (running, met) = (running.clone(), met.clone());
        async move {
            // Counted while running: a call that is cancelled leaves.
            let _here = Here::arrive(running.clone());
            while !met.load(Ordering::SeqCst) {
                if running.load(Ordering::SeqCst) >= 2 {
                    met.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if m.who == "a" {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            format!("{} was there", m.who)
        }
    });
    let turn = format!(
        "{}\n{}",
        call("meet", json!({"who": "a"})),
        call("meet", json!({"who": "b"}))
    );
    let model = Arc::new(Replay::chatml(vec![turn, answer("met")]));
    let builder = Agent::builder()
        .backend(model.clone())
        .tools([])
        .tool(tool)
        .calls_per_turn(2, parallel)
        .tool_timeout(Duration::from_secs(2));
    let (outcome, events) = run(builder, "Meet.").await;
    let prompts = model.prompts.lock().unwrap().clone();
    (outcome, events, prompts)
}

fn results(events: &[Event]) -> Vec<(String, String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult {
                id,
                content,
                is_error,
                ..
            } => Some((id.clone(), content.clone(), *is_error)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn two_calls_of_one_turn_run_at_once_and_answer_in_call_order() {
    let (outcome, events, prompts) = meet(2).await;
    assert_eq!(outcome.answer, Some(json!("met")));
    assert_eq!(
        results(&events)[..2],
        [
            ("call_1_0".into(), "a was there".into(), false),
            ("call_1_1".into(), "b was there".into(), false)
        ]
    );
    let (a, b) = (
        prompts[1].find("a was there").unwrap(),
        prompts[1].find("b was there").unwrap(),
    );
    assert!(a < b, "{}", prompts[1]);
    // The system prompt allows several calls in a turn.
    assert!(prompts[0].contains("can go in one turn"));
}

#[tokio::test]
async fn one_call_at_a_time_each_waits_alone_until_its_timeout() {
    let (outcome, events, _) = meet(1).await;
    assert_eq!(outcome.answer, Some(json!("met")));
    let timed_out =
        "tool `meet` did not finish within 2s (the run's tool_timeout) and was cancelled";
    assert_eq!(
        results(&events)[..2],
        [
            ("call_1_0".into(), timed_out.into(), true),
            ("call_1_1".into(), timed_out.into(), true)
        ]
    );
}

#[tokio::test]
async fn the_time_limit_stops_a_run_in_the_middle_of_a_call() {
    let tool = agent::tool("wait", |_: Page| async move {
        tokio::time::sleep(Duration::from_secs(600)).await;
        "done"
    });
    let model = Arc::new(Replay::chatml(vec![call("wait", json!({"n": 1}))]));
    let builder = Agent::builder()
        .backend(model)
        .tools([])
        .tool(tool)
        .time_limit(Duration::from_secs(1));
    let (outcome, events) = run(builder, "Wait.").await;
    assert_eq!(
        (outcome.answer, outcome.stop, outcome.steps),
        (None, StopReason::TimeLimit, 1)
    );
    let Some(Event::Final {
        stop, elapsed_secs, ..
    }) = events.last()
    else {
        panic!("{events:?}");
    };
    assert_eq!(*stop, StopReason::TimeLimit);
    assert!(*elapsed_secs >= 1.0, "{elapsed_secs}");
}

/// Cancels the run at the end of step `after` (as a kill would, between steps).
struct StopAfter(u32, CancellationToken);

impl agent::events::Observer for StopAfter {
    fn event(&mut self, event: &Event) {
        if let Event::Checkpoint(c) = event
            && c.step == self.0
        {
            self.1.cancel();
        }
    }
}

#[tokio::test]
async fn a_resumed_run_sends_the_prompts_the_uninterrupted_run_sent() {
    let turns = compacting_turns();
    // Uninterrupted, with a compaction at step 4.
    let (builder, whole) = agent(turns.clone(), 2000);
    let (outcome, _) = run(builder.max_result_tokens(600), TASK).await;
    let uninterrupted = whole.prompts.lock().unwrap().clone();

    // Stopped after step 3; its trace, as the trace file holds it.
    let (builder, first) = agent(turns.clone(), 2000);
    let stopping = builder.max_result_tokens(600).build().await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let mut run1 = stopping.runner();
    run1.observe(Box::new(Collect(events.clone())));
    run1.observe(Box::new(StopAfter(3, cancel.clone())));
    let stopped = run1.run(&stopping.config(TASK), &cancel).await.unwrap();
    assert_eq!((stopped.stop, stopped.steps), (StopReason::Cancelled, 4));
    let trace: String = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| agent::events::event_line(e).0 + "\n")
        .collect();
    let point = ResumePoint::from_trace(&trace).unwrap();
    assert_eq!(point.checkpoint.step, 3);
    assert_eq!(first.prompts.lock().unwrap()[..], uninterrupted[..3]);

    // Resumed on a model that has the rest of the turns.
    let (builder, rest) = agent(turns[3..].to_vec(), 2000);
    let resuming = builder.max_result_tokens(600).build().await.unwrap();
    let mut run2 = resuming.runner();
    run2.resume(point);
    let resumed = run2
        .run(
            &resuming.config("not sent again"),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (resumed.answer, resumed.steps, resumed.stop),
        (outcome.answer, outcome.steps, outcome.stop)
    );
    // Byte for byte: the summary's prompt at step 4, then steps 4 and 5.
    assert_eq!(rest.prompts.lock().unwrap()[..], uninterrupted[3..]);
    assert_eq!(resumed.messages, outcome.messages);
}
