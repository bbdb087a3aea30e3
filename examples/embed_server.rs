//! Serve your own agent over MCP from your program: its tools (here a typed tool of its own),
//! its settings and its model, as `run_task` to any MCP client on stdin/stdout.
//!
//! ```sh
//! npx -y @modelcontextprotocol/inspector cargo run -p agent --example embed_server
//! ```

use agent::Agent;
use agent::serve::{ServeOptions, Server};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Looks a term up in the team's glossary.
#[derive(Deserialize, JsonSchema)]
struct Lookup {
    term: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let glossary = agent::tool("glossary", |l: Lookup| async move {
        match l.term.to_lowercase().as_str() {
            "moe" => "mixture of experts: each token is routed to a few expert layers",
            _ => "not in the glossary",
        }
    });
    let agent = Agent::builder().tool(glossary).max_steps(4).build().await?;
    // stdout is the MCP channel from here on: progress goes to stderr.
    eprintln!("serving on stdio");
    Server::new(agent, ServeOptions::default())?
        .serve_stdio(CancellationToken::new())
        .await?;
    Ok(())
}
