//! Command-line interface. Results go to stdout, progress and diagnostics to stderr.

mod approve;
mod models;
mod parse;
mod progress;
mod pull;
mod resume;
mod run;
mod serve;
mod tools;

use std::process::ExitCode;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

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
    /// Go on with an interrupted or step-limited run from its trace (RUN_ID or the file),
    /// with the settings it recorded, appending to the trace.
    Resume(resume::ResumeArgs),
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

/// Exit codes: 0 answered, 1 failed, 2 bad input (task file, flags, model name), and for a
/// run ended by a signal 128 + its number: 130 (SIGINT, Ctrl-C), 143 (SIGTERM), 129 (SIGHUP).
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

/// SIGINT, SIGTERM and SIGHUP, watched for one run or server: the first cancels the token
/// and decides the exit status.
struct Interrupts {
    /// The first signal's exit status; 0 before any.
    code: Arc<AtomicU8>,
}

impl Interrupts {
    /// Cancels `token` on the first of the signals. The handlers are in place when this
    /// returns: a `ctrl_c()` future installs its handler only when first polled, and a signal
    /// before that killed the process instead of ending the run cleanly. Needs the runtime.
    fn install(token: CancellationToken) -> Interrupts {
        let code = Arc::new(AtomicU8::new(0));
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            for (kind, name, status) in [
                (SignalKind::interrupt(), "SIGINT", EXIT_INTERRUPTED),
                (SignalKind::terminate(), "SIGTERM", 143),
                (SignalKind::hangup(), "SIGHUP", 129),
            ] {
                match signal(kind) {
                    Ok(mut signals) => {
                        let (token, code) = (token.clone(), code.clone());
                        tokio::spawn(async move {
                            if signals.recv().await.is_some() {
                                let _ = code.compare_exchange(
                                    0,
                                    status,
                                    Ordering::SeqCst,
                                    Ordering::SeqCst,
                                );
                                token.cancel();
                            }
                        });
                    }
                    Err(e) => tracing::warn!("cannot watch for {name}: {e}"),
                }
            }
        }
        #[cfg(not(unix))]
        {
            let (token, code) = (token.clone(), code.clone());
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    code.store(EXIT_INTERRUPTED, Ordering::SeqCst);
                    token.cancel();
                }
            });
        }
        Interrupts { code }
    }

    /// The exit status for a run the signals stopped (130 if none came: cancelled otherwise).
    fn exit_code(&self) -> u8 {
        match self.code.load(Ordering::SeqCst) {
            0 => EXIT_INTERRUPTED,
            c => c,
        }
    }
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
        Command::Resume(args) => resume::main(args),
        Command::Models(args) => models::main(args),
        Command::Pull(args) => pull::main(args),
        Command::Parse(args) => parse::main(args),
        Command::Tools(args) => tools::main(args),
        Command::Serve(args) => serve::main(args),
    }
}
