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
