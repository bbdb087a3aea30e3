//! Command-line interface. Results go to stdout, progress and diagnostics to stderr.

mod bench;
mod bench_mcp;
mod bench_thinking;
mod bench_wasm;
mod models;
mod parse;
mod progress;
mod run;
mod runcfg;
mod serve;
mod serve_conformance;
mod serve_handler;
mod serve_http;
mod serve_run;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "agent", version, about = "Run tasks with a local model that calls tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a task file (Markdown with optional YAML front matter).
    Run(run::RunArgs),
    /// List the model catalogue and what is installed.
    Models(models::ModelsArgs),
    /// Parse raw model output (stdin) into reasoning, content, tool calls and errors.
    Parse(parse::ParseArgs),
    /// Measure speed side by side with peers (see docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// List the tools a run would see (built-in and MCP), or call one.
    Tools(tools::ToolsArgs),
    /// Serve the agent over MCP (stdio, or streamable HTTP with --http): `run_task`, the
    /// configured wasm tools, run traces as resources, example tasks as prompts.
    Serve(serve::ServeArgs),
}

/// Exit codes: 0 answered, 1 failed, 2 bad input (task file, flags, model name), 130 interrupted.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr; mistral.rs is chatty at info level, so warn unless RUST_LOG says more.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Models(args) => models::main(args),
        Command::Bench(args) => bench::main(args),
        Command::Parse(args) => parse::main(args),
        Command::Tools(args) => tools::main(args),
        Command::Serve(args) => serve::main(args),
    }
}
