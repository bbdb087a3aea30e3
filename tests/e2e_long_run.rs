//! A long run end to end: the real `agent` binary, the default model (SmolLM2-135M, an
//! 8,192-token window) and the reference filesystem MCP server, reading 40 files of 50 KB
//! (2 MB, about 60 windows' worth) for over 50 steps. Each step is forced to read a file
//! (`tool_choice`), so what is checked is the run's bookkeeping, not a 135M model's judgement
//! (greedy SmolLM2 copies its first call, so it reads part01.txt again each step: 50 KB through
//! the server and into the window's accounting all the same; the loop guard is set out of its
//! way, and results are cut to 512 tokens, half the default, to keep the test to a few
//! minutes): no prompt reaches the window, the conversation is compacted (with summaries the model
//! writes), and the run ends with an answer or a stop reason of its own, never an engine
//! error.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const FILES: usize = 40;
const FILE_BYTES: usize = 50_000;
const MAX_STEPS: u64 = 52;

/// `partNN.txt`: numbered lines, ending with the name of the next file.
fn write_parts(dir: &Path) {
    for n in 1..=FILES {
        let mut text = String::new();
        let mut line = 0;
        while text.len() < FILE_BYTES {
            line += 1;
            text.push_str(&format!(
                "part {n:02}, line {line:04}: the survey counted boats in the harbour at dawn\n"
            ));
        }
        text.push_str(&format!(
            "End of part{n:02}.txt. The next file is part{:02}.txt.\n",
            n + 1
        ));
        std::fs::write(dir.join(format!("part{n:02}.txt")), text).unwrap();
    }
}

fn of_kind<'a>(ev: &'a [Value], kind: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn fifty_steps_over_two_megabytes_stay_inside_the_window() {
    let dir = tmp_dir("long-run");
    write_parts(&dir);
    let fs = mcp_server_bin("mcp-server-filesystem");
    let front = format!(
        "tools: []\n\
         max_steps: {MAX_STEPS}\n\
         loop_repeats: 1000\n\
         max_result_tokens: 512\n\
         tool_choice: {{tool: fs__read_text_file}}\n\
         mcp_servers:\n  fs:\n    command: {}\n    args: [{}]\n    required: true\n    enabled_tools: [read_text_file]\n",
        fs.display(),
        dir.display()
    );
    std::fs::write(
        dir.join("long.md"),
        format!("---\n{front}---\nForty files here each end with the name of the next one. Read them in order, one call each, then say how many lines the last one has. Start with {{\"path\": \"part01.txt\"}}.\n"),
    )
    .unwrap();
    let trace = dir.join("trace.jsonl");
    let o = agent_in(
        &dir,
        &[
            "run",
            "long.md",
            "--json",
            "--trace",
            trace.to_str().unwrap(),
        ],
    );
    let ev = events(&o);
    let stop = ev.last().map(|e| e["stop"].clone()).unwrap_or_default();
    assert!(
        ["answer", "max_steps", "loop", "context_full"].contains(&stop.as_str().unwrap_or("")),
        "stop {stop}; stderr: {}",
        stderr(&o)
    );
    assert!(
        of_kind(&ev, "error").is_empty(),
        "{:#?}",
        of_kind(&ev, "error")
    );
    let window = ev[0]["context_window"].as_u64().unwrap();
    assert_eq!(window, 8192);
    let steps = of_kind(&ev, "step_started").len() as u64;
    assert!(steps >= 50, "{steps} steps; stderr: {}", stderr(&o));
    // What was read: far more than the window holds.
    let read: u64 = of_kind(&ev, "tool_result")
        .iter()
        .filter(|r| r["name"] == "fs__read_text_file")
        .map(|r| r["content"].as_str().unwrap_or_default().len() as u64)
        .sum();
    assert!(read > 10 * 4 * window, "{read} bytes read");
    // No prompt reached the window: each step's, and each compacted one's.
    let prompts: Vec<u64> = of_kind(&ev, "model_output")
        .iter()
        .map(|e| e["prompt_tokens"].as_u64().unwrap())
        .collect();
    assert!(prompts.iter().all(|&p| p < window), "{prompts:?}");
    let compactions = of_kind(&ev, "compacted");
    assert!(!compactions.is_empty(), "{prompts:?}");
    for c in &compactions {
        let (before, after) = (
            c["before_tokens"].as_u64().unwrap(),
            c["after_tokens"].as_u64().unwrap(),
        );
        assert!(after < before && after < window, "{c}");
    }
    // The final event adds up every completion, summaries included.
    let final_ = ev.last().unwrap();
    let usage = &final_["usage"];
    let step_prompts: u64 = prompts.iter().sum();
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() >= step_prompts,
        "{usage}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `agent run TASK` in `dir` with its trace there, waits until `ready` holds, sends
/// `signal` (`TERM`, `HUP`, `INT`), and returns the exit status and the trace's events.
fn interrupted(
    dir: &Path,
    task: &str,
    signal: &str,
    ready: impl Fn() -> bool,
) -> (Option<i32>, Vec<Value>) {
    let trace = dir.join("trace.jsonl");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", task, "--trace", trace.to_str().unwrap()])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed().as_secs() < 120, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let sent = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed().as_secs() < 10,
        "took {:?} to stop",
        sent.elapsed()
    );
    let events = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code(), events)
}

/// SIGTERM and SIGHUP while the run starts (the model loading, a required MCP server that
/// takes its time): the run ends at once with a final event, status 143 or 129, and the
/// server's process group is gone.
#[test]
fn a_signal_while_starting_ends_the_run_with_its_final_event() {
    for (signal, status, tag) in [
        ("TERM", 143, "e2e-term-start"),
        ("HUP", 129, "e2e-hup-start"),
    ] {
        let dir = tmp_dir(tag);
        let server = format!("mcp_fault_server --delay-start 120000 --grandchild --tag {tag}");
        std::fs::write(
            dir.join("slow.md"),
            format!(
                "---\ntools: []\nmax_steps: 2\nmcp_servers:\n  slow:\n    command: {}\n    args: [--delay-start, \"120000\", --grandchild, --tag, {tag}]\n    startup_timeout: 300\n    required: true\n---\nSay hello.\n",
                fault_server().display()
            ),
        )
        .unwrap();
        let (code, events) = interrupted(&dir, "slow.md", signal, || processes(&server) > 0);
        assert_eq!(code, Some(status), "{signal}");
        let last = events.last().unwrap();
        assert_eq!(
            (&last["event"], &last["stop"], &last["steps"]),
            (
                &Value::from("final"),
                &Value::from("cancelled"),
                &Value::from(0)
            ),
            "{events:?}"
        );
        assert_eq!(
            processes(&server),
            0,
            "{signal}: the server was left running"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// SIGTERM during a call that never answers: the call is cancelled on the server, the trace
/// ends with its final event, the status is 143, and no server process is left.
#[test]
fn sigterm_during_an_mcp_call_cancels_it_and_ends_the_trace() {
    let dir = tmp_dir("term-call");
    let log = dir.join("fault.log");
    std::fs::write(
        dir.join("hang.md"),
        format!(
            "---\ntools: []\nmax_steps: 2\ntool_choice: {{tool: fault__hang}}\npermissions: {{allow: [fault__hang]}}\nmcp_servers:\n  fault:\n    command: {}\n    args: [--tag, e2e-term-call]\n    env: {{FAULT_LOG: {}}}\n    required: true\n---\nCall the hang tool.\n",
            fault_server().display(),
            log.display()
        ),
    )
    .unwrap();
    let (code, events) = interrupted(&dir, "hang.md", "TERM", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started hang")
    });
    assert_eq!(code, Some(143));
    let last = events.last().unwrap();
    assert_eq!(
        (&last["event"], &last["stop"]),
        (&Value::from("final"), &Value::from("cancelled")),
        "{events:?}"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("cancelled hang"),
        "the server never heard of the cancellation"
    );
    assert_eq!(processes("mcp_fault_server --tag e2e-term-call"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each step's prompt hash in `events`, by step.
fn prompt_hashes(events: &[Value]) -> std::collections::BTreeMap<u64, String> {
    of_kind(events, "model_output")
        .iter()
        .map(|e| {
            (
                e["step"].as_u64().unwrap(),
                e["prompt_hash"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn trace_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A run killed with SIGKILL in the middle of a step goes on from its last complete step with
/// `agent resume`: every step after it sends exactly the prompt the uninterrupted run sent
/// (same hash), and the run ends the same way, in the same trace.
#[test]
fn a_run_killed_mid_step_resumes_with_the_same_prompts() {
    let dir = tmp_dir("resume");
    std::fs::write(
        dir.join("sums.md"),
        "---\ntools: [builtin:calculator]\nmax_steps: 6\nloop_repeats: 1000\ntool_choice: {tool: calculator}\n---\nWhat is 17 * 23? Use the calculator.\n",
    )
    .unwrap();
    let whole = dir.join("whole.jsonl");
    let o = agent_in(
        &dir,
        &[
            "run",
            "sums.md",
            "--json",
            "--trace",
            whole.to_str().unwrap(),
        ],
    );
    let uninterrupted = events(&o);
    let expected = prompt_hashes(&uninterrupted);
    assert_eq!(expected.len(), 6, "{}", stderr(&o));

    let killed = dir.join("killed.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", "sums.md", "--trace", killed.to_str().unwrap()])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once step 3 is recorded: in the middle of step 4, or a little later.
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&killed)
        .unwrap_or_default()
        .contains(r#""event":"checkpoint","step":3"#)
    {
        assert!(started.elapsed().as_secs() < 120, "step 3 never ended");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = trace_events(&killed);
    assert!(
        of_kind(&before, "final").is_empty(),
        "the run ended before the kill"
    );

    let o = agent_in(&dir, &["resume", killed.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let resumed = events(&o);
    let after = resumed[0]["resumed_after"].as_u64().unwrap();
    assert!((3..6).contains(&after), "{after}");
    let got = prompt_hashes(&resumed);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (after + 1..=6).collect::<Vec<_>>()
    );
    // Each step's prompt is the uninterrupted run's as long as the model wrote the same turns
    // (greedy, but a fresh process prefills what the other had cached: a last-bit difference
    // in the logits could, in principle, pick another token).
    let texts = |ev: &[Value]| -> std::collections::BTreeMap<u64, Value> {
        of_kind(ev, "model_output")
            .iter()
            .map(|e| (e["step"].as_u64().unwrap(), e["text"].clone()))
            .collect()
    };
    let (a_text, b_text) = (texts(&uninterrupted), texts(&resumed));
    for (step, hash) in &got {
        assert_eq!(hash, &expected[step], "step {step}'s prompt differs");
        if a_text[step] != b_text[step] {
            break;
        }
    }
    let b = resumed.last().unwrap();
    assert_eq!(
        (&b["event"], &b["steps"]),
        (&Value::from("final"), &Value::from(6))
    );
    // The same trace, appended to: the killed run's events, then the resumed run's.
    let trace = trace_events(&killed);
    assert_eq!(of_kind(&trace, "run_started").len(), 2);
    assert_eq!(trace.last().unwrap()["event"], "final");
    let _ = std::fs::remove_dir_all(&dir);
}
