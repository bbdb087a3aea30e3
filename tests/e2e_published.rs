//! The forms in which Qwen3 and Llama 4 checkpoints are published, each loaded through the real
//! engine and proven against an independent reference implementation of the same files: Hugging
//! Face transformers (PyTorch, CPU, float32), run by the fixture step (tests/fixtures/reference.py).
//! (GGUF files are proven against llama.cpp in e2e_gguf.rs.)
//!
//! Per model and prompt (two prompts of 190 and 198 tokens: an agent step's chat prompt, and a
//! mix of prose, code, numbers and scripts that routes to most experts), the logits of the first
//! forward pass and of every one of 32 greedy steps lie within [`TOLERANCE`] of the reference's,
//! and the 32 greedy tokens are identical. Then one `agent run` step calls a tool under the
//! grammar.

mod common;

use agent::Device;
use agent::mistral::MistralBackend;
use agent::models;
use serde::Deserialize;

use common::*;

/// Largest |logit difference| allowed, engine against reference. Both compute in float32 from
/// the same bf16 weights (widened exactly), so they differ only by the order of float32
/// additions (matrix-product blocking, softmax and norm reductions), a few units in the last
/// place per operation carried through the layers (measured: at most 3.6e-7 on these
/// fixtures, whose logits are of order 1).
const TOLERANCE: f32 = 1e-5;

/// With ISQ Q8_0 (8-bit blocks of 32 weights, one scale each: every weight within half a step
/// of 1/127 of its block's largest) against the float32 reference: measured 9.4e-3 on these
/// fixtures; the bound leaves room for the rounding of other inputs, not for a wrong layer
/// (an expert or projection mixed up moves logits by about their own size, 0.1 to 1).
const ISQ_Q8_TOLERANCE: f32 = 2.5e-2;

const STEPS: usize = 32;

#[derive(Deserialize)]
struct Reference {
    implementation: String,
    architecture: String,
    layers: usize,
    prompts: Vec<Prompt>,
}

#[derive(Deserialize)]
struct Prompt {
    name: String,
    tokens: Vec<u32>,
    greedy: Vec<u32>,
    logits_file: String,
    experts_routed: Vec<usize>,
}

/// Compares the engine with the reference on every prompt; `experts` is the model's expert
/// count (0 for a dense model).
async fn matches_reference(model: &str, experts: usize) {
    let worst = compare(model, experts, None, TOLERANCE).await;
    assert!(worst <= TOLERANCE);
}

/// The largest logit difference over every prompt and step, each within `tolerance`, with the
/// model quantized while loading by `isq` if given.
async fn compare(model: &str, experts: usize, isq: Option<&str>, tolerance: f32) -> f32 {
    let dir = require_fixture(&format!("models/{model}"));
    let ref_dir = require_fixture(&format!("fixtures/reference/{model}"));
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(ref_dir.join("reference.json")).unwrap())
            .unwrap();
    let mut m = models::inspect(&dir, model).unwrap();
    m.isq = isq.map(String::from);
    let backend = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, None)
        .await
        .unwrap_or_else(|e| panic!("{model}: {e}"));
    let what = format!(
        "{model}{} ({}, {} layers)",
        isq.map(|q| format!(" with ISQ {q}")).unwrap_or_default(),
        reference.architecture,
        reference.layers
    );
    let mut overall = 0f32;
    for p in &reference.prompts {
        assert!(p.tokens.len() >= 64, "{what}: prompt {} is short", p.name);
        if experts > 0 && p.name == "many-experts" {
            // The prompt does what it is for: most experts of every layer see a token (of a
            // mixture with more experts than half the prompt's tokens, more than that many).
            let reachable = experts.min(p.tokens.len() / 2);
            assert!(
                p.experts_routed.iter().all(|&n| 2 * n > reachable),
                "{what}: prompt {} reached {:?} of {experts} experts per layer",
                p.name,
                p.experts_routed
            );
        }
        let trace = backend
            .greedy_trace(p.tokens.clone(), STEPS)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let width = trace.logits[0].len();
        let rows = read_f32_rows(&ref_dir.join(&p.logits_file), width);
        let mut worst = 0f32;
        // Quantized, only the first forward pass is compared (see below).
        let steps = if isq.is_some() { 1 } else { rows.len() };
        for (step, (ours, theirs)) in trace.logits.iter().zip(&rows).take(steps).enumerate() {
            let (d, at) = max_diff(ours, theirs);
            worst = worst.max(d);
            assert!(
                d <= tolerance,
                "{what}, prompt {}: position {} (greedy step {step}): max |logit difference| {d:e} \
                 at token id {at} (engine {}, {} {}) exceeds {tolerance:e}",
                p.name,
                p.tokens.len() + step,
                ours[at],
                reference.implementation,
                theirs[at],
            );
        }
        overall = overall.max(worst);
        if isq.is_some() {
            eprintln!(
                "{what}, prompt {}: first forward pass, max |logit difference| {worst:e}",
                p.name
            );
            // Quantized weights compute another function: the tokens may part ways, and the
            // logits after that are not comparable. The first forward pass is.
            continue;
        }
        assert_eq!(
            (trace.logits.len(), &trace.tokens),
            (rows.len(), &p.greedy),
            "{what}, prompt {}: greedy tokens differ from {}",
            p.name,
            reference.implementation
        );
        eprintln!(
            "{what}, prompt {} ({} tokens): {} greedy tokens identical, max |logit difference| {worst:e}",
            p.name,
            p.tokens.len(),
            trace.tokens.len()
        );
    }
    overall
}

#[tokio::test(flavor = "multi_thread")]
async fn qwen3_dense_matches_transformers() {
    matches_reference("qwen3-tiny", 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn qwen3_moe_per_expert_matches_transformers() {
    matches_reference("qwen3-moe-experts-tiny", 32).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn qwen3_moe_saved_by_transformers_5_matches_transformers() {
    matches_reference("qwen3-moe-tf5-tiny", 32).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn qwen3_moe_stacked_matches_transformers() {
    matches_reference("qwen3-moe-tiny", 4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn llama4_scout_matches_transformers() {
    matches_reference("llama4-scout-tiny", 16).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn llama4_maverick_matches_transformers() {
    matches_reference("llama4-maverick-tiny", 128).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn llama4_saved_by_transformers_5_matches_transformers() {
    matches_reference("llama4-scout-tf5-tiny", 16).await;
}

#[test]
fn every_published_form_calls_a_tool_in_one_step() {
    for model in [
        "qwen3-tiny",
        "qwen3-moe-experts-tiny",
        "qwen3-moe-tf5-tiny",
        "qwen3-moe-tiny",
        "llama4-scout-tiny",
        "llama4-maverick-tiny",
        "llama4-scout-tf5-tiny",
    ] {
        calls_a_tool(&require_fixture(&format!("models/{model}")));
    }
}

/// `--isq` on the CPU, on the published per-expert layout (each expert quantized on its own):
/// the model loads quantized, its first forward pass stays near the float32 reference, and
/// it is not the float32 model (the quantization happened).
#[tokio::test(flavor = "multi_thread")]
async fn isq_quantizes_a_published_moe_on_the_cpu() {
    let worst = compare("qwen3-moe-experts-tiny", 32, Some("Q8_0"), ISQ_Q8_TOLERANCE).await;
    assert!(
        worst > TOLERANCE,
        "ISQ Q8_0 left the logits unchanged ({worst:e})"
    );
}

/// A model larger than the memory available is refused before loading, with the size it
/// needs (a sparse file: the check reads sizes, never the weights).
#[test]
fn a_model_too_big_for_memory_is_refused_before_loading() {
    let src = require_fixture("models/qwen3-moe-experts-tiny");
    let dir = tmp_dir("too-big");
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    // bf16 on disk, float32 on the CPU: twice the file.
    let file = std::fs::File::create(dir.join("model.safetensors")).unwrap();
    file.set_len(total_kib * 1024).unwrap();
    let task = dir.join("task.md");
    std::fs::write(&task, "Say hello.\n").unwrap();
    let o = agent(&[
        "run",
        task.to_str().unwrap(),
        "--model",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let needed = (2 * total_kib * 1024 + (512 << 20)) as f64 / (1u64 << 30) as f64;
    assert!(
        err.contains(&format!(
            "needs about {needed:.1} GiB of memory on the CPU and "
        )) && err.contains("use `--isq Q4K` (quantize while loading)"),
        "{err}"
    );
}
