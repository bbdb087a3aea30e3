//! `agent models`: the catalogue, what is on this machine, and what each local model is.

use std::path::Path;
use std::process::ExitCode;

use agent::models::{
    CATALOGUE, ModelSource, Origin, ResolvedModel, agent_home, cache_dir, cached_path, inspect,
};
use clap::Args;
use serde_json::{Value, json};

#[derive(Args)]
pub struct ModelsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What a local model is, read from its files: family, file format, tool-call format,
/// whether it thinks, context length and size on disk.
fn describe(m: &ResolvedModel) -> Value {
    let (format, context, bytes) = match &m.source {
        ModelSource::Gguf { file } => {
            let meta = agent::gguf_meta::read(file).ok();
            let context = meta.as_ref().and_then(|meta| {
                let arch = meta.strings.get("general.architecture")?;
                meta.ints.get(&format!("{arch}.context_length")).copied()
            });
            let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            ("gguf", context, bytes)
        }
        ModelSource::Dir { dir, .. } => {
            let config: Value = std::fs::read_to_string(dir.join("config.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            let context = config
                .get("max_position_embeddings")
                .or_else(|| config.pointer("/text_config/max_position_embeddings"))
                .and_then(Value::as_u64);
            ("safetensors", context, weights_bytes(dir))
        }
    };
    let (call_format, _) = agent::planner::call_format(&m.family);
    json!({
        "family": m.family.name(),
        "format": format,
        "tool_call_format": call_format.name(),
        "thinking": m.family.thinks(),
        "context_length": context,
        "size_bytes": bytes,
    })
}

fn weights_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.path()
                        .extension()
                        .is_some_and(|x| x == "safetensors" || x == "gguf")
                })
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

pub fn main(args: ModelsArgs) -> ExitCode {
    let rows: Vec<_> = CATALOGUE
        .iter()
        .map(|e| {
            let origin = match e.origin {
                Origin::Hub(repo) => format!("hub:{repo}"),
                Origin::Pypi {
                    package, version, ..
                } => format!("pypi:{package}=={version}"),
                Origin::Fixture => "fixture:tests/fixtures/build.sh".into(),
            };
            (e, origin, cached_path(e))
        })
        .collect();
    if args.json {
        for (e, origin, path) in &rows {
            let mut row = json!({
                "name": e.name, "description": e.description, "origin": origin, "moe": e.moe,
                "params_b": e.params_b, "gguf": e.gguf, "gpu_isq": e.gpu_isq,
                "cached": path.is_some(),
                "path": path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| cache_dir(e).display().to_string()),
            });
            if let Some(m) = path.as_ref().and_then(|p| inspect(p, e.name).ok())
                && let (Value::Object(row), Value::Object(more)) = (&mut row, describe(&m))
            {
                row.extend(more);
            }
            println!("{row}");
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<28} {:<8} {:<52} DESCRIPTION",
        "NAME", "CACHED", "ORIGIN"
    );
    for (e, origin, path) in &rows {
        println!(
            "{:<28} {:<8} {:<52} {}",
            e.name,
            if path.is_some() { "yes" } else { "no" },
            origin,
            e.description
        );
    }
    println!("\ncache: {}", agent_home().join("models").display());
    ExitCode::SUCCESS
}
