//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn agent_home() -> PathBuf {
    agent::models::agent_home()
}

/// Fails with instructions when the registry-built fixtures are missing: tests never skip.
pub fn require_fixture(rel: &str) -> PathBuf {
    let p = agent_home().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run tests/fixtures/build.sh (tests/run.sh does)",
        p.display()
    );
    p
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs the real `agent` binary.
pub fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run agent")
}

/// Runs the real `agent` binary in `dir` (its working directory: the roots MCP servers see).
pub fn agent_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run agent")
}

/// A reference MCP server installed by tests/fixtures/build.sh.
pub fn mcp_server_bin(name: &str) -> PathBuf {
    require_fixture(&format!("fixtures/mcp-servers/node_modules/.bin/{name}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON events printed by `agent run --json`.
pub fn events(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("agent-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A task file in `dir` whose one step must call a tool (the built-in calculator's question),
/// without thinking.
pub fn tool_task(dir: &Path) -> PathBuf {
    let task = dir.join("task.md");
    std::fs::write(
        &task,
        "---\ntools: [builtin]\ntool_choice: required\nmax_steps: 1\nthinking: 0\n---\nAdd 2 and 3.\n",
    )
    .unwrap();
    task
}

/// One step of `agent run` with a tool the grammar makes the model call.
pub fn calls_a_tool(model: &Path) {
    let name = model.file_name().unwrap().to_string_lossy().into_owned();
    let dir = tmp_dir(&format!("tool-step-{name}"));
    let task = tool_task(&dir);
    let o = agent(&[
        "run",
        task.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--max-tokens",
        "160",
        "--json",
    ]);
    let ev = events(&o);
    let call = ev
        .iter()
        .find(|e| e["event"] == "tool_call")
        .unwrap_or_else(|| panic!("{name}: no tool call: {}", stderr(&o)));
    let result = ev
        .iter()
        .find(|e| e["event"] == "tool_result")
        .unwrap_or_else(|| panic!("{name}: no tool result: {}", stderr(&o)));
    assert_eq!(
        (&result["id"], &result["name"]),
        (&call["id"], &call["name"]),
        "{name}"
    );
    assert!(
        !ev.iter().any(|e| e["event"] == "parse_error"),
        "{name}: a call under the grammar failed to parse: {ev:?}"
    );
}

/// The largest |a - b| and where it is.
pub fn max_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "logit rows of different widths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .enumerate()
        .fold(
            (0.0, 0),
            |best, (i, d)| if d > best.0 { (d, i) } else { best },
        )
}

/// Rows of `width` little-endian float32 values, as the reference scripts write them.
pub fn read_f32_rows(path: &std::path::Path, width: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % (4 * width), 0, "{}", path.display());
    bytes
        .chunks_exact(4 * width)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect()
}

/// The fault server that tools/ builds (`cargo test` builds the workspace's examples).
pub fn fault_server() -> std::path::PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_agent"))
        .with_file_name("examples")
        .join("mcp_fault_server");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo test --workspace` (tests/run.sh does)",
        bin.display()
    );
    bin
}

pub fn processes(needle: &str) -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-f", needle])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}
