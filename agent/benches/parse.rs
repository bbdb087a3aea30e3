//! Tool-call parser throughput (MB/s) on the BFCL ground-truth calls rendered in each format,
//! whole and streamed in 16-byte chunks, side by side with a peer on the same bytes: serde_json
//! reading the bare JSON call objects (the floor of any JSON-based parser), and Python's
//! `ast.parse` on the pythonic text (what vLLM's Llama 4 pythonic parser runs).
//!
//! `cargo bench -p agent --no-default-features --bench parse` (needs `tests/fixtures/build.sh`).

use std::process::Command;
use std::time::Instant;

use agent::formats::{self, Format};
use agent::models::agent_home;
use agent::prompt::ToolCall;
use anyhow::{Context, bail};
use serde_json::Value;

/// The first acceptable value of each BFCL ground-truth argument that is not `""`.
fn pick(acceptable: &Value) -> Option<Value> {
    acceptable
        .as_array()?
        .iter()
        .find(|v| v.as_str() != Some(""))
        .cloned()
}

/// Every single-turn BFCL ground truth, as the calls of one turn each.
fn bfcl_turns() -> anyhow::Result<Vec<Vec<ToolCall>>> {
    let dir = agent_home().join("fixtures/bfcl/possible_answer");
    if !dir.is_dir() {
        bail!(
            "{} is missing: run tests/fixtures/build.sh first",
            dir.display()
        );
    }
    let mut turns = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| !p.to_string_lossy().contains("multi_turn"))
    {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(line).with_context(|| path.display().to_string())?;
            let Some(gt) = v.get("ground_truth").and_then(Value::as_array) else {
                continue;
            };
            let calls: Vec<ToolCall> = gt
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|o| o.iter().next())
                .map(|(name, args)| {
                    let arguments = args.as_object().map(|a| {
                        a.iter()
                            .filter_map(|(k, v)| pick(v).map(|x| (k.clone(), x)))
                            .collect()
                    });
                    ToolCall {
                        name: name.clone(),
                        arguments: Value::Object(arguments.unwrap_or_default()),
                    }
                })
                .collect();
            if !calls.is_empty() {
                turns.push(calls);
            }
        }
    }
    Ok(turns)
}

/// Seconds per pass of `f` over the corpus: the median of `repeats` passes.
fn time(repeats: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut secs = Vec::new();
    let mut n = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        n = f();
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    (secs[secs.len() / 2], n)
}

fn main() -> anyhow::Result<()> {
    let repeats: usize = std::env::var("REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let turns = bfcl_turns()?;
    let calls: usize = turns.iter().map(Vec::len).sum();
    println!(
        "corpus: BFCL v4 single-turn ground truth, {} turns, {calls} calls; median of {repeats} passes",
        turns.len()
    );
    println!(
        "{:<16} {:>9} {:>12} {:>14} {:>22}",
        "format", "MB", "whole MB/s", "16-byte MB/s", "peer MB/s (ratio)"
    );
    for format in Format::ALL {
        let texts: Vec<String> = turns
            .iter()
            .map(|c| formats::render_calls(format, c))
            .collect();
        let bytes: usize = texts.iter().map(String::len).sum();
        let mb = bytes as f64 / 1e6;
        let (whole, n) = time(repeats, || {
            texts
                .iter()
                .map(|t| formats::parse(format, t, false).calls.len())
                .sum()
        });
        if n != calls {
            bail!("{format}: parsed {n} calls, expected {calls}");
        }
        let (chunked, _) = time(repeats, || {
            texts
                .iter()
                .map(|t| {
                    let mut p = formats::StreamParser::new(format, false);
                    let mut k = 0;
                    let mut start = 0;
                    for (i, c) in t.char_indices() {
                        let end = i + c.len_utf8();
                        if end - start >= 16 {
                            k += p.push(&t[start..end]).len();
                            start = end;
                        }
                    }
                    k += p.push(&t[start..]).len();
                    k + p.finish().len()
                })
                .sum()
        });
        let peer = match format {
            Format::Qwen3 | Format::Llama4Json => {
                let objects: Vec<String> = turns
                    .iter()
                    .flatten()
                    .map(|c| {
                        serde_json::json!({"name": c.name, "arguments": c.arguments}).to_string()
                    })
                    .collect();
                let (s, _) = time(repeats, || {
                    objects
                        .iter()
                        .filter(|o| serde_json::from_str::<Value>(o).is_ok())
                        .count()
                });
                let peer_mb = objects.iter().map(String::len).sum::<usize>() as f64 / 1e6;
                Some(("serde_json", peer_mb / s))
            }
            Format::Llama4Pythonic => python_ast(&texts, repeats)?.map(|s| ("python ast", mb / s)),
            Format::Qwen3Coder => None,
        };
        let peer = peer.map_or("-".to_string(), |(name, rate)| {
            format!("{name} {rate:.1} ({:.2}x)", (mb / whole) / rate)
        });
        println!(
            "{:<16} {mb:>9.2} {:>12.1} {:>14.1} {peer:>22}",
            format.name(),
            mb / whole,
            mb / chunked
        );
    }
    Ok(())
}

/// Seconds for Python's `ast.parse` over the texts (median of `repeats`), if python3 runs.
fn python_ast(texts: &[String], repeats: usize) -> anyhow::Result<Option<f64>> {
    let dir = std::env::temp_dir().join(format!("agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let corpus = dir.join("pythonic.json");
    std::fs::write(&corpus, serde_json::to_string(texts)?)?;
    // Texts Python cannot parse (BFCL has arguments named `from`, a Python keyword) count as
    // parsed: the peer is timed on the same bytes, and told apart in the output.
    let script = "import ast, json, sys, time\ntexts = json.load(open(sys.argv[1]))\nts = []\nbad = 0\nfor _ in range(int(sys.argv[2])):\n    bad = 0\n    t = time.perf_counter()\n    for s in texts:\n        try:\n            ast.parse(s, mode='eval')\n        except SyntaxError:\n            bad += 1\n    ts.append(time.perf_counter() - t)\nprint(sorted(ts)[len(ts) // 2], bad)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&corpus)
        .arg(repeats.to_string())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let Ok(out) = out else { return Ok(None) };
    if !out.status.success() {
        bail!(
            "python3 ast peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = stdout.split_whitespace();
    let secs = it.next().and_then(|s| s.parse().ok());
    if let Some(bad) = it.next().filter(|b| *b != "0") {
        println!(
            "(python ast: {bad} of {} texts are not valid Python; vLLM's pythonic parser cannot read them)",
            texts.len()
        );
    }
    Ok(secs)
}
