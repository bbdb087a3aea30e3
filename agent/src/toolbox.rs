//! The tools of a run, started in one place for `agent run`, `agent tools`, `agent serve` and
//! programs using the library: the tools it starts with (built-ins, `final_answer`, a
//! program's own), its sandboxed wasm tools, and its MCP servers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use agent_sandboxes::{Policy, Sandbox, WasmComponent};
use agent_tools::ToolRegistry;
use agent_tools::mcp::{Hooks, McpConfig, McpPool};
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::events::Event;
use crate::formats::ToolChoice;
use crate::sampling::BackendSampler;
use crate::task::ToolSource;
use crate::toolset;

/// What a [`Toolbox`] is started from.
#[derive(Clone)]
pub struct ToolboxSpec {
    /// The tools the run starts with: a task's built-ins and `final_answer`
    /// ([`toolset::build`]), a program's own.
    pub registry: ToolRegistry,
    /// The wasm components to load (`wasm:NAME` or a `.wasm` path); other sources are
    /// ignored (they are in `registry`).
    pub tools: Vec<ToolSource>,
    /// Each wasm tool's policy by name (the task's `wasm_policy`); a tool without one reads
    /// the policy file beside its component, or gets the default, which grants nothing.
    pub wasm_policies: BTreeMap<String, Policy>,
    /// Where relative `.wasm` paths and the policies' relative preopens are resolved (a task
    /// file's folder).
    pub base: PathBuf,
    /// The MCP servers to start.
    pub mcp: McpConfig,
    /// Most tokens one MCP sampling request may generate, whatever the server asks.
    pub sampling_max_tokens: u32,
    /// Where compiled wasm components are kept between runs; `None` compiles every time.
    pub wasm_cache: Option<PathBuf>,
}

impl Default for ToolboxSpec {
    /// No tools, no MCP servers, no wasm cache.
    fn default() -> Self {
        Self {
            registry: ToolRegistry::new(),
            tools: Vec::new(),
            wasm_policies: BTreeMap::new(),
            base: PathBuf::new(),
            mcp: McpConfig::default(),
            sampling_max_tokens: Hooks::default().sampling_max_tokens,
            wasm_cache: None,
        }
    }
}

/// Why a [`Toolbox`] could not start or get ready.
#[derive(Debug, thiserror::Error)]
pub enum ToolboxError {
    /// The configuration is wrong (an unknown tool, a bad policy, clashing names): the message
    /// names the tool or key.
    #[error("{0}")]
    Config(String),
    /// Something did not start (the sandbox, a required MCP server).
    #[error("{0}")]
    Start(String),
}

/// Started tools. The MCP servers come up in the background (while the model loads, say):
/// [`Toolbox::ready_for`] waits for what the first step needs. Shut it down with
/// [`Toolbox::shutdown`], which stops the servers.
pub struct Toolbox {
    registry: ToolRegistry,
    pool: Arc<McpPool>,
    hooks: Hooks,
    /// Made when a wasm tool is first loaded; kept for the ones loaded later.
    sandbox: OnceLock<Arc<Sandbox>>,
    wasm_cache: Option<PathBuf>,
    wasm: Vec<Arc<WasmComponent>>,
    events: Option<mpsc::UnboundedReceiver<Event>>,
}

impl Toolbox {
    /// Starts the MCP servers and loads the wasm tools. On an error nothing is left running.
    pub async fn start(spec: ToolboxSpec) -> Result<Self, ToolboxError> {
        // The servers' events (started, failed, restarted, sampling) join the run's.
        let (tx, events) = mpsc::unbounded_channel();
        let hooks = Hooks {
            sampling_max_tokens: spec.sampling_max_tokens,
            events: Some(Arc::new(move |e| {
                let _ = tx.send(Event::McpServer(e));
            })),
            ..Hooks::default()
        };
        let pool = McpPool::start(&spec.mcp, hooks.clone());
        // Filled once the wasm tools are in it, below.
        let mut toolbox = Self {
            registry: ToolRegistry::new(),
            pool,
            hooks,
            sandbox: OnceLock::new(),
            wasm_cache: spec.wasm_cache,
            wasm: Vec::new(),
            events: Some(events),
        };
        let mut registry = spec.registry;
        let loaded = toolbox
            .load_wasm(&mut registry, &spec.tools, &spec.wasm_policies, &spec.base)
            .await
            .and_then(|wasm| {
                toolset::check_tool_namespaces(&wasm, &spec.mcp).map_err(ToolboxError::Config)?;
                Ok(wasm)
            });
        match loaded {
            Ok(wasm) => toolbox.wasm = wasm,
            Err(e) => {
                toolbox.shutdown().await;
                return Err(e);
            }
        }
        registry.register_provider(toolbox.pool.clone());
        toolbox.registry = registry;
        Ok(toolbox)
    }

    /// The sandbox wasm tools run in, made on first use.
    pub fn sandbox(&self) -> Result<Arc<Sandbox>, ToolboxError> {
        if let Some(s) = self.sandbox.get() {
            return Ok(s.clone());
        }
        let made = Sandbox::new(self.wasm_cache.as_deref())
            .map_err(|e| ToolboxError::Start(format!("cannot start the wasm sandbox: {e}")))?;
        // Two first uses at once make two; one is kept.
        Ok(self.sandbox.get_or_init(|| Arc::new(made)).clone())
    }

    /// Loads the wasm components among `sources` into `registry` (see
    /// [`toolset::add_wasm_tools`]: policies by name, relative paths from `base`).
    pub async fn load_wasm(
        &self,
        registry: &mut ToolRegistry,
        sources: &[ToolSource],
        policies: &BTreeMap<String, Policy>,
        base: &Path,
    ) -> Result<Vec<Arc<WasmComponent>>, ToolboxError> {
        if !sources.iter().any(|s| matches!(s, ToolSource::Wasm(_))) {
            return Ok(Vec::new());
        }
        toolset::add_wasm_tools(registry, &self.sandbox()?, sources, policies, base)
            .await
            .map_err(ToolboxError::Config)
    }

    /// Starts more MCP servers with the same hooks (a task's own, beside a server's), and
    /// waits for what a first step with `choice` needs; shut the pool down after the run.
    pub async fn start_servers(
        &self,
        mcp: &McpConfig,
        choice: &ToolChoice,
    ) -> Result<Arc<McpPool>, ToolboxError> {
        let pool = McpPool::start(mcp, self.hooks.clone());
        if let Err(e) = toolset::wait_for_first_step(&pool, choice).await {
            pool.shutdown().await;
            return Err(ToolboxError::Start(e));
        }
        Ok(pool)
    }

    /// Lets MCP servers sample from `backend` (until then a sampling request gets an error
    /// saying the model is still loading).
    pub fn use_model(&self, backend: Arc<dyn Backend>) {
        let _ = self
            .hooks
            .sampler
            .set(Arc::new(BackendSampler::new(backend)));
    }

    /// Waits for what a run's first step needs (see [`toolset::wait_for_first_step`]).
    pub async fn ready_for(&self, choice: &ToolChoice) -> Result<(), ToolboxError> {
        toolset::wait_for_first_step(&self.pool, choice)
            .await
            .map_err(ToolboxError::Start)
    }

    /// Every tool: the ones started with, the wasm tools, and the MCP servers' as they come
    /// up.
    pub fn registry(&self) -> &ToolRegistry {
        &self.registry
    }

    /// The MCP servers.
    pub fn pool(&self) -> &Arc<McpPool> {
        &self.pool
    }

    /// The wasm components loaded at the start.
    pub fn wasm(&self) -> &[Arc<WasmComponent>] {
        &self.wasm
    }

    /// The MCP servers' events, once: a run merges them into its own (see
    /// [`crate::planner::Run::side_events`]). Dropping the receiver discards them.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<Event>> {
        self.events.take()
    }

    /// Stops the MCP servers.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
    }
}
