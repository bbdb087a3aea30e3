//! Sandboxed wasm tools end to end: the real binary, the default model (SmolLM2-135M), the
//! bundled seed tasks answered through the `text` and `number` components.

mod common;

use common::*;

fn final_answer(task: &str) -> (String, Vec<serde_json::Value>) {
    let o = agent(&["run", task, "--json"]);
    assert!(
        o.status.success(),
        "{task}: exit {:?}\nstderr: {}",
        o.status,
        stderr(&o)
    );
    let ev = events(&o);
    let last = ev.last().unwrap().clone();
    (last["text"].as_str().unwrap().to_string(), ev)
}

#[test]
fn strawberry_has_three_rs() {
    let (answer, ev) = final_answer("examples/tasks/strawberry.md");
    let call = ev
        .iter()
        .find(|e| e["event"] == "tool_call" && e["name"] == "text__count")
        .expect("the text tool was called");
    assert_eq!(
        call["arguments"],
        serde_json::json!({"text": "strawberry", "find": "r"})
    );
    assert_eq!(answer.trim(), "3", "{ev:#?}");
}

#[test]
fn nine_point_eight_is_larger_than_nine_point_eleven() {
    let (answer, ev) = final_answer("examples/tasks/decimals.md");
    let call = ev
        .iter()
        .find(|e| e["event"] == "tool_call" && e["name"] == "number__compare")
        .expect("the number tool was called");
    let args = &call["arguments"];
    let mut pair = [args["a"].as_str(), args["b"].as_str()];
    pair.sort();
    assert_eq!(pair, [Some("9.11"), Some("9.8")], "{call}");
    let result = ev
        .iter()
        .find(|e| e["event"] == "tool_result" && e["name"] == "number__compare")
        .unwrap();
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .ends_with("The larger number is 9.8."),
        "{result}"
    );
    assert_eq!(answer.trim(), "9.8", "{ev:#?}");
}

/// What the model reads besides the task (tool names, descriptions and schemas, the system
/// prompt and the loop's notes) holds no example task's question or answer: a tool's answer
/// must come from the tool. Checked for every example task, against every tool agent ships.
#[test]
fn no_example_task_is_answered_in_what_the_model_reads() {
    let dir = tmp_dir("leaks");
    let all = dir.join("all.md");
    std::fs::write(
        &all,
        "---\ntools: [builtin, wasm:text, wasm:number, wasm:calc, wasm:json, wasm:files]\n---\nx\n",
    )
    .unwrap();
    let o = agent(&["tools", "--task", all.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let readable = format!(
        "{}\n{}\n{}",
        stdout(&o),
        agent::planner::SYSTEM_PROMPT,
        std::fs::read_to_string(repo_root().join("agent/src/planner/mod.rs")).unwrap()
    )
    .to_lowercase();
    let mut tasks = vec![repo_root().join("examples/calculator.md")];
    for e in std::fs::read_dir(repo_root().join("examples/tasks")).unwrap() {
        tasks.push(e.unwrap().path());
    }
    // The answers the tasks expect (single characters, such as strawberry's 3, are everywhere).
    let answers = ["7006652", "9.8"];
    let mut leaks = Vec::new();
    for task in &tasks {
        let text = std::fs::read_to_string(task).unwrap();
        let body = text.rsplit("---").next().unwrap();
        // Quoted words and numbers of two characters or more: what a question is about.
        let mut keys: Vec<String> = body
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|w| w.chars().count() > 1)
            .map(str::to_lowercase)
            .collect();
        keys.extend(
            body.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .map(|n| n.trim_matches('.'))
                .filter(|n| n.len() > 1 && n.chars().any(|c| c.is_ascii_digit()))
                .map(str::to_string),
        );
        keys.extend(answers.iter().map(|a| a.to_string()));
        for key in keys {
            let numeric = key.chars().all(|c| c.is_ascii_digit() || c == '.');
            let found = readable.match_indices(&key).any(|(i, _)| {
                if !numeric {
                    return true;
                }
                // A number inside a longer one (9.8 in 9.81 or 19.8) is another number.
                let before = readable[..i].chars().next_back();
                let mut after = readable[i + key.len()..].chars();
                let continues = match after.next() {
                    Some(c) if c.is_ascii_digit() => true,
                    Some('.') => after.next().is_some_and(|c| c.is_ascii_digit()),
                    _ => false,
                };
                !continues && !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            });
            if found {
                leaks.push(format!("{}: {key}", task.display()));
            }
        }
    }
    assert_eq!(leaks, Vec::<String>::new());
}

/// A task whose wasm tool and MCP server share a name is refused before anything runs.
#[test]
fn a_wasm_tool_and_an_mcp_server_of_one_name_are_refused() {
    let dir = tmp_dir("clash");
    let task = dir.join("t.md");
    std::fs::write(
        &task,
        "---\ntools: [wasm:text]\nmcp_servers:\n  text: {command: 'true'}\n---\nx\n",
    )
    .unwrap();
    let o = agent(&["run", task.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "agent: {}: the wasm tool `text` and the MCP server `text` would both name their tools `text__…`: rename the MCP server (its key in mcp_servers)\n",
            task.display()
        )
    );
}

/// `agent tools` shows each wasm tool with its policy; a task may not grant the whole disk.
#[test]
fn tools_show_their_policy_and_bad_policies_are_refused() {
    let o = agent(&["tools", "--task", "examples/tasks/strawberry.md"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // With what the sandbox makes of it: read-only, so the permissions let it run.
    assert!(stdout(&o).contains("text__count  (wasm:text (no files; no environment; no network; memory 64 MiB, cpu 2000 ms, wall 10000 ms, output 64 KiB), read-only; allow: the tool is annotated readOnlyHint)"), "{}", stdout(&o));
    let dir = tmp_dir("wasm-policy");
    let task = dir.join("t.md");
    std::fs::write(&task, "---\ntools: [wasm:text]\nwasm_policy:\n  text:\n    preopens: [{host: /, guest: /root}]\n---\nx\n").unwrap();
    let o = agent(&["tools", "--task", task.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "wasm_policy.text.preopens[0]: host directory /: the whole filesystem cannot be granted"
        ),
        "{}",
        stderr(&o)
    );
    std::fs::write(
        &task,
        "---\ntools: [wasm:text]\nwasm_policy:\n  text: {memry: 5}\n---\nx\n",
    )
    .unwrap();
    let o = agent(&["tools", "--task", task.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("wasm_policy.text: unknown field `memry`"),
        "{}",
        stderr(&o)
    );
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
        let path = first
            .strip_prefix("# ")
            .or_else(|| first.strip_prefix("// "));
        if let (true, Some(path)) = (["toml", "wit", "rust"].contains(&lang), path)
            && ["Cargo.toml", "wit/words.wit", "src/lib.rs"].contains(&path)
        {
            files.push((
                path.to_string(),
                format!("{first}\n{}\n", lines.collect::<Vec<_>>().join("\n")),
            ));
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
    assert_eq!(
        files.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["Cargo.toml", "wit/words.wit", "src/lib.rs"]
    );
    let dir = tmp_dir("template");
    let src = dir.join("words");
    for (path, text) in &files {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    // Its own target directory, kept between runs; none of this build's settings.
    let target = std::env::temp_dir().join("agent-template-target");
    let mut cargo =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target);
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTFLAGS" || k == "RUSTC_WRAPPER"
        {
            cargo.env_remove(k);
        }
    }
    cargo.env("CARGO_TARGET_DIR", &target);
    let o = cargo.output().unwrap();
    assert!(
        o.status.success(),
        "building the template failed:\n{}",
        stderr(&o)
    );
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::copy(
        target.join("wasm32-wasip2/release/words.wasm"),
        tools.join("words.wasm"),
    )
    .unwrap();
    std::fs::write(
        tools.join("words.policy.yaml"),
        "memory_bytes: 33554432\ncpu_ms: 500\n",
    )
    .unwrap();
    let task = dir.join("t.md");
    std::fs::write(
        &task,
        "---\ntools: [wasm:tools/words.wasm]\n---\nWhich word is the most frequent?\n",
    )
    .unwrap();
    let o = agent(&["tools", "--task", task.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listing: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tool = listing["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "words__top_words")
        .expect("the template's tool is listed")
        .clone();
    assert_eq!(
        tool["description"],
        "The most frequent words of `text`, most frequent first: the first `top` of them\n(default 3)."
    );
    assert_eq!(tool["parameters"]["required"], serde_json::json!(["text"]));
    assert_eq!(
        tool["source"],
        "wasm:words (no files; no environment; no network; memory 32 MiB, cpu 500 ms, wall 10000 ms, output 64 KiB)"
    );
    let o = agent(&[
        "tools",
        "call",
        "words__top_words",
        "--task",
        task.to_str().unwrap(),
        "--args",
        r#"{"text": "A b a, c a B!", "top": 2}"#,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        r#"[{"word":"a","times":3},{"word":"b","times":2}]"#
    );
    // Arguments the schema refuses never reach the guest.
    let o = agent(&[
        "tools",
        "call",
        "words__top_words",
        "--task",
        task.to_str().unwrap(),
        "--args",
        r#"{"top": 2}"#,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("text"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seed tasks' front matter with other questions of the kind: nothing in the runtime or
/// the tools knows the seed questions. These are ones the default model answers; the whole set,
/// with the ones it does not, is measured by `agent-bench questions` (docs/WASM_TOOLS.md). (Of
/// the letter questions only the seed's own is answered since the attention kernel of
/// 2026-12-03 changed SmolLM2's rounding: "blueberry" flipped.)
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
        (
            with_question(
                "examples/tasks/decimals.md",
                "Which is larger, 10.1 or 10.09? Compare them with the number tool, then give the larger number as the final answer.",
                "decimals-1009.md",
            ),
            (
                "number__compare",
                serde_json::json!({"a": "10.1", "b": "10.09"}),
            ),
            "10.1",
        ),
        (
            with_question(
                "examples/tasks/decimals.md",
                "Which is larger, 3.45 or 3.5? Compare them with the number tool, then give the larger number as the final answer.",
                "decimals-345.md",
            ),
            (
                "number__compare",
                serde_json::json!({"a": "3.5", "b": "3.45"}),
            ),
            "3.5",
        ),
    ];
    for (task, (tool, args), want) in cases {
        let (answer, ev) = final_answer(&task);
        let calls: Vec<(&serde_json::Value, &serde_json::Value)> = ev
            .iter()
            .filter(|e| e["event"] == "tool_call" && e["name"] != "final_answer")
            .map(|e| (&e["name"], &e["arguments"]))
            .collect();
        // The model may repeat a call; every call must be the right one.
        assert!(!calls.is_empty(), "{task}: no tool was called");
        let right = (&serde_json::json!(tool), &args);
        assert_eq!(calls, vec![right; calls.len()], "{task}");
        // The answer is the number, or a sentence that starts with it ("3.5 is larger than 3.45").
        let first = answer
            .trim()
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("");
        assert_eq!(first, want, "{task}: {answer:?}");
    }
}
