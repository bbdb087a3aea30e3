//! `agent-bench`: speed measured side by side with peers, on the same model file and prompt
//! (every figure in docs/BENCHMARKS.md). Its own binary, not the product's: the benchmarks
//! that run `agent run` find the `agent` binary beside this one (or at `AGENT_BIN`), and its
//! peers (node-llama-cpp and Python MCP SDK scripts) are built into it.
//! - `decode`, `prefix`, `grammar`, `rss`: see `decode`.
//! - `gpu-parity`, `gpu-speed`, `gpu-run`: what tests/gpu/check.sh runs on a GPU (see `gpu`).
//! - `gguf`, `prefill`, `warm-start`, `thinking`, `questions`, `mcp`, `wasm`: see the module of
//!   that name.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod decode;
mod gguf;
mod gpu;
mod llama_cpp;
mod long_run;
mod mcp;
mod prefill;
mod questions;
mod thinking;
mod warm;
mod wasm;

/// Speed measured side by side with peers, on the same model file and prompt
/// (docs/BENCHMARKS.md).
#[derive(Parser)]
#[command(name = "agent-bench")]
struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Decode tokens/s: agent vs raw mistral.rs vs llama.cpp, same GGUF, same prompt, greedy.
    Decode {
        #[arg(long, default_value_t = 128)]
        tokens: usize,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Prefill tokens/s: agent against llama.cpp on the same GGUF, prompt and thread count
    /// (default: SmolLM2's Q8_0 file, and its published Q4_1 file for llama.cpp).
    Prefill {
        /// A GGUF file instead of the default model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Prompt lengths in tokens.
        #[arg(long, value_delimiter = ',', default_values_t = [512, 2048, 4096])]
        tokens: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Prompt time per step of a 10-step conversation, prefix cache on and off.
    Prefix {
        #[arg(long, default_value_t = 10)]
        steps: usize,
    },
    /// Load time and decode tokens/s of one GGUF file, agent against llama.cpp on that file
    /// (default: the tiny `qwen3moe` Q4_K_M fixture, written by llama.cpp's tools).
    Gguf {
        /// The GGUF file.
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value_t = 128)]
        tokens: usize,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Decode tokens/s with and without thinking-budget enforcement (tiny Qwen3-MoE), and a
    /// multi-step run with `act: off` against `unlimited`.
    Thinking {
        #[arg(long, default_value_t = 256)]
        tokens: usize,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
    /// Prompt time per step of a long run (SmolLM2, server-filesystem) with compaction and
    /// without, and the prefix-cache hit rate after a compaction.
    LongRun {
        #[arg(long, default_value_t = 52)]
        steps: u32,
    },
    /// Decode tokens/s with and without the step's grammar (SmolLM2).
    Grammar {
        #[arg(long, default_value_t = 128)]
        tokens: usize,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Round-trip latency of a trivial MCP tool call, agent's client against the Python SDK's.
    Mcp {
        #[arg(long, default_value_t = 1000)]
        calls: usize,
        #[arg(long, default_value_t = 50)]
        warmup: usize,
    },
    /// Sandboxed wasm tools against the same code behind a stdio MCP server: cold and warm
    /// call latency, memory per instance, epoch against fuel metering.
    Wasm {
        #[arg(long, default_value_t = 1000)]
        calls: usize,
        #[arg(long, default_value_t = 50)]
        warmup: usize,
        /// Cold starts measured (each: compile, load from cache, MCP server start).
        #[arg(long, default_value_t = 10)]
        cold: usize,
        /// Live instances held for the memory measurement (at most 64: the pooling
        /// allocator's slots).
        #[arg(long, default_value_t = 50)]
        instances: usize,
    },
    /// The seed tasks with other questions of their kind: what the default model answers.
    Questions {
        #[arg(long, default_value = "tests/data/questions_of_the_kind.yaml")]
        file: PathBuf,
        /// Where the seed tasks are.
        #[arg(long, default_value = "examples/tasks")]
        examples: PathBuf,
    },
    /// A checkpoint on the GPU against the CPU and a reference's logits (tests/gpu/check.sh).
    GpuParity {
        /// A model directory or GGUF file.
        #[arg(long)]
        model: PathBuf,
        /// A directory tests/fixtures/reference.py wrote (its prompts, tokens and logits).
        #[arg(long)]
        reference: PathBuf,
        #[arg(long, default_value = "cuda")]
        device: agent::Device,
        /// f32, bf16 or f16 (default: the engine's choice).
        #[arg(long, value_parser = gpu::parse_dtype)]
        dtype: Option<agent::models::GpuDtype>,
        #[arg(long, default_value_t = 32)]
        steps: usize,
    },
    /// Prompt and decode tokens/s at batch 1 and with concurrent sequences (tests/gpu/check.sh).
    GpuSpeed {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "cuda")]
        device: agent::Device,
        #[arg(long, value_parser = gpu::parse_dtype)]
        dtype: Option<agent::models::GpuDtype>,
        /// In-situ quantization while loading (Q8_0, Q4K, ...).
        #[arg(long)]
        isq: Option<String>,
        #[arg(long, default_value_t = 512)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        decode_tokens: usize,
        #[arg(long, value_delimiter = ',', default_values_t = [1, 8])]
        concurrency: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// One agent run on the GPU: tools required, a thinking budget per step kind; events as
    /// JSON lines in `--events`, a summary on stdout (tests/gpu/check.sh).
    GpuRun {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "cuda")]
        device: agent::Device,
        #[arg(long, default_value = "What is 17 * 23?")]
        question: String,
        #[arg(long, default_value = "{plan: 8, act: off, recover: 5, answer: 3}")]
        thinking: String,
        #[arg(long)]
        events: PathBuf,
    },
    /// The MCP peer of `bench wasm` (serves the `text` tool's code natively over stdio).
    #[command(hide = true)]
    WasmPeer,
    /// The CPU attention's dot product over `n` elements, `repeats` times: run under
    /// callgrind, its instructions per element show whether it is vectorised
    /// (tests/engine_patches.rs).
    #[command(hide = true)]
    Dot {
        #[arg(long)]
        n: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
    },
    /// Step 1 of a task run again: `agent run` processes with the on-disk prefix cache off,
    /// on for the first time, and on again (time to first token and wall time).
    WarmStart {
        /// A GGUF file (default: the default model's).
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Peak RSS over an N-step conversation with the prefix cache on or off.
    Rss {
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Sequences the prefix cache keeps (0: off). A large value reproduces mistral.rs
        /// 0.8.1's unpatched CPU behaviour, which never evicted.
        #[arg(long, default_value_t = 4)]
        prefix_cache: usize,
    },
}

/// The `agent` binary the benchmarks that run `agent run` start: `AGENT_BIN`, or the one
/// beside this binary (`cargo build -p agent` puts it there).
pub fn agent_exe() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?.with_file_name("agent");
    anyhow::ensure!(
        exe.is_file(),
        "{} is missing: build it with `cargo build -p agent` (or set AGENT_BIN)",
        exe.display()
    );
    Ok(exe)
}

pub const STORY: &str = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. Describe the sea, the weather and every room of the lighthouse.";

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of timings whose first entry is a warm-up (kept when it is the only one).
pub fn median_after_warmup(mut v: Vec<f64>) -> f64 {
    if v.len() > 1 {
        v.remove(0);
    }
    median(v)
}

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async {
        match args.what {
            What::Decode { tokens, repeats } => decode::decode(tokens, repeats).await,
            What::Prefix { steps } => decode::prefix(steps).await,
            What::Prefill {
                model,
                tokens,
                repeats,
            } => prefill::prefill(model, tokens, repeats).await,
            What::Gguf {
                model,
                tokens,
                repeats,
            } => gguf::gguf(model, tokens, repeats).await,
            What::Rss {
                steps,
                prefix_cache,
            } => decode::rss(steps, prefix_cache).await,
            What::WarmStart { model, repeats } => warm::warm_start(model, repeats).await,
            What::Grammar { tokens, repeats } => decode::grammar(tokens, repeats).await,
            What::Thinking { tokens, repeats } => thinking::thinking(tokens, repeats).await,
            What::LongRun { steps } => long_run::long_run(steps),
            What::Mcp { calls, warmup } => mcp::mcp(calls, warmup).await,
            What::Wasm {
                calls,
                warmup,
                cold,
                instances,
            } => wasm::wasm(calls, warmup, cold, instances).await,
            What::WasmPeer => wasm::peer().await,
            What::GpuParity {
                model,
                reference,
                device,
                dtype,
                steps,
            } => gpu::parity(&model, &reference, device, dtype, steps).await,
            What::GpuSpeed {
                model,
                device,
                dtype,
                isq,
                prompt_tokens,
                decode_tokens,
                concurrency,
                repeats,
            } => {
                gpu::speed(
                    &model,
                    device,
                    dtype,
                    isq,
                    prompt_tokens,
                    decode_tokens,
                    &concurrency,
                    repeats,
                )
                .await
            }
            What::GpuRun {
                model,
                device,
                question,
                thinking,
                events,
            } => gpu::run(&model, device, &question, &thinking, &events).await,
            What::Questions { file, examples } => questions::questions(&file, &examples).await,
            What::Dot { n, repeats } => {
                decode::dot(n, repeats);
                Ok(())
            }
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
