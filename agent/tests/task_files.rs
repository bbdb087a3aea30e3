//! Task files on disk: valid ones parse to exactly the expected settings, and
//! every malformed one fails with exactly the expected one-line error (file,
//! line, key and message). Runs without the model backend
//! (`cargo test -p agent --no-default-features --test task_files`).

use std::path::{Path, PathBuf};

use agent::task::{
    FrontMatter, OutputSpec, RunLimits, Sampling, Task, TaskError, ThinkingSpec, ToolSource,
};
use agent::thinking::ThinkingPolicySpec;
use agent::{Budget, Device, ToolChoice};
use serde_json::json;

/// Fixture directory, relative to the package root (cargo runs integration
/// tests from there), so error messages show the short path.
const DIR: &str = "tests/data/tasks";

fn load(name: &str) -> Task {
    let path = Path::new(DIR).join(name);
    match Task::load(&path) {
        Ok(task) => task,
        Err(error) => panic!("{name} should parse, got: {error}"),
    }
}

#[test]
fn complete_example_sets_every_key() {
    assert_eq!(
        load("complete.md"),
        Task {
            path: PathBuf::from("tests/data/tasks/complete.md"),
            instructions:
                "# Largest city\n\nFind the most populous city in Australia and its population at \
                           the last\ncensus. Answer with the city and the population."
                    .into(),
            front: FrontMatter {
                model: Some("qwen3-1.7b".into()),
                device: Some(Device::Cuda),
                isq: None,
                max_steps: Some(12),
                tools: Some(vec![
                    ToolSource::Builtin("read_file".into()),
                    ToolSource::Builtin("web_search".into()),
                ]),
                thinking: Some(ThinkingSpec::PerKind(ThinkingPolicySpec {
                    plan: Some(Budget::Tokens(4096)),
                    act: Some(Budget::Off),
                    recover: Some(Budget::Tokens(1024)),
                    answer: Some(Budget::Unlimited),
                    total: Some(20000),
                })),
                sampling: Some(Sampling {
                    temperature: Some(0.6),
                    top_p: Some(0.95),
                    top_k: Some(20),
                    seed: Some(42),
                }),
                output: Some(OutputSpec::Schema(json!({
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "population": {"type": "integer", "minimum": 0}
                    },
                    "required": ["city", "population"],
                    "additionalProperties": false
                }))),
                tool_choice: Some(ToolChoice::Required),
                tool_format: Some(agent::formats::Format::Qwen3),
                mcp_servers: None,
                wasm_policy: None,
                limits: RunLimits {
                    max_result_bytes: Some(8192),
                    max_result_tokens: Some(2000),
                    compact: Some(true),
                    compact_at: Some(0.7),
                    loop_repeats: Some(3),
                    max_calls: Some(4),
                    parallel_calls: Some(2),
                    time_limit: Some(600),
                    tool_timeout: Some(90),
                },
                permissions: Some(
                    serde_json::from_value(json!({
                        "allow": ["builtin_read_file"],
                        "deny": ["web_search(query: \"*password*\")"],
                        "default": "deny"
                    }))
                    .unwrap(),
                ),
                hooks: Some(
                    serde_json::from_value(json!({
                        "pre_tool": [{"match": "web_search", "command": "./check.sh", "timeout": 5.0}]
                    }))
                    .unwrap(),
                ),
            },
            key_lines: [
                ("model", 3),
                ("device", 4),
                ("max_steps", 5),
                ("tools", 6),
                ("thinking", 9),
                ("sampling", 15),
                ("output", 20),
                ("tool_choice", 28),
                ("tool_format", 29),
                ("max_result_bytes", 30),
                ("max_result_tokens", 31),
                ("compact", 32),
                ("compact_at", 33),
                ("loop_repeats", 34),
                ("max_calls", 35),
                ("parallel_calls", 36),
                ("time_limit", 37),
                ("tool_timeout", 38),
                ("permissions", 39),
                ("hooks", 43),
            ]
            .map(|(k, l)| (k.to_string(), l))
            .into(),
        }
    );
}

#[test]
fn file_without_front_matter_is_all_instructions() {
    assert_eq!(
        load("plain.md"),
        Task {
            path: PathBuf::from("tests/data/tasks/plain.md"),
            instructions: "# No front matter\n\nSummarise `README.md` in three bullet points."
                .into(),
            front: FrontMatter::default(),
            key_lines: Default::default(),
        }
    );
}

#[test]
fn uniform_thinking_and_text_output() {
    assert_eq!(
        load("uniform_thinking.md").front,
        FrontMatter {
            model: Some("models/Qwen3-0.6B-Q4_K_M.gguf".into()),
            device: Some(Device::Cpu),
            isq: None,
            max_steps: None,
            tools: Some(vec![ToolSource::AllBuiltins]),
            thinking: Some(ThinkingSpec::Uniform(Budget::Tokens(512))),
            sampling: Some(Sampling {
                temperature: Some(0.0),
                ..Sampling::default()
            }),
            output: Some(OutputSpec::Text),
            tool_choice: None,
            tool_format: None,
            mcp_servers: None,
            wasm_policy: None,
            limits: RunLimits::default(),
            permissions: None,
            hooks: None,
        }
    );
}

#[test]
fn thinking_off_is_not_a_boolean_surprise() {
    assert_eq!(
        load("thinking_off.md"),
        Task {
            path: PathBuf::from("tests/data/tasks/thinking_off.md"),
            instructions: "Say hello.".into(),
            front: FrontMatter {
                max_steps: Some(1),
                tools: Some(vec![]),
                thinking: Some(ThinkingSpec::Uniform(Budget::Off)),
                ..FrontMatter::default()
            },
            key_lines: [("thinking", 3), ("tools", 4), ("max_steps", 5)]
                .map(|(k, l)| (k.to_string(), l))
                .into(),
        }
    );
}

#[test]
fn complete_example_answer_is_checked_against_its_schema() {
    let output = load("complete.md").front.output_or_default();
    assert_eq!(
        output.validate(&json!({"city": "Sydney", "population": 5_450_496})),
        Ok(())
    );
    assert_eq!(
        output.validate(&json!({"city": "Sydney", "population": -1})),
        Err("/population: -1 is less than the minimum of 0".into())
    );
}

#[test]
fn cli_overrides_win_over_the_file() {
    let mut front = load("complete.md").front;
    front.apply_overrides(Some("smollm2-135m".into()), Some(3), Some(7));
    assert_eq!(
        (front.model.as_deref(), front.max_steps, front.sampling),
        (
            Some("smollm2-135m"),
            Some(3),
            Some(Sampling {
                temperature: Some(0.6),
                top_p: Some(0.95),
                top_k: Some(20),
                seed: Some(7)
            })
        )
    );
}

/// (file under `bad/`, the exact error line).
const BAD: &[(&str, &str)] = &[
    (
        "unknown_key.md",
        "3: modle: unknown key; allowed keys: model, device, isq, max_steps, max_result_bytes, max_result_tokens, compact, compact_at, loop_repeats, max_calls, parallel_calls, time_limit, tool_timeout, tools, thinking, sampling, output, tool_choice, tool_format, mcp_servers, wasm_policy, permissions, hooks",
    ),
    (
        "compact_at_too_high.md",
        "3: compact_at: 0.99 is out of range: must be between 0.1 and 0.95 (a fraction of the context window)",
    ),
    (
        "compact_not_bool.md",
        "3: compact: expected true or false; found the string \"yes please\"",
    ),
    (
        "loop_repeats_one.md",
        "3: loop_repeats: 1 is out of range: must be between 2 and 1000",
    ),
    (
        "parallel_calls_zero.md",
        "3: parallel_calls: 0 is out of range: must be between 1 and 64",
    ),
    (
        "time_limit_unit.md",
        "3: time_limit: expected a duration: seconds, or a number with s, m or h (90s, 5m, 2h); found the string \"5 days\"",
    ),
    (
        "tool_timeout_too_long.md",
        "3: tool_timeout: 1209600 seconds is out of range: must be between 1 and 604800",
    ),
    (
        "mcp_servers_bad_arg.md",
        "7: mcp_servers.fs.args[1]: expected strings; found the number 3",
    ),
    (
        "mcp_servers_unknown_key.md",
        "6: mcp_servers.web.timeout: unknown key; allowed keys: command, args, env, cwd, url, headers, enabled_tools, disabled_tools, startup_timeout, call_timeout, call_total_timeout, max_output, required, roots",
    ),
    (
        "unknown_sampling_key.md",
        "4: sampling.temprature: unknown key; allowed keys: temperature, top_p, top_k, seed",
    ),
    (
        "model_not_string.md",
        "2: model: expected a model name, .gguf file or model directory; found a list",
    ),
    (
        "model_empty.md",
        "2: model: expected a model name, .gguf file or model directory; found an empty string",
    ),
    (
        "device_gpu.md",
        r#"3: device: expected one of cpu, cuda, auto; found the string "gpu""#,
    ),
    (
        "device_number.md",
        "2: device: expected one of cpu, cuda, auto; found the integer 0",
    ),
    (
        "max_steps_zero.md",
        "3: max_steps: 0 is out of range: must be between 1 and 1000",
    ),
    (
        "max_steps_too_large.md",
        "2: max_steps: 5000 is out of range: must be between 1 and 1000",
    ),
    (
        "max_steps_string.md",
        r#"2: max_steps: expected an integer between 1 and 1000; found the string "ten""#,
    ),
    (
        "max_steps_decimal.md",
        "2: max_steps: expected an integer between 1 and 1000; found the number 2.5",
    ),
    (
        "temperature_too_high.md",
        "3: sampling.temperature: 2.5 is out of range: must be between 0 and 2",
    ),
    (
        "temperature_string.md",
        r#"2: sampling.temperature: expected a number between 0 and 2; found the string "hot""#,
    ),
    (
        "top_p_zero.md",
        "4: sampling.top_p: 0 is out of range: must be greater than 0 and at most 1",
    ),
    (
        "top_p_too_high.md",
        "3: sampling.top_p: 1.01 is out of range: must be greater than 0 and at most 1",
    ),
    (
        "top_k_zero.md",
        "3: sampling.top_k: 0 is out of range: must be between 1 and 4294967295",
    ),
    (
        "seed_negative.md",
        "3: sampling.seed: -1 is out of range: must be between 0 and 18446744073709551615",
    ),
    (
        "sampling_not_mapping.md",
        r#"2: sampling: expected a mapping with keys temperature, top_p, top_k, seed; found the string "greedy""#,
    ),
    (
        "tools_not_list.md",
        r#"2: tools: expected a list of tool sources such as [builtin]; found the string "builtin""#,
    ),
    (
        "tool_source_mcp.md",
        r#"4: tools[1]: unsupported tool source "mcp:github": supported forms are `builtin` (every built-in tool), `builtin:NAME` (one built-in tool), `wasm:NAME` (a bundled wasm tool) and `wasm:PATH.wasm` (a WebAssembly component); MCP servers are configured under `mcp_servers:`"#,
    ),
    (
        "tool_choice_unknown.md",
        "2: tool_choice: expected one of auto, required, none, or a mapping `tool: NAME`; found the string \"sometimes\"",
    ),
    (
        "tool_choice_tool_not_string.md",
        "3: tool_choice.tool: expected the name of an enabled tool; found the integer 42",
    ),
    (
        "tool_choice_wrong_key.md",
        "3: tool_choice.name: unknown key; allowed keys: tool",
    ),
    (
        "tool_format_unknown.md",
        r#"2: tool_format: expected one of qwen3, qwen3-coder, llama4-pythonic, llama4-json; found the string "hermes""#,
    ),
    (
        "tool_name_invalid.md",
        r#"2: tools[0]: invalid built-in tool name "Read-File": a name is one or more of a-z, 0-9 and _"#,
    ),
    (
        "tool_not_string.md",
        "4: tools[1]: expected a tool source such as builtin or builtin:NAME; found a mapping",
    ),
    (
        "thinking_negative.md",
        "4: thinking.act: -5 is out of range: must be between 0 and 4294967295",
    ),
    (
        "thinking_lots.md",
        r#"2: thinking: expected off, unlimited, a token count such as 1024, {tokens: N}, or a mapping of plan, act, recover, answer, total; found the string "lots""#,
    ),
    (
        "thinking_unknown_kind.md",
        "4: thinking.reflect: unknown key; allowed keys: tokens, plan, act, recover, answer, total",
    ),
    (
        "thinking_tokens_mixed.md",
        "2: thinking.answer: cannot be combined with `tokens`: write either {tokens: N} or per-step keys (plan, act, recover, answer, total)",
    ),
    (
        "thinking_total_zero.md",
        "3: thinking.total: 0 is out of range: must be between 1 and 4294967295",
    ),
    (
        "thinking_true.md",
        "3: thinking.plan: expected off, unlimited, a token count such as 1024, or {tokens: N}; found the boolean true",
    ),
    (
        "output_schema_invalid.md",
        "7: output.schema: invalid JSON Schema at /properties/name/type: 12 is not valid under any of the schemas listed in the 'anyOf' keyword",
    ),
    (
        "output_schema_flow_invalid.md",
        "2: output.schema: invalid JSON Schema at /type: 12 is not valid under any of the schemas listed in the 'anyOf' keyword",
    ),
    (
        "output_schema_not_mapping.md",
        r#"3: output.schema: expected a JSON Schema written as a mapping; found the string "object""#,
    ),
    (
        "output_json.md",
        r#"2: output: expected `text` or a mapping {schema: <JSON Schema>}; found the string "json""#,
    ),
    (
        "output_without_schema.md",
        "2: output: expected `text` or a mapping {schema: <JSON Schema>}; found a mapping without `schema`",
    ),
    (
        "output_unknown_key.md",
        "3: output.format: unknown key; allowed keys: schema",
    ),
    (
        "unclosed.md",
        "1: front matter is not closed: add a line containing only `---` after it",
    ),
    (
        "yaml_syntax.md",
        "5: invalid YAML in front matter: did not find expected key, while parsing a block mapping",
    ),
    (
        "yaml_unterminated_flow.md",
        "4: invalid YAML in front matter: did not find expected ',' or ']', while parsing a flow sequence",
    ),
    (
        "duplicate_key.md",
        "4: max_steps: duplicate key: each key may appear only once",
    ),
    (
        "duplicate_nested_key.md",
        "5: sampling.seed: duplicate key: each key may appear only once",
    ),
    (
        "front_matter_list.md",
        "2: front matter must be a mapping of keys to values; found a list",
    ),
    // No line applies to the rest: `FILE: MESSAGE`.
    (
        "empty_body.md",
        " no instructions: nothing follows the front matter; write the task below the closing `---`",
    ),
    ("empty_file.md", " no instructions: the task file is empty"),
    (
        "missing.md",
        " cannot read task file: No such file or directory (os error 2)",
    ),
];

#[test]
fn tool_choice_none_and_named() {
    assert_eq!(
        load("tool_choice_none.md").front.tool_choice,
        Some(ToolChoice::None)
    );
    assert_eq!(
        load("tool_choice_named.md").front.tool_choice,
        Some(ToolChoice::Tool("calculator".into()))
    );
}

#[test]
fn malformed_files_fail_with_one_exact_line() {
    let mut failures = Vec::new();
    for (name, expected) in BAD {
        let path = Path::new(DIR).join("bad").join(name);
        let expected = format!("{}:{expected}", path.display());
        match Task::load(&path) {
            Ok(task) => failures.push(format!("{name}: parsed, but should fail: {task:?}")),
            Err(error) => {
                let actual = error.to_string();
                if actual != expected {
                    failures.push(format!(
                        "{name}:\n  expected: {expected}\n  actual:   {actual}"
                    ));
                }
                if actual.contains('\n') {
                    failures.push(format!("{name}: error spans lines"));
                }
                if error.exit_code() != 2 {
                    failures.push(format!("{name}: exit code {}", error.exit_code()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_bad_fixture_is_in_the_table() {
    let mut on_disk: Vec<String> = std::fs::read_dir(Path::new(DIR).join("bad"))
        .expect("bad/ exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = BAD
        .iter()
        .map(|(name, _)| name.to_string())
        .filter(|name| name != "missing.md")
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    assert!(listed.len() >= 20);
}

#[test]
fn error_parts_are_exposed() {
    let error = Task::load(&Path::new(DIR).join("bad/temperature_too_high.md")).unwrap_err();
    assert!(matches!(error, TaskError::Invalid { .. }));
    assert_eq!(
        (error.path(), error.line(), error.key()),
        (
            Path::new("tests/data/tasks/bad/temperature_too_high.md"),
            Some(3),
            Some("sampling.temperature")
        )
    );
}
