//! `agent-bench gguf`: how long one GGUF file takes to load and how fast it decodes, agent
//! against llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build) on the same file and the
//! same rendered prompt, greedy. The default file is the tiny `qwen3moe` Q4_K_M fixture that
//! llama.cpp's own converter and quantizer write (tests/fixtures/build.sh): the path a
//! Qwen3-30B-A3B GGUF takes through the engine, at a size this machine runs in seconds.

use std::path::PathBuf;
use std::time::Instant;

use agent::Device;
use agent::mistral::MistralBackend;
use agent::models::{self, agent_home};

use crate::decode::{agent_decode, chat_prompt};
use crate::llama_cpp::llama_cpp;
use crate::{STORY, median};

pub async fn gguf(file: Option<PathBuf>, tokens: usize, repeats: usize) -> anyhow::Result<()> {
    let file = file.unwrap_or_else(|| {
        agent_home().join("models/qwen3moe-tiny-q4_k_m/qwen3moe-tiny-q4_k_m.gguf")
    });
    anyhow::ensure!(
        file.is_file(),
        "{}: no such file (tests/fixtures/build.sh writes the default one)",
        file.display()
    );
    let name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m = models::inspect(&file, &name)?;
    let prompt = chat_prompt(&m, STORY)?;
    let mut loads = Vec::new();
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        let backend = MistralBackend::load(&m, Device::Cpu).await?;
        loads.push(start.elapsed().as_secs_f64());
        drop(backend);
    }
    let agent_load = median(loads);
    let (agent_rate, generated) = agent_decode(&m, tokens, repeats).await?;
    let (llama_rate, llama) = llama_cpp(&file, &prompt, tokens, repeats)?;
    let llama_load = llama["load_s"]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("node-llama-cpp printed no load time: {llama}"))?;
    println!(
        "{name}: greedy, {tokens} new tokens ({generated} by agent), median of {repeats}, {} threads; \
         llama.cpp tok/s by thread count (the better is used): {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        llama["by_threads"]
    );
    println!("| engine | load s | vs llama.cpp | decode tok/s | vs llama.cpp |");
    println!("|---|---|---|---|---|");
    println!(
        "| llama.cpp (node-llama-cpp 3.21.1) | {llama_load:.2} | 1.00x | {llama_rate:.1} | 1.00x |"
    );
    println!(
        "| agent (mistral.rs 0.8.1, patched) | {agent_load:.2} | {:.2}x | {agent_rate:.1} | {:.2}x |",
        agent_load / llama_load,
        agent_rate / llama_rate
    );
    Ok(())
}
