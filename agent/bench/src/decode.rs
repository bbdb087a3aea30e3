//! Decode and prompt speed of the default model through agent's backend against its peers:
//! - `decode`: decode tokens/s through agent's backend, through a minimal mistral.rs program
//!   (its chat API on the downloaded GGUF), and through llama.cpp (node-llama-cpp).
//! - `prefix`: prompt-processing time per step of a growing 10-step conversation, with
//!   mistral.rs's prefix cache on and off, and whether the generated text is the same.
//! - `grammar`: decode tokens/s with no grammar, the `auto` grammar (free text until a call)
//!   and a forced `final_answer` call (the tokens are one long JSON string).
//! - `rss`: peak resident memory over an N-step conversation (run once per setting, in a fresh
//!   process, since peak RSS only grows).

use std::path::{Path, PathBuf};
use std::time::Instant;

use agent::Device;
use agent::backend::{Backend, GenRequest, Sampling};
use agent::formats::{self, GrammarOptions, Thinking, ToolChoice};
use agent::mistral::{MistralBackend, fast_gguf};
use agent::models::{self, ModelSource};
use agent::prompt::{self, Message, RenderOptions};
use mistralrs::{GgufModelBuilder, RequestBuilder, TextMessageRole, TokenSource};

use crate::llama_cpp::llama_cpp;
use crate::{STORY, median, median_after_warmup};

pub fn dot(n: usize, repeats: usize) {
    let a: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5).collect();
    let mut total = 0f32;
    for _ in 0..repeats {
        total += mistralrs_core::agent_dot_f32(std::hint::black_box(&a), std::hint::black_box(&b));
    }
    println!("{total}");
}

fn smollm2() -> anyhow::Result<(models::ResolvedModel, PathBuf)> {
    let m = models::resolve(models::DEFAULT_MODEL)?;
    let ModelSource::Gguf { file } = &m.source else {
        anyhow::bail!("smollm2 is not a GGUF")
    };
    let file = file.clone();
    Ok((m, file))
}

pub fn chat_prompt(m: &models::ResolvedModel, user: &str) -> anyhow::Result<String> {
    Ok(prompt::render(
        &m.family,
        &m.template,
        &[Message::user(user)],
        &[],
        RenderOptions::default(),
    )?)
}

/// Decode tok/s of the raw mistral.rs chat API on `file` (a minimal program: builder, request).
async fn raw_mistralrs(file: &Path, tokens: usize, repeats: usize) -> anyhow::Result<f64> {
    let dir = file
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let model = GgufModelBuilder::new(dir, vec![name])
        .with_token_source(TokenSource::None)
        .with_force_cpu()
        .with_prefix_cache_n(None)
        .build()
        .await?;
    let mut rates = Vec::new();
    for _ in 0..repeats {
        let req = RequestBuilder::new()
            .add_message(TextMessageRole::User, STORY)
            .set_sampler_max_len(tokens);
        let resp = model.send_chat_request(req).await?;
        rates.push(resp.usage.avg_compl_tok_per_sec as f64);
    }
    Ok(median(rates))
}

pub async fn agent_decode(
    m: &models::ResolvedModel,
    tokens: usize,
    repeats: usize,
) -> anyhow::Result<(f64, usize)> {
    let backend = MistralBackend::load(m, Device::Cpu).await?;
    let prompt = chat_prompt(m, STORY)?;
    let mut rates = Vec::new();
    let mut generated = 0;
    for _ in 0..repeats {
        let mut sink = |_: &str| {};
        let out = backend
            .generate(greedy_request(&prompt, tokens), &mut sink)
            .await?;
        generated = out.stats.completion_tokens;
        rates.push(out.stats.decode_tokens_per_sec());
    }
    Ok((median(rates), generated))
}

/// The multi-step conversations (`prefix`, `rss`) send one of these words per turn.
const WORDS: [&str; 10] = [
    "lighthouse",
    "bottle",
    "keeper",
    "harbour",
    "weather",
    "message",
    "stairs",
    "lantern",
    "storm",
    "gull",
];

/// The start of the multi-step conversations; each turn then sends the next of [`WORDS`].
fn vowel_conversation() -> Vec<Message> {
    vec![
        Message::system("You are a helpful assistant."),
        Message::user("Count the vowels in each word I send you, one word per turn."),
    ]
}

/// A greedy completion of `prompt` with no stop strings: every engine generates until EOS or
/// the token cap.
pub fn greedy_request(prompt: &str, max_tokens: usize) -> GenRequest {
    GenRequest {
        prompt: prompt.to_string(),
        max_tokens,
        sampling: Sampling::default(),
        stop: vec![],
        grammar: None,
        think: Default::default(),
    }
}

/// Decode speed on the same files: the Q8_0 file agent runs (it converts SmolLM2's Q4_1 once,
/// since candle has no fast CPU kernel for Q4_1), and the Q4_1 file as published. Ratios are
/// against llama.cpp on the same file; agent runs its Q8_0 for either.
pub async fn decode(tokens: usize, repeats: usize) -> anyhow::Result<()> {
    let (m, original) = smollm2()?;
    let converted = fast_gguf(&original).map_err(anyhow::Error::msg)?;
    let prompt = chat_prompt(&m, STORY)?;
    let (agent_rate, generated) = agent_decode(&m, tokens, repeats).await?;
    let raw_original = raw_mistralrs(&original, tokens, repeats).await?;
    let raw_converted = raw_mistralrs(&converted, tokens, repeats).await?;
    let (llama_converted, threads_converted) = llama_cpp(&converted, &prompt, tokens, repeats)?;
    let (llama_original, threads_original) = llama_cpp(&original, &prompt, tokens, repeats)?;
    println!(
        "decode tokens/s, SmolLM2-135M-Instruct, greedy, {tokens} new tokens ({generated} by agent), median of {repeats}, {} threads",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "llama.cpp tok/s by thread count (the better is used): Q8_0 {}, Q4_1 {}",
        threads_converted["by_threads"], threads_original["by_threads"]
    );
    let name = |f: &Path| {
        f.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    println!("| file | engine | tok/s | vs llama.cpp on that file |");
    println!("|---|---|---|---|");
    for (file, llama, rows) in [
        (
            &converted,
            llama_converted,
            [
                ("agent (mistral.rs 0.8.1, raw tokens)", agent_rate),
                ("mistral.rs 0.8.1 chat API", raw_converted),
            ],
        ),
        (
            &original,
            llama_original,
            [
                ("agent (runs its Q8_0 conversion)", agent_rate),
                ("mistral.rs 0.8.1 chat API", raw_original),
            ],
        ),
    ] {
        println!(
            "| {} | llama.cpp (node-llama-cpp 3.21.1) | {llama:.1} | 1.00x |",
            name(file)
        );
        for (engine, rate) in rows {
            println!(
                "| {} | {engine} | {rate:.1} | {:.2}x |",
                name(file),
                rate / llama
            );
        }
    }
    Ok(())
}

/// A conversation that grows like an agent run: each step appends the model's reply and a tool
/// result, then asks for the next reply.
async fn conversation(
    backend: &MistralBackend,
    m: &models::ResolvedModel,
    steps: usize,
    tokens: usize,
) -> anyhow::Result<Vec<(usize, f64, String)>> {
    let mut messages = vowel_conversation();
    let mut rows = Vec::new();
    for step in 0..steps {
        let p = prompt::render(
            &m.family,
            &m.template,
            &messages,
            &[],
            RenderOptions::default(),
        )?;
        let mut sink = |_: &str| {};
        let out = backend
            .generate(
                GenRequest {
                    stop: prompt::stop_strings(&m.family),
                    ..greedy_request(&p, tokens)
                },
                &mut sink,
            )
            .await?;
        rows.push((
            out.stats.prompt_tokens,
            out.stats.prompt_secs,
            out.text.clone(),
        ));
        messages.push(Message::assistant(out.text));
        messages.push(Message::user(format!(
            "Next word: {}",
            WORDS[step % WORDS.len()]
        )));
    }
    Ok(rows)
}

/// Each step: prompt processing time with the prefix cache on and off, and how far the first
/// generated token's logits differ between the two on the *same* prompt. The conversation is
/// fixed by the cache-off run, so both runs see identical prompts; numeric noise from a
/// different prefill split is ~1e-4, while attending to a wrong KV row moves logits by far more.
pub async fn prefix(steps: usize) -> anyhow::Result<()> {
    let (m, _) = smollm2()?;
    let stop = prompt::stop_strings(&m.family);
    let off = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, None).await?;
    let on = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, Some(4)).await?;
    let mut messages = vowel_conversation();
    println!(
        "| step | prompt tokens | prompt s, cache on | prompt s, cache off | max logit difference | same output |"
    );
    println!("|---|---|---|---|---|---|");
    let (mut first_on, mut first_off, mut last_on, mut last_off) = (0.0, 0.0, 0.0, 0.0);
    for step in 0..steps {
        let p = prompt::render(
            &m.family,
            &m.template,
            &messages,
            &[],
            RenderOptions::default(),
        )?;
        let n = off.tokenize(&p).await?.len();
        let (text_off, logits_off, secs_off) =
            off.generate_with_logits(&p, 24, stop.clone()).await?;
        let (text_on, logits_on, secs_on) = on.generate_with_logits(&p, 24, stop.clone()).await?;
        let diff = logits_on
            .iter()
            .zip(&logits_off)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "| {} | {n} | {secs_on:.3} | {secs_off:.3} | {diff:.2e} | {} |",
            step + 1,
            if text_on == text_off { "yes" } else { "no" }
        );
        if step == 0 {
            (first_on, first_off) = (secs_on, secs_off);
        }
        (last_on, last_off) = (secs_on, secs_off);
        messages.push(Message::assistant(text_off));
        messages.push(Message::user(format!(
            "Next word: {}",
            WORDS[step % WORDS.len()]
        )));
    }
    // Controlled checks that separate cache correctness from numerics: a cached prefix that
    // prefill computed is reused bit-exactly; a one-token suffix runs through the single-token
    // (decode) kernels, whose quantized arithmetic differs from batched prefill, as it does for
    // every generated token.
    let text = "Describe a lighthouse at night, the keeper, the harbour and the storm. ".repeat(6);
    for (i, extra) in [" Next word: anchor", "a"].into_iter().enumerate() {
        // A fresh prompt each time, so that each check starts from a prefill-computed prefix.
        let base = chat_prompt(&m, &format!("{i}. {text}"))?;
        let _ = on.generate_with_logits(&base, 1, vec![]).await?;
        let p2 = format!("{base}{extra}");
        let (_, lo, _) = off.generate_with_logits(&p2, 1, vec![]).await?;
        let (_, ln, _) = on.generate_with_logits(&p2, 1, vec![]).await?;
        let d = ln
            .iter()
            .zip(&lo)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let suffix = on.tokenize(&p2).await?.len() - on.tokenize(&base).await?.len();
        println!(
            "prefill-cached prefix + {suffix}-token suffix: max logit difference cache on vs off {d:.2e}"
        );
    }
    // The same prompt again (a retry, another seed): all but its last token come from the cache.
    // Two tokens: with one, the engine records no prompt time.
    let base = chat_prompt(&m, &text)?;
    let _ = on.generate_with_logits(&base, 2, vec![]).await?;
    let (_, _, again_secs) = on.generate_with_logits(&base, 2, vec![]).await?;
    let (_, _, cold_secs) = off.generate_with_logits(&base, 2, vec![]).await?;
    let n = on.tokenize(&base).await?.len();
    println!(
        "same {n}-token prompt again: {again_secs:.3}s prompt time with the cache, {cold_secs:.3}s without"
    );
    println!(
        "step {steps} / step 1 prompt time: cache on {:.2}x, cache off {:.2}x",
        last_on / first_on,
        last_off / first_off
    );
    Ok(())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

pub async fn rss(steps: usize, cache: usize) -> anyhow::Result<()> {
    let (m, _) = smollm2()?;
    let backend =
        MistralBackend::load_with_prefix_cache(&m, Device::Cpu, (cache > 0).then_some(cache))
            .await?;
    let loaded = peak_rss_mib();
    let started = Instant::now();
    let rows = conversation(&backend, &m, steps, 24).await?;
    println!(
        "prefix cache {}: {} steps, last prompt {} tokens, peak RSS {:.0} MiB after load, {:.0} MiB after the run ({:.0}s)",
        if cache > 0 {
            format!("on, {cache} sequences")
        } else {
            "off".into()
        },
        steps,
        rows.last().map_or(0, |r| r.0),
        loaded,
        peak_rss_mib(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn grammar(tokens: usize, repeats: usize) -> anyhow::Result<()> {
    let m = models::resolve("smollm2-135m")?;
    let backend = MistralBackend::load(&m, Device::Cpu).await?;
    let info = backend.info().clone();
    let tools = agent::toolset::build(
        &[agent::task::ToolSource::AllBuiltins],
        &agent::task::OutputSpec::Text,
    )?
    .specs();
    let (format, _) = agent::planner::call_format(&m.family);
    let opts = GrammarOptions {
        thinking: Thinking::Off,
        special_tokens: info.special_tokens.clone(),
        ..GrammarOptions::new(format)
    };
    let story =
        "Write a long, detailed story about a lighthouse keeper and give it as your final answer.";
    let messages = [
        Message::system(agent::planner::SYSTEM_PROMPT),
        Message::user(story),
    ];
    let p = prompt::render(
        &m.family,
        &m.template,
        &messages,
        &tools,
        RenderOptions::default(),
    )?;
    println!(
        "SmolLM2-135M, CPU, {tokens} tokens greedy, median of {repeats}; the same prompt each time (prefix-cached)"
    );
    println!(
        "{:<34} {:>10} {:>8} {:>10}",
        "grammar", "tokens", "tok/s", "vs none"
    );
    let mut base = None;
    for (label, grammar) in [
        ("none", None),
        (
            "auto (free text until a call)",
            Some(formats::lark(&opts, &tools, &ToolChoice::Auto)?),
        ),
        (
            "final_answer call (JSON string)",
            Some(formats::lark(
                &opts,
                &tools,
                &ToolChoice::Tool("final_answer".into()),
            )?),
        ),
    ] {
        let mut rates = Vec::new();
        let mut n = 0;
        for _ in 0..repeats + 1 {
            let req = GenRequest {
                grammar: grammar.clone(),
                ..greedy_request(&p, tokens)
            };
            let mut sink = |_: &str| {};
            let out = backend.generate(req, &mut sink).await?;
            n = out.stats.completion_tokens;
            rates.push(out.stats.decode_tokens_per_sec());
        }
        let rate = median_after_warmup(rates);
        let ratio = base.map_or(1.0, |b: f64| rate / b);
        base.get_or_insert(rate);
        println!("{label:<34} {n:>10} {rate:>8.1} {ratio:>9.2}x");
    }
    Ok(())
}
