//! `agent-bench prefill`: prompt processing (prefill) tokens/s, agent against llama.cpp
//! (node-llama-cpp 3.21.1's prebuilt CPU build) on the same GGUF file, the same prompt text
//! and the same number of threads, at several prompt lengths; median of several runs each.
//!
//! agent's figure is its time to the first token of a one-token generation with the prefix
//! cache off (what step 1 of a run waits), llama.cpp's the time to evaluate the prompt's
//! tokens (which also computes the last token's logits). The prompts are plain text of
//! exactly the requested length in agent's tokenizer; llama.cpp's count of the same text is
//! printed beside it.
//!
//! Then step 1 of a task with server-filesystem, as `agent run` makes it (system prompt, every
//! tool's schema, the question): agent's time to its first token, against llama.cpp on the
//! same rendered prompt.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use agent::Device;
use agent::backend::{
    Backend, BackendError, BoxFuture, GenOutput, GenRequest, GenStats, ModelInfo, OnText,
};
use agent::mistral::{MistralBackend, fast_gguf};
use agent::models::{self, ModelSource, agent_home};
use agent::planner::{Agent, RunConfig};
use agent::task::Task;
use agent::toolset;
use agent_tools::mcp::{Hooks, McpPool};
use tokio_util::sync::CancellationToken;

use crate::decode::greedy_request;
use crate::llama_cpp::run_llama_cpp_script;
use crate::median_after_warmup;

/// Words for the synthetic prompts: ordinary prose, so that the tokenizer sees the ~1.3
/// tokens per word of real text. Prefill cost depends only on the token count.
const WORDS: &[&str] = &[
    "the",
    "file",
    "server",
    "returns",
    "a",
    "list",
    "of",
    "entries",
    "with",
    "their",
    "size",
    "and",
    "modified",
    "time",
    "when",
    "path",
    "is",
    "directory",
    "each",
    "tool",
    "call",
    "reads",
    "writes",
    "JSON",
    "object",
    "schema",
    "describes",
    "arguments",
    "required",
    "optional",
    "string",
    "number",
    "array",
    "allowed",
    "roots",
    "outside",
    "error",
    "message",
    "model",
    "answer",
    "step",
    "result",
    "content",
    "text",
    "lines",
    "search",
    "pattern",
    "matches",
    "recursively",
    "excluding",
    "hidden",
    "files",
    "edit",
    "replace",
    "exact",
    "sequence",
    "create",
    "move",
    "rename",
    "information",
    "metadata",
    "permissions",
    "type",
    "only",
    "within",
    "directories",
    "returns.",
    "value,",
    "name:",
    "(default",
    "false).",
];

/// Text of exactly `n` tokens in `backend`'s tokenizer (the longest word prefix that fits,
/// which is `n` or one short of it, topped up with single-token words).
pub async fn prompt_of(backend: &MistralBackend, n: usize) -> anyhow::Result<(String, usize)> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut words = Vec::with_capacity(n);
    for _ in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        words.push(WORDS[(state % WORDS.len() as u64) as usize]);
    }
    // Every word is at least one token: the answer lies in 0..=n words.
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if backend.tokenize(&words[..mid].join(" ")).await?.len() <= n {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut text = words[..lo].join(" ");
    let mut count = backend.tokenize(&text).await?.len();
    while count < n {
        text.push_str(" a");
        count = backend.tokenize(&text).await?.len();
    }
    Ok((text, count))
}

/// agent's prefill seconds for `prompt`: time to the first token, prefix cache off; the first
/// of `repeats + 1` runs warms up and is dropped.
async fn agent_prefill(
    backend: &Arc<MistralBackend>,
    prompt: &str,
    repeats: usize,
) -> anyhow::Result<f64> {
    let mut secs = Vec::new();
    for _ in 0..=repeats {
        let mut sink = |_: &str| {};
        let out = backend
            .generate(greedy_request(prompt, 1), &mut sink)
            .await?;
        secs.push(out.stats.prompt_secs);
    }
    Ok(median_after_warmup(secs))
}

/// llama.cpp's token counts and median prefill seconds for each prompt, at `threads`.
fn llama_prefill(
    file: &Path,
    prompts: &[String],
    threads: usize,
    repeats: usize,
) -> anyhow::Result<serde_json::Value> {
    run_llama_cpp_script(
        "llama_cpp_prefill.mjs",
        &[
            file.as_os_str(),
            threads.to_string().as_ref(),
            repeats.to_string().as_ref(),
        ],
        &[("PROMPTS", &serde_json::to_string(prompts)?)],
    )
}

/// The threads agent computes with: rayon's global pool, as candle sizes it.
fn agent_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

pub async fn prefill(
    file: Option<PathBuf>,
    sizes: Vec<usize>,
    repeats: usize,
) -> anyhow::Result<()> {
    let threads = agent_threads();
    // SmolLM2 (the default model): agent runs the Q8_0 file it converts at install; llama.cpp
    // runs that same file and the Q4_1 file as published.
    let (m, files) = match file {
        Some(f) => {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (models::inspect(&f, &name)?, vec![f])
        }
        None => {
            let m = models::resolve(models::DEFAULT_MODEL)?;
            let ModelSource::Gguf { file } = &m.source else {
                anyhow::bail!("the default model is not a GGUF")
            };
            let converted = fast_gguf(file).map_err(anyhow::Error::msg)?;
            let original = file.clone();
            (m, vec![converted, original])
        }
    };
    let backend = Arc::new(MistralBackend::load_with_prefix_cache(&m, Device::Cpu, None).await?);
    let mut prompts = Vec::new();
    let mut counts = Vec::new();
    for &n in &sizes {
        let (text, count) = prompt_of(&backend, n).await?;
        prompts.push(text);
        counts.push(count);
    }
    let mut agent = Vec::new();
    for p in &prompts {
        agent.push(agent_prefill(&backend, p, repeats).await?);
    }
    let (step_prompt, step_tokens, step_secs) = first_step(&backend, repeats).await?;
    drop(backend);
    let kernels = match agent_kernels::q8_0::Kernel::selected() {
        Some(k) => format!("{k:?}"),
        None => "candle's stock kernels".into(),
    };
    println!(
        "prefill tokens/s, {}, {threads} threads (agent and llama.cpp), median of {repeats} after a warm-up; agent's Q8_0 matmul: {kernels}",
        m.name
    );
    println!(
        "| file | prompt tokens (llama.cpp's count) | llama.cpp tok/s | agent tok/s | agent vs llama.cpp |"
    );
    println!("|---|---|---|---|---|");
    for file in &files {
        let llama = llama_prefill(file, &prompts, threads, repeats)?;
        let name = file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, &n) in counts.iter().enumerate() {
            let row = &llama["prompts"][i];
            let (ln, ls) = (
                row["tokens"].as_f64().unwrap_or(f64::NAN),
                row["secs"].as_f64().unwrap_or(f64::NAN),
            );
            let (llama_rate, agent_rate) = (ln / ls, n as f64 / agent[i]);
            println!(
                "| {name} | {n} ({ln}) | {llama_rate:.0} | {agent_rate:.0} | {:.2}x |",
                agent_rate / llama_rate
            );
        }
        println!("(llama.cpp batch size {})", llama["batch_size"]);
    }
    let llama = llama_prefill(&files[0], &[step_prompt], threads, repeats)?;
    let row = &llama["prompts"][0];
    let llama_secs = row["secs"].as_f64().unwrap_or(f64::NAN);
    println!(
        "step 1 of a task with server-filesystem ({step_tokens} prompt tokens, llama.cpp counts {}): \
         time to the first token {step_secs:.2} s, llama.cpp {llama_secs:.2} s on the same prompt ({:.2}x)",
        row["tokens"],
        llama_secs / step_secs
    );
    Ok(())
}

/// Records each step's prompt and statistics, passing the request on to the real backend.
struct Recorder {
    inner: Arc<MistralBackend>,
    steps: std::sync::Mutex<Vec<(String, GenStats)>>,
}

impl Backend for Recorder {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    fn generate<'a>(
        &'a self,
        req: GenRequest,
        on_text: OnText<'a>,
    ) -> BoxFuture<'a, Result<GenOutput, BackendError>> {
        Box::pin(async move {
            let prompt = req.prompt.clone();
            let out = self.inner.generate(req, on_text).await?;
            if let Ok(mut steps) = self.steps.lock() {
                steps.push((prompt, out.stats.clone()));
            }
            Ok(out)
        })
    }
}

/// server-filesystem as the fixtures pin it, installed into `$AGENT_HOME/bench/mcp-servers`
/// on first use; returns its binary.
pub fn install_server_filesystem() -> anyhow::Result<PathBuf> {
    let dir = agent_home().join("bench").join("mcp-servers");
    let bin = dir.join("node_modules/.bin/mcp-server-filesystem");
    if !bin.is_file() {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("package.json"),
            "{\"name\":\"agent-bench-mcp-servers\",\"private\":true}\n",
        )?;
        let ok = Command::new("npm")
            .args([
                "install",
                "--silent",
                "@modelcontextprotocol/server-filesystem@2026.8.31",
            ])
            .current_dir(&dir)
            .status()?
            .success();
        anyhow::ensure!(
            ok,
            "npm install @modelcontextprotocol/server-filesystem failed"
        );
    }
    Ok(bin)
}

/// Writes into `dir` a one-step task whose MCP server is server-filesystem over `dir` (with a
/// small notes.txt in it), and returns the task file: the task of `bench prefill`'s step 1
/// and of `bench warm-start`.
pub fn filesystem_task(dir: &Path) -> anyhow::Result<PathBuf> {
    let server = install_server_filesystem()?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("notes.txt"), "milk, eggs, flour\n")?;
    let task = dir.join("task.md");
    std::fs::write(
        &task,
        format!(
            "---\ntools: []\nmax_steps: 1\nmcp_servers:\n  fs:\n    command: {}\n    args: [{}]\n    required: true\n---\nWhat is in notes.txt here?\n",
            server.display(),
            dir.display()
        ),
    )?;
    Ok(task)
}

/// Step 1 of a task with server-filesystem (all its tools), as `agent run` makes it: its
/// prompt, and agent's median time to the first token over `repeats` runs after a warm-up.
async fn first_step(
    backend: &Arc<MistralBackend>,
    repeats: usize,
) -> anyhow::Result<(String, usize, f64)> {
    let dir = std::env::temp_dir().join(format!("agent-bench-first-step-{}", std::process::id()));
    let task_path = filesystem_task(&dir)?;
    let task = Task::load(&task_path)?;
    let cfg = RunConfig::for_task(&task.front, &task, "bench".into(), 32, None);
    let mcp = toolset::mcp_config(&agent_home(), &[], Some(&task)).map_err(anyhow::Error::msg)?;
    let recorder = Arc::new(Recorder {
        inner: backend.clone(),
        steps: std::sync::Mutex::new(Vec::new()),
    });
    let mut secs = Vec::new();
    let mut seen = None;
    for _ in 0..=repeats {
        let mut tools = toolset::build(
            &task.front.tools_or_default(),
            &task.front.output_or_default(),
        )?;
        let pool = McpPool::start(&mcp, Hooks::default());
        toolset::wait_for_first_step(&pool, &cfg.tool_choice)
            .await
            .map_err(anyhow::Error::msg)?;
        tools.register_provider(pool.clone());
        let outcome = Agent::new(recorder.clone(), tools)
            .run_with(&cfg, &CancellationToken::new())
            .await;
        pool.shutdown().await;
        outcome?;
        let steps = recorder
            .steps
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let (prompt, stats) = steps
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("the run made no step"))?;
        secs.push(stats.prompt_secs);
        seen = Some((prompt, stats.prompt_tokens));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (prompt, tokens) = seen.ok_or_else(|| anyhow::anyhow!("no run"))?;
    Ok((prompt, tokens, median_after_warmup(secs)))
}
