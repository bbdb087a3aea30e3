//! `agent serve`: the agent as an MCP server, over stdio (the default) or streamable HTTP
//! (`--http ADDR`). One model is loaded for the server's lifetime. Clients get `run_task` (a
//! whole agent run, with progress per step and cancellation), the wasm tools the server is
//! configured with (the agent as a sandboxed tool host), optionally the tools of its upstream
//! MCP servers (`--gateway`), the traces of past runs as resources and the example tasks as
//! prompts. The server itself is the library's (`agent::serve`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use agent::Agent;
use agent::Device;
use agent::serve::{HttpOptions, ServeOptions, Server, serve_http};
use agent::task::{FrontMatter, Task};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{EXIT_BAD_INPUT, EXIT_FAILED};

#[derive(Args)]
pub struct ServeArgs {
    /// Serve streamable HTTP on this address (endpoint `/mcp`) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Bearer token HTTP clients must send (`Authorization: Bearer TOKEN`); required when
    /// `--http` binds to anything but loopback. Also read from AGENT_SERVE_TOKEN, which keeps
    /// it out of the process list.
    #[arg(long)]
    token: Option<String>,
    /// Host names HTTP requests may carry in `Host` (DNS-rebinding protection; loopback
    /// names are always allowed).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Browser origins HTTP requests may come from (`Origin`, as `https://app.example:443`
    /// or `http://host:*`); loopback origins are always allowed, and requests without an
    /// `Origin` (not from a browser) are not affected.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// Largest HTTP request body, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Model: a catalogue name (see `agent models`), a .gguf file or a model directory.
    #[arg(long)]
    model: Option<String>,
    /// Where the model runs: cpu, cuda or auto.
    #[arg(long)]
    device: Option<Device>,
    /// Most tokens a step may write after its reasoning; a thinking budget comes on top.
    #[arg(long, default_value_t = agent::planner::DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Task defaults: a YAML file with task front-matter keys (`tools`, `wasm_policy`,
    /// `max_steps`, `thinking`, `tool_choice`, `mcp_servers`, ...). Its wasm tools are served
    /// as MCP tools; every `run_task` starts from these settings.
    #[arg(long, value_name = "FILE")]
    defaults: Option<PathBuf>,
    /// MCP servers whose tools every run sees, in the `mcpServers` shape; may be repeated.
    #[arg(long, value_name = "FILE")]
    mcp_config: Vec<PathBuf>,
    /// Also serve the upstream MCP servers' tools (`SERVER__TOOL`), under their configuration.
    #[arg(long)]
    gateway: bool,
    /// Finished sequences whose KV the prefix cache keeps (0: off): a task sent again, or one
    /// that shares a long opening with a recent one, is prefilled only where it differs.
    #[arg(long, default_value_t = 8)]
    prefix_cache: usize,
    /// Bound (MiB) of the on-disk prefix cache in $AGENT_HOME/prefix-cache, shared with
    /// `agent run` and kept across restarts: prompts computed afresh (a system prompt and tool
    /// schemas) are kept there, and runs that start with them skip their prefill; 0 turns it
    /// off (as does `--prefix-cache 0`).
    #[arg(long, value_name = "MIB", default_value_t = agent::builder::DISK_CACHE_MIB)]
    disk_cache_mb: u64,
    /// Most `run_task` calls running at once; more wait their turn (and are told so).
    #[arg(long, default_value_t = 4)]
    max_concurrent: usize,
    /// Let tasks from clients start MCP servers (`mcp_servers:`), grant wasm tools files and
    /// environment (`wasm_policy:`) and load wasm components from paths. Off: a client task
    /// uses what the server is configured with.
    #[arg(long)]
    trust_tasks: bool,
    /// Run every call the permissions would ask about when the client cannot be asked (it
    /// does not support elicitation); deny rules and hooks still hold.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Add the fixture tools the MCP conformance suite calls by name (for its tests).
    #[arg(long, hide = true)]
    conformance_fixtures: bool,
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("agent serve: {msg}");
    ExitCode::from(code)
}

/// The `--defaults` file: front-matter keys, checked as in a task file.
fn read_defaults(path: &std::path::Path) -> Result<FrontMatter, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    agent::task::parse_settings(path, &text).map_err(|e| e.to_string())
}

pub fn main(mut args: ServeArgs) -> ExitCode {
    if args.token.is_none() {
        args.token = std::env::var("AGENT_SERVE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
    }
    if let Some(addr) = args.http
        && !addr.ip().is_loopback()
        && args.token.is_none()
    {
        return fail(
            EXIT_BAD_INPUT,
            format!(
                "--http {addr} is not a loopback address: set --token (or AGENT_SERVE_TOKEN) so that clients must authenticate"
            ),
        );
    }
    // rmcp drops allow-list entries it cannot parse, which would refuse that origin silently.
    if let Some(bad) = args.allow_origins.iter().find(|o| !origin_pattern_ok(o)) {
        return fail(
            EXIT_BAD_INPUT,
            format!(
                "--allow-origin {bad:?}: write an origin as SCHEME://HOST:PORT or SCHEME://HOST:* (e.g. https://app.example:443)"
            ),
        );
    }
    if args.max_concurrent == 0 {
        return fail(EXIT_BAD_INPUT, "--max-concurrent must be at least 1");
    }
    let options = ServeOptions {
        max_concurrent: args.max_concurrent,
        gateway: args.gateway,
        trust_tasks: args.trust_tasks,
        conformance_fixtures: args.conformance_fixtures,
    };
    // The defaults are the served agent's settings, as a task file's front matter.
    let mut builder = Agent::builder()
        .max_tokens(args.max_tokens)
        .prefix_cache(args.prefix_cache)
        .disk_cache_mib(if args.prefix_cache == 0 {
            0
        } else {
            args.disk_cache_mb
        })
        .on_status(|s| eprintln!("agent serve: {s}"));
    let defaults = match &args.defaults {
        Some(path) => match read_defaults(path) {
            Ok(front) => front,
            Err(e) => return fail(EXIT_BAD_INPUT, e),
        },
        None => FrontMatter::default(),
    };
    // The user's and the project's permissions and hooks under the defaults' own.
    let here = std::env::current_dir().unwrap_or_default();
    let front = match agent::task::with_settings(defaults, &here) {
        Ok(f) => f,
        Err(e) => return fail(EXIT_BAD_INPUT, e),
    };
    let blank = Task::from_instructions("");
    builder = builder.task(&Task {
        path: args.defaults.clone().unwrap_or(blank.path.clone()),
        front,
        ..blank
    });
    if args.yes {
        builder = builder.approver(agent::permissions::Yes);
    }
    if let Some(m) = &args.model {
        builder = builder.model(m);
    }
    if let Some(d) = args.device {
        builder = builder.device(d);
    }
    for f in &args.mcp_config {
        builder = builder.mcp_config(f);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILED, format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async move {
        let agent = match builder.build().await {
            Ok(a) => a,
            Err(e) if e.is_bad_input() => return fail(EXIT_BAD_INPUT, e),
            Err(e) => return fail(EXIT_FAILED, e),
        };
        let model = agent.backend().info().name.clone();
        let server = match Server::new(agent.clone(), options) {
            Ok(s) => s,
            Err(e) => {
                agent.shutdown().await;
                return fail(EXIT_BAD_INPUT, e);
            }
        };
        let shutdown = CancellationToken::new();
        // SIGINT, SIGTERM and SIGHUP stop the server cleanly (its MCP servers with it).
        let _signals = super::Interrupts::install(shutdown.clone());
        let served = match args.http {
            None => {
                eprintln!("agent serve: ready on stdio ({model})");
                server.serve_stdio(shutdown).await
            }
            Some(addr) => {
                let opts = HttpOptions {
                    addr,
                    token: args.token.clone(),
                    allow_hosts: args.allow_hosts.clone(),
                    allow_origins: args.allow_origins.clone(),
                    max_body: args.max_body,
                };
                serve_http(server, opts, shutdown).await
            }
        };
        agent.shutdown().await;
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_FAILED, e),
        }
    })
}

/// An `--allow-origin` entry rmcp matches as meant: `http(s)://HOST:PORT`, `http(s)://HOST:*`,
/// or `null`.
fn origin_pattern_ok(origin: &str) -> bool {
    if origin == "null" {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty() && !host.contains(['/', '@', '?', '#', ' ']);
    host_ok && (port == "*" || port.parse::<u16>().is_ok_and(|p| p > 0))
}

#[cfg(test)]
mod tests {
    use super::origin_pattern_ok;

    #[test]
    fn origin_patterns() {
        for ok in [
            "https://app.example:443",
            "http://localhost:*",
            "http://[::1]:8080",
            "null",
        ] {
            assert!(origin_pattern_ok(ok), "{ok}");
        }
        for bad in [
            "app.example",
            "*",
            "https://app.example",
            "ftp://x:1",
            "https://a/b:1",
            "https://x:0",
            "https://x:99999",
        ] {
            assert!(!origin_pattern_ok(bad), "{bad}");
        }
    }
}
