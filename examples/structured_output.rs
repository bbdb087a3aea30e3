//! Typed structured output: the answer is constrained, as the model writes it, to the JSON
//! Schema of a Rust type, and comes back as that type.
//!
//! ```sh
//! cargo run -p agent --example structured_output
//! ```

use agent::Agent;
use agent::ToolChoice;
use schemars::JsonSchema;
use serde::Deserialize;

/// A city and what the model knows of it.
#[derive(Deserialize, JsonSchema)]
struct City {
    /// The city's name, as people there write it.
    name: String,
    /// The country it is in.
    country: String,
    /// Whether it is that country's capital.
    capital: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // No tools but `final_answer`, and every step must call one: the first step answers.
    let agent = Agent::builder()
        .tools([])
        .tool_choice(ToolChoice::Required)
        .max_steps(2)
        .build()
        .await?;
    // Fails (rather than returning text) if the run ends without an answer.
    let city: City = agent.run_typed("Name a large city in Italy.").await?;
    let capital = if city.capital {
        "its capital"
    } else {
        "not its capital"
    };
    println!("{} ({}): {capital}", city.name, city.country);
    Ok(())
}
