//! `agent-bench warm-start`: what the on-disk prefix cache saves a task run again. Each
//! measurement is a real `agent run` process (this binary) on step 1 of a task with
//! server-filesystem (its system prompt, every tool's schema, the question): its time to the
//! first token (the step's `prompt_secs` in `--json`), and the whole process's wall time.
//!
//! Three runs per repeat, each repeat in a fresh `$AGENT_HOME` so that the cache starts
//! empty: with the cache off (`--disk-cache-mb 0`), the first run with it on (which computes
//! the prompt and writes it), and the same task again (which reads it). The model is passed
//! by path, so the fresh homes hold nothing but the cache and the runs' traces.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use agent::models::{self, ModelSource};

use crate::median;

/// One `agent run`: (prompt tokens, of them cached, time to the first token, wall time).
fn run_once(
    home: &Path,
    task: &Path,
    model: &Path,
    extra: &[&str],
) -> anyhow::Result<(u64, u64, f64, f64)> {
    let exe = crate::agent_exe()?;
    let started = Instant::now();
    let out = Command::new(exe)
        .arg("run")
        .arg(task)
        .args(["--json", "--max-tokens", "16", "--model"])
        .arg(model)
        .args(extra)
        .env("AGENT_HOME", home)
        .output()?;
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let step = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "model_output")
        .ok_or_else(|| {
            anyhow::anyhow!(
                "agent run made no step: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let number = |k: &str| step[k].as_f64().unwrap_or(f64::NAN);
    Ok((
        step["prompt_tokens"].as_u64().unwrap_or(0),
        step["cached_tokens"].as_u64().unwrap_or(0),
        number("prompt_secs"),
        wall,
    ))
}

pub async fn warm_start(file: Option<PathBuf>, repeats: usize) -> anyhow::Result<()> {
    let model = match file {
        Some(f) => f,
        None => {
            let m = models::resolve(models::DEFAULT_MODEL)?;
            let ModelSource::Gguf { file } = m.source else {
                anyhow::bail!("the default model is not a GGUF")
            };
            file
        }
    };
    let dir = std::env::temp_dir().join(format!("agent-bench-warm-{}", std::process::id()));
    let task = crate::prefill::filesystem_task(&dir)?;
    let (mut off, mut first, mut again) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = (0, 0);
    for i in 0..repeats.max(1) {
        let home = dir.join(format!("home-{i}"));
        std::fs::create_dir_all(&home)?;
        off.push(run_once(&home, &task, &model, &["--disk-cache-mb", "0"])?);
        first.push(run_once(&home, &task, &model, &[])?);
        let warm = run_once(&home, &task, &model, &[])?;
        tokens = (warm.0, warm.1);
        again.push(warm);
        let _ = std::fs::remove_dir_all(&home);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "step 1 of a task with server-filesystem, {name}, {} prompt tokens; each an `agent run` process, median of {}",
        tokens.0,
        repeats.max(1)
    );
    println!(
        "| run | prompt tokens from the disk cache | time to first token | process wall time |"
    );
    println!("|---|---|---|---|");
    for (label, runs) in [
        ("cache off (`--disk-cache-mb 0`)", &off),
        ("first run, cache on (computes and writes)", &first),
        ("the same task again", &again),
    ] {
        let cached = median(runs.iter().map(|r| r.1 as f64).collect());
        let ttft = median(runs.iter().map(|r| r.2).collect());
        let wall = median(runs.iter().map(|r| r.3).collect());
        println!("| {label} | {cached:.0} | {ttft:.3} s | {wall:.2} s |");
    }
    println!(
        "(the run again: {} of {} prompt tokens read from disk)",
        tokens.1, tokens.0
    );
    Ok(())
}
