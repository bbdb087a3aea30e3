//! `agent-bench long-run`: prompt time per step of a long run (SmolLM2, 8k window, the
//! reference filesystem MCP server reading 50 KB files each step) with compaction, against
//! the same run without it, which stops when the next prompt would not fit. Also the
//! prefix-cache hit rate of the step after each compaction (the system prompt, tools and task
//! are kept, so their tokens should come from the cache).

use std::path::Path;
use std::process::Command;

use agent::models::agent_home;
use anyhow::{Context, bail};
use serde_json::Value;

/// One run's figures, from its `--json` events.
struct Figures {
    steps: usize,
    stop: String,
    prompt_secs: Vec<f64>,
    prompt_tokens: Vec<u64>,
    cached: Vec<u64>,
    compactions: Vec<(usize, f64)>,
    wall: f64,
}

fn write_files(dir: &Path) -> anyhow::Result<()> {
    for n in 1..=40 {
        let mut text = String::new();
        let mut line = 0;
        while text.len() < 50_000 {
            line += 1;
            text.push_str(&format!(
                "part {n:02}, line {line:04}: the survey counted boats in the harbour at dawn\n"
            ));
        }
        text.push_str(&format!(
            "End of part{n:02}.txt. The next file is part{:02}.txt.\n",
            n + 1
        ));
        std::fs::write(dir.join(format!("part{n:02}.txt")), text)?;
    }
    Ok(())
}

fn run(dir: &Path, steps: u32, compact: bool) -> anyhow::Result<Figures> {
    let fs = agent_home().join("fixtures/mcp-servers/node_modules/.bin/mcp-server-filesystem");
    if !fs.is_file() {
        bail!("{} is missing: run tests/fixtures/build.sh", fs.display());
    }
    let task = dir.join(format!("long-{compact}.md"));
    std::fs::write(
        &task,
        format!(
            "---\ntools: []\nmax_steps: {steps}\nloop_repeats: 1000\ncompact: {compact}\ntool_choice: {{tool: fs__read_text_file}}\nmcp_servers:\n  fs:\n    command: {}\n    args: [{}]\n    required: true\n    enabled_tools: [read_text_file]\n---\nForty files here each end with the name of the next one. Read them in order, one call each, then say how many lines the last one has. Start with {{\"path\": \"part01.txt\"}}.\n",
            fs.display(),
            dir.display()
        ),
    )?;
    let started = std::time::Instant::now();
    let out = Command::new(crate::agent_exe()?)
        .args(["run", &task.to_string_lossy(), "--json"])
        .current_dir(dir)
        .output()?;
    let wall = started.elapsed().as_secs_f64();
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("agent run --json printed a line that is not an event")?;
    let mut f = Figures {
        steps: 0,
        stop: String::new(),
        prompt_secs: vec![],
        prompt_tokens: vec![],
        cached: vec![],
        compactions: vec![],
        wall,
    };
    for e in &events {
        let num = |k: &str| e[k].as_f64().unwrap_or(0.0);
        match e["event"].as_str() {
            Some("model_output") => {
                f.prompt_secs.push(num("prompt_secs"));
                f.prompt_tokens.push(num("prompt_tokens") as u64);
                f.cached.push(num("cached_tokens") as u64);
            }
            // The step after a compaction is the next model output.
            Some("compacted") => f.compactions.push((f.prompt_secs.len(), num("secs"))),
            Some("final") => {
                f.steps = num("steps") as usize;
                f.stop = e["stop"].as_str().unwrap_or_default().to_string();
            }
            _ => {}
        }
    }
    if f.prompt_secs.is_empty() {
        bail!(
            "the run made no step: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(f)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

pub fn long_run(steps: u32) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("agent-bench-long-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    write_files(&dir)?;
    println!(
        "SmolLM2-135M (8192-token window), CPU, {steps}-step run reading a 50 KB file through server-filesystem each step (`agent run`, greedy)"
    );
    println!(
        "{:<20} {:>6} {:>13} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "run", "steps", "stop", "prompt tok", "prompt s", "max s", "compaction", "wall s"
    );
    let with = run(&dir, steps, true)?;
    let without = run(&dir, steps, false)?;
    for (label, f) in [("with compaction", &with), ("without", &without)] {
        let compaction = f.compactions.iter().fold(0.0, |s, c| s + c.1);
        println!(
            "{label:<20} {:>6} {:>13} {:>12.0} {:>12.3} {:>12.3} {:>12} {:>10.1}",
            f.steps,
            f.stop,
            mean(
                &f.prompt_tokens
                    .iter()
                    .map(|&t| t as f64)
                    .collect::<Vec<_>>()
            ),
            mean(&f.prompt_secs),
            f.prompt_secs.iter().copied().fold(0.0, f64::max),
            format!("{}x {compaction:.1}s", f.compactions.len()),
            f.wall
        );
    }
    println!(
        "prompt s per step, with / without compaction: {:.2}x (over the steps both ran: {:.2}x)",
        mean(&with.prompt_secs) / mean(&without.prompt_secs),
        mean(&with.prompt_secs[..without.prompt_secs.len().min(with.prompt_secs.len())])
            / mean(&without.prompt_secs)
    );
    let after: Vec<(u64, u64)> = with
        .compactions
        .iter()
        .filter_map(|&(i, _)| Some((*with.cached.get(i)?, *with.prompt_tokens.get(i)?)))
        .collect();
    let (cached, total) = after.iter().fold((0, 0), |(c, t), &(a, b)| (c + a, t + b));
    let (all_cached, all) = (
        with.cached.iter().sum::<u64>(),
        with.prompt_tokens.iter().sum::<u64>(),
    );
    println!(
        "prefix-cache hits: the step after a compaction {cached} of {total} prompt tokens ({:.0}%); all steps {all_cached} of {all} ({:.0}%)",
        100.0 * cached as f64 / total.max(1) as f64,
        100.0 * all_cached as f64 / all.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
