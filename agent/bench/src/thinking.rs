//! `agent-bench thinking`: what thinking budgets cost and save, with the tiny random-weight
//! Qwen3-MoE (the only thinking model that installs here; it never closes `</think>` itself).
//! - Decode tokens/s of one long reasoning block, the same number of tokens in each case:
//!   untracked (as with no budget), counted with the cap at the very end, and capped halfway
//!   (the early-stop text forced, then the answer's tokens).
//! - Forcing the early-stop text inside one generation against a second completion.
//! - A 4-step run through the planner (`agent run`, same task, greedy) with the same budget on
//!   every step (256) against `{plan: 64, act: off, recover: off, answer: off}`: wall time and
//!   tokens. (Not `unlimited`: the random model never closes its block, so an unlimited step
//!   reasons until the context window is full.)

use std::process::Command;
use std::time::Instant;

use agent::backend::{Backend, GenRequest, ThinkLimit};
use agent::mistral::MistralBackend;
use agent::models;
use agent::prompt::{self, Message};
use agent::{Budget, Device};
use anyhow::bail;

use crate::decode::greedy_request;
use crate::median_after_warmup;

pub async fn thinking(tokens: usize, repeats: usize) -> anyhow::Result<()> {
    let m = models::resolve("qwen3-moe-tiny")?;
    let backend = MistralBackend::load(&m, Device::Cpu).await?;
    let plan = agent::thinking::plan(&m.family, Budget::Tokens(1));
    let mut p = prompt::render(
        &m.family,
        &m.template,
        &[Message::user("Think about the primes below 100.")],
        &[],
        plan.render,
    )?;
    p.push_str(plan.prefill);
    println!(
        "qwen3-moe-tiny (random weights), CPU, {tokens} tokens greedy from an open think block, median of {repeats}"
    );
    println!(
        "{:<40} {:>8} {:>10} {:>10}",
        "budget control", "tok/s", "thinking", "vs none"
    );
    // Every row decodes `tokens` tokens in all, so that the rates compare like with like. The
    // random model never closes its block, so a counted block needs a cap to end at all (an
    // uncapped one runs to the context window): the "counted" row caps it where the
    // generation ends anyway, so the count is checked on every token and the cap costs only
    // the early-stop text at the very end.
    let stop_len = backend.tokenize(agent::backend::EARLY_STOP).await?.len();
    if tokens < 2 * stop_len + 2 {
        bail!(
            "--tokens must be at least {} (twice the early-stop text, plus two)",
            2 * stop_len + 2
        );
    }
    let mut base = None;
    for (label, limit, answer) in [
        (
            "no budget (block not tracked)",
            ThinkLimit::default(),
            tokens,
        ),
        (
            "counted, capped at the end",
            ThinkLimit {
                opened: true,
                cap: Some(tokens - stop_len),
            },
            0,
        ),
        (
            "capped at half the tokens",
            ThinkLimit {
                opened: true,
                cap: Some(tokens / 2),
            },
            tokens - tokens / 2 - stop_len,
        ),
    ] {
        let mut rates = Vec::new();
        let mut used = 0;
        for _ in 0..repeats + 1 {
            let req = GenRequest {
                think: limit,
                ..greedy_request(&p, answer)
            };
            let mut sink = |_: &str| {};
            let out = backend.generate(req, &mut sink).await?;
            if out.stats.completion_tokens != tokens {
                bail!(
                    "{label}: decoded {} tokens, not {tokens}",
                    out.stats.completion_tokens
                );
            }
            used = out.thinking.tokens;
            rates.push(out.stats.decode_tokens_per_sec());
        }
        let rate = median_after_warmup(rates);
        let ratio = base.map_or(1.0, |b: f64| rate / b);
        base.get_or_insert(rate);
        println!("{label:<40} {rate:>8.1} {used:>10} {ratio:>9.2}x");
    }
    two_ways(&backend, &p, stop_len, tokens / 2, tokens / 4, repeats).await?;
    multi_step()
}

/// The two ways to end a reasoning block at its budget, timed on the same prompt: forcing the
/// early-stop tokens inside one generation (what agent does), or stopping the generation at
/// the budget and sending a second completion of prompt + reasoning + early-stop text, which
/// the prefix cache mostly serves. `stop_len`: the early-stop text's tokens; `after`: tokens
/// generated after the block.
async fn two_ways(
    backend: &MistralBackend,
    p: &str,
    stop_len: usize,
    cap: usize,
    after: usize,
    repeats: usize,
) -> anyhow::Result<()> {
    println!(
        "\nending a {cap}-token reasoning block, then {after} more tokens; median of {repeats} (seconds)"
    );
    println!("{:<52} {:>8} {:>10}", "method", "seconds", "vs forced");
    let mut forced = Vec::new();
    let mut second = Vec::new();
    for _ in 0..repeats + 1 {
        let mut sink = |_: &str| {};
        let t = Instant::now();
        let req = GenRequest {
            think: ThinkLimit {
                opened: true,
                cap: Some(cap),
            },
            // `max_tokens` counts what comes after the block: the capped reasoning and the
            // early-stop text come on top, so both methods decode the same tokens.
            ..greedy_request(p, after)
        };
        let out = backend.generate(req, &mut sink).await?;
        forced.push(t.elapsed().as_secs_f64());
        if out.stats.completion_tokens != cap + stop_len + after {
            bail!(
                "the forced generation decoded {} tokens, not {}",
                out.stats.completion_tokens,
                cap + stop_len + after
            );
        }

        let t = Instant::now();
        let req = GenRequest {
            stop: vec!["</think>".into()],
            ..greedy_request(p, cap)
        };
        let first = backend.generate(req, &mut sink).await?;
        let p2 = format!("{p}{}{}", first.text, agent::backend::EARLY_STOP);
        let req = greedy_request(&p2, after);
        backend.generate(req, &mut sink).await?;
        second.push(t.elapsed().as_secs_f64());
    }
    let (f, s) = (median_after_warmup(forced), median_after_warmup(second));
    println!(
        "{:<52} {f:>8.2} {:>9.2}x",
        "forced inside one generation (agent)", 1.0
    );
    println!(
        "{:<52} {s:>8.2} {:>9.2}x",
        "stop at the budget, second completion (prefix cache)",
        s / f
    );
    Ok(())
}

/// Runs `agent run` twice on the same 4-step task, once per policy.
fn multi_step() -> anyhow::Result<()> {
    let exe = crate::agent_exe()?;
    let dir = std::env::temp_dir().join(format!("agent-bench-thinking-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let task = dir.join("task.md");
    std::fs::write(
        &task,
        "---\ntool_choice: required\nmax_steps: 4\n---\nWhat is 17 * 23? Use the calculator.\n",
    )?;
    println!(
        "\n4-step run (`agent run`, tool_choice: required, --max-tokens 256), wall time including model load"
    );
    println!(
        "{:<48} {:>8} {:>16} {:>10}",
        "policy", "seconds", "thinking tokens", "steps"
    );
    for policy in ["256", "{plan: 64, act: off, recover: off, answer: off}"] {
        let started = Instant::now();
        let out = Command::new(&exe)
            .args([
                "run",
                &task.to_string_lossy(),
                "--model",
                "qwen3-moe-tiny",
                "--json",
                "--max-tokens",
                "256",
                "--thinking",
                policy,
            ])
            .output()?;
        let secs = started.elapsed().as_secs_f64();
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.is_empty() {
            bail!(
                "agent run printed no events: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let thinking: u64 = events
            .iter()
            .filter(|e| e["event"] == "model_output")
            .filter_map(|e| e["thinking_tokens"].as_u64())
            .sum();
        let steps = events
            .iter()
            .filter(|e| e["event"] == "step_started")
            .count();
        println!("{policy:<48} {secs:>8.1} {thinking:>16} {steps:>10}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
