//! `agent run TASK.md`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::Device;
use agent::backend::DiskCacheStats;
use agent::events::{Event, JsonLines, Observer, StopReason, TraceWriter, Usage};
use agent::models::{self, agent_home};
use agent::permissions::Yes;
use agent::planner::resume::ResumePoint;
use agent::task::{
    MAX_RESULT_BYTES_RANGE, MAX_RESULT_TOKENS_RANGE, MAX_STEPS_RANGE, SECONDS_RANGE, Sampling,
    Task, ThinkingSpec, parse_duration, project_settings, with_settings,
};
use agent::{Agent, BuildError, RunConfig};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::approve::Terminal;
use super::progress::ProgressLine;
use super::{EXIT_BAD_INPUT, EXIT_FAILED};

#[derive(Args)]
pub struct RunArgs {
    /// The task file.
    pub(super) task: PathBuf,
    /// Model: a catalogue name (see `agent models`), a .gguf file or a model directory.
    #[arg(long)]
    pub(super) model: Option<String>,
    /// Most steps before the run stops without an answer.
    #[arg(long, value_parser = clap::value_parser!(u32).range(*MAX_STEPS_RANGE.start() as i64..=*MAX_STEPS_RANGE.end() as i64))]
    pub(super) max_steps: Option<u32>,
    /// The most bytes of one tool result the prompt holds; overrides the task's
    /// `max_result_bytes`.
    #[arg(long, value_parser = clap::value_parser!(u64).range(*MAX_RESULT_BYTES_RANGE.start()..=*MAX_RESULT_BYTES_RANGE.end()))]
    pub(super) max_result_bytes: Option<u64>,
    /// The most tokens of one tool result the prompt holds; overrides the task's
    /// `max_result_tokens`.
    #[arg(long, value_parser = clap::value_parser!(u64).range(*MAX_RESULT_TOKENS_RANGE.start()..=*MAX_RESULT_TOKENS_RANGE.end()))]
    pub(super) max_result_tokens: Option<u64>,
    /// The most time the run may take (90s, 30m, 2h); overrides the task's `time_limit`.
    #[arg(long, value_parser = parse_seconds, value_name = "DURATION")]
    pub(super) time_limit: Option<u64>,
    /// The most time one tool call may take (90s, 5m); overrides the task's `tool_timeout`.
    #[arg(long, value_parser = parse_seconds, value_name = "DURATION")]
    pub(super) tool_timeout: Option<u64>,
    /// Seed for sampling (with a temperature above 0).
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Where the model runs: cpu, cuda or auto.
    #[arg(long)]
    pub(super) device: Option<Device>,
    /// Quantize a safetensors checkpoint while loading it (Q4K, Q5K, Q6K, Q8_0, …); overrides
    /// the task's `isq`.
    #[arg(long, value_parser = parse_isq)]
    pub(super) isq: Option<String>,
    /// Never download: a catalogue model must already be on this machine (as HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub(super) offline: bool,
    /// Print one JSON event per line on stdout instead of the answer.
    #[arg(long)]
    pub(super) json: bool,
    /// Write the trace here (default: $AGENT_HOME/runs/RUN_ID.jsonl).
    #[arg(long)]
    pub(super) trace: Option<PathBuf>,
    /// Most tokens a step may write after its reasoning (its answer or call); a thinking
    /// budget comes on top of it.
    #[arg(long, default_value_t = agent::planner::DEFAULT_MAX_TOKENS)]
    pub(super) max_tokens: usize,
    /// Thinking budget for every step (`off`, `unlimited`, a token count), or per step kind
    /// (`{plan: 4096, act: off}`); overrides the task's `thinking`.
    #[arg(long, value_parser = parse_thinking)]
    pub(super) thinking: Option<ThinkingSpec>,
    /// Stream the model's reasoning to stderr as it thinks.
    #[arg(long)]
    pub(super) show_thinking: bool,
    /// MCP servers from a file in the `mcpServers` shape (Claude Desktop, Cursor); may be
    /// given more than once. `$AGENT_HOME/mcp.json` is read first when it exists, the task's
    /// `mcp_servers:` last.
    #[arg(long, value_name = "FILE")]
    pub(super) mcp_config: Vec<PathBuf>,
    /// Bound (MiB) of the on-disk prefix cache in $AGENT_HOME/prefix-cache, which keeps the KV
    /// of long prompts (system prompt, tool schemas, task) so that the same task run again
    /// starts without prefilling them; 0 turns it off.
    #[arg(long, value_name = "MIB", default_value_t = agent::builder::DISK_CACHE_MIB)]
    pub(super) disk_cache_mb: u64,
    /// Answer yes to every call the permissions would ask about (deny rules and hooks still
    /// hold). Without it, such calls are asked about on a terminal and refused elsewhere.
    #[arg(long, short = 'y')]
    pub(super) yes: bool,
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

/// `--time-limit`, `--tool-timeout`: a task file's durations.
pub(super) fn parse_seconds(s: &str) -> Result<u64, String> {
    let secs = parse_duration(s).ok_or_else(|| {
        format!("{s:?} is not a duration: seconds, or a number with s, m or h (90s, 5m, 2h)")
    })?;
    if SECONDS_RANGE.contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "{secs} seconds is out of range: must be between {} and {}",
            SECONDS_RANGE.start(),
            SECONDS_RANGE.end()
        ))
    }
}

/// `--thinking`, in the same syntax as the task file's `thinking:`.
fn parse_thinking(s: &str) -> Result<ThinkingSpec, String> {
    serde_yaml_ng::from_str(s).map_err(|e| format!("{e}"))
}

pub(super) fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("agent: {msg}");
    ExitCode::from(code)
}

pub fn main(args: RunArgs) -> ExitCode {
    let task = match Task::load(&args.task) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_BAD_INPUT, e),
    };
    execute(args, task, None)
}

/// Runs `task` under `args`'s flags (`args.task` is not read again); with `resume`, the run
/// goes on from that point of an earlier one, under its id, appending to its trace.
pub(super) fn execute(args: RunArgs, mut task: Task, resume: Option<ResumePoint>) -> ExitCode {
    // The user's and the project's settings under the task's own (a resumed run's recorded
    // settings have them already).
    let here = std::env::current_dir().unwrap_or_default();
    if resume.is_none() {
        task.front = match with_settings(std::mem::take(&mut task.front), &here) {
            Ok(f) => f,
            Err(e) => return fail(EXIT_BAD_INPUT, e),
        };
    }
    // The flags win over the task file.
    let mut builder = Agent::builder()
        .task(&task)
        .offline(args.offline)
        .max_tokens(args.max_tokens)
        .disk_cache_mib(args.disk_cache_mb);
    if let Some(m) = &args.model {
        builder = builder.model(m);
    }
    if let Some(n) = args.max_steps {
        builder = builder.max_steps(n);
    }
    if let Some(n) = args.max_result_bytes {
        builder = builder.max_result_bytes(n);
    }
    if let Some(n) = args.max_result_tokens {
        builder = builder.max_result_tokens(n);
    }
    if let Some(s) = args.time_limit {
        builder = builder.time_limit(Duration::from_secs(s));
    }
    if let Some(s) = args.tool_timeout {
        builder = builder.tool_timeout(Duration::from_secs(s));
    }
    if let Some(seed) = args.seed {
        let sampling = task.front.sampling.clone().unwrap_or_default();
        builder = builder.sampling(Sampling {
            seed: Some(seed),
            ..sampling
        });
    }
    if let Some(d) = args.device {
        builder = builder.device(d);
    }
    if let Some(q) = &args.isq {
        builder = builder.isq(q);
    }
    if let Some(t) = &args.thinking {
        builder = builder.thinking(t.clone());
    }
    for f in &args.mcp_config {
        builder = builder.mcp_config(f);
    }
    let settings = project_settings(&here);
    builder = builder.remember_in(&settings);
    let run_id = resume
        .as_ref()
        .map_or_else(agent::planner::new_run_id, |p| p.run_id.clone());
    let trace_path = args
        .trace
        .clone()
        .unwrap_or_else(|| agent_home().join("runs").join(format!("{run_id}.jsonl")));
    // Before anything starts: a run whose trace cannot be written fails at once, with nothing
    // (MCP servers, the model) to shut down.
    let mut trace = match TraceWriter::create(&trace_path) {
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
    let code = rt.block_on(async move {
        let progress = (!args.json && std::io::stderr().is_terminal()).then(ProgressLine::new);
        if let Some(p) = &progress {
            builder = builder.on_status(p.status());
        }
        if args.yes {
            builder = builder.approver(Yes);
        } else if let Some(t) = Terminal::detect(settings, progress.as_ref().map(|p| p.bar())) {
            builder = builder.approver(t);
        }
        // From here on a signal ends the run cleanly: while the model loads and the MCP
        // servers start (dropping the build stops them, process groups and all), or later.
        let cancel = CancellationToken::new();
        let signals = super::Interrupts::install(cancel.clone());
        let started = std::time::Instant::now();
        let built = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            built = builder.build() => Some(built),
        };
        let Some(built) = built else {
            drop(progress);
            trace.event(&Event::Final {
                answer: serde_json::Value::Null,
                text: String::new(),
                steps: 0,
                stop: StopReason::Cancelled,
                usage: Usage::default(),
                elapsed_secs: started.elapsed().as_secs_f64(),
            });
            if let Some(e) = trace_failure.get() {
                return fail(
                    EXIT_FAILED,
                    format!("the trace {} is incomplete: {e}", trace_path.display()),
                );
            }
            return fail(
                signals.exit_code(),
                format!(
                    "interrupted while starting (trace: {})",
                    trace_path.display()
                ),
            );
        };
        let agent = match built {
            Ok(a) => a,
            Err(BuildError::Model(e)) if args.model.is_some() => {
                return fail(
                    EXIT_BAD_INPUT,
                    format!("--model {}: {e}", args.model.unwrap_or_default()),
                );
            }
            Err(BuildError::Tools(e)) => {
                return fail(EXIT_BAD_INPUT, format!("{}: {e}", task.path.display()));
            }
            Err(e) if e.is_bad_input() => return fail(EXIT_BAD_INPUT, e),
            Err(e) => return fail(EXIT_FAILED, e),
        };
        let cfg = RunConfig {
            run_id,
            task_name: task.path.display().to_string(),
            // Beside the trace: RUN_ID.results/result-N.txt.
            results_dir: Some(trace_path.with_extension("results")),
            trace: Some(trace_path.clone()),
            ..agent.config(task.instructions.clone())
        };
        let mut run = agent.runner();
        if let Some(point) = resume {
            run.resume(point);
        }
        run.observe(Box::new(trace));
        if args.json {
            run.observe(Box::new(JsonLines(std::io::stdout())));
        }
        if args.show_thinking {
            run.observe(Box::new(ShowThinking { step: 0 }));
        }
        let shown = progress.is_some();
        if let Some(p) = progress {
            run.observe(Box::new(p));
        }
        // The run ends with its observers, which clears the progress line before the answer
        // is printed.
        let outcome = run.run(&cfg, &cancel).await;
        agent.shutdown().await;
        if shown {
            if let Some(line) = agent
                .backend()
                .disk_cache_stats()
                .and_then(|s| disk_cache_line(&s))
            {
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
                StopReason::Cancelled => fail(
                    signals.exit_code(),
                    format!(
                        "{} (trace: {})",
                        o.stop.describe(o.steps),
                        trace_path.display()
                    ),
                ),
                other => fail(
                    EXIT_FAILED,
                    format!(
                        "{} (trace: {})",
                        other.describe(o.steps),
                        trace_path.display()
                    ),
                ),
            },
        }
    });
    // A run interrupted while the model loads leaves the load on a blocking thread: do not
    // wait for it (the MCP servers went with the build's tasks).
    rt.shutdown_timeout(Duration::from_secs(2));
    code
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
