//! A sandboxed tool: the bundled `files` component runs in wasmtime and sees only what its
//! policy grants (here one directory, read-only, under small limits).
//!
//! ```sh
//! cargo run -p agent --example wasm_tool -- DIR
//! ```

use agent::Agent;
use agent::ToolChoice;
use agent::sandboxes::{Mode, Policy, Preopen};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let policy = Policy {
        // The guest sees DIR as /data, and nothing else of the host.
        preopens: vec![Preopen {
            host: dir.into(),
            guest: "/data".into(),
            mode: Mode::ReadOnly,
        }],
        memory_bytes: 64 << 20,
        cpu_ms: 2_000,
        ..Policy::default()
    };
    let agent = Agent::builder()
        .wasm("files")
        .wasm_policy("files", policy)
        .tool_choice(ToolChoice::Required)
        .max_steps(4)
        .build()
        .await?;
    println!("tools: {}", agent.tools().names().join(", "));
    println!("{}", agent.run("What is in the directory /data?").await?);
    Ok(())
}
