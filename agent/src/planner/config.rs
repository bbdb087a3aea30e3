//! A run's settings, and how a task file's front matter becomes them: one function for
//! `agent run`, `agent serve` and programs, so they share every default.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_tools::permissions::{HookSpecs, Permissions};
use serde_json::Value;

use crate::backend::Sampling;
use crate::formats::Format;
use crate::formats::ToolChoice;
use crate::task::{FrontMatter, OutputSpec, Task, ThinkingSpec};
use crate::thinking::ThinkingPolicy;

/// Most tokens a step may write after its reasoning, unless told otherwise (`--max-tokens`).
pub const DEFAULT_MAX_TOKENS: usize = 1024;

/// The settings of one run. [`RunConfig::for_task`] makes them from a task file;
/// `Default` is a task file with instructions only.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// The run's id, in the trace's `run_started` event (see [`new_run_id`]).
    pub run_id: String,
    /// Shown in the trace (the task file, or `<inline>`).
    pub task_name: String,
    /// The task, sent to the model as the run's user message.
    pub instructions: String,
    /// The most model turns in the run (`max_steps` in a task file).
    pub max_steps: u32,
    /// How each step's tokens are drawn (`sampling` in a task file).
    pub sampling: Sampling,
    /// JSON Schema the final answer must satisfy; free text when `None`.
    pub output_schema: Option<Value>,
    /// Cap on generated tokens per step.
    pub max_tokens_per_step: usize,
    /// Which calls a step may make; on the last step only `final_answer` is left.
    pub tool_choice: ToolChoice,
    /// Constrain calls by a grammar built from the tools' schemas (see [`lark`](crate::formats::lark)):
    /// a call, once opened, cannot be malformed or invalid.
    pub constrain_calls: bool,
    /// Grammar bounds (see [`GrammarOptions`](crate::formats::GrammarOptions)): the characters of a free string argument, and
    /// the calls in one turn.
    pub max_string_chars: Option<usize>,
    /// The most calls in one turn (`None`: any number).
    pub max_calls: Option<usize>,
    /// The tool-call format, when not the model family's (`tool_format` in a task file).
    pub format: Option<Format>,
    /// Each step's thinking budget.
    pub thinking: ThinkingPolicy,
    /// The most bytes of one tool result the prompt holds (`max_result_bytes`; `None`:
    /// [`results::DEFAULT_RESULT_BYTES`](super::results::DEFAULT_RESULT_BYTES)).
    pub max_result_bytes: Option<usize>,
    /// The most tokens of one tool result the prompt holds (`max_result_tokens`; `None`: an
    /// eighth of the context window, see
    /// [`default_result_tokens`](super::results::default_result_tokens)).
    pub max_result_tokens: Option<usize>,
    /// Where whole results that were cut are written (`result-ID.txt`); `None`: kept in
    /// memory only.
    pub results_dir: Option<std::path::PathBuf>,
    /// Compact the conversation when the next prompt would fill this fraction of the context
    /// window (`compact_at`); `None`: never (`compact: false`), the run stops at the window.
    pub compact_at: Option<f64>,
    /// How many identical calls or replies are a loop (`loop_repeats`, at least 2).
    pub loop_repeats: u32,
    /// How many of one turn's calls run at once (`parallel_calls`, at least 1).
    pub parallel_calls: usize,
    /// The most time the run may take (`time_limit`).
    pub time_limit: Option<Duration>,
    /// The most time one tool call may take (`tool_timeout`).
    pub tool_timeout: Option<Duration>,
    /// How the run was set up, recorded in its `run_started` event so that `agent resume`
    /// can set it up again ([`Agent::config`](super::Agent::config) records the agent's
    /// front matter, base folder and token limit); the run itself does not read it.
    pub settings: Option<serde_json::Value>,
    /// Which calls run (`permissions`: rules, annotations, the default).
    pub permissions: Permissions,
    /// Commands run before and after calls and at the end (`hooks`).
    pub hooks: HookSpecs,
    /// The run's trace file, told to hooks.
    pub trace: Option<std::path::PathBuf>,
}

impl RunConfig {
    /// The settings of `task` under `front` (the task's own front matter, or it overlaid on a
    /// server's defaults, see [`FrontMatter::overlay`]), with every default a key leaves
    /// open. `thinking`, when given (a command line's), wins over the front matter's.
    pub fn for_task(
        front: &FrontMatter,
        task: &Task,
        run_id: String,
        max_tokens: usize,
        thinking: Option<&ThinkingSpec>,
    ) -> RunConfig {
        let s = front.sampling_or_default();
        let limits = &front.limits;
        RunConfig {
            run_id,
            task_name: task.path.display().to_string(),
            instructions: task.instructions.clone(),
            max_steps: front.max_steps_or_default(),
            sampling: Sampling {
                temperature: s.temperature,
                top_p: s.top_p,
                top_k: s.top_k,
                seed: s.seed,
            },
            output_schema: match front.output_or_default() {
                OutputSpec::Text => None,
                OutputSpec::Schema(v) => Some(v),
            },
            max_tokens_per_step: max_tokens,
            tool_choice: front.tool_choice_or_default(),
            constrain_calls: true,
            // A string that rambles on (small models do) ends before it could outgrow the step
            // (about 3-4 characters a token in prose and code, so real arguments stay clear of
            // it).
            max_string_chars: Some(max_tokens.saturating_mul(3)),
            // One call per turn unless the task allows more (the system prompt says which): a
            // small model otherwise repeats calls until the token limit cuts the last one.
            max_calls: Some(to_usize(u64::from(limits.max_calls_or_default()))),
            format: front.tool_format,
            thinking: ThinkingPolicy::Kinds(
                thinking
                    .or(front.thinking.as_ref())
                    .map(ThinkingSpec::policy)
                    .unwrap_or_default(),
            ),
            max_result_bytes: limits.max_result_bytes.map(to_usize),
            max_result_tokens: limits.max_result_tokens.map(to_usize),
            results_dir: None,
            compact_at: limits.compact_at_or_default(),
            loop_repeats: limits.loop_repeats_or_default(),
            parallel_calls: to_usize(u64::from(limits.parallel_calls_or_default())),
            time_limit: limits.time_limit(),
            tool_timeout: limits.tool_timeout(),
            settings: None,
            permissions: front.permissions.clone().unwrap_or_default(),
            hooks: front.hooks.clone().unwrap_or_default(),
            trace: None,
        }
    }
}

impl Default for RunConfig {
    /// A task file with instructions only: the defaults of every front-matter key.
    fn default() -> Self {
        RunConfig::for_task(
            &FrontMatter::default(),
            &Task::from_instructions(""),
            String::new(),
            DEFAULT_MAX_TOKENS,
            None,
        )
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A sortable, readable run id: UTC time plus the process id, and a count after the first
/// run of the process (two runs can start in one second).
pub fn new_run_id() -> String {
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
    let id = format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        std::process::id()
    );
    match RUNS.fetch_add(1, Ordering::Relaxed) {
        0 => id,
        n => format!("{id}-{}", n + 1),
    }
}

/// Run ids given out by this process.
static RUNS: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_task_file_without_settings() {
        let task = Task::parse_inline("---\n---\nAdd 2 and 3.").unwrap();
        let cfg = RunConfig::for_task(&task.front, &task, "r1".into(), DEFAULT_MAX_TOKENS, None);
        assert_eq!(
            cfg,
            RunConfig {
                run_id: "r1".into(),
                task_name: task.path.display().to_string(),
                instructions: "Add 2 and 3.".into(),
                ..RunConfig::default()
            }
        );
    }
}
