//! `agent pull NAME`: puts a catalogue model on this machine now, so that a later run (or one
//! without a network) does not wait for it.

use std::process::ExitCode;

use agent::hub::Hub;
use agent::models;
use clap::Args;

use super::{EXIT_BAD_INPUT, EXIT_FAILED};

#[derive(Args)]
pub struct PullArgs {
    /// A catalogue name (`agent models`), with a GGUF quantization after a colon
    /// (`qwen3-30b-a3b:q4_k_m`).
    name: String,
}

pub fn main(args: PullArgs) -> ExitCode {
    if models::lookup(&args.name).is_none() {
        eprintln!(
            "agent: `{}` is not in the catalogue (see `agent models`); a local path needs no pull",
            args.name
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    match models::resolve_with(&args.name, &Hub::from_env(false)) {
        Ok(m) => {
            let path = match &m.source {
                models::ModelSource::Gguf { file } => file,
                models::ModelSource::Dir { dir, .. } => dir,
            };
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agent: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
