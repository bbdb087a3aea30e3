//! What `agent serve` answers: `run_task` (a whole run of the loaded model, with a progress
//! notification per step and cancellation), the configured wasm tools and, with `--gateway`,
//! the upstream MCP servers' tools; the traces of past runs as resources
//! (`agent://runs/{id}`); the example tasks as prompts.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use agent::events::{Collect, Event, Observer, StopReason, TraceWriter};
use agent::mistral::MistralBackend;
use agent::models::agent_home;
use agent::planner::Agent;
use agent::task::{FrontMatter, Task, ToolSource};
use agent::toolset;
use agent_sandboxes::WasmComponent;
use agent_tools::mcp::{Hooks, McpPool};
use agent_tools::{CallContext, ToolOutput, ToolRegistry};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken, Prompt, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::runcfg;

/// The example tasks, served as prompts.
const EXAMPLES: [(&str, &str); 2] = [
    ("strawberry", include_str!("../../../examples/tasks/strawberry.md")),
    ("decimals", include_str!("../../../examples/tasks/decimals.md")),
];

/// How the server was started: the flags and defaults every run starts from.
pub struct Settings {
    /// The served model's name.
    pub model: String,
    pub defaults: FrontMatter,
    /// Where relative paths in the defaults (wasm components, preopens) are resolved from.
    pub base: PathBuf,
    pub max_tokens: usize,
    pub max_concurrent: usize,
    /// Also serve the upstream MCP servers' tools.
    pub gateway: bool,
    pub trust_tasks: bool,
    /// The conformance suite's fixture tools (`serve_conformance`).
    pub conformance_fixtures: bool,
}

pub struct State {
    settings: Settings,
    backend: Arc<MistralBackend>,
    sandbox: Arc<agent_sandboxes::Sandbox>,
    wasm: Vec<Arc<WasmComponent>>,
    pool: Arc<McpPool>,
    hooks: Hooks,
    /// Tools served as MCP tools (besides `run_task`): the wasm tools, and the upstream MCP
    /// servers' with `--gateway`.
    served: ToolRegistry,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    runs: AtomicU64,
}

impl State {
    pub fn new(settings: Settings, backend: Arc<MistralBackend>, sandbox: Arc<agent_sandboxes::Sandbox>, wasm: Vec<Arc<WasmComponent>>, pool: Arc<McpPool>, hooks: Hooks) -> State {
        let mut served = ToolRegistry::new();
        for tool in wasm.iter().flat_map(WasmComponent::tools) {
            // Names are unique per component and prefixed with the component's name.
            let _ = served.register(tool);
        }
        if settings.gateway {
            served.register_provider(pool.clone());
        }
        let slots = Arc::new(Semaphore::new(settings.max_concurrent));
        State { settings, backend, sandbox, wasm, pool, hooks, served, slots, waiting: AtomicUsize::new(0), runs: AtomicU64::new(0) }
    }
}

#[derive(Clone)]
pub struct Server {
    state: Arc<State>,
}

impl Server {
    pub fn new(state: Arc<State>) -> Server {
        Server { state }
    }
}

fn run_task_tool() -> Tool {
    let input = json!({
        "type": "object",
        "properties": {
            "task": {"type": "string", "description": "The task: Markdown with optional YAML front matter, as in a task file, or plain instructions."},
            "options": {
                "type": "object",
                "description": "Settings that win over the task's front matter.",
                "properties": {
                    "max_steps": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Most model turns before the run stops without an answer."},
                    "thinking": {"description": "Thinking budget: \"off\", \"unlimited\", a token count, or per step kind like {\"plan\": 4096, \"act\": \"off\"}."},
                    "tools": {"type": "array", "items": {"type": "string"}, "description": "Tool sources, as in a task file: \"builtin\", \"builtin:NAME\", \"wasm:NAME\"."},
                    "output_schema": {"type": "object", "description": "A JSON Schema the final answer must match."}
                },
                "additionalProperties": false
            }
        },
        "required": ["task"],
        "additionalProperties": false
    });
    let output = json!({
        "type": "object",
        "properties": {
            "answer": {"description": "The final answer (text, or JSON matching output_schema); null without one."},
            "stop": {"type": "string", "enum": ["answer", "max_steps", "cancelled"]},
            "steps": {"type": "integer"},
            "tool_calls": {"type": "array", "items": {"type": "object"}},
            "thinking_tokens": {"type": "integer"},
            "run_id": {"type": "string"},
            "trace": {"type": "string", "description": "The run's trace, as a resource URI."}
        },
        "required": ["answer", "stop", "steps", "tool_calls", "thinking_tokens", "run_id", "trace"]
    });
    let mut tool = Tool::new("run_task", "Run a task with the local agent: the model plans, calls its tools and answers. Progress is reported per step; cancelling stops the run.", Arc::new(input.as_object().cloned().unwrap_or_default()));
    tool.output_schema = output.as_object().cloned().map(Arc::new);
    tool
}

fn as_mcp(out: ToolOutput) -> CallToolResult {
    let mut r = if out.is_error { CallToolResult::error(vec![ContentBlock::text(out.content)]) } else { CallToolResult::success(vec![ContentBlock::text(out.content)]) };
    // Older protocol versions allow only objects as structured content.
    r.structured_content = out.structured.filter(Value::is_object);
    r
}

fn runs_dir() -> PathBuf {
    agent_home().join("runs")
}

/// `agent://runs/ID` → the trace file, for ids that are plain names (no path tricks).
fn trace_path(uri: &str) -> Option<PathBuf> {
    let id = uri.strip_prefix("agent://runs/")?;
    let plain = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plain.then(|| runs_dir().join(format!("{id}.jsonl")))
}

/// Sends `run_task` progress to the client: one notification per step and per tool call.
struct Notifier {
    tx: tokio::sync::mpsc::UnboundedSender<(f64, f64, String)>,
    max_steps: u32,
}

impl Notifier {
    /// A notifier forwarding to `peer` under `token`; without a token, nothing is sent.
    fn start(peer: Peer<RoleServer>, token: Option<ProgressToken>, max_steps: u32) -> Notifier {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, f64, String)>();
        tokio::spawn(async move {
            while let Some((progress, total, message)) = rx.recv().await {
                if let Some(t) = &token {
                    let _ = peer.notify_progress(ProgressNotificationParam::new(t.clone(), progress).with_total(total).with_message(message)).await;
                }
            }
        });
        Notifier { tx, max_steps }
    }

    fn send(&self, step: u32, message: String) {
        let _ = self.tx.send((f64::from(step), f64::from(self.max_steps), message));
    }
}

impl Observer for Notifier {
    fn event(&mut self, event: &Event) {
        let max = self.max_steps;
        match event {
            Event::StepStarted { step, kind, .. } => self.send(*step, format!("step {step} of {max}: the model is working ({kind:?})").to_lowercase()),
            Event::ToolCall { step, name, .. } => self.send(*step, format!("step {step} of {max}: calling {name}")),
            Event::Final { steps, .. } => self.send(*steps, format!("done after {steps} steps")),
            _ => {}
        }
    }
}

impl State {
    /// The settings of one run: the server's defaults, then the task's front matter, then
    /// `options`. A client's task may not reconfigure the server unless it is trusted.
    fn plan(&self, task_text: &str, options: Option<&Value>) -> Result<(Task, FrontMatter, agent_tools::mcp::McpConfig), String> {
        let task = if task_text.trim_start().starts_with("---") { Task::parse_inline(task_text).map_err(|e| e.to_string())? } else { Task::from_instructions(task_text.trim()) };
        if task.instructions.trim().is_empty() {
            return Err("task: the instructions are empty".into());
        }
        let mut over = task.front.clone();
        if let Some(opts) = options {
            let mut o = opts.as_object().cloned().ok_or("options: expected an object")?;
            if let Some(schema) = o.remove("output_schema") {
                o.insert("output".into(), schema);
            }
            let yaml: serde_yaml_ng::Value = serde_yaml_ng::to_value(Value::Object(o)).map_err(|e| format!("options: {e}"))?;
            let fm = FrontMatter::try_from(yaml).map_err(|e| format!("options: {e}"))?;
            over = runcfg::overlay(over, fm);
        }
        if !self.settings.trust_tasks {
            if over.mcp_servers.is_some() {
                return Err("mcp_servers: this server does not let tasks start MCP servers (start it with --trust-tasks, or configure them with --mcp-config)".into());
            }
            if over.wasm_policy.is_some() {
                return Err("wasm_policy: this server does not let tasks grant wasm tools access (start it with --trust-tasks, or set policies in --defaults)".into());
            }
            if let Some(ToolSource::Wasm(spec)) = over.tools.iter().flatten().find(|s| matches!(s, ToolSource::Wasm(p) if p.ends_with(".wasm"))) {
                return Err(format!("tools: wasm:{spec}: this server does not load components from paths (start it with --trust-tasks)"));
            }
        }
        if let Some(m) = &over.model
            && models_differ(m, &self.settings.model)
        {
            return Err(format!("model: this server runs {}; a task cannot choose another (leave `model` out)", self.settings.model));
        }
        // The task's own MCP servers start for its run; the defaults' run for the server's life.
        let own_mcp = over.mcp_config().map_err(|e| format!("mcp_servers: {e}"))?;
        let mut merged = runcfg::overlay(self.settings.defaults.clone(), over);
        merged.mcp_servers = None;
        Ok((task, merged, own_mcp))
    }

    /// The run's tools: built-ins, wasm tools (the server's loaded ones by name, others
    /// loaded now under the run's policies), the server's MCP servers' and the task's own
    /// (started for this run: shut the returned pool down after it).
    async fn tools(&self, front: &FrontMatter, own_mcp: &agent_tools::mcp::McpConfig) -> Result<(ToolRegistry, Option<Arc<McpPool>>), String> {
        let sources = front.tools_or_default();
        let mut reg = toolset::build(&sources, &front.output_or_default()).map_err(|e| e.to_string())?;
        let mut missing = Vec::new();
        for s in &sources {
            let Some(name) = s.wasm_name() else { continue };
            match self.wasm.iter().find(|c| c.name() == name) {
                Some(c) => c.tools().into_iter().try_for_each(|t| reg.register(t)).map_err(|e| e.to_string())?,
                None => missing.push(s.clone()),
            }
        }
        if !missing.is_empty() {
            let base = if self.settings.trust_tasks { std::env::current_dir().unwrap_or_default() } else { self.settings.base.clone() };
            toolset::add_wasm_tools(&mut reg, &self.sandbox, &missing, &front.wasm_policy.clone().unwrap_or_default(), &base).await?;
        }
        reg.register_provider(self.pool.clone());
        let own = if own_mcp.servers.is_empty() {
            None
        } else {
            let pool = McpPool::start(own_mcp, self.hooks.clone());
            if let Err(e) = pool.wait_required().await {
                pool.shutdown().await;
                return Err(e.to_string());
            }
            reg.register_provider(pool.clone());
            Some(pool)
        };
        Ok((reg, own))
    }

    async fn run_task(&self, args: Value, cx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let bad = |m: String| ErrorData::invalid_params(m, None);
        let task_text = args.get("task").and_then(Value::as_str).ok_or_else(|| bad("run_task: `task` (a string) is required".into()))?;
        let (task, front, own_mcp) = self.plan(task_text, args.get("options")).map_err(bad)?;
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let run_id = format!("{}-{n}", super::run::run_id());
        let cfg = runcfg::run_config(&front, &task, run_id.clone(), self.settings.max_tokens, None);
        let notifier = Notifier::start(cx.peer.clone(), cx.meta.get_progress_token(), cfg.max_steps);
        // A slot: at most `max_concurrent` runs share the model at once.
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let ahead = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
                notifier.send(0, format!("queued: {ahead} waiting; {} run at once", self.settings.max_concurrent));
                let got = tokio::select! {
                    p = self.slots.clone().acquire_owned() => p.ok(),
                    _ = cx.ct.cancelled() => None,
                };
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                got.ok_or_else(|| ErrorData::internal_error("cancelled while queued", None))?
            }
        };
        let (tools, own_pool) = self.tools(&front, &own_mcp).await.map_err(bad)?;
        let trace_file = runs_dir().join(format!("{run_id}.jsonl"));
        let trace = TraceWriter::create(&trace_file).map_err(|e| ErrorData::internal_error(format!("cannot write the trace {}: {e}", trace_file.display()), None))?;
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut agent = Agent::new(&*self.backend, tools);
        agent.observe(Box::new(trace));
        agent.observe(Box::new(Collect(events.clone())));
        agent.observe(Box::new(notifier));
        let outcome = agent.run(&cfg, &cx.ct).await;
        drop(agent);
        drop(permit);
        if let Some(pool) = own_pool {
            pool.shutdown().await;
        }
        let outcome = outcome.map_err(|e| ErrorData::internal_error(format!("the run failed: {e} (trace: agent://runs/{run_id})"), None))?;
        let events = events.lock().map(|e| e.clone()).unwrap_or_default();
        let tool_calls: Vec<Value> = events
            .iter()
            .filter_map(|e| match e {
                Event::ToolCall { name, arguments, .. } if name != agent_tools::builtin::FINAL_ANSWER => Some(json!({"name": name, "arguments": arguments})),
                _ => None,
            })
            .collect();
        let thinking_tokens: usize = events.iter().map(|e| if let Event::ModelOutput { thinking_tokens, .. } = e { *thinking_tokens } else { 0 }).sum();
        let stop = match outcome.stop {
            StopReason::Answer => "answer",
            StopReason::MaxSteps => "max_steps",
            StopReason::Cancelled => "cancelled",
        };
        let structured = json!({
            "answer": outcome.answer, "stop": stop, "steps": outcome.steps, "tool_calls": tool_calls,
            "thinking_tokens": thinking_tokens, "run_id": run_id, "trace": format!("agent://runs/{run_id}"),
        });
        let mut result = match outcome.stop {
            StopReason::Answer => CallToolResult::success(vec![ContentBlock::text(outcome.answer_text().unwrap_or_default())]),
            StopReason::MaxSteps => CallToolResult::error(vec![ContentBlock::text(format!("no final answer after {} steps (trace: agent://runs/{run_id})", outcome.steps))]),
            StopReason::Cancelled => CallToolResult::error(vec![ContentBlock::text(format!("cancelled at step {} (trace: agent://runs/{run_id})", outcome.steps))]),
        };
        result.structured_content = Some(structured);
        Ok(result)
    }
}

/// Whether a task's `model` names another model than the served one (catalogue names and
/// paths as written, compared loosely).
fn models_differ(asked: &str, served: &str) -> bool {
    let norm = |s: &str| s.trim().to_ascii_lowercase();
    norm(asked) != norm(served) && agent::models::resolve(asked).map(|m| norm(&m.name) != norm(served)).unwrap_or(true)
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().enable_prompts().build())
            .with_server_info(Implementation::new("agent", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!("A local agent ({}): hand it a task with run_task; its sandboxed tools are also callable directly.", self.state.settings.model))
    }

    async fn list_tools(&self, _: Option<PaginatedRequestParams>, _: RequestContext<RoleServer>) -> Result<ListToolsResult, ErrorData> {
        let mut tools = vec![run_task_tool()];
        if self.state.settings.conformance_fixtures {
            tools.extend(super::serve_conformance::tools());
        }
        for t in self.state.served.current().values() {
            let s = t.spec();
            tools.push(Tool::new(s.name.clone(), s.description.clone(), Arc::new(s.parameters.as_object().cloned().unwrap_or_default())));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(&self, request: CallToolRequestParams, cx: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        if request.name == "run_task" {
            return self.state.run_task(args, cx).await.map(CallToolResponse::Complete);
        }
        if self.state.settings.conformance_fixtures && super::serve_conformance::NAMES.contains(&request.name.as_ref()) {
            return super::serve_conformance::call(&request.name, &cx).await.map(CallToolResponse::Complete);
        }
        if self.state.served.get(&request.name).is_none() {
            return Err(ErrorData::invalid_params(format!("no tool named `{}`", request.name), None));
        }
        // Arguments are checked against the tool's schema by the registry; a cancelled request
        // drops the call (a wasm guest's store goes with it).
        let call = self.state.served.call(&request.name, args, CallContext::default());
        tokio::select! {
            out = call => Ok(CallToolResponse::Complete(as_mcp(out))),
            _ = cx.ct.cancelled() => Err(ErrorData::internal_error("cancelled", None)),
        }
    }

    async fn list_resources(&self, _: Option<PaginatedRequestParams>, _: RequestContext<RoleServer>) -> Result<ListResourcesResult, ErrorData> {
        let mut runs: Vec<(std::time::SystemTime, String, u64)> = std::fs::read_dir(runs_dir())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".jsonl")?.to_string();
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, id, meta.len()))
            })
            .collect();
        // Newest first; the most recent 200.
        runs.sort_by(|a, b| b.0.cmp(&a.0));
        let items = runs
            .into_iter()
            .take(200)
            .map(|(_, id, size)| {
                let mut r = Resource::new(format!("agent://runs/{id}"), format!("run {id}"));
                r.mime_type = Some("application/jsonl".into());
                r.size = Some(size);
                r.description = Some("The trace of a run: one JSON event per line.".into());
                r
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(items))
    }

    async fn list_resource_templates(&self, _: Option<PaginatedRequestParams>, _: RequestContext<RoleServer>) -> Result<ListResourceTemplatesResult, ErrorData> {
        let mut t = ResourceTemplate::new("agent://runs/{id}", "run trace");
        t.mime_type = Some("application/jsonl".into());
        t.description = Some("The trace of run {id} (run_task returns the id).".into());
        Ok(ListResourceTemplatesResult::with_all_items(vec![t]))
    }

    async fn read_resource(&self, request: ReadResourceRequestParams, _: RequestContext<RoleServer>) -> Result<ReadResourceResponse, ErrorData> {
        let not_found = || ErrorData::resource_not_found(format!("no run trace at {}", request.uri), None);
        let path = trace_path(&request.uri).ok_or_else(not_found)?;
        let text = std::fs::read_to_string(&path).map_err(|_| not_found())?;
        let contents = ResourceContents::text(text, request.uri.clone()).with_mime_type("application/jsonl");
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(vec![contents])))
    }

    async fn list_prompts(&self, _: Option<PaginatedRequestParams>, _: RequestContext<RoleServer>) -> Result<ListPromptsResult, ErrorData> {
        let prompts = EXAMPLES.iter().map(|(name, text)| Prompt::new(*name, Some(first_line(text)), None)).collect();
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(&self, request: GetPromptRequestParams, _: RequestContext<RoleServer>) -> Result<GetPromptResponse, ErrorData> {
        let (name, text) = EXAMPLES.iter().find(|(n, _)| *n == request.name).ok_or_else(|| ErrorData::invalid_params(format!("no prompt named `{}`", request.name), None))?;
        let message = PromptMessage::new_text(Role::User, *text);
        Ok(GetPromptResponse::Complete(GetPromptResult::new(vec![message]).with_description(format!("The example task {name}: pass it to run_task as `task`."))))
    }
}

/// The description of an example task: its instructions' first line.
fn first_line(task: &str) -> String {
    Task::parse_inline(task).map(|t| t.instructions.lines().next().unwrap_or_default().to_string()).unwrap_or_default()
}

