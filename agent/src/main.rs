//! `agent`: run a Markdown task on a local model. A thin shell over the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
