//! The official MCP conformance suite (`@modelcontextprotocol/conformance@0.1.16`, on the
//! Node 22 that tests/fixtures/build.sh installs beside it) drives our client through its
//! client scenarios: the example `mcp_conformance_client` is our client code and nothing else.

mod support;

use std::path::PathBuf;

use serde_json::Value;

fn conformance_bin() -> PathBuf {
    let dir = support::servers_dir()
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .expect("fixtures dir")
        .join("mcp-conformance/node_modules/.bin");
    assert!(
        dir.join("conformance").is_file(),
        "{} is missing: run tests/fixtures/build.sh first",
        dir.display()
    );
    dir
}

fn scenario(name: &str) {
    let bin = conformance_bin();
    let client = support::fault_server().with_file_name("mcp_conformance_client");
    assert!(client.is_file(), "{} is missing", client.display());
    let out_dir =
        std::env::temp_dir().join(format!("agent-conformance-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    // The suite's `#!/usr/bin/env node` must find Node 22 first.
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = std::process::Command::new(bin.join("conformance"))
        .args([
            "client",
            "--command",
            client.to_str().unwrap(),
            "--scenario",
            name,
            "-o",
            out_dir.to_str().unwrap(),
        ])
        .env("PATH", path)
        .output()
        .expect("run the conformance suite");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "scenario {name} failed:\n{report}");
    // Every check the scenario records passed (INFO lines are the suite's own log).
    let run = std::fs::read_dir(&out_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let checks: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(run.join("checks.json")).unwrap()).unwrap();
    let statuses: Vec<(&str, &str)> = checks
        .iter()
        .filter(|c| c["status"] != "INFO")
        .map(|c| (c["id"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|(_, s)| *s == "SUCCESS"),
        "{name}: {statuses:?}\n{report}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn conformance_initialize() {
    scenario("initialize");
}

#[test]
fn conformance_tools_call() {
    scenario("tools_call");
}
