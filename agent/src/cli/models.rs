//! `agent models`: the catalogue and what is cached.

use std::process::ExitCode;

use agent::models::{CATALOGUE, Origin, agent_home, cache_dir, cached_path};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct ModelsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
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
            let row = json!({
                "name": e.name, "description": e.description, "origin": origin, "moe": e.moe,
                "gpu_isq": e.gpu_isq, "cached": path.is_some(),
                "path": path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| cache_dir(e).display().to_string()),
            });
            println!("{row}");
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<16} {:<8} {:<52} DESCRIPTION",
        "NAME", "CACHED", "ORIGIN"
    );
    for (e, origin, path) in &rows {
        println!(
            "{:<16} {:<8} {:<52} {}",
            e.name,
            if path.is_some() { "yes" } else { "no" },
            origin,
            e.description
        );
    }
    println!("\ncache: {}", agent_home().join("models").display());
    ExitCode::SUCCESS
}
