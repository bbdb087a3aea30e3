//! `agent parse --format F`: raw model output on stdin, the parsed turn as JSON on stdout.
//! For debugging a model's tool calls, and the contract the format tests run through.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use agent::formats::{self, Format};
use agent_tools::ToolSpec;
use clap::Args;
use serde_json::json;

use super::{EXIT_BAD_INPUT, EXIT_FAILED};

#[derive(Args)]
pub struct ParseArgs {
    /// qwen3, qwen3-coder, llama4-pythonic or llama4-json.
    #[arg(long)]
    format: Format,
    /// The prompt already opened `<think>` (Qwen3-Thinking-2507): output starts inside it.
    #[arg(long)]
    think_opened: bool,
    /// JSON file with the tools (`[{"name", "description", "parameters"}]`): calls are checked
    /// against their schemas and Qwen3-Coder values are typed by them.
    #[arg(long)]
    tools: Option<PathBuf>,
}

pub fn main(args: ParseArgs) -> ExitCode {
    let tools: Vec<ToolSpec> = match &args.tools {
        None => Vec::new(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(t) => t,
            Err(e) => {
                eprintln!("agent: {}: {e}", path.display());
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        },
    };
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("agent: cannot read stdin: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let parsed = formats::parse_with_schema(args.format, &text, args.think_opened, &tools);
    let mut errors: Vec<_> = parsed
        .errors
        .iter()
        .map(|e| json!({"message": e.message, "raw": e.raw}))
        .collect();
    if !tools.is_empty() {
        errors.extend(
            formats::validate(&parsed.calls, &tools)
                .iter()
                .map(|e| json!({"message": e.message, "raw": e.raw})),
        );
    }
    let out = json!({
        "reasoning": parsed.reasoning,
        "content": parsed.content,
        "tool_calls": parsed.calls.iter().map(|c| json!({"name": c.name, "arguments": c.arguments})).collect::<Vec<_>>(),
        "errors": errors,
    });
    println!("{out}");
    ExitCode::SUCCESS
}
