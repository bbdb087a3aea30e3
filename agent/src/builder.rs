//! [`AgentBuilder`]: an [`Agent`] from settings, made the one way `agent run`, `agent serve`
//! and programs make it. Every task-file key has a method, and a task file is the same
//! settings ([`AgentBuilder::task`]), so all of them share every default and every check.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use agent::Agent;
//!
//! let agent = Agent::builder().model("smollm2-135m").builtin("calculator").build().await?;
//! let outcome = agent.run("What is 17 * 23?").await?;
//! println!("{}", outcome.answer_text().unwrap_or_default());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_sandboxes::Policy;
use agent_tools::mcp::McpConfig;
use agent_tools::{Tool, ToolRegistry};
use schemars::JsonSchema;
use serde_json::Value;

use crate::backend::Backend;
use crate::backend::Device;
use crate::formats::Format;
use crate::formats::ToolChoice;
use crate::models::{self, ModelError, agent_home};
use crate::permissions::Access;
use crate::planner::{Agent, DEFAULT_MAX_TOKENS, Origin, RunConfig};
use crate::task::{FieldError, INLINE_PATH, OutputSpec, Sampling, Task, ThinkingSpec, ToolSource};
use crate::thinking::Budget;
use crate::thinking::{StepContext, ThinkingPolicy};
use crate::toolbox::{Toolbox, ToolboxError, ToolboxSpec};
use crate::toolset;

/// Why [`AgentBuilder::build`] failed. [`BuildError::is_bad_input`] tells a mistake in the
/// settings from something that failed to start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting is not acceptable: the message names the key (as in a task file).
    #[error("{0}")]
    Setting(String),
    /// The tools are not acceptable (an unknown tool, a bad policy, clashing names): the
    /// message names the tool; it does not name the task file.
    #[error("{0}")]
    Tools(String),
    /// The model could not be found, resolved or fetched.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model did not load.
    #[error("{0}")]
    Load(String),
    /// The tools did not start (the sandbox, a required MCP server).
    #[error("{0}")]
    Start(String),
}

impl BuildError {
    /// A mistake in the settings (or model name), not a failure to start.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            BuildError::Setting(_) | BuildError::Tools(_) | BuildError::Model(_)
        )
    }
}

/// `--disk-cache-mb`'s and [`AgentBuilder::disk_cache_mib`]'s default: 4 GiB.
pub const DISK_CACHE_MIB: u64 = 4 << 10;

/// [`AgentBuilder::prefix_cache`]'s default: a few runs' prompts.
pub const PREFIX_CACHE_SEQS: usize = 4;

/// The model an agent gets: given, or found and still to load.
enum Model {
    Loaded(Arc<dyn Backend>),
    Resolved(models::ResolvedModel),
}

/// Builds an [`Agent`]: see the [module documentation](self). Made by [`Agent::builder`].
pub struct AgentBuilder {
    /// The settings (its front matter) and where they came from (its path and key lines, for
    /// errors, and its folder, for relative paths); its instructions are not used.
    task: Task,
    tools: Vec<Arc<dyn Tool>>,
    mcp_files: Vec<PathBuf>,
    backend: Option<Arc<dyn Backend>>,
    offline: bool,
    max_tokens: usize,
    thinking_policy: Option<ThinkingPolicy>,
    disk_cache_mib: u64,
    /// Sequences the in-memory prefix cache keeps (0: none).
    prefix_cache: usize,
    /// The model was named by the task file (not overridden since), so an error names its
    /// line.
    model_from_task: bool,
    status: Option<Box<dyn Fn(&str) + Send + Sync>>,
    /// Who is asked about calls, Rust hooks, where "always" answers go.
    pub(crate) access: Access,
}

impl Agent {
    /// A builder with the defaults of a task file that sets nothing.
    pub fn builder() -> AgentBuilder {
        AgentBuilder {
            task: Task::from_instructions(""),
            tools: Vec::new(),
            mcp_files: Vec::new(),
            backend: None,
            offline: false,
            max_tokens: DEFAULT_MAX_TOKENS,
            thinking_policy: None,
            disk_cache_mib: DISK_CACHE_MIB,
            prefix_cache: PREFIX_CACHE_SEQS,
            model_from_task: false,
            status: None,
            access: Access::default(),
        }
    }
}

impl AgentBuilder {
    /// Takes every setting `task` makes (its front matter, over what was set before; later
    /// calls win over it) and resolves its relative paths from its folder.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::sync::Arc;
    /// # let model = Arc::new(agent::replay::Replay::chatml([
    /// #     r#"<tool_call>{"name": "calculator", "arguments": {"expression": "17 * 23"}}</tool_call>"#,
    /// #     r#"<tool_call>{"name": "final_answer", "arguments": {"answer": "391"}}</tool_call>"#,
    /// # ]));
    /// use std::path::Path;
    ///
    /// use agent::{Agent, Task};
    ///
    /// let text = "---\nmax_steps: 3\ntools: [builtin:calculator]\n---\nWhat is 17 * 23?\n";
    /// let task = Task::parse(Path::new("sum.md"), text)?;
    /// // `backend` hands the builder a model already loaded (here a recorded one); without it,
    /// // the task's `model:` (or the default model) is loaded.
    /// let agent = Agent::builder().task(&task).backend(model).build().await?;
    /// assert_eq!(agent.tools().names(), ["calculator", "final_answer"]);
    /// let outcome = agent.run(task.instructions).await?;
    /// assert_eq!((outcome.answer_text().as_deref(), outcome.steps), (Some("391"), 2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn task(mut self, task: &Task) -> Self {
        self.model_from_task |= task.front.model.is_some();
        let front = std::mem::take(&mut self.task.front).overlay(task.front.clone());
        self.task = Task {
            front,
            ..task.clone()
        };
        self
    }

    /// A catalogue name (`agent models`), a `.gguf` file or a model directory (`model:`).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.task.front.model = Some(model.into());
        self.model_from_task = false;
        self
    }

    /// A model already loaded (another agent's, say: [`Agent::backend`]); `model`, `device`
    /// and `isq` are then not used.
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Where the model runs (`device:`).
    pub fn device(mut self, device: Device) -> Self {
        self.task.front.device = Some(device);
        self
    }

    /// Quantize a safetensors checkpoint while loading it: `Q4K`, `Q8_0`, … (`isq:`).
    pub fn isq(mut self, isq: impl Into<String>) -> Self {
        self.task.front.isq = Some(isq.into());
        self
    }

    /// Most model turns in one run (`max_steps:`).
    pub fn max_steps(mut self, steps: u32) -> Self {
        self.task.front.max_steps = Some(steps);
        self
    }

    /// The most bytes of one tool result the prompt holds (`max_result_bytes`): a longer
    /// result is cut to its head and tail, and the model can read the rest with `read_result`.
    pub fn max_result_bytes(mut self, bytes: u64) -> Self {
        self.task.front.limits.max_result_bytes = Some(bytes);
        self
    }

    /// The most tokens of one tool result the prompt holds (`max_result_tokens`; default: an
    /// eighth of the model's context window).
    pub fn max_result_tokens(mut self, tokens: u64) -> Self {
        self.task.front.limits.max_result_tokens = Some(tokens);
        self
    }

    /// Compact the conversation when a prompt would fill this fraction of the context window
    /// (`compact_at:`, default 0.8); `None` turns compaction off (`compact: false`), and the
    /// run then stops when the next prompt would not fit.
    pub fn compact_at(mut self, fraction: Option<f64>) -> Self {
        let limits = &mut self.task.front.limits;
        limits.compact = Some(fraction.is_some());
        limits.compact_at = fraction;
        self
    }

    /// How many identical calls, or identical replies, count as a loop (`loop_repeats:`,
    /// default 2): the model is told once, and the run stops if it goes on.
    pub fn loop_repeats(mut self, n: u32) -> Self {
        self.task.front.limits.loop_repeats = Some(n);
        self
    }

    /// The most calls one turn may make (`max_calls:`, default 1), and how many of them run
    /// at once (`parallel_calls:`, default 4).
    pub fn calls_per_turn(mut self, max_calls: u32, parallel: u32) -> Self {
        let limits = &mut self.task.front.limits;
        limits.max_calls = Some(max_calls);
        limits.parallel_calls = Some(parallel);
        self
    }

    /// The most time a run may take (`time_limit:`, whole seconds): it then stops with
    /// [`StopReason::TimeLimit`](crate::events::StopReason::TimeLimit).
    pub fn time_limit(mut self, limit: std::time::Duration) -> Self {
        self.task.front.limits.time_limit = Some(limit.as_secs().max(1));
        self
    }

    /// The most time one tool call may take (`tool_timeout:`, whole seconds): the call is
    /// then cancelled and the model told.
    pub fn tool_timeout(mut self, limit: std::time::Duration) -> Self {
        self.task.front.limits.tool_timeout = Some(limit.as_secs().max(1));
        self
    }

    /// A tool of the program's own, e.g. from [`agent_tools::typed::tool`].
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// Exactly these built-in and wasm tools (`tools:`), in place of the default (every
    /// built-in tool); `[]` for none but the program's own and the MCP servers'.
    pub fn tools(mut self, sources: impl IntoIterator<Item = ToolSource>) -> Self {
        self.task.front.tools = Some(sources.into_iter().collect());
        self
    }

    /// A built-in tool by name (`tools: [builtin:NAME]`); the first one given replaces the
    /// default of every built-in tool.
    pub fn builtin(self, name: impl Into<String>) -> Self {
        self.source(ToolSource::Builtin(name.into()))
    }

    /// A bundled wasm tool by name, or a `.wasm` component file, sandboxed under its policy
    /// (`tools: [wasm:NAME]`); like [`builtin`](Self::builtin), it replaces the default.
    pub fn wasm(self, name_or_path: impl Into<String>) -> Self {
        self.source(ToolSource::Wasm(name_or_path.into()))
    }

    fn source(mut self, source: ToolSource) -> Self {
        self.task
            .front
            .tools
            .get_or_insert_with(Vec::new)
            .push(source);
        self
    }

    /// What wasm tool `name` may do (`wasm_policy: {NAME: ...}`).
    pub fn wasm_policy(mut self, name: impl Into<String>, policy: Policy) -> Self {
        self.task
            .front
            .wasm_policy
            .get_or_insert_with(Default::default)
            .insert(name.into(), policy);
        self
    }

    /// The thinking budget: one for every step ([`Budget`]) or per step kind
    /// ([`ThinkingPolicySpec`](crate::thinking::ThinkingPolicySpec)) (`thinking:`).
    pub fn thinking(mut self, thinking: impl Into<ThinkingSpec>) -> Self {
        self.task.front.thinking = Some(thinking.into());
        self.thinking_policy = None;
        self
    }

    /// Each step's budget chosen by `policy`, from what the step knows.
    pub fn thinking_policy(
        mut self,
        policy: impl Fn(&StepContext) -> Budget + Send + Sync + 'static,
    ) -> Self {
        self.thinking_policy = Some(ThinkingPolicy::Custom(Arc::new(policy)));
        self
    }

    /// Token sampling (`sampling:`); greedy when not set.
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.task.front.sampling = Some(sampling);
        self
    }

    /// The final answer must be JSON valid against `schema` (`output: {schema: ...}`).
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.task.front.output = Some(OutputSpec::Schema(schema));
        self
    }

    /// The final answer must be a `T` (its JSON Schema); read it with
    /// `serde_json::from_value` or use [`Agent::run_typed`].
    pub fn output<T: JsonSchema>(self) -> Self {
        self.output_schema(agent_tools::typed::parameters::<T>())
    }

    /// Which calls a step may make (`tool_choice:`).
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.task.front.tool_choice = Some(choice);
        self
    }

    /// The tool-call format, when not the model family's (`tool_format:`).
    pub fn tool_format(mut self, format: Format) -> Self {
        self.task.front.tool_format = Some(format);
        self
    }

    /// MCP servers in the `mcpServers` shape, as JSON (`mcp_servers:`).
    pub fn mcp_servers(mut self, servers: Value) -> Self {
        self.task.front.mcp_servers = Some(servers);
        self
    }

    /// MCP servers from a file in the `mcpServers` shape (Claude Desktop, Cursor); may be
    /// given more than once. `$AGENT_HOME/mcp.json` is read first when it exists, `mcp_servers`
    /// last.
    pub fn mcp_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.mcp_files.push(path.into());
        self
    }

    /// Never download: a catalogue model must already be on this machine.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Most tokens a step may write after its reasoning (a thinking budget comes on top).
    pub fn max_tokens(mut self, tokens: usize) -> Self {
        self.max_tokens = tokens;
        self
    }

    /// Bound (MiB) of the on-disk prefix cache in `$AGENT_HOME/prefix-cache`; 0 turns it off.
    pub fn disk_cache_mib(mut self, mib: u64) -> Self {
        self.disk_cache_mib = mib;
        self
    }

    /// Finished sequences whose KV the in-memory prefix cache keeps, so that a task sent
    /// again, or one sharing a long opening with a recent one, is prefilled only where it
    /// differs (0 turns it off, and the disk cache with it).
    pub fn prefix_cache(mut self, sequences: usize) -> Self {
        self.prefix_cache = sequences;
        self
    }

    /// Called with what the build is doing ("loading MODEL…"), for a progress display.
    pub fn on_status(mut self, status: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.status = Some(Box::new(status));
        self
    }

    /// A setting's error as a task file's (file, line and key), or the key alone for
    /// settings made in code.
    fn setting_error(&self, key: &str, message: impl std::fmt::Display) -> BuildError {
        if self.task.path == Path::new(INLINE_PATH) {
            BuildError::Setting(format!("{key}: {message}"))
        } else {
            BuildError::Setting(self.task.error_at(key, message.to_string()).to_string())
        }
    }

    /// The run settings, the starting tools and the MCP servers, checked.
    fn prepare(&self) -> Result<(RunConfig, ToolRegistry, McpConfig), BuildError> {
        let front = &self.task.front;
        front
            .check()
            .map_err(|e: FieldError| self.setting_error(&e.key(), e.message()))?;
        let mut registry = toolset::build(&front.tools_or_default(), &front.output_or_default())
            .map_err(|e| BuildError::Tools(e.to_string()))?;
        for t in &self.tools {
            registry
                .register(t.clone())
                .map_err(|e| BuildError::Tools(format!("tools: {e}")))?;
        }
        let mcp = toolset::mcp_config(&agent_home(), &self.mcp_files, Some(&self.task))
            .map_err(BuildError::Setting)?;
        let mut settings =
            RunConfig::for_task(front, &self.task, String::new(), self.max_tokens, None);
        if let Some(p) = &self.thinking_policy {
            settings.thinking = p.clone();
        }
        Ok((settings, registry, mcp))
    }

    /// Where relative paths in the settings are resolved from: the task file's folder.
    fn base(&self) -> PathBuf {
        self.task
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    async fn start(&self, registry: ToolRegistry, mcp: McpConfig) -> Result<Toolbox, BuildError> {
        let front = &self.task.front;
        let spec = ToolboxSpec {
            registry,
            tools: front.tools_or_default(),
            wasm_policies: front.wasm_policy.clone().unwrap_or_default(),
            base: self.base(),
            sampling_max_tokens: u32::try_from(self.max_tokens).unwrap_or(u32::MAX),
            wasm_cache: Some(toolset::wasm_cache_dir(&agent_home())),
            mcp,
        };
        Toolbox::start(spec).await.map_err(|e| match e {
            ToolboxError::Config(m) => BuildError::Tools(m),
            ToolboxError::Start(m) => BuildError::Start(m),
        })
    }

    /// The tools alone, without a model (what `agent tools` lists): the built-in and wasm
    /// tools, the program's own, and the MCP servers, starting. Shut it down after use.
    pub async fn start_tools(&self) -> Result<Toolbox, BuildError> {
        let (_, registry, mcp) = self.prepare()?;
        self.start(registry, mcp).await
    }

    /// Starts the tools and MCP servers and loads the model (at the same time), and waits for
    /// what the first step needs. On an error nothing is left running.
    pub async fn build(self) -> Result<Agent, BuildError> {
        let (settings, registry, mcp) = self.prepare()?;
        // Resolved before anything starts: a wrong name fails with nothing to stop.
        let model = match &self.backend {
            Some(b) => Model::Loaded(b.clone()),
            None => Model::Resolved(self.resolve_model().await?),
        };
        let has_mcp = !mcp.servers.is_empty();
        // The MCP servers start while the model loads.
        let toolbox = self.start(registry, mcp).await?;
        let backend = match model {
            Model::Loaded(b) => b,
            Model::Resolved(m) => match self.load(&m).await {
                Ok(b) => b,
                Err(e) => {
                    toolbox.shutdown().await;
                    return Err(e);
                }
            },
        };
        toolbox.use_model(backend.clone());
        if has_mcp {
            self.say("starting MCP servers…");
        }
        if let Err(e) = toolbox.ready_for(&settings.tool_choice).await {
            toolbox.shutdown().await;
            return Err(BuildError::Start(e.to_string()));
        }
        let tools = toolbox.registry().clone();
        let origin = Origin {
            front: self.task.front.clone(),
            base: self.base(),
            own_tools: self.tools.clone(),
            thinking_policy: self.thinking_policy.clone(),
            max_tokens: self.max_tokens,
        };
        Ok(Agent::new(backend, tools)
            .with_access(self.access.clone())
            .with_settings(settings)
            .with_toolbox(toolbox)
            .with_origin(origin))
    }

    fn say(&self, status: &str) {
        if let Some(f) = &self.status {
            f(status);
        }
    }

    /// The model the settings name, fetched when it is a catalogue model not yet here.
    async fn resolve_model(&self) -> Result<models::ResolvedModel, BuildError> {
        let name = self.task.front.model_or_default().to_string();
        let (offline, isq) = (self.offline, self.task.front.isq.clone());
        // Resolving may download (blocking HTTP).
        let resolved = tokio::task::spawn_blocking(move || {
            models::resolve_with(&name, &crate::hub::Hub::from_env(offline))
        })
        .await
        .map_err(|e| BuildError::Load(format!("the model lookup stopped: {e}")))?;
        let mut m = resolved.map_err(|e| match self.model_from_task {
            // A task file's `model:` is named with its line.
            true => BuildError::Setting(self.task.error_at("model", e.to_string()).to_string()),
            false => BuildError::Model(e),
        })?;
        m.isq = isq;
        Ok(m)
    }

    #[cfg(feature = "mistralrs")]
    async fn load(&self, m: &models::ResolvedModel) -> Result<Arc<dyn Backend>, BuildError> {
        use crate::mistral::{Caches, MistralBackend};
        self.say(&format!("loading {}…", m.name));
        let memory = (self.prefix_cache > 0).then_some(self.prefix_cache);
        let caches = Caches::sized(memory, self.disk_cache_mib);
        let device = self.task.front.device_or_default();
        match MistralBackend::load_with(m, device, caches).await {
            Ok(b) => Ok(Arc::new(b)),
            Err(e) => Err(BuildError::Load(e.to_string())),
        }
    }

    #[cfg(not(feature = "mistralrs"))]
    async fn load(&self, m: &models::ResolvedModel) -> Result<Arc<dyn Backend>, BuildError> {
        Err(BuildError::Load(format!(
            "cannot load {}: this build has no model backend (the `mistralrs` feature); give one with AgentBuilder::backend",
            m.name
        )))
    }
}
