//! The library's one start-up of a run's tools ([`Toolbox`]), which `agent run`, `agent tools`
//! and `agent serve` share: wasm tools loaded into the registry beside the ones given, one
//! sandbox for every load, and a refused configuration leaves nothing running.

use std::sync::Arc;

use agent::task::{OutputSpec, ToolSource};
use agent::toolbox::{Toolbox, ToolboxError, ToolboxSpec};
use agent::toolset;
use agent_tools::ToolRegistry;
use agent_tools::mcp::McpConfig;

fn text_tools() -> ToolboxSpec {
    let tools = vec![ToolSource::Wasm("text".into())];
    ToolboxSpec {
        registry: toolset::build(&tools, &OutputSpec::Text).unwrap(),
        tools,
        ..ToolboxSpec::default()
    }
}

#[tokio::test]
async fn wasm_tools_join_the_given_ones_in_one_sandbox() {
    let toolbox = Toolbox::start(text_tools()).await.unwrap();
    let names = toolbox.registry().names();
    assert!(names.contains(&"final_answer".to_string()), "{names:?}");
    assert!(names.contains(&"text__count".to_string()), "{names:?}");
    assert_eq!(
        toolbox
            .wasm()
            .iter()
            .map(|c| c.name().to_string())
            .collect::<Vec<_>>(),
        vec!["text".to_string()]
    );
    // A later load (a served task's own component) shares the sandbox.
    let first = toolbox.sandbox().unwrap();
    let mut more = ToolRegistry::new();
    let loaded = toolbox
        .load_wasm(
            &mut more,
            &[ToolSource::Wasm("number".into())],
            &Default::default(),
            std::path::Path::new("."),
        )
        .await
        .unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(more.names().contains(&"number__compare".to_string()));
    assert!(Arc::ptr_eq(&first, &toolbox.sandbox().unwrap()));
    toolbox.shutdown().await;
}

#[tokio::test]
async fn a_clash_of_names_is_refused_with_the_servers_stopped() {
    let mcp = McpConfig::from_json(
        r#"{"mcpServers": {"text": {"command": "sleep", "args": ["617.25"]}}}"#,
        "test.json",
    )
    .unwrap();
    let err = Toolbox::start(ToolboxSpec {
        mcp,
        ..text_tools()
    })
    .await
    .err()
    .unwrap();
    assert!(
        matches!(&err, ToolboxError::Config(m) if m.contains("the wasm tool `text` and the MCP server `text`")),
        "{err}"
    );
    assert_eq!(
        processes_with_arg("617.25"),
        0,
        "the server was left running"
    );
}

/// Processes whose command line has `arg`, after up to 2 s for a killed one to exit. The wait
/// blocks the test's single-threaded runtime on purpose: a server whose kill was only
/// scheduled, not done, before `start` returned cannot be killed meanwhile.
fn processes_with_arg(arg: &str) -> usize {
    let mut n = count_processes_with_arg(arg);
    for _ in 0..200 {
        if n == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        n = count_processes_with_arg(arg);
    }
    n
}

fn count_processes_with_arg(arg: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
        .count()
}

#[tokio::test]
async fn an_unknown_bundled_tool_is_named() {
    let tools = vec![ToolSource::Wasm("nosuch".into())];
    let err = Toolbox::start(ToolboxSpec {
        tools,
        ..ToolboxSpec::default()
    })
    .await
    .err()
    .unwrap();
    assert!(
        matches!(&err, ToolboxError::Config(m) if m.starts_with("wasm:nosuch: no bundled wasm tool of that name")),
        "{err}"
    );
}
