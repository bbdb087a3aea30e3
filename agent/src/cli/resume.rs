//! `agent resume RUN_ID|TRACE`: an interrupted or step-limited run goes on from its trace,
//! with the settings it recorded (a few flags may change them), appending to the same trace.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent::models::agent_home;
use agent::planner::resume::ResumePoint;
use agent::task::{FrontMatter, INLINE_PATH, MAX_STEPS_RANGE, Task};
use clap::Args;

use super::EXIT_BAD_INPUT;
use super::run::{RunArgs, execute, fail, parse_seconds};

#[derive(Args)]
pub struct ResumeArgs {
    /// The run: its id (its trace is $AGENT_HOME/runs/RUN_ID.jsonl) or its trace file.
    run: String,
    /// Most steps in all, the earlier ones included (to give a step-limited run more).
    #[arg(long, value_parser = clap::value_parser!(u32).range(*MAX_STEPS_RANGE.start() as i64..=*MAX_STEPS_RANGE.end() as i64))]
    max_steps: Option<u32>,
    /// The most time the resumed run may take (90s, 30m, 2h).
    #[arg(long, value_parser = parse_seconds, value_name = "DURATION")]
    time_limit: Option<u64>,
    /// The most time one tool call may take (90s, 5m).
    #[arg(long, value_parser = parse_seconds, value_name = "DURATION")]
    tool_timeout: Option<u64>,
    /// Never download (as HF_HUB_OFFLINE=1).
    #[arg(long)]
    offline: bool,
    /// Print one JSON event per line on stdout instead of the answer.
    #[arg(long)]
    json: bool,
    /// Stream the model's reasoning to stderr as it thinks.
    #[arg(long)]
    show_thinking: bool,
    /// MCP servers from a file in the `mcpServers` shape, as given to `agent run` (the task's
    /// own `mcp_servers:` are in the trace).
    #[arg(long, value_name = "FILE")]
    mcp_config: Vec<PathBuf>,
    /// Bound (MiB) of the on-disk prefix cache; 0 turns it off.
    #[arg(long, value_name = "MIB", default_value_t = agent::builder::DISK_CACHE_MIB)]
    disk_cache_mb: u64,
    /// Answer yes to every call the permissions would ask about.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// The trace `run` names: a file, or a run id under `$AGENT_HOME/runs`.
fn trace_of(run: &str) -> PathBuf {
    let path = Path::new(run);
    if path.is_file() {
        path.to_path_buf()
    } else {
        agent_home().join("runs").join(format!("{run}.jsonl"))
    }
}

/// The task as the run recorded it: its settings (flags applied), its folder, its token limit.
fn recorded_task(point: &ResumePoint) -> Result<(Task, usize), String> {
    let settings = point
        .settings
        .as_ref()
        .ok_or("the run did not record its settings (a program's run: resume it in the program)")?;
    // Read through the task file's checks.
    let front: FrontMatter = serde_json::from_value(settings["front"].clone())
        .map_err(|e| format!("its recorded settings: {e}"))?;
    let base = settings["base"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_default();
    let max_tokens = settings["max_tokens"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(agent::planner::DEFAULT_MAX_TOKENS);
    // Relative paths in the settings resolve from the task's folder, wherever this runs.
    let name = Path::new(&point.task)
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(INLINE_PATH));
    let task = Task {
        path: base.join(name),
        // The conversation holds the task; the resumed run does not send it again.
        instructions: String::new(),
        front,
        key_lines: Default::default(),
    };
    Ok((task, max_tokens))
}

pub fn main(args: ResumeArgs) -> ExitCode {
    let trace = trace_of(&args.run);
    let text = match std::fs::read_to_string(&trace) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_BAD_INPUT, format!("{}: {e}", trace.display())),
    };
    let point = match ResumePoint::from_trace(&text) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_BAD_INPUT, format!("{}: {e}", trace.display())),
    };
    let (task, max_tokens) = match recorded_task(&point) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_BAD_INPUT, format!("{}: {e}", trace.display())),
    };
    eprintln!(
        "agent: resuming {} after step {}",
        point.run_id, point.checkpoint.step
    );
    let run = RunArgs {
        task: task.path.clone(),
        model: None,
        max_steps: args.max_steps,
        max_result_bytes: None,
        max_result_tokens: None,
        time_limit: args.time_limit,
        tool_timeout: args.tool_timeout,
        seed: None,
        device: None,
        isq: None,
        offline: args.offline,
        json: args.json,
        trace: Some(trace),
        max_tokens,
        thinking: None,
        show_thinking: args.show_thinking,
        mcp_config: args.mcp_config,
        disk_cache_mb: args.disk_cache_mb,
        yes: args.yes,
    };
    execute(run, task, Some(point))
}
