//! Builds the tool registry a task asks for, and gathers its MCP servers.

use std::path::{Path, PathBuf};

use agent_sandboxes::{Policy, Sandbox, WasmComponent};
use agent_tools::ToolRegistry;
use agent_tools::builtin::{self, FINAL_ANSWER};
use agent_tools::mcp::{McpConfig, PathSeg};

use crate::task::{OutputSpec, Task, ToolSource};

/// Where compiled wasm tools are cached (a directory only we write).
pub fn wasm_cache_dir(home: &Path) -> PathBuf {
    home.join("wasm-cache")
}

/// The policy file that may sit beside a component: `tool.wasm` → `tool.policy.yaml`.
pub fn policy_file_beside(component: &Path) -> PathBuf {
    component.with_extension("policy.yaml")
}

/// Reads a policy file (YAML, or JSON, which is YAML too); errors name the file and line.
async fn read_policy_file(path: &Path) -> Result<Policy, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| match e.location() {
        Some(at) => format!("{}:{}: {}", path.display(), at.line(), e),
        None => format!("{}: {e}", path.display()),
    })
}

/// Loads the task's wasm tools (`wasm:NAME` bundled, `wasm:PATH.wasm` relative to `base`)
/// and adds them to `registry`. A tool's policy is the task's `wasm_policy.NAME` (preopens
/// relative to `base`); failing that, the file beside the component (`PATH.policy.yaml`,
/// preopens relative to the file); failing that, the default, which grants nothing. Errors
/// name the tool and what is wrong.
pub async fn add_wasm_tools(
    registry: &mut ToolRegistry,
    sandbox: &std::sync::Arc<Sandbox>,
    sources: &[ToolSource],
    policies: &std::collections::BTreeMap<String, Policy>,
    base: &Path,
) -> Result<Vec<std::sync::Arc<WasmComponent>>, String> {
    let mut loaded = Vec::new();
    for source in sources {
        let (ToolSource::Wasm(spec), Some(name)) = (source, source.wasm_name()) else {
            continue;
        };
        let beside = spec
            .ends_with(".wasm")
            .then(|| policy_file_beside(&base.join(spec)))
            .filter(|p| p.exists());
        let (mut policy, policy_base, origin) = match (policies.get(&name), &beside) {
            (Some(p), _) => (
                p.clone(),
                base.to_path_buf(),
                format!("wasm_policy.{name}."),
            ),
            (None, Some(file)) => (
                read_policy_file(file).await?,
                file.parent().unwrap_or(base).to_path_buf(),
                format!("{}: ", file.display()),
            ),
            (None, None) => (
                Policy::default(),
                base.to_path_buf(),
                format!("wasm_policy.{name}."),
            ),
        };
        for p in &mut policy.preopens {
            if p.host.is_relative() {
                p.host = policy_base.join(&p.host);
            }
        }
        let policy = policy.checked().map_err(|e| format!("{origin}{e}"))?;
        let component = if spec.ends_with(".wasm") {
            let path = base.join(spec);
            sandbox
                .compile_file(&path)
                .await
                .map_err(|e| e.to_string())?
        } else {
            let bytes = agent_sandboxes::bundled::get(spec).ok_or_else(|| {
                format!(
                    "wasm:{spec}: no bundled wasm tool of that name (bundled: {})",
                    agent_sandboxes::bundled::names().join(", ")
                )
            })?;
            sandbox
                .compile(&format!("wasm:{spec}"), bytes.to_vec())
                .await
                .map_err(|e| e.to_string())?
        };
        let c = WasmComponent::load(sandbox.clone(), &name, component, policy)
            .await
            .map_err(|e| e.to_string())?;
        for tool in c.tools() {
            registry.register(tool).map_err(|e| e.to_string())?;
        }
        loaded.push(c);
    }
    Ok(loaded)
}

/// Wasm components and MCP servers both name their tools `NAME__tool`: a component and a
/// server of the same name would have one's tools shadow the other's. Refused at start-up.
pub fn check_tool_namespaces(
    wasm: &[std::sync::Arc<WasmComponent>],
    mcp: &McpConfig,
) -> Result<(), String> {
    match wasm.iter().find(|c| mcp.servers.contains_key(c.name())) {
        Some(c) => Err(format!(
            "the wasm tool `{0}` and the MCP server `{0}` would both name their tools `{0}__…`: \
             rename the MCP server (its key in mcp_servers)",
            c.name()
        )),
        None => Ok(()),
    }
}

/// What a run waits for before its first step, which decides most runs (the model plans
/// with the tools it sees then): every MCP server settled, up or failed, each within its own
/// `startup_timeout`. The servers start while the model loads, so this is usually no wait at
/// all. A `required` server that failed fails the run, and so does the server of a tool that
/// `tool_choice` names; any other failed server is reported (an event) and left out.
pub async fn wait_for_first_step(
    pool: &agent_tools::mcp::McpPool,
    choice: &crate::formats::ToolChoice,
) -> Result<(), String> {
    pool.wait_required().await.map_err(|e| e.to_string())?;
    if let crate::formats::ToolChoice::Tool(name) = choice
        && let Some((server, _)) = name.split_once("__")
        && pool.has(server)
    {
        pool.wait_ready(server).await.map_err(|e| e.to_string())?;
    }
    pool.wait_all().await;
    Ok(())
}

/// The user-level MCP configuration, read when present.
pub fn user_mcp_config(home: &Path) -> PathBuf {
    home.join("mcp.json")
}

/// The MCP servers of a run: `$AGENT_HOME/mcp.json` when present, then each `--mcp-config`
/// file, then the task's `mcp_servers:`; a later source replaces an earlier server of the same
/// name. Errors name the file (or task) and the key.
pub fn mcp_config(
    home: &Path,
    files: &[PathBuf],
    task: Option<&Task>,
) -> Result<McpConfig, String> {
    let mut config = McpConfig::default();
    let user = user_mcp_config(home);
    let mut sources: Vec<PathBuf> = Vec::new();
    if user.is_file() {
        sources.push(user);
    }
    sources.extend(files.iter().cloned());
    for path in sources {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read MCP configuration {}: {e}", path.display()))?;
        let source = path.display().to_string();
        let base = path.parent().unwrap_or(Path::new("."));
        let own = McpConfig::from_json(&text, &source)
            .and_then(|c| c.resolve_roots(base, &source, &[PathSeg::Key("mcpServers".into())]))
            .map_err(|e| e.to_string())?;
        config = config.merge(own);
    }
    if let Some(task) = task {
        let own = task
            .front
            .mcp_config()
            .map_err(|e| format!("{}: {}: {}", task.path.display(), e.key(), e.message))?;
        let base = task.path.parent().unwrap_or(Path::new("."));
        let source = task.path.display().to_string();
        let own = own
            .resolve_roots(base, &source, &[PathSeg::Key("mcp_servers".into())])
            .map_err(|e| {
                let line = task.key_lines.get("mcp_servers").map(|l| format!(":{l}"));
                format!(
                    "{source}{}: {}: {}",
                    line.unwrap_or_default(),
                    e.key(),
                    e.message
                )
            })?;
        config = config.merge(own);
    }
    Ok(config)
}

/// Why [`build`] could not make the registry.
#[derive(Debug, thiserror::Error)]
pub enum ToolsetError {
    /// A `builtin:NAME` source names no built-in tool.
    #[error("tools: unknown built-in tool `{name}` (available: {})", builtin::NAMES.join(", "))]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
    },
    /// The registry refused a tool (two tools of one name).
    #[error("tools: {0}")]
    Registry(#[from] agent_tools::RegistryError),
}

/// The registry for `sources`; `final_answer` is always present (shaped by the output schema),
/// because it is how a run ends with a checked answer.
pub fn build(sources: &[ToolSource], output: &OutputSpec) -> Result<ToolRegistry, ToolsetError> {
    let schema = match output {
        OutputSpec::Text => None,
        OutputSpec::Schema(s) => Some(s),
    };
    let mut names: Vec<String> = Vec::new();
    for s in sources {
        match s {
            ToolSource::AllBuiltins => names.extend(builtin::NAMES.iter().map(|n| n.to_string())),
            ToolSource::Builtin(n) => names.push(n.clone()),
            // Loaded by `add_wasm_tools` (compiling is async).
            ToolSource::Wasm(_) => {}
        }
    }
    names.push(FINAL_ANSWER.into());
    names.sort();
    names.dedup();
    let mut reg = ToolRegistry::new();
    for name in names {
        let tool = builtin::by_name(&name, schema).ok_or(ToolsetError::UnknownBuiltin { name })?;
        reg.register(tool)?;
    }
    Ok(reg)
}
