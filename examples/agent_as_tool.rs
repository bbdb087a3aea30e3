//! One agent calling another: a sub-agent with its own tools, steps and thinking budget is
//! given to the main agent as a tool, on the same loaded model.
//!
//! ```sh
//! cargo run -p agent --example agent_as_tool
//! ```

use agent::Agent;
use agent::Budget;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The specialist: a calculator, a few steps, no thinking.
    let arithmetic = Agent::builder()
        .builtin("calculator")
        .max_steps(3)
        .thinking(Budget::Off)
        .build()
        .await?;
    // The main agent shares the specialist's model and has no tools but the specialist.
    let main = Agent::builder()
        .backend(arithmetic.backend().clone())
        .tools([])
        .tool(arithmetic.as_tool("arithmetic", "Works out arithmetic with a calculator."))
        .max_steps(4)
        .build()
        .await?;
    println!(
        "{}",
        main.run("A crate holds 17 rows of 23 bottles. How many bottles?")
            .await?
    );
    Ok(())
}
