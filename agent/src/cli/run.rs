//! `agent run TASK.md`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use agent::events::{JsonLines, StopReason, TraceWriter};
use agent::mistral::MistralBackend;
use agent::mistral::disk_cache::DiskCacheStats;
use agent::models::{self, agent_home};
use agent::planner::{Agent, RunConfig};
use agent::task::{Device, MAX_STEPS_RANGE, Task, ThinkingSpec};
use agent::toolbox::{Toolbox, ToolboxError, ToolboxSpec};
use agent::toolset;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::progress::ProgressLine;
use super::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED};

#[derive(Args)]
pub struct RunArgs {
    /// The task file.
    task: PathBuf,
    /// Model: a catalogue name (see `agent models`), a .gguf file or a model directory.
    #[arg(long)]
    model: Option<String>,
    /// Most steps before the run stops without an answer.
    #[arg(long, value_parser = clap::value_parser!(u32).range(*MAX_STEPS_RANGE.start() as i64..=*MAX_STEPS_RANGE.end() as i64))]
    max_steps: Option<u32>,
    /// Seed for sampling (with a temperature above 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the model runs.
    #[arg(long, value_parser = ["cpu", "cuda", "auto"])]
    device: Option<String>,
    /// Quantize a safetensors checkpoint while loading it (Q4K, Q5K, Q6K, Q8_0, …); overrides
    /// the task's `isq`.
    #[arg(long, value_parser = parse_isq)]
    isq: Option<String>,
    /// Never download: a catalogue model must already be on this machine (as HF_HUB_OFFLINE=1).
    #[arg(long)]
    offline: bool,
    /// Print one JSON event per line on stdout instead of the answer.
    #[arg(long)]
    json: bool,
    /// Write the trace here (default: $AGENT_HOME/runs/RUN_ID.jsonl).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Most tokens a step may write after its reasoning (its answer or call); a thinking
    /// budget comes on top of it.
    #[arg(long, default_value_t = agent::planner::DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Thinking budget for every step (`off`, `unlimited`, a token count), or per step kind
    /// (`{plan: 4096, act: off}`); overrides the task's `thinking`.
    #[arg(long, value_parser = parse_thinking)]
    thinking: Option<ThinkingSpec>,
    /// Stream the model's reasoning to stderr as it thinks.
    #[arg(long)]
    show_thinking: bool,
    /// MCP servers from a file in the `mcpServers` shape (Claude Desktop, Cursor); may be
    /// given more than once. `$AGENT_HOME/mcp.json` is read first when it exists, the task's
    /// `mcp_servers:` last.
    #[arg(long, value_name = "FILE")]
    mcp_config: Vec<PathBuf>,
    /// Bound (MiB) of the on-disk prefix cache in $AGENT_HOME/prefix-cache, which keeps the KV
    /// of long prompts (system prompt, tool schemas, task) so that the same task run again
    /// starts without prefilling them; 0 turns it off.
    #[arg(long, value_name = "MIB", default_value_t = super::runcfg::DISK_CACHE_MIB)]
    disk_cache_mb: u64,
}

/// `--show-thinking`: reasoning on stderr, one block per step.
struct ShowThinking {
    step: u32,
}

impl agent::events::Observer for ShowThinking {
    fn reasoning(&mut self, step: u32, text: &str) {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        if step != self.step {
            self.step = step;
            let _ = write!(err, "\n[thinking, step {step}]\n");
        }
        let _ = write!(err, "{text}");
        let _ = err.flush();
    }
}

/// `--thinking`, in the same syntax as the task file's `thinking:`.
fn parse_thinking(s: &str) -> Result<ThinkingSpec, String> {
    serde_yaml_ng::from_str(s).map_err(|e| format!("{e}"))
}

/// A sortable, readable run id: UTC time plus the process id.
pub(super) fn run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        std::process::id()
    )
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("agent: {msg}");
    ExitCode::from(code)
}

pub fn main(args: RunArgs) -> ExitCode {
    let mut task = match Task::load(&args.task) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_BAD_INPUT, e),
    };
    task.front
        .apply_overrides(args.model.clone(), args.max_steps, args.seed);
    let device = match args.device.as_deref() {
        Some("cpu") => Device::Cpu,
        Some("cuda") => Device::Cuda,
        Some(_) => Device::Auto,
        None => task.front.device_or_default(),
    };
    let registry = match toolset::build(
        &task.front.tools_or_default(),
        &task.front.output_or_default(),
    ) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_BAD_INPUT, format!("{}: {e}", task.path.display())),
    };
    let mcp = match toolset::mcp_config(&agent_home(), &args.mcp_config, Some(&task)) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_BAD_INPUT, e),
    };
    let hub = agent::hub::Hub::from_env(args.offline);
    let model = match models::resolve_with(task.front.model_or_default(), &hub) {
        Ok(mut m) => {
            m.isq = args.isq.clone().or_else(|| task.front.isq.clone());
            m
        }
        // Named where the model came from: the flag, the task's `model:` line, or the default.
        Err(e) => match (&args.model, &task.front.model) {
            (Some(flag), _) => return fail(EXIT_BAD_INPUT, format!("--model {flag}: {e}")),
            (None, Some(_)) => return fail(EXIT_BAD_INPUT, task.error_at("model", e.to_string())),
            (None, None) => return fail(EXIT_BAD_INPUT, e),
        },
    };
    let cfg = RunConfig::for_task(
        &task.front,
        &task,
        run_id(),
        args.max_tokens,
        args.thinking.as_ref(),
    );
    let trace_path = args.trace.clone().unwrap_or_else(|| {
        agent_home()
            .join("runs")
            .join(format!("{}.jsonl", cfg.run_id))
    });
    // Before anything starts: a run whose trace cannot be written fails at once, with nothing
    // (MCP servers, the model) to shut down.
    let trace = match TraceWriter::create(&trace_path) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                EXIT_FAILED,
                format!("cannot write trace {}: {e}", trace_path.display()),
            );
        }
    };
    let trace_failure = trace.failure();

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILED, format!("cannot start the async runtime: {e}")),
    };
    let spec = ToolboxSpec {
        registry,
        tools: task.front.tools_or_default(),
        wasm_policies: task.front.wasm_policy.clone().unwrap_or_default(),
        base: task
            .path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
        mcp,
        sampling_max_tokens: u32::try_from(args.max_tokens).unwrap_or(u32::MAX),
        wasm_cache: Some(toolset::wasm_cache_dir(&agent_home())),
    };
    let task_path = task.path.clone();
    rt.block_on(async move {
        let progress = (!args.json && std::io::stderr().is_terminal()).then(ProgressLine::new);
        if let Some(p) = &progress {
            p.message(format!("loading {}…", model.name));
        }
        // MCP servers start while the model loads; their events join the run's trace.
        let has_mcp = !spec.mcp.servers.is_empty();
        let mut toolbox = match Toolbox::start(spec).await {
            Ok(t) => t,
            Err(e @ ToolboxError::Config(_)) => {
                return fail(EXIT_BAD_INPUT, format!("{}: {e}", task_path.display()));
            }
            Err(e) => return fail(EXIT_FAILED, e),
        };
        let backend: Arc<MistralBackend> = match MistralBackend::load_with(
            &model,
            device,
            super::runcfg::caches(
                agent::mistral::Caches::standard().memory,
                args.disk_cache_mb,
            ),
        )
        .await
        {
            Ok(b) => Arc::new(b),
            Err(e) => {
                toolbox.shutdown().await;
                return fail(EXIT_FAILED, e);
            }
        };
        toolbox.use_model(backend.clone());
        if let Some(p) = &progress
            && has_mcp
        {
            p.message("starting MCP servers…");
        }
        if let Err(e) = toolbox.ready_for(&cfg.tool_choice).await {
            toolbox.shutdown().await;
            return fail(EXIT_FAILED, e);
        }
        let side_events = toolbox.take_events();
        let mut agent = Agent::new(backend.clone(), toolbox.registry().clone()).runner();
        if let Some(rx) = side_events {
            agent.side_events(rx);
        }
        agent.observe(Box::new(trace));
        if args.json {
            agent.observe(Box::new(JsonLines(std::io::stdout())));
        }
        if args.show_thinking {
            agent.observe(Box::new(ShowThinking { step: 0 }));
        }
        let shown = progress.is_some();
        if let Some(p) = progress {
            agent.observe(Box::new(p));
        }
        let cancel = CancellationToken::new();
        super::cancel_on_interrupt(cancel.clone());
        let outcome = agent.run(&cfg, &cancel).await;
        drop(agent); // clears the progress line before the answer is printed
        toolbox.shutdown().await;
        if shown {
            if let Some(line) = backend.disk_cache_stats().and_then(|s| disk_cache_line(&s)) {
                eprintln!("{line}");
            }
            eprintln!("trace: {}", trace_path.display());
        }
        // A trace that could not be written whole fails the run, answer or not: the trace is
        // the record a user (or `agent serve`'s resources) goes back to.
        if let Some(e) = trace_failure.get() {
            if let Ok(o) = &outcome
                && o.stop == StopReason::Answer
                && !args.json
            {
                println!("{}", o.answer_text().unwrap_or_default());
            }
            return fail(
                EXIT_FAILED,
                format!("the trace {} is incomplete: {e}", trace_path.display()),
            );
        }
        match outcome {
            Err(e) => fail(
                EXIT_FAILED,
                format!("{e} (trace: {})", trace_path.display()),
            ),
            Ok(o) => match o.stop {
                StopReason::Answer => {
                    if !args.json {
                        println!("{}", o.answer_text().unwrap_or_default());
                    }
                    ExitCode::SUCCESS
                }
                StopReason::MaxSteps => fail(
                    EXIT_FAILED,
                    format!(
                        "no final answer after {} steps (trace: {})",
                        o.steps,
                        trace_path.display()
                    ),
                ),
                StopReason::Error => fail(
                    EXIT_FAILED,
                    format!(
                        "the run failed at step {} (trace: {})",
                        o.steps,
                        trace_path.display()
                    ),
                ),
                StopReason::Cancelled => fail(
                    EXIT_INTERRUPTED,
                    format!(
                        "interrupted at step {} (trace: {})",
                        o.steps,
                        trace_path.display()
                    ),
                ),
            },
        }
    })
}

/// What the on-disk prefix cache did in this run, for stderr (nothing when it did nothing).
fn disk_cache_line(s: &DiskCacheStats) -> Option<String> {
    let mut parts = Vec::new();
    if s.hits > 0 {
        parts.push(format!("{} prompt tokens read from disk", s.tokens_reused));
    }
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if s.saved > 0 {
        parts.push(format!(
            "{} kept for the next run",
            plural(s.saved, "prompt", "prompts")
        ));
    }
    if s.rejected > 0 {
        parts.push(format!(
            "{} deleted",
            plural(s.rejected, "damaged entry", "damaged entries")
        ));
    }
    (!parts.is_empty()).then(|| format!("prefix cache: {}", parts.join(", ")))
}

/// `--isq`: an ISQ type mistral.rs accepts.
fn parse_isq(s: &str) -> Result<String, String> {
    if models::is_isq(s) {
        Ok(s.to_string())
    } else {
        Err("expected an ISQ type: Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, HQQ4, HQQ8, F8E4M3".into())
    }
}
