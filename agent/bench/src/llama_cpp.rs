//! llama.cpp, the peer of the speed figures: node-llama-cpp 3.21.1 with its prebuilt CPU
//! binaries from npm, driven by the scripts beside this file.

use std::path::{Path, PathBuf};
use std::process::Command;

use agent::models::agent_home;

/// llama.cpp through node-llama-cpp 3.21.1 (prebuilt CPU binaries from npm), installed into
/// `$AGENT_HOME/bench/llama-cpp` on first use: the better decode tokens/s of 1 thread and of
/// every core, and what the script printed (rates by thread count, load times).
pub fn llama_cpp(
    file: &Path,
    prompt: &str,
    tokens: usize,
    repeats: usize,
) -> anyhow::Result<(f64, serde_json::Value)> {
    let v = run_llama_cpp_script(
        "llama_cpp.mjs",
        &[
            file.as_os_str(),
            tokens.to_string().as_ref(),
            repeats.to_string().as_ref(),
        ],
        &[("PROMPT", prompt)],
    )?;
    let best = v["decode_tok_s"]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("node-llama-cpp printed {v}"))?;
    Ok((best, v))
}

/// Runs one of the node-llama-cpp scripts (beside this file, built into the binary: `NAME`
/// is `llama_cpp.mjs` or `llama_cpp_prefill.mjs`) with `args` and the environment `env`,
/// node-llama-cpp installed first; returns the JSON it prints.
pub fn run_llama_cpp_script(
    name: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let dir = install_llama_cpp()?;
    let text = match name {
        "llama_cpp.mjs" => include_str!("llama_cpp.mjs"),
        "llama_cpp_prefill.mjs" => include_str!("llama_cpp_prefill.mjs"),
        other => anyhow::bail!("no node-llama-cpp script {other}"),
    };
    // The script imports node-llama-cpp from LLAMA_DIR, so it runs from anywhere.
    let script = dir.join(name);
    std::fs::write(&script, text)?;
    let out = Command::new("node")
        .arg(&script)
        .args(args)
        .env("LLAMA_DIR", &dir)
        .envs(env.iter().copied())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "node-llama-cpp ({name}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .map_err(|e| anyhow::anyhow!("node-llama-cpp ({name}) printed {text:?}: {e}"))
}

/// node-llama-cpp 3.21.1 with its prebuilt CPU binaries from npm, installed into
/// `$AGENT_HOME/bench/llama-cpp` on first use; returns that directory.
fn install_llama_cpp() -> anyhow::Result<PathBuf> {
    let dir = agent_home().join("bench").join("llama-cpp");
    if !dir.join("node_modules/node-llama-cpp").is_dir() {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("package.json"),
            "{\"name\":\"agent-bench-llama-cpp\",\"private\":true}\n",
        )?;
        let ok = Command::new("npm")
            .args([
                "install",
                "--silent",
                "--omit=optional",
                "--ignore-scripts",
                "node-llama-cpp@3.21.1",
                "@node-llama-cpp/linux-x64@3.21.1",
            ])
            .current_dir(&dir)
            .status()?
            .success();
        anyhow::ensure!(ok, "npm install node-llama-cpp@3.21.1 failed");
    }
    Ok(dir)
}
