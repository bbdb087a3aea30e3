//! One question, no tools: the shortest agent.
//!
//! ```sh
//! cargo run -p agent --example hello
//! ```

use agent::Agent;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The default model (a catalogue name: fetched once, then found on disk), no tools.
    let agent = Agent::builder()
        .model("smollm2-135m")
        .tools([])
        .build()
        .await?;
    let outcome = agent
        .run("Write a one-line greeting for a new user.")
        .await?;
    println!("{}", outcome.answer_text().unwrap_or_default());
    Ok(())
}
