//! Sandboxed wasm tools end to end: the real binary, the default model (SmolLM2-135M), the
//! bundled seed tasks answered through the `text` and `number` components.

mod common;

use common::*;

fn final_answer(task: &str) -> (String, Vec<serde_json::Value>) {
    let o = agent(&["run", task, "--json"]);
    assert!(o.status.success(), "{task}: exit {:?}\nstderr: {}", o.status, stderr(&o));
    let ev = events(&o);
    let last = ev.last().unwrap().clone();
    (last["text"].as_str().unwrap().to_string(), ev)
}

#[test]
fn strawberry_has_three_rs() {
    let (answer, ev) = final_answer("examples/tasks/strawberry.md");
    let call = ev.iter().find(|e| e["event"] == "tool_call" && e["name"] == "text__count").expect("the text tool was called");
    assert_eq!(call["arguments"], serde_json::json!({"text": "strawberry", "find": "r"}));
    assert_eq!(answer.trim(), "3", "{ev:#?}");
}

#[test]
fn nine_point_eight_is_larger_than_nine_point_eleven() {
    let (answer, ev) = final_answer("examples/tasks/decimals.md");
    assert!(ev.iter().any(|e| e["event"] == "tool_call" && e["name"] == "number__compare"), "{ev:#?}");
    assert_eq!(answer.trim(), "9.8", "{ev:#?}");
}

/// `agent tools` shows each wasm tool with its policy; a task may not grant the whole disk.
#[test]
fn tools_show_their_policy_and_bad_policies_are_refused() {
    let o = agent(&["tools", "--task", "examples/tasks/strawberry.md"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("text__count  (wasm:text (no files; no environment; no network; memory 64 MiB, cpu 2000 ms, wall 10000 ms, output 64 KiB))"), "{}", stdout(&o));
    let dir = tmp_dir("wasm-policy");
    let task = dir.join("t.md");
    std::fs::write(&task, "---\ntools: [wasm:text]\nwasm_policy:\n  text:\n    preopens: [{host: /, guest: /root}]\n---\nx\n").unwrap();
    let o = agent(&["tools", "--task", task.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("wasm_policy.text.preopens[0]: host directory /: the whole filesystem cannot be granted"), "{}", stderr(&o));
    std::fs::write(&task, "---\ntools: [wasm:text]\nwasm_policy:\n  text: {memry: 5}\n---\nx\n").unwrap();
    let o = agent(&["tools", "--task", task.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("wasm_policy.text: unknown field `memry`"), "{}", stderr(&o));
}
