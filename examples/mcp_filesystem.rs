//! An MCP server's tools: the reference filesystem server (npm), given one directory.
//!
//! ```sh
//! cargo run -p agent --example mcp_filesystem -- DIR [SERVER COMMAND...]
//! ```
//!
//! The server command defaults to `npx -y @modelcontextprotocol/server-filesystem`.

use agent::Agent;
use agent::ToolChoice;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let mut server: Vec<String> = args.collect();
    if server.is_empty() {
        server = ["npx", "-y", "@modelcontextprotocol/server-filesystem"]
            .map(String::from)
            .to_vec();
    }
    // The `mcpServers` shape of Claude Desktop and Cursor; the server's tools are `fs__NAME`.
    let (command, mut server_args) = (server[0].clone(), server[1..].to_vec());
    server_args.push(dir);
    let agent = Agent::builder()
        .mcp_servers(json!({"fs": {"command": command, "args": server_args, "required": true}}))
        .tools([])
        .tool_choice(ToolChoice::Required)
        .max_steps(4)
        .build()
        .await?;
    println!("tools: {}", agent.tools().names().join(", "));
    println!(
        "{}",
        agent
            .run("What files are in the allowed directory?")
            .await?
    );
    // Waits for the server to exit (dropping the agent would stop it too).
    agent.shutdown().await;
    Ok(())
}
