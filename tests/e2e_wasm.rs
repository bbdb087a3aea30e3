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

/// The three files of the template in docs/WASM_TOOLS.md, by the path each block names in its
/// first line.
fn template_files() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(repo_root().join("docs/WASM_TOOLS.md")).unwrap();
    let mut files = Vec::new();
    for block in doc.split("```").skip(1).step_by(2) {
        let mut lines = block.lines();
        let lang = lines.next().unwrap_or_default();
        let first = lines.next().unwrap_or_default();
        let path = first.strip_prefix("# ").or_else(|| first.strip_prefix("// "));
        if let (true, Some(path)) = (["toml", "wit", "rust"].contains(&lang), path)
            && ["Cargo.toml", "wit/words.wit", "src/lib.rs"].contains(&path)
        {
            files.push((path.to_string(), format!("{first}\n{}\n", lines.collect::<Vec<_>>().join("\n"))));
        }
    }
    files
}

/// A component built outside the project's tree from the documented template is a tool with
/// no change to the host: schema and description from its WIT, policy from the file beside
/// it, a call through `agent tools call`.
#[test]
fn a_tool_built_from_the_documented_template_works() {
    let files = template_files();
    assert_eq!(files.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["Cargo.toml", "wit/words.wit", "src/lib.rs"]);
    let dir = tmp_dir("template");
    let src = dir.join("words");
    for (path, text) in &files {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    // Its own target directory, kept between runs; none of this build's settings.
    let target = std::env::temp_dir().join("agent-template-target");
    let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "--release", "--target", "wasm32-wasip2"]).current_dir(&src).env("CARGO_TARGET_DIR", &target);
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTFLAGS" || k == "RUSTC_WRAPPER" {
            cargo.env_remove(k);
        }
    }
    cargo.env("CARGO_TARGET_DIR", &target);
    let o = cargo.output().unwrap();
    assert!(o.status.success(), "building the template failed:\n{}", stderr(&o));
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::copy(target.join("wasm32-wasip2/release/words.wasm"), tools.join("words.wasm")).unwrap();
    std::fs::write(tools.join("words.policy.yaml"), "memory_bytes: 33554432\ncpu_ms: 500\n").unwrap();
    let task = dir.join("t.md");
    std::fs::write(&task, "---\ntools: [wasm:tools/words.wasm]\n---\nWhich word is the most frequent?\n").unwrap();
    let o = agent(&["tools", "--task", task.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listing: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tool = listing["tools"].as_array().unwrap().iter().find(|t| t["name"] == "words__top_words").expect("the template's tool is listed").clone();
    assert_eq!(tool["description"], "The most frequent words of `text`, most frequent first: the first `top` of them\n(default 3).");
    assert_eq!(tool["parameters"]["required"], serde_json::json!(["text"]));
    assert_eq!(tool["source"], "wasm:words (no files; no environment; no network; memory 32 MiB, cpu 500 ms, wall 10000 ms, output 64 KiB)");
    let o = agent(&["tools", "call", "words__top_words", "--task", task.to_str().unwrap(), "--args", r#"{"text": "A b a, c a B!", "top": 2}"#]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), r#"[{"word":"a","times":3},{"word":"b","times":2}]"#);
    // Arguments the schema refuses never reach the guest.
    let o = agent(&["tools", "call", "words__top_words", "--task", task.to_str().unwrap(), "--args", r#"{"top": 2}"#]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("text"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seed tasks' front matter with another question of the kind: nothing in the runtime or
/// the tools knows the seed questions. (SmolLM2-135M has limits here that are the model's, not
/// the tools': see docs/WASM_TOOLS.md.)
#[test]
fn other_questions_of_the_kind() {
    let dir = tmp_dir("seed-variants");
    let with_question = |seed: &str, question: &str, name: &str| {
        let text = std::fs::read_to_string(repo_root().join(seed)).unwrap();
        let end = text[3..].find("---").unwrap() + 6;
        let path = dir.join(name);
        std::fs::write(&path, format!("{}\n{question}\n", &text[..end])).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cases = [
        (with_question("examples/tasks/strawberry.md", "How many times does the letter \"b\" occur in the word \"blueberry\"? Count it with the text tool, then give the number as the final answer.", "blueberry.md"), "text__count", "2"),
        (with_question("examples/tasks/decimals.md", "9.8 与 9.11 谁大？", "decimals-zh.md"), "number__", "9.8"),
        (with_question("examples/tasks/decimals.md", "Which is larger, 3.45 or 3.5? Compare them with the number tool, then give the larger number as the final answer.", "decimals-345.md"), "number__compare", "3.5"),
    ];
    for (task, tool, want) in cases {
        let (answer, ev) = final_answer(&task);
        assert!(ev.iter().any(|e| e["event"] == "tool_call" && e["name"].as_str().unwrap_or("").starts_with(tool)), "{task}: {ev:#?}");
        // The answer is the number, or a sentence that starts with it ("3.5 is larger than 3.45").
        let first = answer.trim().split(|c: char| c.is_whitespace()).next().unwrap_or("");
        assert_eq!(first, want, "{task}: {answer:?}");
    }
}
