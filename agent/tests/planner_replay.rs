//! The planner loop against recorded model turns: exact events, prompts and outcomes.

use std::sync::{Arc, Mutex};

use agent::backend::{Finish, GenStats, ModelInfo, Sampling};
use agent::events::{Collect, Event, StepKind, StopReason};
use agent::planner::{Agent, Outcome, RunConfig};
use agent::prompt::{Family, TemplateInfo};
use agent::replay::{RecordedTurn, Replay};
use agent::task::{OutputSpec, ToolSource};
use agent::toolset;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn info() -> ModelInfo {
    ModelInfo {
        name: "replay".into(),
        family: Family::ChatMl {
            default_system: None,
        },
        template: TemplateInfo::default(),
        max_context: None,
        special_tokens: vec![],
    }
}

fn turn(text: &str) -> RecordedTurn {
    RecordedTurn {
        text: text.into(),
        finish: Finish::Stop,
    }
}

fn config(max_steps: u32, output_schema: Option<Value>) -> RunConfig {
    RunConfig {
        run_id: "test".into(),
        task_name: "task.md".into(),
        instructions: "What is 17 * 23?".into(),
        max_steps,
        sampling: Sampling::default(),
        output_schema,
        max_tokens_per_step: 256,
        tool_choice: agent::ToolChoice::Auto,
        constrain_calls: true,
        max_string_chars: None,
        max_calls: None,
        format: None,
        thinking: Default::default(),
        max_result_bytes: None,
        max_result_tokens: None,
        results_dir: None,
        compact_at: None,
        loop_repeats: 2,
        parallel_calls: 4,
        time_limit: None,
        tool_timeout: None,
        settings: None,
        permissions: Default::default(),
        hooks: Default::default(),
        trace: None,
    }
}

async fn run(
    turns: Vec<RecordedTurn>,
    cfg: RunConfig,
    cancel: CancellationToken,
) -> (Outcome, Vec<Event>, Vec<String>) {
    let backend = Arc::new(Replay::new(info(), turns));
    let output = cfg
        .output_schema
        .clone()
        .map_or(OutputSpec::Text, OutputSpec::Schema);
    let tools = toolset::build(&[ToolSource::AllBuiltins], &output).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut agent = Agent::new(backend.clone(), tools).runner();
    agent.observe(Box::new(Collect(events.clone())));
    let outcome = agent.run(&cfg, &cancel).await.unwrap();
    let prompts = backend.prompts.lock().unwrap().clone();
    let events = events.lock().unwrap().clone();
    (outcome, events, prompts)
}

/// The events without the model-output statistics and the run's time, which depend on timing.
fn shape(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            if let Some(o) = v.as_object_mut() {
                for k in [
                    "prompt_tokens",
                    "completion_tokens",
                    "prompt_secs",
                    "decode_secs",
                    "tokens_per_sec",
                    "cached_tokens",
                    "elapsed_secs",
                    "prompt_hash",
                ] {
                    o.remove(k);
                }
            }
            v
        })
        .collect()
}

const CALC: &str = "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"17 * 23\"}}\n</tool_call>";
const FINAL: &str =
    "<tool_call>\n{\"name\": \"final_answer\", \"arguments\": {\"answer\": \"391\"}}\n</tool_call>";

#[tokio::test]
async fn two_steps_tool_then_answer() {
    let (outcome, events, prompts) = run(
        vec![turn(CALC), turn(FINAL)],
        config(4, None),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        (outcome.answer, outcome.steps, outcome.stop),
        (Some(json!("391")), 2, StopReason::Answer)
    );
    assert_eq!(
        shape(&events),
        vec![
            json!({"event": "run_started", "run_id": "test", "task": "task.md", "model": "replay", "family": "chatml", "max_steps": 4, "tools": ["calculator", "final_answer"]}),
            // The default policy's budgets, recorded; a ChatML model does not think.
            json!({"event": "step_started", "step": 1, "max_steps": 4, "kind": "plan", "thinking_budget": 2048, "thinking_applies": false}),
            json!({"event": "model_output", "step": 1, "text": CALC, "content": "", "finish": "stop", "thinking_tokens": 0, "thinking_capped": false}),
            json!({"event": "tool_call", "step": 1, "id": "call_1_0", "name": "calculator", "arguments": {"expression": "17 * 23"}}),
            json!({"event": "permission", "step": 1, "id": "call_1_0", "name": "calculator", "decision": "allow", "verdict": "allow", "by": "annotation", "hint": "readOnlyHint"}),
            json!({"event": "tool_result", "step": 1, "id": "call_1_0", "name": "calculator", "content": "17 * 23 = 391", "is_error": false, "structured": {"result": 391.0}}),
            // The state after step 1, for `agent resume`: the conversation so far (all of it,
            // the first time), the counters, and the loop guard's count of the call (by hash).
            json!({"event": "checkpoint", "step": 1, "next": "act", "task_index": 1, "from": 0, "messages": [
                {"role": "system", "content": agent::planner::SYSTEM_PROMPT},
                {"role": "user", "content": "What is 17 * 23?"},
                {"role": "assistant", "content": "", "tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]},
                {"role": "tool", "content": "17 * 23 = 391"}
            ], "thinking_used": 0, "usage": {"prompt_tokens": 357, "cached_tokens": 0, "generated_tokens": 7, "thinking_tokens": 0},
            "guard": {"calls": {"12088247889753042324": 1}, "replies": {}, "warned": false}}),
            json!({"event": "step_started", "step": 2, "max_steps": 4, "kind": "act", "thinking_budget": "off", "thinking_applies": false}),
            json!({"event": "model_output", "step": 2, "text": FINAL, "content": "", "finish": "stop", "thinking_tokens": 0, "thinking_capped": false}),
            json!({"event": "tool_call", "step": 2, "id": "call_2_0", "name": "final_answer", "arguments": {"answer": "391"}}),
            json!({"event": "tool_result", "step": 2, "id": "call_2_0", "name": "final_answer", "content": "391", "is_error": false, "structured": "391"}),
            // The usage adds up both steps (the replay counts a token per four bytes).
            json!({"event": "final", "answer": "391", "text": "391", "steps": 2, "stop": "answer", "usage": {"prompt_tokens": 763, "cached_tokens": 0, "generated_tokens": 12, "thinking_tokens": 0}}),
        ]
    );
    // The second prompt carries the call and its result in the Hermes format.
    assert!(prompts[1].ends_with(&format!("<|im_start|>assistant\n{CALC}<|im_end|>\n<|im_start|>user\n<tool_response>\n17 * 23 = 391\n</tool_response><|im_end|>\n<|im_start|>assistant\n")), "{}", prompts[1]);
}

/// A backend that fails mid-run still ends the trace: the error, then the final event.
#[tokio::test]
async fn a_backend_error_ends_the_trace_with_the_error_and_a_final_event() {
    let backend = Arc::new(Replay::new(info(), vec![turn(CALC)]));
    let tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut agent = Agent::new(backend.clone(), tools).runner();
    agent.observe(Box::new(Collect(events.clone())));
    let err = agent
        .run(&config(4, None), &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the replayed transcript has no turn left for step 2"
    );
    let events = shape(&events.lock().unwrap());
    assert_eq!(
        events[events.len() - 2..],
        [
            json!({"event": "error", "message": "the replayed transcript has no turn left for step 2"}),
            json!({"event": "final", "answer": null, "text": "", "steps": 2, "stop": "error", "usage": {"prompt_tokens": 357, "cached_tokens": 0, "generated_tokens": 7, "thinking_tokens": 0}}),
        ]
    );
}

#[tokio::test]
async fn malformed_call_goes_back_as_error_then_recovers() {
    let bad =
        "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": }\n</tool_call>";
    let (outcome, events, prompts) = run(
        vec![turn(bad), turn("The answer is 391.")],
        config(4, None),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        (outcome.answer, outcome.steps, outcome.stop),
        (Some(json!("The answer is 391.")), 2, StopReason::Answer)
    );
    let kinds: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let Event::StepStarted { kind, .. } = e {
                Some(*kind)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(kinds, vec![StepKind::Plan, StepKind::Recover]);
    assert!(events.iter().any(|e| matches!(e, Event::ParseError { message, .. } if message.starts_with("the tool call is not valid JSON"))));
    assert!(
        prompts[1].contains("<tool_response>\nError: the tool call is not valid JSON"),
        "{}",
        prompts[1]
    );
}

/// The hint after a malformed call shows the syntax of the step's own format, not Qwen3's for
/// every model.
#[tokio::test]
async fn the_recovery_hint_is_in_the_steps_format() {
    use agent::formats::Format;
    let malformed = [
        (
            Format::Qwen3,
            "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": }\n</tool_call>",
        ),
        (
            Format::Qwen3Coder,
            "<tool_call>\n<function=calculator\n<parameter=expression>\n17 * 23\n</parameter>\n</function>\n</tool_call>",
        ),
        (Format::Llama4Pythonic, "[calculator(expression=)]"),
        (
            Format::Llama4Json,
            "{\"name\": \"calculator\", \"parameters\": {\"expression\": }}",
        ),
    ];
    for (format, text) in malformed {
        let mut cfg = config(2, None);
        cfg.format = Some(format);
        let (_, events, prompts) =
            run(vec![turn(text), turn("391")], cfg, CancellationToken::new()).await;
        assert!(
            events.iter().any(|e| matches!(e, Event::ParseError { .. })),
            "{format}: {events:?}"
        );
        let hint = format!("Write the call as {}", format.call_syntax());
        assert!(prompts[1].contains(&hint), "{format}: {}", prompts[1]);
        for other in Format::ALL.into_iter().filter(|f| *f != format) {
            assert!(
                !prompts[1].contains(other.call_syntax()),
                "{format}: the hint of {other} in {}",
                prompts[1]
            );
        }
    }
}

#[tokio::test]
async fn tool_error_and_unknown_tool_are_reported_to_the_model() {
    let unknown = "<tool_call>\n{\"name\": \"search\", \"arguments\": {}}\n</tool_call>";
    let (outcome, events, prompts) = run(
        vec![turn(unknown), turn(FINAL)],
        config(4, None),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.answer, Some(json!("391")));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::StepStarted {
            step: 2,
            kind: StepKind::Recover,
            ..
        }
    )));
    assert!(
        prompts[1]
            .contains("Error: unknown tool `search`; available tools: calculator, final_answer"),
        "{}",
        prompts[1]
    );
}

/// A call that fills a parameter with its description is refused before the tool runs, and
/// the model is told why (small models do this when a task is beyond them).
#[tokio::test]
async fn a_description_given_as_a_value_is_refused() {
    let echo = "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"The expression to evaluate.\"}}\n</tool_call>";
    let (outcome, events, prompts) = run(
        vec![turn(echo), turn(FINAL)],
        config(4, None),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.answer, Some(json!("391")));
    let message = "tool `calculator`: `expression` holds the parameter's description, not a value: write the actual expression the task gives";
    assert_eq!(
        shape(&events)[4],
        json!({"event": "tool_result", "step": 1, "id": "call_1_0", "name": "calculator", "content": message, "is_error": true})
    );
    assert!(
        prompts[1].contains(&format!("Error: {message}")),
        "{}",
        prompts[1]
    );
}

#[tokio::test]
async fn structured_output_is_validated() {
    let schema = json!({"type": "object", "properties": {"product": {"type": "integer"}}, "required": ["product"]});
    let wrong = "<tool_call>\n{\"name\": \"final_answer\", \"arguments\": {\"answer\": {\"product\": \"391\"}}}\n</tool_call>";
    let right = "```json\n{\"product\": 391}\n```";
    let (outcome, _, prompts) = run(
        vec![turn(wrong), turn(right)],
        config(4, Some(schema)),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        (outcome.answer, outcome.steps),
        (Some(json!({"product": 391})), 2)
    );
    assert!(
        prompts[1].contains("arguments do not match the schema at /answer/product"),
        "{}",
        prompts[1]
    );
}

#[tokio::test]
async fn max_steps_stops_without_answer_and_warns_on_last_step() {
    let (outcome, events, prompts) = run(
        vec![turn(CALC), turn(CALC)],
        config(2, None),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        (outcome.answer, outcome.steps, outcome.stop),
        (None, 2, StopReason::MaxSteps)
    );
    assert!(events.iter().any(|e| matches!(
        e,
        Event::StepStarted {
            step: 2,
            kind: StepKind::Answer,
            ..
        }
    )));
    assert!(prompts[1].contains("You have one step left. Give your final answer now."));
}

#[tokio::test]
async fn cancellation_ends_the_run_cleanly() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (outcome, events, _) = run(vec![turn(FINAL)], config(4, None), cancel).await;
    assert_eq!(
        (outcome.answer, outcome.stop),
        (None, StopReason::Cancelled)
    );
    assert!(matches!(
        events.last(),
        Some(Event::Final {
            stop: StopReason::Cancelled,
            ..
        })
    ));
}

#[test]
fn stats_rate_skips_the_first_token() {
    let s = GenStats {
        prompt_tokens: 10,
        completion_tokens: 11,
        prompt_secs: 0.5,
        decode_secs: 2.0,
        cached_tokens: None,
    };
    assert_eq!(s.decode_tokens_per_sec(), 5.0);
}

#[tokio::test]
async fn a_repeated_call_leads_to_the_answer_step() {
    let (outcome, events, prompts) = run(
        vec![turn(CALC), turn(CALC), turn(FINAL)],
        config(8, None),
        CancellationToken::new(),
    )
    .await;
    assert_eq!((outcome.answer, outcome.steps), (Some(json!("391")), 3));
    let kinds: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let Event::StepStarted { kind, .. } = e {
                Some(*kind)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(kinds, vec![StepKind::Plan, StepKind::Act, StepKind::Answer]);
    assert!(prompts[2].contains(
        "You already made that call and have its result above. Give your final answer now."
    ));
}

/// The same `Agent` run twice: the second run starts clean (the first run's calls are not
/// repeats, its thinking and tool results are not carried over), so it sees exactly the
/// prompts the first one saw and ends the same way. Before the fix, the second run's call
/// counted as a repeat and the run was pushed to answer.
#[tokio::test]
async fn an_agent_run_twice_starts_clean() {
    let backend = Arc::new(Replay::new(
        info(),
        vec![turn(CALC), turn(FINAL), turn(CALC), turn(FINAL)],
    ));
    let tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    let agent = Agent::new(backend.clone(), tools);
    let cfg = config(8, None);
    let first = agent
        .run_with(&cfg, &CancellationToken::new())
        .await
        .unwrap();
    let second = agent
        .run_with(&cfg, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second, first);
    let prompts = backend.prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 4);
    assert_eq!(prompts[2..], prompts[..2]);
}

/// Each step's grammar follows `tool_choice`; on the last step only `final_answer` is left.
#[tokio::test]
async fn grammar_per_step_and_last_step_answer_only() {
    let mut cfg = config(2, None);
    cfg.tool_choice = agent::ToolChoice::Required;
    let backend = Arc::new(Replay::new(info(), vec![turn(CALC), turn(FINAL)]));
    let tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    let outcome = Agent::new(backend.clone(), tools)
        .run_with(&cfg, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.answer, Some(json!("391")));
    let grammars: Vec<String> = backend
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.grammar.clone().expect("a grammar"))
        .collect();
    assert_eq!(grammars.len(), 2);
    assert!(
        grammars[0].contains(r#"{"const":"calculator"}"#)
            && grammars[0].contains(r#"{"const":"final_answer"}"#),
        "{}",
        grammars[0]
    );
    assert!(
        !grammars[1].contains(r#"{"const":"calculator"}"#)
            && grammars[1].contains(r#"{"const":"final_answer"}"#),
        "{}",
        grammars[1]
    );
    // Required: the body is calls only, no free text.
    assert!(grammars[0].contains("body: calls\n"), "{}", grammars[0]);
    cfg.constrain_calls = false;
    let backend = Arc::new(Replay::new(info(), vec![turn(FINAL)]));
    let tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    Agent::new(backend.clone(), tools)
        .run_with(&cfg, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        backend
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.grammar.clone())
            .collect::<Vec<_>>(),
        vec![None]
    );
}

/// A task's `tool_format` overrides the family's: a ChatML model's pythonic calls are read.
#[tokio::test]
async fn tool_format_override() {
    let mut cfg = config(4, None);
    cfg.format = Some(agent::formats::Format::Llama4Pythonic);
    let turns = vec![
        turn(r#"[calculator(expression="17 * 23")]"#),
        turn(r#"[final_answer(answer="391")]"#),
    ];
    let (outcome, events, _) = run(turns, cfg, CancellationToken::new()).await;
    assert_eq!((outcome.answer, outcome.steps), (Some(json!("391")), 2));
    let results: Vec<Value> = shape(&events)
        .into_iter()
        .filter(|e| e["event"] == "tool_result")
        .collect();
    assert_eq!(results[0]["content"], json!("17 * 23 = 391"), "{results:?}");
}

fn qwen3_info() -> ModelInfo {
    let special_tokens = ["<tool_call>", "</tool_call>", "<think>", "</think>"]
        .map(String::from)
        .to_vec();
    ModelInfo {
        family: Family::Qwen3(agent::prompt::Qwen3Variant::Hybrid),
        special_tokens,
        ..info()
    }
}

/// Budgets follow the policy per step kind (plan, act after a result, recover after a
/// malformed call), and each becomes the Qwen3 hybrid template's switch or a capped open block.
#[tokio::test]
async fn thinking_budget_per_step_kind() {
    use agent::Budget;
    use agent::backend::ThinkLimit;
    use agent::thinking::ThinkingPolicy;
    use agent::thinking::ThinkingPolicySpec;
    let mut cfg = config(5, None);
    cfg.thinking = ThinkingPolicy::Kinds(ThinkingPolicySpec {
        plan: Some(Budget::Tokens(64)),
        act: Some(Budget::Off),
        recover: Some(Budget::Tokens(7)),
        ..Default::default()
    });
    let turns = vec![
        turn(&format!("Multiply.\n</think>\n\n{CALC}")),
        turn("<tool_call>\n{\"name\": \"calculator\"\n</tool_call>"),
        turn(&format!("Fix it.\n</think>\n\n{FINAL}")),
    ];
    let backend = Arc::new(Replay::new(qwen3_info(), turns));
    let tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut agent = Agent::new(backend.clone(), tools).runner();
    agent.observe(Box::new(Collect(events.clone())));
    let outcome = agent.run(&cfg, &CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.answer, Some(json!("391")));
    let started: Vec<Value> = shape(&events.lock().unwrap())
        .into_iter()
        .filter(|e| e["event"] == "step_started")
        .collect();
    let budgets: Vec<(Value, Value, Value)> = started
        .iter()
        .map(|e| {
            (
                e["kind"].clone(),
                e["thinking_budget"].clone(),
                e["thinking_applies"].clone(),
            )
        })
        .collect();
    assert_eq!(
        budgets,
        vec![
            (json!("plan"), json!(64), json!(true)),
            (json!("act"), json!("off"), json!(true)),
            (json!("recover"), json!(7), json!(true))
        ]
    );
    let requests = backend.requests.lock().unwrap().clone();
    let limits: Vec<ThinkLimit> = requests.iter().map(|r| r.think).collect();
    assert_eq!(
        limits,
        vec![
            ThinkLimit {
                opened: true,
                cap: Some(64)
            },
            ThinkLimit::default(),
            ThinkLimit {
                opened: true,
                cap: Some(7)
            }
        ]
    );
    assert!(
        requests[0]
            .prompt
            .ends_with("<|im_start|>assistant\n<think>\n"),
        "{}",
        requests[0].prompt
    );
    // `off` is the template's own switch: the empty think block.
    assert!(
        requests[1]
            .prompt
            .ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"),
        "{}",
        requests[1].prompt
    );
    // The reasoning of a turn that opened in the prompt is read as reasoning.
    let outputs: Vec<Value> = shape(&events.lock().unwrap())
        .into_iter()
        .filter(|e| e["event"] == "model_output")
        .collect();
    assert_eq!(outputs[0]["reasoning"], json!("Multiply."));
}

/// A library caller's own policy, from the step's context, is obeyed.
#[tokio::test]
async fn custom_thinking_policy() {
    use agent::Budget;
    use agent::thinking::{StepContext, ThinkingPolicy};
    let mut cfg = config(4, None);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    cfg.thinking = ThinkingPolicy::Custom(Arc::new(move |cx: &StepContext| {
        log.lock()
            .unwrap()
            .push((cx.step, cx.last_tool_result.map(String::from)));
        if cx.last_tool_result.is_some_and(|r| r.contains("391")) {
            Budget::Tokens(3)
        } else {
            Budget::Unlimited
        }
    }));
    let backend = Arc::new(Replay::new(
        qwen3_info(),
        vec![
            turn(&format!("plan\n</think>\n\n{CALC}")),
            turn(&format!("ok\n</think>\n\n{FINAL}")),
        ],
    ));
    let tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    let outcome = Agent::new(backend.clone(), tools)
        .run_with(&cfg, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.answer, Some(json!("391")));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(1, None), (2, Some("17 * 23 = 391".to_string()))]
    );
    let caps: Vec<Option<usize>> = backend
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.think.cap)
        .collect();
    assert_eq!(caps, vec![None, Some(3)]);
}

/// A turn cut by the token limit inside its reasoning is recorded as a truncated thought.
#[tokio::test]
async fn truncated_thought_is_marked_in_the_trace() {
    use agent::Budget;
    use agent::thinking::ThinkingPolicy;
    use agent::thinking::ThinkingPolicySpec;
    let mut cfg = config(2, None);
    cfg.thinking = ThinkingPolicy::Kinds(ThinkingPolicySpec::uniform(Budget::Unlimited));
    let cut = RecordedTurn {
        text: "Let me think about 17 * 23 step by".into(),
        finish: Finish::Length,
    };
    let backend = Arc::new(Replay::new(
        qwen3_info(),
        vec![cut, turn(&format!("ok\n</think>\n\n{FINAL}"))],
    ));
    let tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut agent = Agent::new(backend.clone(), tools).runner();
    agent.observe(Box::new(Collect(events.clone())));
    agent.run(&cfg, &CancellationToken::new()).await.unwrap();
    let outputs: Vec<Value> = shape(&events.lock().unwrap())
        .into_iter()
        .filter(|e| e["event"] == "model_output")
        .collect();
    assert_eq!(
        (&outputs[0]["reasoning"], &outputs[0]["reasoning_truncated"]),
        (&json!("Let me think about 17 * 23 step by"), &json!(true))
    );
    assert_eq!(outputs[1].get("reasoning_truncated"), None);
}

/// A tool from a changing source (as MCP servers are) that reports progress.
struct Ticker(agent_tools::ToolSpec);

impl agent_tools::Tool for Ticker {
    fn spec(&self) -> &agent_tools::ToolSpec {
        &self.0
    }

    fn call(
        &self,
        _: Value,
        cx: agent_tools::CallContext,
    ) -> agent_tools::BoxFuture<'_, agent_tools::ToolOutput> {
        Box::pin(async move {
            for i in 1..=2 {
                cx.progress(agent_tools::ProgressUpdate {
                    progress: i as f64,
                    total: Some(2.0),
                    message: Some(format!("tick {i}")),
                });
                tokio::task::yield_now().await;
            }
            agent_tools::ToolOutput::text("ticked")
        })
    }
}

struct Source(Vec<Arc<dyn agent_tools::Tool>>);

impl agent_tools::ToolProvider for Source {
    fn tools(&self) -> Vec<Arc<dyn agent_tools::Tool>> {
        self.0.clone()
    }
}

#[tokio::test]
async fn provider_tools_progress_and_side_events_reach_the_trace() {
    let spec = agent_tools::ToolSpec {
        name: "srv__tick".into(),
        description: "Ticks".into(),
        parameters: json!({"type": "object", "properties": {}}),
    };
    let mut tools = toolset::build(&[], &OutputSpec::Text).unwrap();
    tools.register_provider(Arc::new(Source(vec![Arc::new(Ticker(spec))])));
    let backend = Arc::new(Replay::new(
        info(),
        vec![
            turn("<tool_call>\n{\"name\": \"srv__tick\", \"arguments\": {}}\n</tool_call>"),
            turn(FINAL),
        ],
    ));
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut agent = Agent::new(backend.clone(), tools).runner();
    agent.observe(Box::new(Collect(events.clone())));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    agent.side_events(rx);
    let started = agent_tools::mcp::McpEvent::Started {
        server: "srv".into(),
        tools: 1,
        millis: 5,
        protocol: "2025-11-25".into(),
    };
    tx.send(Event::McpServer(started.clone())).unwrap();
    let outcome = agent
        .run(&config(3, None), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.answer, Some(json!("391")));
    let events = events.lock().unwrap().clone();
    let names: Vec<Value> = shape(&events)
        .iter()
        .map(|e| {
            json!([
                e["event"],
                e.get("what"),
                e.get("progress"),
                e.get("message"),
                e.get("content")
            ])
        })
        .collect();
    assert_eq!(
        names,
        vec![
            json!(["run_started", null, null, null, null]),
            json!(["mcp_server", "started", null, null, null]),
            json!(["step_started", null, null, null, null]),
            json!(["model_output", null, null, null, ""]),
            json!(["tool_call", null, null, null, null]),
            // The provider's tool says nothing of itself; a program's run lets it through.
            json!(["permission", null, null, null, null]),
            json!(["tool_progress", null, 1.0, "tick 1", null]),
            json!(["tool_progress", null, 2.0, "tick 2", null]),
            json!(["tool_result", null, null, null, "ticked"]),
            json!(["checkpoint", null, null, null, null]),
            json!(["step_started", null, null, null, null]),
            json!(["model_output", null, null, null, ""]),
            json!(["tool_call", null, null, null, null]),
            json!(["tool_result", null, null, null, "391"]),
            json!(["final", null, null, null, null]),
        ]
    );
    // The provider's tool is in the run's tool list and in the prompt.
    assert_eq!(
        events[0],
        Event::RunStarted {
            run_id: "test".into(),
            task: "task.md".into(),
            model: "replay".into(),
            family: "chatml".into(),
            max_steps: 3,
            tools: vec!["final_answer".into(), "srv__tick".into()],
            context_window: None,
            settings: None,
            resumed_after: None,
        }
    );
}

/// A tool whose schema cannot be compiled into the step's grammar is left out (and said so);
/// the run goes on with the others.
#[tokio::test]
async fn a_tool_with_an_unusable_schema_is_left_out() {
    let spec = agent_tools::ToolSpec {
        name: "srv__odd".into(),
        description: "Odd".into(),
        parameters: json!({"type": "object", "properties": {"x": {"type": "no-such-type"}}}),
    };
    let mut tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    tools.register_provider(Arc::new(Source(vec![Arc::new(Ticker(spec))])));
    let backend = Arc::new(Replay::new(info(), vec![turn(CALC), turn(FINAL)]));
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut agent = Agent::new(backend.clone(), tools).runner();
    agent.observe(Box::new(Collect(events.clone())));
    let outcome = agent
        .run(&config(3, None), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.answer, Some(json!("391")));
    let errors: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| {
            if let Event::Error { message } = e {
                Some(message.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("tool `srv__odd` is left out of step 1: its schema is not usable at"),
        "{errors:?}"
    );
    assert!(
        !backend.prompts.lock().unwrap()[0].contains("srv__odd"),
        "the left-out tool is not offered"
    );
}

/// A model for concurrent runs: it asks the calculator for the expression of the question in
/// its prompt, then answers with the calculator's result, and it replies to no one until two
/// prompts are waiting at once (so runs that took turns would never end).
struct Arithmetic {
    together: tokio::sync::Barrier,
}

impl agent::backend::Backend for Arithmetic {
    fn info(&self) -> &ModelInfo {
        static INFO: std::sync::OnceLock<ModelInfo> = std::sync::OnceLock::new();
        INFO.get_or_init(info)
    }

    fn generate<'a>(
        &'a self,
        req: agent::backend::GenRequest,
        on_text: agent::backend::OnText<'a>,
    ) -> agent::backend::BoxFuture<
        'a,
        Result<agent::backend::GenOutput, agent::backend::BackendError>,
    > {
        Box::pin(async move {
            self.together.wait().await;
            fn between(text: &str, open: &str, close: &str) -> Option<String> {
                let start = text.rfind(open)? + open.len();
                Some(text[start..].split(close).next()?.trim().to_string())
            }
            let text = match between(&req.prompt, "<tool_response>", "</tool_response>") {
                Some(result) => format!(
                    "<tool_call>\n{}\n</tool_call>",
                    json!({"name": "final_answer", "arguments": {"answer": result}})
                ),
                None => {
                    let expression = between(&req.prompt, "What is ", "?").unwrap_or_default();
                    format!(
                        "<tool_call>\n{}\n</tool_call>",
                        json!({"name": "calculator", "arguments": {"expression": expression}})
                    )
                }
            };
            // The loop reads the reply as it streams.
            on_text(&text);
            Ok(agent::backend::GenOutput {
                text,
                finish: Finish::Stop,
                stats: GenStats::default(),
                thinking: Default::default(),
            })
        })
    }
}

/// Two different tasks at once on one `Agent` (one model): each run keeps its own
/// conversation, calls and answer. The model replies only while both runs wait on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_runs_two_tasks_at_once() {
    let backend = Arc::new(Arithmetic {
        together: tokio::sync::Barrier::new(2),
    });
    let tools = toolset::build(&[ToolSource::AllBuiltins], &OutputSpec::Text).unwrap();
    let agent = Agent::new(backend, tools);
    fn shareable<T: Clone + Send + Sync + 'static>(_: &T) {}
    shareable(&agent);
    let task = |q: &str| RunConfig {
        instructions: format!("What is {q}?"),
        ..config(4, None)
    };
    let (a, b) = (agent.clone(), agent.clone());
    let (first, second) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let cancel = CancellationToken::new();
        let (ca, cb) = (task("17 * 23"), task("6 * 7"));
        let first = tokio::spawn({
            let cancel = cancel.clone();
            async move { a.run_with(&ca, &cancel).await }
        });
        let second = tokio::spawn(async move { b.run_with(&cb, &cancel).await });
        (first.await.unwrap(), second.await.unwrap())
    })
    .await
    .expect("the two runs did not run at the same time");
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(
        (first.answer, first.steps, second.answer, second.steps),
        (
            Some(json!("17 * 23 = 391")),
            2,
            Some(json!("6 * 7 = 42")),
            2
        )
    );
}
