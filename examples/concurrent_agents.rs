//! Several tasks at once on one loaded model: an `Agent` is cheap to clone, `Send + Sync`,
//! and each run has its own conversation and state.
//!
//! ```sh
//! cargo run -p agent --example concurrent_agents
//! ```

use agent::Agent;
use agent::ToolChoice;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let agent = Agent::builder()
        .builtin("calculator")
        // Every step calls a tool (the calculator, or final_answer to end).
        .tool_choice(ToolChoice::Required)
        .max_steps(4)
        .build()
        .await?;
    let questions = [
        "What is 17 * 23?",
        "What is 2 to the power of 10?",
        "What is 1001 / 7?",
    ];
    // One task per question, all on the same model (the engine batches their steps).
    let runs: Vec<_> = questions
        .into_iter()
        .map(|q| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.run(q).await })
        })
        .collect();
    for (q, run) in questions.iter().zip(runs) {
        println!("{q} -> {}", run.await??);
    }
    Ok(())
}
