//! What tests/gpu/check.sh runs on a GPU machine (docs/GPU.md); each prints JSON lines.
//! - `gpu-parity`: a checkpoint's greedy tokens and logits on the GPU against the same engine
//!   on the CPU and against a reference implementation's (transformers on the same GPU), on
//!   the reference's own prompts.
//! - `gpu-speed`: prompt and decode tokens/s of one checkpoint at batch 1 and with several
//!   sequences decoded at once.
//! - `gpu-run`: one agent run of a task on the GPU (a tool call under the grammar, a thinking
//!   budget per step kind), its events written as JSON lines, with a summary of what held.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use agent::Agent;
use agent::Device;
use agent::backend::Backend;
use agent::events::JsonLines;
use agent::formats::ToolChoice;
use agent::mistral::MistralBackend;
use agent::models::{self, GpuDtype};
use agent::task::ThinkingSpec;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::decode::greedy_request;
use crate::prefill::prompt_of;

pub fn parse_dtype(s: &str) -> Result<GpuDtype, String> {
    match s {
        "f32" => Ok(GpuDtype::F32),
        "bf16" => Ok(GpuDtype::Bf16),
        "f16" => Ok(GpuDtype::F16),
        _ => Err(format!("{s}: expected f32, bf16 or f16")),
    }
}

fn resolve(model: &Path) -> anyhow::Result<models::ResolvedModel> {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(models::inspect(model, &name)?)
}

/// How two greedy decodings of one prompt agree: the largest logit difference over the steps
/// both took from the same context (up to and including the first step where their choices
/// part, after which the contexts differ), and whether every token is the same.
fn agreement(a: (&[u32], &[Vec<f32>]), b: (&[u32], &[Vec<f32>])) -> Value {
    let (mut worst, mut at, mut nan) = (0f32, None, None);
    let comparable = a.1.len().min(b.1.len());
    let mut diverged = None;
    for step in 0..comparable {
        let (x, y) = (&a.1[step], &b.1[step]);
        if x.len() != y.len() {
            return json!({"error": format!("output widths differ: {} and {}", x.len(), y.len())});
        }
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            let d = (p - q).abs();
            if d.is_nan() {
                // NaN never passes: it is reported, and where it first was.
                nan.get_or_insert((step, i));
            } else if d > worst {
                worst = d;
                at = Some((step, i));
            }
        }
        if a.0.get(step) != b.0.get(step) {
            diverged = Some(step);
            break;
        }
    }
    json!({
        "max_logit_diff": worst,
        "at_step_token": at,
        "tokens_identical": a.0 == b.0,
        "first_divergence": diverged,
        "steps": [a.0.len(), b.0.len()],
        "nan_at_step_token": nan,
    })
}

fn read_rows(path: &Path, width: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if width == 0 || bytes.len() % (4 * width) != 0 {
        anyhow::bail!("{}: not rows of {width} float32", path.display());
    }
    Ok(bytes
        .chunks_exact(4 * width)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

/// `model` (a directory or a GGUF file) on the CPU and on `device` in `dtype`, each prompt of
/// `reference` (a directory tests/fixtures/reference.py wrote) decoded greedily for `steps`
/// tokens on both, compared with each other and with the reference's tokens and logits.
pub async fn parity(
    model: &Path,
    reference: &Path,
    device: Device,
    dtype: Option<GpuDtype>,
    steps: usize,
) -> anyhow::Result<()> {
    let refs: Value =
        serde_json::from_str(&std::fs::read_to_string(reference.join("reference.json"))?)?;
    let prompts = refs["prompts"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{}: no prompts", reference.display()))?;
    let mut m = resolve(model)?;
    let mut cpu_traces = Vec::new();
    {
        let cpu = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, None).await?;
        for p in prompts {
            cpu_traces.push(cpu.greedy_trace(token_ids(p)?, steps).await?);
        }
    }
    m.gpu_dtype = dtype;
    let started = Instant::now();
    let gpu = MistralBackend::load_with_prefix_cache(&m, device, None).await?;
    let load_secs = started.elapsed().as_secs_f64();
    for (p, cpu) in prompts.iter().zip(&cpu_traces) {
        let tokens = token_ids(p)?;
        let prompt_tokens = tokens.len();
        let gpu_trace = gpu.greedy_trace(tokens, steps).await?;
        let greedy: Vec<u32> = token_list(&p["greedy"])?;
        let file = p["logits_file"].as_str().unwrap_or_default();
        let width = gpu_trace.logits.first().map_or(0, Vec::len);
        let rows = read_rows(&reference.join(file), width)?;
        let gpu_side = (&gpu_trace.tokens[..], &gpu_trace.logits[..]);
        let cpu_side = (&cpu.tokens[..], &cpu.logits[..]);
        let ref_side = (&greedy[..], &rows[..]);
        let line = json!({
            "model": m.name,
            "prompt": p["name"],
            "prompt_tokens": prompt_tokens,
            "device": format!("{device:?}"),
            "gpu_dtype": dtype.map(|d| format!("{d:?}")).unwrap_or_else(|| "auto".into()),
            "gpu_load_secs": load_secs,
            "reference": refs["implementation"],
            "gpu_vs_cpu": agreement(gpu_side, cpu_side),
            "gpu_vs_reference": agreement(gpu_side, ref_side),
            "cpu_vs_reference": agreement(cpu_side, ref_side),
        });
        println!("{line}");
    }
    Ok(())
}

fn token_list(v: &Value) -> anyhow::Result<Vec<u32>> {
    v.as_array()
        .ok_or_else(|| anyhow::anyhow!("not a token list: {v}"))?
        .iter()
        .map(|t| {
            t.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| anyhow::anyhow!("not a token id: {t}"))
        })
        .collect()
}

fn token_ids(prompt: &Value) -> anyhow::Result<Vec<u32>> {
    token_list(&prompt["tokens"])
}

/// Prompt and decode speed of `model` on `device`: a prompt of `prompt_tokens` tokens, then
/// `decode_tokens` greedy tokens, by one sequence (median of `repeats` after a warm-up) and by
/// each count in `concurrency` of sequences sent at once (the engine batches them).
pub async fn speed(
    model: &Path,
    device: Device,
    dtype: Option<GpuDtype>,
    isq: Option<String>,
    prompt_tokens: usize,
    decode_tokens: usize,
    concurrency: &[usize],
    repeats: usize,
) -> anyhow::Result<()> {
    let mut m = resolve(model)?;
    m.gpu_dtype = dtype;
    m.isq = isq.clone();
    let started = Instant::now();
    // Prefix cache off: every request prefills its whole prompt.
    let backend = Arc::new(MistralBackend::load_with_prefix_cache(&m, device, None).await?);
    let load_secs = started.elapsed().as_secs_f64();
    let (prompt, n) = prompt_of(&backend, prompt_tokens).await?;
    let mut sink = |_: &str| {};
    backend
        .generate(greedy_request(&prompt, 8), &mut sink)
        .await?;
    for &c in concurrency {
        let runs = if c == 1 { repeats.max(1) } else { 1 };
        let mut rows = Vec::new();
        for _ in 0..runs {
            let wall = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..c {
                let backend = backend.clone();
                // Distinct prompts, so that no engine shortcut serves one from another.
                let text = format!("{prompt} {i}");
                tasks.push(tokio::spawn(async move {
                    let mut sink = |_: &str| {};
                    backend
                        .generate(greedy_request(&text, decode_tokens), &mut sink)
                        .await
                }));
            }
            let mut outs = Vec::new();
            for t in tasks {
                outs.push(t.await??);
            }
            let wall = wall.elapsed().as_secs_f64();
            let generated: usize = outs.iter().map(|o| o.stats.completion_tokens).sum();
            let prompt_secs = outs
                .iter()
                .map(|o| o.stats.prompt_secs)
                .fold(0f64, f64::max);
            let decode_rates: Vec<f64> = outs
                .iter()
                .map(|o| o.stats.decode_tokens_per_sec())
                .collect();
            rows.push(json!({
                "wall_secs": wall,
                "generated": generated,
                "prompt_tokens_each": outs.first().map(|o| o.stats.prompt_tokens),
                "prompt_tok_s": outs.iter().map(|o| o.stats.prompt_tokens).sum::<usize>() as f64
                    / prompt_secs,
                "decode_tok_s_per_sequence": crate::median(decode_rates.clone()),
                // All sequences together: tokens generated over the time from the last
                // prompt's end to the last token.
                "decode_tok_s_total": generated as f64 / (wall - prompt_secs).max(1e-9),
            }));
        }
        rows.sort_by(|a, b| {
            a["decode_tok_s_per_sequence"]
                .as_f64()
                .partial_cmp(&b["decode_tok_s_per_sequence"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let median = rows[rows.len() / 2].clone();
        println!(
            "{}",
            json!({
                "model": m.name,
                "device": format!("{device:?}"),
                "gpu_dtype": dtype.map(|d| format!("{d:?}")).unwrap_or_else(|| "auto".into()),
                "isq": isq,
                "load_secs": load_secs,
                "prompt_tokens": n,
                "decode_tokens": decode_tokens,
                "concurrency": c,
                "runs": runs,
                "median": median,
            })
        );
    }
    Ok(())
}

/// One agent run on `device`: `model` answers `question` with tools required (the grammar
/// constrains every step to a call) under a thinking budget per step kind. The events go to
/// `events` as JSON lines; a summary line says whether each step's reasoning was exactly its
/// budget and whether a tool was called.
pub async fn run(
    model: &Path,
    device: Device,
    question: &str,
    thinking: &str,
    events: &Path,
) -> anyhow::Result<()> {
    let spec: ThinkingSpec = serde_yaml_ng::from_str(thinking)?;
    let agent = Agent::builder()
        .model(model.display().to_string())
        .device(device)
        .tool_choice(ToolChoice::Required)
        .thinking(spec)
        .max_steps(4)
        .max_tokens(96)
        .disk_cache_mib(0)
        .offline(true)
        .build()
        .await?;
    let cfg = agent.config(question);
    let mut run = agent.runner();
    run.observe(Box::new(JsonLines(std::fs::File::create(events)?)));
    let started = Instant::now();
    let outcome = run.run(&cfg, &CancellationToken::new()).await;
    let secs = started.elapsed().as_secs_f64();
    agent.shutdown().await;
    let outcome = outcome?;
    let lines: Vec<Value> = std::fs::read_to_string(events)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let of = |kind: &'static str| lines.iter().filter(move |e| e["event"] == kind);
    let steps: Vec<Value> = of("step_started")
        .zip(of("model_output"))
        .map(|(started, output)| {
            let budget = started["thinking_budget"].clone();
            let used = output["thinking_tokens"].as_u64().unwrap_or(0);
            let capped = output["thinking_capped"].as_bool().unwrap_or(false);
            // A random model never closes its reasoning itself: a token budget is used to
            // the token and ends it; `off` means none at all.
            let exact = match budget.as_u64() {
                Some(n) => used == n && capped,
                None => used == 0 && !capped,
            };
            json!({
                "step": started["step"], "kind": started["kind"], "budget": budget,
                "thinking_tokens": used, "capped": capped, "exact": exact,
                "tok_s": output["tokens_per_sec"],
            })
        })
        .collect();
    println!(
        "{}",
        json!({
            "model": model.display().to_string(),
            "device": format!("{device:?}"),
            "secs": secs,
            "stop": format!("{:?}", outcome.stop),
            "tool_calls": of("tool_call").count(),
            "parse_errors": of("parse_error").count(),
            "every_budget_exact": steps.iter().all(|s| s["exact"] == true),
            "steps": steps,
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&[f32]]) -> Vec<Vec<f32>> {
        v.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn agreement_compares_up_to_the_first_divergence() {
        let a = rows(&[&[1.0, 2.0], &[0.5, 0.25], &[9.0, 9.0]]);
        let b = rows(&[&[1.0, 2.5], &[0.5, 0.0], &[0.0, 0.0]]);
        // Same first token, different second: the third rows follow different contexts.
        let got = agreement((&[1, 0, 1], &a), (&[1, 1, 0], &b));
        assert_eq!(
            got,
            json!({
                "max_logit_diff": 0.5,
                "at_step_token": [0, 1],
                "tokens_identical": false,
                "first_divergence": 1,
                "steps": [3, 3],
                "nan_at_step_token": null,
            })
        );
    }

    #[test]
    fn agreement_never_passes_a_nan() {
        let a = rows(&[&[1.0, f32::NAN]]);
        let b = rows(&[&[1.0, 2.0]]);
        let got = agreement((&[0], &a), (&[0], &b));
        assert_eq!(got["nan_at_step_token"], json!([0, 1]));
    }

    #[test]
    fn read_rows_refuses_a_file_of_another_width() {
        let dir = std::env::temp_dir().join(format!("gpu-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.f32");
        let bytes: Vec<u8> = [1f32, 2.0, 3.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read_rows(&path, 3).unwrap(), vec![vec![1.0, 2.0, 3.0]]);
        assert!(read_rows(&path, 2).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
