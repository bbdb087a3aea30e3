//! What `agent serve` answers: `run_task` (a whole run of the loaded model, `serve_run`; as an
//! MCP task for clients of the tasks extension), the configured wasm tools and, with `--gateway`,
//! the upstream MCP servers' tools; the traces of past runs as resources
//! (`agent://runs/{id}`); the example tasks as prompts.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use crate::models::agent_home;
use crate::planner::Agent;
use crate::task::Task;
use crate::toolbox::Toolbox;
use agent_sandboxes::WasmComponent;
use agent_tools::{CallContext, ToolOutput, ToolRegistry};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, GetPromptRequestParams, GetPromptResponse, GetPromptResult, GetTaskParams,
    GetTaskResult, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, Prompt, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, Role, ServerCapabilities, ServerConfig, Tool,
    UpdateTaskParams,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::task_manager::TaskManager;
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{ServeError, run};

/// The example tasks, served as prompts.
const EXAMPLES: [(&str, &str); 2] = [
    (
        "strawberry",
        include_str!("../../../examples/tasks/strawberry.md"),
    ),
    (
        "decimals",
        include_str!("../../../examples/tasks/decimals.md"),
    ),
];

/// How a server treats its clients. The settings every run starts from are its agent's (see
/// [`Server::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Most `run_task` calls running at once; more wait their turn (and are told so).
    pub max_concurrent: usize,
    /// Also serve the agent's MCP servers' tools (`SERVER__TOOL`).
    pub gateway: bool,
    /// Let clients' tasks start MCP servers (`mcp_servers:`), grant wasm tools files and
    /// environment (`wasm_policy:`) and load wasm components from paths; off, a client's task
    /// uses what the agent was built with.
    pub trust_tasks: bool,
    /// Add the fixture tools the MCP conformance suite calls by name (for its tests).
    pub conformance_fixtures: bool,
}

impl Default for ServeOptions {
    /// One run at a time, no gateway, untrusted tasks.
    fn default() -> Self {
        Self {
            max_concurrent: 1,
            gateway: false,
            trust_tasks: false,
            conformance_fixtures: false,
        }
    }
}

pub(super) struct State {
    pub(super) options: ServeOptions,
    /// The served agent: its model, settings (the defaults every run starts from), tools,
    /// wasm components and MCP servers; runs load more beside them.
    pub(super) agent: Agent,
    pub(super) toolbox: Arc<Toolbox>,
    /// Tools served as MCP tools (besides `run_task`): the wasm tools, and the upstream MCP
    /// servers' with `gateway`.
    pub(super) served: ToolRegistry,
    pub(super) slots: Arc<Semaphore>,
    pub(super) waiting: AtomicUsize,
    /// `run_task` calls running as MCP tasks (the tasks extension), and their results.
    pub(super) tasks: TaskManager,
    /// Runs waiting for their clients' answers to `input_required` results.
    pub(super) parking: super::mrtr::Parking,
}

impl State {
    pub(super) fn model(&self) -> &str {
        &self.agent.backend().info().name
    }
}

/// The MCP server of an [`Agent`]: an rmcp [`ServerHandler`], served with [`Server::serve_stdio`],
/// [`super::serve_http`] or any rmcp transport (`rmcp::ServiceExt::serve`).
#[derive(Clone)]
pub struct Server {
    state: Arc<State>,
}

impl Server {
    /// Serves `agent`, which must come from [`Agent::builder`] (its MCP servers and wasm
    /// tools are served too). Every `run_task` starts from the agent's settings, overlaid with
    /// the task's front matter.
    pub fn new(agent: Agent, options: ServeOptions) -> Result<Server, ServeError> {
        let setup = ServeError::Setup;
        let toolbox = agent.toolbox_arc().ok_or_else(|| {
            setup("the agent has no toolbox: serve an agent made by Agent::builder".into())
        })?;
        let mut served = ToolRegistry::new();
        for tool in toolbox.wasm().iter().flat_map(WasmComponent::tools) {
            served
                .register(tool)
                .map_err(|e| setup(format!("cannot serve the wasm tools: {e}")))?;
        }
        if options.gateway {
            served.register_provider(toolbox.pool().clone());
        }
        if options.max_concurrent == 0 {
            return Err(setup("max_concurrent must be at least 1".into()));
        }
        let slots = Arc::new(Semaphore::new(options.max_concurrent));
        let state = State {
            options,
            agent,
            toolbox,
            served,
            slots,
            waiting: AtomicUsize::new(0),
            tasks: TaskManager::new(),
            parking: Default::default(),
        };
        Ok(Server {
            state: Arc::new(state),
        })
    }

    /// Serves one client on stdin/stdout until it disconnects or `shutdown` is cancelled.
    /// (`stdio_pipes` rather than `stdio`: the latter's blocking stdin read would hold
    /// shutdown.)
    pub async fn serve_stdio(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        let failed = |e: String| ServeError::Transport(format!("stdio: {e}"));
        let running = self
            .serve(rmcp::transport::stdio_pipes())
            .await
            .map_err(|e| failed(e.to_string()))?;
        let ct = running.cancellation_token();
        tokio::select! {
            r = running.waiting() => r.map(drop).map_err(|e| failed(e.to_string())),
            _ = shutdown.cancelled() => {
                ct.cancel();
                Ok(())
            }
        }
    }
}

fn as_mcp(out: ToolOutput) -> CallToolResult {
    let mut r = if out.is_error {
        CallToolResult::error(vec![ContentBlock::text(out.content)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(out.content)])
    };
    // Older protocol versions allow only objects as structured content.
    r.structured_content = out.structured.filter(Value::is_object);
    r
}

pub(super) fn runs_dir() -> PathBuf {
    agent_home().join("runs")
}

/// `agent://runs/ID` → the trace file, for ids that are plain names (no path tricks).
fn trace_path(uri: &str) -> Option<PathBuf> {
    let id = uri.strip_prefix("agent://runs/")?;
    let plain = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plain.then(|| runs_dir().join(format!("{id}.jsonl")))
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().enable_prompts().enable_tasks().build())
            .with_server_info(Implementation::new("agent", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!("A local agent ({}): hand it a task with run_task; its sandboxed tools are also callable directly.", self.state.model()))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = vec![run::run_task_tool()];
        if self.state.options.conformance_fixtures {
            tools.extend(super::conformance::tools());
        }
        for t in self.state.served.current().values() {
            let s = t.spec();
            tools.push(Tool::new(
                s.name.clone(),
                s.description.clone(),
                Arc::new(s.parameters.as_object().cloned().unwrap_or_default()),
            ));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        if request.name == "run_task" {
            // A retry carrying the client's answer to a question of a run waiting here.
            if let Some(handle) = &request.request_state {
                return self
                    .state
                    .parking
                    .resume(handle, request.input_responses.as_ref(), &cx.ct)
                    .await;
            }
            let prepared = self.state.prepare(&args)?;
            let token = cx.meta.get_progress_token();
            // A client that speaks the tasks extension gets a task at once and polls it; the run
            // goes on after this request has been answered.
            if cx.client_capabilities().is_some_and(|c| c.supports_tasks()) {
                let (options, make) =
                    run::as_task(self.state.clone(), prepared, cx.peer.clone(), token);
                let task = self.state.tasks.spawn(options, make);
                return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
            }
            // Where the server cannot send requests (2026-07-28 on), a client that takes forms
            // is asked by `input_required` results while the run waits.
            let by_result = cx
                .protocol_version()
                .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28)
                && cx.client_capabilities().is_some_and(|c| {
                    c.elicitation
                        .as_ref()
                        .is_some_and(|e| e.url.is_none() || e.form.is_some())
                });
            if by_result {
                return super::mrtr::start(
                    self.state.clone(),
                    prepared,
                    cx.peer.clone(),
                    token,
                    &cx.ct,
                )
                .await;
            }
            let report = run::Report {
                peer: cx.peer.clone(),
                token,
                task: None,
                approver: None,
            };
            return self
                .state
                .execute(prepared, report, cx.ct.clone())
                .await
                .map(|(r, _)| CallToolResponse::Complete(r));
        }
        if self.state.options.conformance_fixtures
            && super::conformance::NAMES.contains(&request.name.as_ref())
        {
            return super::conformance::call(&request.name, &cx)
                .await
                .map(CallToolResponse::Complete);
        }
        if self.state.served.get(&request.name).is_none() {
            return Err(ErrorData::invalid_params(
                format!("no tool named `{}`", request.name),
                None,
            ));
        }
        // Arguments are checked against the tool's schema by the registry; a cancelled request
        // drops the call (a wasm guest's store goes with it).
        let call = self
            .state
            .served
            .call(&request.name, args, CallContext::default());
        tokio::select! {
            out = call => Ok(CallToolResponse::Complete(as_mcp(out))),
            _ = cx.ct.cancelled() => Err(ErrorData::internal_error("cancelled", None)),
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.state
            .tasks
            .get_task(&request.task_id)
            .map(GetTaskResult::new)
    }

    /// `run_task` asks the client nothing mid-run, so there are never inputs to deliver.
    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.state
            .tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.state.tasks.cancel_task(&request.task_id)
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        // Off the async workers: a runs directory of thousands of traces takes a while.
        let mut runs = tokio::task::spawn_blocking(|| {
            std::fs::read_dir(runs_dir())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let id = name.strip_suffix(".jsonl")?.to_string();
                    let meta = e.metadata().ok()?;
                    Some((meta.modified().ok()?, id, meta.len()))
                })
                .collect::<Vec<(std::time::SystemTime, String, u64)>>()
        })
        .await
        .map_err(|e| ErrorData::internal_error(format!("listing the runs failed: {e}"), None))?;
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

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let mut t = ResourceTemplate::new("agent://runs/{id}", "run trace");
        t.mime_type = Some("application/jsonl".into());
        t.description = Some("The trace of run {id} (run_task returns the id).".into());
        Ok(ListResourceTemplatesResult::with_all_items(vec![t]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let not_found =
            || ErrorData::resource_not_found(format!("no run trace at {}", request.uri), None);
        let path = trace_path(&request.uri).ok_or_else(not_found)?;
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|_| not_found())?;
        let contents =
            ResourceContents::text(text, request.uri.clone()).with_mime_type("application/jsonl");
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(
            vec![contents],
        )))
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let prompts = EXAMPLES
            .iter()
            .map(|(name, text)| Prompt::new(*name, Some(first_line(text)), None))
            .collect();
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let (name, text) = EXAMPLES
            .iter()
            .find(|(n, _)| *n == request.name)
            .ok_or_else(|| {
                ErrorData::invalid_params(format!("no prompt named `{}`", request.name), None)
            })?;
        let message = PromptMessage::new_text(Role::User, *text);
        Ok(GetPromptResponse::Complete(
            GetPromptResult::new(vec![message]).with_description(format!(
                "The example task {name}: pass it to run_task as `task`."
            )),
        ))
    }
}

/// The description of an example task: its instructions' first line.
fn first_line(task: &str) -> String {
    Task::parse_inline(task)
        .map(|t| {
            t.instructions
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}
