//! Deciding which tool calls run: a deny rule on an argument, a program's approver for the
//! calls the rules leave to ask about, and a hook that sees every call. Each decision is an
//! event; this prints them.
//!
//! ```sh
//! cargo run -p agent --example approvals
//! ```

use std::path::Path;

use agent::events::Event;
use agent::permissions::{Approval, HookAnswer, HookEvent};
use agent::tools::ToolAnnotations;
use agent::{Agent, Task};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Delete the file at `path`.
#[derive(Deserialize, JsonSchema)]
struct Delete {
    /// The file's absolute path.
    path: String,
}

const TASK: &str = r#"---
tools: []
max_steps: 2
tool_choice: {tool: delete}
permissions:
  deny: ['delete(path: "/etc/**")']
---
Delete the file /tmp/scratch/old.log.
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A pretend deletion (nothing is removed), which says it destroys: asked about.
    let delete = agent::tool("delete", |d: Delete| async move {
        format!("deleted {}", d.path)
    })
    .annotated(ToolAnnotations {
        read_only: Some(false),
        destructive: Some(true),
        ..ToolAnnotations::default()
    });
    let task = Task::parse(Path::new("approvals.md"), TASK)?;
    let agent = Agent::builder()
        .task(&task)
        .tool(delete)
        .approve_with(|request| async move {
            let path = request.arguments["path"].as_str().unwrap_or_default();
            if path.starts_with("/tmp/") {
                Approval::Once
            } else {
                Approval::No(Some("only files under /tmp may go".into()))
            }
        })
        .hook(HookEvent::PreTool, "audit", None, |input| async move {
            println!(
                "hook: {} {}",
                input.tool.unwrap_or_default(),
                input.arguments.unwrap_or_default()
            );
            HookAnswer::default()
        })
        .build()
        .await?;
    let mut run = agent.runner();
    let mut events = run.events();
    let cfg = agent.config(task.instructions.clone());
    let cancel = CancellationToken::new();
    let (outcome, ()) = tokio::join!(run.run(&cfg, &cancel), async {
        while let Some(event) = events.next().await {
            match event {
                Event::Permission(d) => println!(
                    "decision: {} {} ({}{})",
                    d.name,
                    d.decision.as_str(),
                    d.reason,
                    d.approver
                        .map(|a| format!(", asked {a}"))
                        .unwrap_or_default()
                ),
                Event::ToolResult { name, content, .. } => println!("result: {name}: {content}"),
                _ => {}
            }
        }
    });
    println!("stop: {:?}", outcome?.stop);
    Ok(())
}
