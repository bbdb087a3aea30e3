//! `agent bench`: speed measured side by side with peers, on the same model file and prompt.
//! - `decode`: decode tokens/s of SmolLM2 through agent's backend, through a minimal mistral.rs
//!   program (its chat API on the downloaded GGUF), and through llama.cpp (node-llama-cpp).
//! - `gguf`: see `bench_gguf`.
//! - `prefill`: see `bench_prefill`.
//! - `prefix`: prompt-processing time per step of a growing 10-step conversation, with mistral.rs's
//!   prefix cache on and off, and whether the generated text is the same.
//! - `grammar`: decode tokens/s of SmolLM2 with no grammar, the `auto` grammar (free text until a
//!   call) and a forced `final_answer` call (the tokens are one long JSON string).
//! - `thinking`: see `bench_thinking`.
//! - `questions`: see `bench_questions` (answers, not speed).
//! - `mcp`: see `bench_mcp`.
//! - `wasm`: see `bench_wasm`.
//! - `rss`: peak resident memory over an N-step conversation (run once per setting, in a fresh
//!   process, since peak RSS only grows).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use agent::backend::{Backend, GenRequest, Sampling};
use agent::formats::{self, GrammarOptions, Thinking, ToolChoice};
use agent::mistral::{MistralBackend, fast_gguf};
use agent::models::{self, ModelSource, agent_home};
use agent::prompt::{self, Message, RenderOptions};
use agent::task::Device;
use clap::{Args, Subcommand};
use mistralrs::{GgufModelBuilder, RequestBuilder, TextMessageRole, TokenSource};

#[derive(Args)]
pub struct BenchArgs {
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

pub(super) const STORY: &str = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. Describe the sea, the weather and every room of the lighthouse.";

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of timings whose first entry is a warm-up (kept when it is the only one).
pub(super) fn median_after_warmup(mut v: Vec<f64>) -> f64 {
    if v.len() > 1 {
        v.remove(0);
    }
    median(v)
}

pub fn main(args: BenchArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async {
        match args.what {
            What::Decode { tokens, repeats } => decode(tokens, repeats).await,
            What::Prefix { steps } => prefix(steps).await,
            What::Prefill {
                model,
                tokens,
                repeats,
            } => super::bench_prefill::prefill(model, tokens, repeats).await,
            What::Gguf {
                model,
                tokens,
                repeats,
            } => super::bench_gguf::gguf(model, tokens, repeats).await,
            What::Rss {
                steps,
                prefix_cache,
            } => rss(steps, prefix_cache).await,
            What::WarmStart { model, repeats } => {
                super::bench_warm::warm_start(model, repeats).await
            }
            What::Grammar { tokens, repeats } => grammar(tokens, repeats).await,
            What::Thinking { tokens, repeats } => {
                super::bench_thinking::thinking(tokens, repeats).await
            }
            What::Mcp { calls, warmup } => super::bench_mcp::mcp(calls, warmup).await,
            What::Wasm {
                calls,
                warmup,
                cold,
                instances,
            } => super::bench_wasm::wasm(calls, warmup, cold, instances).await,
            What::WasmPeer => super::bench_wasm::peer().await,
            What::Questions { file, examples } => {
                super::bench_questions::questions(&file, &examples).await
            }
            What::Dot { n, repeats } => {
                dot(n, repeats);
                Ok(())
            }
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dot(n: usize, repeats: usize) {
    let a: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5).collect();
    let mut total = 0f32;
    for _ in 0..repeats {
        total += mistralrs_core::agent_dot_f32(std::hint::black_box(&a), std::hint::black_box(&b));
    }
    println!("{total}");
}

fn smollm2() -> anyhow::Result<(models::ResolvedModel, PathBuf)> {
    let m = models::resolve(models::DEFAULT_MODEL)?;
    let ModelSource::Gguf { file } = &m.source else {
        anyhow::bail!("smollm2 is not a GGUF")
    };
    let file = file.clone();
    Ok((m, file))
}

pub(super) fn chat_prompt(m: &models::ResolvedModel, user: &str) -> anyhow::Result<String> {
    Ok(prompt::render(
        &m.family,
        &m.template,
        &[Message::user(user)],
        &[],
        RenderOptions::default(),
    )?)
}

/// Decode tok/s of the raw mistral.rs chat API on `file` (a minimal program: builder, request).
async fn raw_mistralrs(file: &Path, tokens: usize, repeats: usize) -> anyhow::Result<f64> {
    let dir = file
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let model = GgufModelBuilder::new(dir, vec![name])
        .with_token_source(TokenSource::None)
        .with_force_cpu()
        .with_prefix_cache_n(None)
        .build()
        .await?;
    let mut rates = Vec::new();
    for _ in 0..repeats {
        let req = RequestBuilder::new()
            .add_message(TextMessageRole::User, STORY)
            .set_sampler_max_len(tokens);
        let resp = model.send_chat_request(req).await?;
        rates.push(resp.usage.avg_compl_tok_per_sec as f64);
    }
    Ok(median(rates))
}

pub(super) async fn agent_decode(
    m: &models::ResolvedModel,
    tokens: usize,
    repeats: usize,
) -> anyhow::Result<(f64, usize)> {
    let backend = MistralBackend::load(m, Device::Cpu).await?;
    let prompt = chat_prompt(m, STORY)?;
    let mut rates = Vec::new();
    let mut generated = 0;
    for _ in 0..repeats {
        let mut sink = |_: &str| {};
        let out = backend
            .generate(greedy_request(&prompt, tokens), &mut sink)
            .await?;
        generated = out.stats.completion_tokens;
        rates.push(out.stats.decode_tokens_per_sec());
    }
    Ok((median(rates), generated))
}

/// llama.cpp through node-llama-cpp 3.21.1 (prebuilt CPU binaries from npm), installed into
/// `$AGENT_HOME/bench/llama-cpp` on first use: the better decode tokens/s of 1 thread and of
/// every core, and what the script printed (rates by thread count, load times).
pub(super) fn llama_cpp(
    file: &Path,
    prompt: &str,
    tokens: usize,
    repeats: usize,
) -> anyhow::Result<(f64, serde_json::Value)> {
    let v = run_llama_cpp_script(
        "bench_llama_cpp.mjs",
        &[
            file.as_os_str(),
            tokens.to_string().as_ref(),
            repeats.to_string().as_ref(),
        ],
        &[("PROMPT", prompt)],
    )?;
    let best = v["decode_tok_s"]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("node-llama-cpp printed {v}"))?;
    Ok((best, v))
}

/// Runs one of the node-llama-cpp scripts beside this file (`agent/src/cli/NAME`) with
/// `args` and the environment `env`, node-llama-cpp installed first; returns the JSON it prints.
pub(super) fn run_llama_cpp_script(
    name: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let dir = install_llama_cpp()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/cli")
        .join(name);
    let out = Command::new("node")
        .arg(&script)
        .args(args)
        .env("LLAMA_DIR", &dir)
        .envs(env.iter().copied())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "node-llama-cpp ({name}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .map_err(|e| anyhow::anyhow!("node-llama-cpp ({name}) printed {text:?}: {e}"))
}

/// A greedy completion of `prompt` with no stop strings: every engine generates until EOS or
/// the token cap.
pub(super) fn greedy_request(prompt: &str, max_tokens: usize) -> GenRequest {
    GenRequest {
        prompt: prompt.to_string(),
        max_tokens,
        sampling: Sampling::default(),
        stop: vec![],
        grammar: None,
        think: Default::default(),
    }
}

/// node-llama-cpp 3.21.1 with its prebuilt CPU binaries from npm, installed into
/// `$AGENT_HOME/bench/llama-cpp` on first use; returns that directory.
fn install_llama_cpp() -> anyhow::Result<PathBuf> {
    let dir = agent_home().join("bench").join("llama-cpp");
    if !dir.join("node_modules/node-llama-cpp").is_dir() {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("package.json"),
            "{\"name\":\"agent-bench-llama-cpp\",\"private\":true}\n",
        )?;
        let ok = Command::new("npm")
            .args([
                "install",
                "--silent",
                "--omit=optional",
                "--ignore-scripts",
                "node-llama-cpp@3.21.1",
                "@node-llama-cpp/linux-x64@3.21.1",
            ])
            .current_dir(&dir)
            .status()?
            .success();
        anyhow::ensure!(ok, "npm install node-llama-cpp@3.21.1 failed");
    }
    Ok(dir)
}

/// Decode speed on the same files: the Q8_0 file agent runs (it converts SmolLM2's Q4_1 once,
/// since candle has no fast CPU kernel for Q4_1), and the Q4_1 file as published. Ratios are
/// against llama.cpp on the same file; agent runs its Q8_0 for either.
async fn decode(tokens: usize, repeats: usize) -> anyhow::Result<()> {
    let (m, original) = smollm2()?;
    let converted = fast_gguf(&original).map_err(anyhow::Error::msg)?;
    let prompt = chat_prompt(&m, STORY)?;
    let (agent_rate, generated) = agent_decode(&m, tokens, repeats).await?;
    let raw_original = raw_mistralrs(&original, tokens, repeats).await?;
    let raw_converted = raw_mistralrs(&converted, tokens, repeats).await?;
    let (llama_converted, threads_converted) = llama_cpp(&converted, &prompt, tokens, repeats)?;
    let (llama_original, threads_original) = llama_cpp(&original, &prompt, tokens, repeats)?;
    println!(
        "decode tokens/s, SmolLM2-135M-Instruct, greedy, {tokens} new tokens ({generated} by agent), median of {repeats}, {} threads",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "llama.cpp tok/s by thread count (the better is used): Q8_0 {}, Q4_1 {}",
        threads_converted["by_threads"], threads_original["by_threads"]
    );
    let name = |f: &Path| {
        f.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    println!("| file | engine | tok/s | vs llama.cpp on that file |");
    println!("|---|---|---|---|");
    for (file, llama, rows) in [
        (
            &converted,
            llama_converted,
            [
                ("agent (mistral.rs 0.8.1, raw tokens)", agent_rate),
                ("mistral.rs 0.8.1 chat API", raw_converted),
            ],
        ),
        (
            &original,
            llama_original,
            [
                ("agent (runs its Q8_0 conversion)", agent_rate),
                ("mistral.rs 0.8.1 chat API", raw_original),
            ],
        ),
    ] {
        println!(
            "| {} | llama.cpp (node-llama-cpp 3.21.1) | {llama:.1} | 1.00x |",
            name(file)
        );
        for (engine, rate) in rows {
            println!(
                "| {} | {engine} | {rate:.1} | {:.2}x |",
                name(file),
                rate / llama
            );
        }
    }
    Ok(())
}

/// A conversation that grows like an agent run: each step appends the model's reply and a tool
/// result, then asks for the next reply.
async fn conversation(
    backend: &MistralBackend,
    m: &models::ResolvedModel,
    steps: usize,
    tokens: usize,
) -> anyhow::Result<Vec<(usize, f64, String)>> {
    let mut messages = vec![
        Message::system("You are a helpful assistant."),
        Message::user("Count the vowels in each word I send you, one word per turn."),
    ];
    let words = [
        "lighthouse",
        "bottle",
        "keeper",
        "harbour",
        "weather",
        "message",
        "stairs",
        "lantern",
        "storm",
        "gull",
    ];
    let mut rows = Vec::new();
    for step in 0..steps {
        let p = prompt::render(
            &m.family,
            &m.template,
            &messages,
            &[],
            RenderOptions::default(),
        )?;
        let mut sink = |_: &str| {};
        let out = backend
            .generate(
                GenRequest {
                    prompt: p,
                    max_tokens: tokens,
                    sampling: Sampling::default(),
                    stop: prompt::stop_strings(&m.family),
                    grammar: None,
                    think: Default::default(),
                },
                &mut sink,
            )
            .await?;
        rows.push((
            out.stats.prompt_tokens,
            out.stats.prompt_secs,
            out.text.clone(),
        ));
        messages.push(Message::assistant(out.text));
        messages.push(Message::user(format!(
            "Next word: {}",
            words[step % words.len()]
        )));
    }
    Ok(rows)
}

/// Each step: prompt processing time with the prefix cache on and off, and how far the first
/// generated token's logits differ between the two on the *same* prompt. The conversation is
/// fixed by the cache-off run, so both runs see identical prompts; numeric noise from a
/// different prefill split is ~1e-4, while attending to a wrong KV row moves logits by far more.
async fn prefix(steps: usize) -> anyhow::Result<()> {
    let (m, _) = smollm2()?;
    let words = [
        "lighthouse",
        "bottle",
        "keeper",
        "harbour",
        "weather",
        "message",
        "stairs",
        "lantern",
        "storm",
        "gull",
    ];
    let stop = prompt::stop_strings(&m.family);
    let off = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, None).await?;
    let on = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, Some(4)).await?;
    let mut messages = vec![
        Message::system("You are a helpful assistant."),
        Message::user("Count the vowels in each word I send you, one word per turn."),
    ];
    println!(
        "| step | prompt tokens | prompt s, cache on | prompt s, cache off | max logit difference | same output |"
    );
    println!("|---|---|---|---|---|---|");
    let (mut first_on, mut first_off, mut last_on, mut last_off) = (0.0, 0.0, 0.0, 0.0);
    for step in 0..steps {
        let p = prompt::render(
            &m.family,
            &m.template,
            &messages,
            &[],
            RenderOptions::default(),
        )?;
        let n = off.tokenize(&p).await?.len();
        let (text_off, logits_off, secs_off) =
            off.generate_with_logits(&p, 24, stop.clone()).await?;
        let (text_on, logits_on, secs_on) = on.generate_with_logits(&p, 24, stop.clone()).await?;
        let diff = logits_on
            .iter()
            .zip(&logits_off)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "| {} | {n} | {secs_on:.3} | {secs_off:.3} | {diff:.2e} | {} |",
            step + 1,
            if text_on == text_off { "yes" } else { "no" }
        );
        if step == 0 {
            (first_on, first_off) = (secs_on, secs_off);
        }
        (last_on, last_off) = (secs_on, secs_off);
        messages.push(Message::assistant(text_off));
        messages.push(Message::user(format!(
            "Next word: {}",
            words[step % words.len()]
        )));
    }
    // Controlled checks that separate cache correctness from numerics: a cached prefix that
    // prefill computed is reused bit-exactly; a one-token suffix runs through the single-token
    // (decode) kernels, whose quantized arithmetic differs from batched prefill, as it does for
    // every generated token.
    let text = "Describe a lighthouse at night, the keeper, the harbour and the storm. ".repeat(6);
    for (i, extra) in [" Next word: anchor", "a"].into_iter().enumerate() {
        // A fresh prompt each time, so that each check starts from a prefill-computed prefix.
        let base = chat_prompt(&m, &format!("{i}. {text}"))?;
        let _ = on.generate_with_logits(&base, 1, vec![]).await?;
        let p2 = format!("{base}{extra}");
        let (_, lo, _) = off.generate_with_logits(&p2, 1, vec![]).await?;
        let (_, ln, _) = on.generate_with_logits(&p2, 1, vec![]).await?;
        let d = ln
            .iter()
            .zip(&lo)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let suffix = on.tokenize(&p2).await?.len() - on.tokenize(&base).await?.len();
        println!(
            "prefill-cached prefix + {suffix}-token suffix: max logit difference cache on vs off {d:.2e}"
        );
    }
    // The same prompt again (a retry, another seed): all but its last token come from the cache.
    // Two tokens: with one, the engine records no prompt time.
    let base = chat_prompt(&m, &text)?;
    let _ = on.generate_with_logits(&base, 2, vec![]).await?;
    let (_, _, again_secs) = on.generate_with_logits(&base, 2, vec![]).await?;
    let (_, _, cold_secs) = off.generate_with_logits(&base, 2, vec![]).await?;
    let n = on.tokenize(&base).await?.len();
    println!(
        "same {n}-token prompt again: {again_secs:.3}s prompt time with the cache, {cold_secs:.3}s without"
    );
    println!(
        "step {steps} / step 1 prompt time: cache on {:.2}x, cache off {:.2}x",
        last_on / first_on,
        last_off / first_off
    );
    Ok(())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn rss(steps: usize, cache: usize) -> anyhow::Result<()> {
    let (m, _) = smollm2()?;
    let backend =
        MistralBackend::load_with_prefix_cache(&m, Device::Cpu, (cache > 0).then_some(cache))
            .await?;
    let loaded = peak_rss_mib();
    let started = Instant::now();
    let rows = conversation(&backend, &m, steps, 24).await?;
    println!(
        "prefix cache {}: {} steps, last prompt {} tokens, peak RSS {:.0} MiB after load, {:.0} MiB after the run ({:.0}s)",
        if cache > 0 {
            format!("on, {cache} sequences")
        } else {
            "off".into()
        },
        steps,
        rows.last().map_or(0, |r| r.0),
        loaded,
        peak_rss_mib(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn grammar(tokens: usize, repeats: usize) -> anyhow::Result<()> {
    let m = models::resolve("smollm2-135m")?;
    let backend = MistralBackend::load(&m, Device::Cpu).await?;
    let info = backend.info().clone();
    let tools = agent::toolset::build(
        &[agent::task::ToolSource::AllBuiltins],
        &agent::task::OutputSpec::Text,
    )?
    .specs();
    let (format, _) = agent::planner::call_format(&m.family);
    let opts = GrammarOptions {
        thinking: Thinking::Off,
        special_tokens: info.special_tokens.clone(),
        ..GrammarOptions::new(format)
    };
    let story =
        "Write a long, detailed story about a lighthouse keeper and give it as your final answer.";
    let messages = [
        Message::system(agent::planner::SYSTEM_PROMPT),
        Message::user(story),
    ];
    let p = prompt::render(
        &m.family,
        &m.template,
        &messages,
        &tools,
        RenderOptions::default(),
    )?;
    println!(
        "SmolLM2-135M, CPU, {tokens} tokens greedy, median of {repeats}; the same prompt each time (prefix-cached)"
    );
    println!(
        "{:<34} {:>10} {:>8} {:>10}",
        "grammar", "tokens", "tok/s", "vs none"
    );
    let mut base = None;
    for (label, grammar) in [
        ("none", None),
        (
            "auto (free text until a call)",
            Some(formats::lark(&opts, &tools, &ToolChoice::Auto)?),
        ),
        (
            "final_answer call (JSON string)",
            Some(formats::lark(
                &opts,
                &tools,
                &ToolChoice::Tool("final_answer".into()),
            )?),
        ),
    ] {
        let mut rates = Vec::new();
        let mut n = 0;
        for _ in 0..repeats + 1 {
            let req = GenRequest {
                prompt: p.clone(),
                max_tokens: tokens,
                sampling: Sampling::default(),
                stop: Vec::new(),
                grammar: grammar.clone(),
                think: Default::default(),
            };
            let mut sink = |_: &str| {};
            let out = backend.generate(req, &mut sink).await?;
            n = out.stats.completion_tokens;
            rates.push(out.stats.decode_tokens_per_sec());
        }
        let rate = median_after_warmup(rates);
        let ratio = base.map_or(1.0, |b: f64| rate / b);
        base.get_or_insert(rate);
        println!("{label:<34} {n:>10} {rate:>8.1} {ratio:>9.2}x");
    }
    Ok(())
}
