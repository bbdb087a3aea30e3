//! A custom progress display: a run's events arrive on a channel while it runs.
//!
//! ```sh
//! cargo run -p agent --example streaming_events
//! ```

use agent::Agent;
use agent::ToolChoice;
use agent::events::Event;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let agent = Agent::builder()
        .builtin("calculator")
        // Every step calls a tool (the calculator, or final_answer to end).
        .tool_choice(ToolChoice::Required)
        .max_steps(3)
        .build()
        .await?;
    let mut run = agent.runner();
    let mut events = run.events();
    let cfg = agent.config("What is 12 * 12?");
    let cancel = CancellationToken::new();
    // The channel closes when the run ends, so both finish together.
    let (outcome, ()) = tokio::join!(run.run(&cfg, &cancel), async {
        while let Some(event) = events.next().await {
            match event {
                Event::StepStarted { step, kind, .. } => println!("[step {step}: {kind:?}]"),
                Event::ModelOutput { stats, .. } => {
                    println!("  {} tokens", stats.completion_tokens)
                }
                Event::ToolCall {
                    name, arguments, ..
                } => println!("  calls {name} {arguments}"),
                Event::ToolResult { content, .. } => println!("  result: {content}"),
                _ => {}
            }
        }
    });
    println!("answer: {}", outcome?);
    Ok(())
}
