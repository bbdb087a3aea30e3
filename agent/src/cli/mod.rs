//! Command-line interface. Results go to stdout, progress and diagnostics to stderr.

mod models;
mod parse;
mod progress;
mod pull;
mod run;
mod serve;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agent",
    version,
    about = "Run tasks with a local model that calls tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log on stderr: -v shows the engine's warnings and our info, -vv debug. RUST_LOG
    /// overrides both.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

/// The log filter when RUST_LOG is not set. The engine (mistral.rs, candle) logs its own
/// concerns (a CPU-only machine "disables PagedAttention"): errors only, unless asked for.
fn default_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => {
            "warn,mistralrs=error,mistralrs_core=error,mistralrs_quant=error,candle_core=error,candle_nn=error,hf_hub=error"
        }
        1 => "info",
        _ => "debug",
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a task file (Markdown with optional YAML front matter).
    Run(run::RunArgs),
    /// List the model catalogue and what is installed.
    Models(models::ModelsArgs),
    /// Download a catalogue model ahead of time (`qwen3-4b`, `qwen3-30b-a3b:q4_k_m`).
    Pull(pull::PullArgs),
    /// Parse raw model output (stdin) into reasoning, content, tool calls and errors.
    Parse(parse::ParseArgs),
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

/// Ctrl-C cancels `token`. The handler is in place when this returns: a `ctrl_c()` future
/// installs it only when first polled, and an interrupt before that killed the process
/// instead of ending the run cleanly. Needs the async runtime.
fn cancel_on_interrupt(token: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::interrupt()) {
            Ok(mut interrupts) => {
                tokio::spawn(async move {
                    if interrupts.recv().await.is_some() {
                        token.cancel();
                    }
                });
            }
            Err(e) => tracing::warn!("cannot watch for Ctrl-C: {e}"),
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            token.cancel();
        }
    });
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr, coloured only on a terminal and never with NO_COLOR.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter(cli.verbose)));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Models(args) => models::main(args),
        Command::Pull(args) => pull::main(args),
        Command::Parse(args) => parse::main(args),
        Command::Tools(args) => tools::main(args),
        Command::Serve(args) => serve::main(args),
    }
}
