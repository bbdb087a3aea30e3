//! `agent tools [--task TASK.md]`: every tool a run would see, with its source and schema
//! (MCP servers are started to ask them). `agent tools call NAME --args JSON` calls one.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agent::task::Task;
use agent_tools::mcp::{McpPool, ServerStatus};
use agent_tools::permissions::{Mode, Permissions};
use agent_tools::{CallContext, Tool, ToolRegistry};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{EXIT_BAD_INPUT, EXIT_FAILED};

#[derive(Args)]
pub struct ToolsArgs {
    #[command(subcommand)]
    command: Option<ToolsCommand>,
    #[command(flatten)]
    scope: Scope,
}

/// Where the tools come from: the task's `tools:` and `mcp_servers:`, the MCP files.
#[derive(Args, Clone)]
struct Scope {
    /// The tools this task would see (default: the built-in tools).
    #[arg(long, global = true)]
    task: Option<PathBuf>,
    /// MCP servers from a file in the `mcpServers` shape; may be given more than once.
    #[arg(long, value_name = "FILE", global = true)]
    mcp_config: Vec<PathBuf>,
    /// JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// Call one tool directly and print its result.
    Call {
        /// The tool's name as the model sees it (`server__tool` for MCP tools).
        name: String,
        /// The arguments, a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
    },
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("agent: {msg}");
    ExitCode::from(code)
}

pub fn main(args: ToolsArgs) -> ExitCode {
    let scope = args.scope;
    let task = match &scope.task {
        Some(p) => match Task::load(p) {
            Ok(t) => t,
            Err(e) => return fail(EXIT_BAD_INPUT, e),
        },
        None => Task::from_instructions(""),
    };
    // The permissions a run of the task would have: the settings files' under its own.
    let here = std::env::current_dir().unwrap_or_default();
    let front = match agent::task::with_settings(task.front.clone(), &here) {
        Ok(f) => f,
        Err(e) => return fail(EXIT_BAD_INPUT, e),
    };
    let permissions = front.permissions.clone().unwrap_or_default();
    let mut builder = agent::Agent::builder().task(&Task { front, ..task });
    for f in &scope.mcp_config {
        builder = builder.mcp_config(f);
    }
    let args_json = match &args.command {
        Some(ToolsCommand::Call { args, .. }) => match serde_json::from_str::<Value>(args) {
            Ok(v @ Value::Object(_)) => Some(v),
            Ok(_) => return fail(EXIT_BAD_INPUT, "--args: expected a JSON object"),
            Err(e) => {
                return fail(
                    EXIT_BAD_INPUT,
                    format!("--args: not valid JSON at column {}: {e}", e.column()),
                );
            }
        },
        None => None,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILED, format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async move {
        let toolbox = match builder.start_tools().await {
            Ok(t) => t,
            Err(e) if e.is_bad_input() => return fail(EXIT_BAD_INPUT, e),
            Err(e) => return fail(EXIT_FAILED, e),
        };
        let pool = toolbox.pool().clone();
        pool.wait_all().await;
        for (name, status) in pool.status() {
            if let ServerStatus::Failed(e) = status {
                eprintln!("agent: MCP server `{name}` did not start: {e}");
            }
        }
        let registry = toolbox.registry();
        let code = match (&args.command, args_json) {
            (Some(ToolsCommand::Call { name, .. }), Some(arguments)) => {
                call(registry, name, arguments, scope.json).await
            }
            _ => list(registry, &pool, &permissions, scope.json),
        };
        pool.shutdown().await;
        code
    })
}

/// What the permissions say of a call of `tool` that no argument condition singles out.
fn permission(permissions: &Permissions, tool: &dyn Tool) -> (Mode, String) {
    let name = &tool.spec().name;
    if name == agent_tools::builtin::FINAL_ANSWER {
        return (Mode::Allow, "the answer is never asked about".into());
    }
    let (mode, why) = permissions.decide(name, &json!({}), &tool.annotations());
    (mode, why.to_string())
}

fn list(
    registry: &ToolRegistry,
    pool: &Arc<McpPool>,
    permissions: &Permissions,
    as_json: bool,
) -> ExitCode {
    let tools = registry.current();
    if as_json {
        let servers: Value = pool
            .status()
            .into_iter()
            .map(|(name, s)| {
                let v = match s {
                    ServerStatus::Starting => json!({"status": "starting"}),
                    ServerStatus::Ready { tools, protocol } => {
                        json!({"status": "ready", "tools": tools, "protocol": protocol})
                    }
                    ServerStatus::Failed(e) => json!({"status": "failed", "error": e}),
                };
                (name, v)
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        let list: Vec<Value> = tools
            .values()
            .map(|t| {
                let s = t.spec();
                let (mode, why) = permission(permissions, t.as_ref());
                json!({"name": s.name, "source": t.source(), "description": s.description, "parameters": s.parameters,
                       "annotations": t.annotations(), "permission": mode, "permission_reason": why})
            })
            .collect();
        println!("{}", json!({"tools": list, "mcp_servers": servers}));
        return ExitCode::SUCCESS;
    }
    for t in tools.values() {
        let s = t.spec();
        let (mode, why) = permission(permissions, t.as_ref());
        println!(
            "{}  ({}, {}; {}: {why})",
            s.name,
            t.source(),
            t.annotations().describe(),
            mode.as_str()
        );
        if !s.description.is_empty() {
            let first = s.description.lines().next().unwrap_or_default();
            println!("    {first}");
        }
        println!("    parameters: {}", s.parameters);
    }
    ExitCode::SUCCESS
}

async fn call(registry: &ToolRegistry, name: &str, arguments: Value, as_json: bool) -> ExitCode {
    let show = std::io::stderr().is_terminal() && !as_json;
    let cx = CallContext::with_progress(move |p| {
        if show {
            let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
            eprintln!(
                "progress {}{total} {}",
                p.progress,
                p.message.unwrap_or_default()
            );
        }
    });
    let out = registry.call(name, arguments, cx).await;
    if as_json {
        println!("{}", serde_json::to_string(&out).unwrap_or_default());
    } else {
        println!("{}", out.content);
    }
    if out.is_error {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
