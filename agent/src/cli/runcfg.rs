//! A run's settings from a task, shared by `agent run` and `agent serve`.

use agent::backend::Sampling;
use agent::mistral::Caches;
use agent::mistral::disk_cache::DiskCacheOptions;
use agent::planner::RunConfig;
use agent::task::{FrontMatter, OutputSpec, Task, ThinkingSpec};
use agent::thinking::ThinkingPolicy;

/// `top` over `base`, key by key: a key `top` sets wins.
pub fn overlay(base: FrontMatter, top: FrontMatter) -> FrontMatter {
    FrontMatter {
        model: top.model.or(base.model),
        device: top.device.or(base.device),
        isq: top.isq.or(base.isq),
        max_steps: top.max_steps.or(base.max_steps),
        tools: top.tools.or(base.tools),
        thinking: top.thinking.or(base.thinking),
        sampling: top.sampling.or(base.sampling),
        output: top.output.or(base.output),
        tool_choice: top.tool_choice.or(base.tool_choice),
        tool_format: top.tool_format.or(base.tool_format),
        mcp_servers: top.mcp_servers.or(base.mcp_servers),
        wasm_policy: top.wasm_policy.or(base.wasm_policy),
    }
}

/// The run configuration for `task` with settings `front`; `thinking` (the command line's)
/// wins over the front matter's.
pub fn run_config(
    front: &FrontMatter,
    task: &Task,
    run_id: String,
    max_tokens: usize,
    thinking: Option<&ThinkingSpec>,
) -> RunConfig {
    let s = front.sampling_or_default();
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
        // (about 3-4 characters a token in prose and code, so real arguments stay clear of it).
        max_string_chars: Some(max_tokens.saturating_mul(3)),
        // One call per turn, as the system prompt asks: a small model otherwise repeats calls
        // until the token limit cuts the last one.
        max_calls: Some(1),
        format: front.tool_format,
        thinking: ThinkingPolicy::Kinds(
            thinking
                .or(front.thinking.as_ref())
                .map(ThinkingSpec::policy)
                .unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_keys_win_and_absent_keys_fall_through() {
        let base = FrontMatter {
            max_steps: Some(4),
            tools: Some(vec!["wasm:text".parse().unwrap()]),
            ..FrontMatter::default()
        };
        let top = FrontMatter {
            max_steps: Some(9),
            ..FrontMatter::default()
        };
        let merged = overlay(base.clone(), top);
        assert_eq!(
            merged,
            FrontMatter {
                max_steps: Some(9),
                ..base
            }
        );
    }
}

/// `--disk-cache-mb`'s default: 4 GiB.
pub const DISK_CACHE_MIB: u64 = agent::mistral::disk_cache::DEFAULT_MAX_BYTES >> 20;

/// The prefix caches of `agent run` and `agent serve`: `memory` sequences, and the disk cache
/// bounded by `disk_mib` (0: none).
pub fn caches(memory: Option<usize>, disk_mib: u64) -> Caches {
    let disk = (disk_mib > 0).then(|| DiskCacheOptions {
        max_bytes: disk_mib << 20,
        ..DiskCacheOptions::standard()
    });
    Caches { memory, disk }
}
