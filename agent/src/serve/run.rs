//! `run_task`: one run of the served model on a client's task. Its settings (the server's
//! defaults, the task's front matter, the call's options), its tools, progress per step and
//! cancellation; run inline, or as an MCP task (the tasks extension) when the client supports
//! it, so a long run does not hold a request open.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::events::{Collect, Event, Observer, StopReason, TraceWriter};
use crate::planner::{Agent, RunConfig};
use crate::task::{FrontMatter, Task, ToolSource};
use crate::toolset;
use agent_tools::ToolRegistry;
use agent_tools::mcp::{McpConfig, McpPool};
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam, ProgressToken, Tool};
use rmcp::service::{Peer, RoleServer};
use rmcp::task_manager::{TaskContext, TaskExit, TaskFuture};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::handler::{State, runs_dir};

/// The `run_task` tool: its input and output schemas.
pub(super) fn run_task_tool() -> Tool {
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
    let mut tool = Tool::new(
        "run_task",
        "Run a task with the local agent: the model plans, calls its tools and answers. Progress is reported per step; cancelling stops the run.",
        Arc::new(input.as_object().cloned().unwrap_or_default()),
    );
    tool.output_schema = output.as_object().cloned().map(Arc::new);
    tool
}

/// Sends `run_task` progress to the client: one notification per step and per tool call,
/// and, for a run that is an MCP task, the same text as the task's status message (what
/// `tasks/get` shows while it works).
struct Notifier {
    tx: tokio::sync::mpsc::UnboundedSender<(f64, f64, String)>,
    max_steps: u32,
    task: Option<TaskContext>,
}

impl Notifier {
    /// A notifier for `report`: progress notifications when the client gave a token, and the
    /// task's status message when the run is an MCP task.
    fn start(report: &Report, max_steps: u32) -> Notifier {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, f64, String)>();
        let (peer, token) = (report.peer.clone(), report.token.clone());
        tokio::spawn(async move {
            while let Some((progress, total, message)) = rx.recv().await {
                if let Some(t) = &token {
                    let _ = peer
                        .notify_progress(
                            ProgressNotificationParam::new(t.clone(), progress)
                                .with_total(total)
                                .with_message(message),
                        )
                        .await;
                }
            }
        });
        Notifier {
            tx,
            max_steps,
            task: report.task.clone(),
        }
    }

    fn send(&self, step: u32, message: String) {
        if let Some(t) = &self.task {
            t.set_status_message(message.clone());
        }
        let _ = self
            .tx
            .send((f64::from(step), f64::from(self.max_steps), message));
    }
}

/// Where a run reports to: the client (progress notifications under its token) and, when the
/// run is an MCP task, the task's status.
pub(super) struct Report {
    pub peer: Peer<RoleServer>,
    pub token: Option<ProgressToken>,
    pub task: Option<TaskContext>,
    /// Who is asked about the run's calls, when not the client by elicitation requests (or
    /// the server's own approver where it cannot be asked).
    pub approver: Option<Arc<dyn crate::permissions::Approver>>,
}

/// A checked `run_task` call, ready to run: its task and settings.
pub(super) struct Prepared {
    task: Task,
    front: FrontMatter,
    /// The task's own MCP servers (with --trust-tasks), started for its run only.
    own_mcp: McpConfig,
    /// The built-in tools it asked for; the rest are added when it runs.
    builtins: ToolRegistry,
}

/// How long a finished or running task stays with the server. A run still going after this
/// is stopped and marked failed at the next `tasks/*` request or new task (rmcp sweeps then;
/// the trace is kept), so it is long.
const TASK_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// A prepared run as an MCP task: `tasks/cancel` stops the run at once; a run stopped that
/// way settles as `cancelled`, with where its trace is in the status message.
pub(super) fn as_task(
    state: Arc<State>,
    prepared: Prepared,
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
) -> (
    rmcp::task_manager::TaskOptions,
    impl FnOnce(TaskContext) -> TaskFuture,
) {
    let options = rmcp::task_manager::TaskOptions::new()
        .with_ttl_ms(TASK_TTL_MS)
        .with_poll_interval_ms(500)
        .with_status_message("starting");
    let make = move |cx: TaskContext| -> TaskFuture {
        Box::pin(async move {
            let ct = CancellationToken::new();
            let report = Report {
                peer,
                token,
                task: Some(cx.clone()),
                approver: None,
            };
            let run = state.execute(prepared, report, ct.clone());
            tokio::pin!(run);
            // `tasks/cancel` cancels the run's token; the run then stops and settles.
            let out = tokio::select! {
                out = &mut run => out,
                () = cx.cancelled() => {
                    ct.cancel();
                    run.await
                }
            };
            match out {
                Ok((result, StopReason::Cancelled)) => {
                    cx.set_status_message(result_text(&result));
                    Err(TaskExit::Cancelled)
                }
                Ok((result, _)) => Ok(result),
                // A real failure stays one, even after a cancel request.
                Err(e) => Err(TaskExit::Error(e)),
            }
        })
    };
    (options, make)
}

fn result_text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Counts a run waiting for a slot; uncounted however the wait ends (a slot, a cancel, or the
/// run's future dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(n: &'a AtomicUsize) -> (Waiting<'a>, usize) {
        let ahead = n.fetch_add(1, Ordering::SeqCst) + 1;
        (Waiting(n), ahead)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
impl Observer for Notifier {
    fn event(&mut self, event: &Event) {
        let max = self.max_steps;
        match event {
            Event::StepStarted { step, kind, .. } => self.send(
                *step,
                format!("step {step} of {max}: the model is working ({kind:?})").to_lowercase(),
            ),
            Event::ToolCall { step, name, .. } => {
                self.send(*step, format!("step {step} of {max}: calling {name}"))
            }
            Event::Final { steps, .. } => self.send(*steps, format!("done after {steps} steps")),
            _ => {}
        }
    }
}

impl State {
    /// The settings of one run: the server's defaults, then the task's front matter, then
    /// `options`. A client's task may not reconfigure the server unless it is trusted.
    fn plan(&self, task_text: &str, options: Option<&Value>) -> Result<Prepared, String> {
        let task = if task_text.trim_start().starts_with("---") {
            Task::parse_inline(task_text).map_err(|e| e.to_string())?
        } else {
            Task::from_instructions(task_text.trim())
        };
        if task.instructions.trim().is_empty() {
            return Err("task: the instructions are empty".into());
        }
        let mut over = task.front.clone();
        if let Some(opts) = options {
            let mut o = opts
                .as_object()
                .cloned()
                .ok_or("options: expected an object")?;
            if let Some(schema) = o.remove("output_schema") {
                o.insert("output".into(), schema);
            }
            let yaml: serde_yaml_ng::Value =
                serde_yaml_ng::to_value(Value::Object(o)).map_err(|e| format!("options: {e}"))?;
            let fm = FrontMatter::try_from(yaml).map_err(|e| format!("options: {e}"))?;
            over = over.overlay(fm);
        }
        if !self.options.trust_tasks {
            if over.mcp_servers.is_some() {
                return Err("mcp_servers: this server does not let tasks start MCP servers (start it with --trust-tasks, or configure them with --mcp-config)".into());
            }
            if over.hooks.is_some() {
                return Err("hooks: this server does not let tasks run commands (start it with --trust-tasks, or set hooks in its settings)".into());
            }
            // A task may add deny rules, nothing else: an ask rule or a default of its own
            // would put a call the server denies to the client, who answers for itself.
            if let Some(p) = &over.permissions
                && (!p.allow.is_empty()
                    || !p.ask.is_empty()
                    || p.default.is_some()
                    || p.annotations.is_some())
            {
                return Err("permissions: a task may add deny rules only here; allow and ask rules, `default` and `annotations` need a server started with --trust-tasks".into());
            }
            if over.wasm_policy.is_some() {
                return Err("wasm_policy: this server does not let tasks grant wasm tools access (start it with --trust-tasks, or set policies in --defaults)".into());
            }
            if let Some(ToolSource::Wasm(spec)) = over
                .tools
                .iter()
                .flatten()
                .find(|s| matches!(s, ToolSource::Wasm(p) if p.ends_with(".wasm")))
            {
                return Err(format!(
                    "tools: wasm:{spec}: this server does not load components from paths (start it with --trust-tasks)"
                ));
            }
        }
        if let Some(m) = &over.model
            && models_differ(m, self.model())
        {
            return Err(format!(
                "model: this server runs {}; a task cannot choose another (leave `model` out)",
                self.model()
            ));
        }
        // The task's own MCP servers start for its run; the defaults' run for the server's life.
        let own_mcp = over.mcp_config().map_err(|e| format!("mcp_servers: {e}"))?;
        let mut merged = self.agent.origin().front.clone().overlay(over);
        merged.mcp_servers = None;
        let builtins = toolset::build(&merged.tools_or_default(), &merged.output_or_default())
            .map_err(|e| e.to_string())?;
        Ok(Prepared {
            task,
            front: merged,
            own_mcp,
            builtins,
        })
    }

    /// The run's tools: built-ins, wasm tools (the server's loaded ones by name, others
    /// loaded now under the run's policies), the server's MCP servers' and the task's own
    /// (started for this run: shut the returned pool down after it).
    async fn tools(
        &self,
        front: &FrontMatter,
        own_mcp: &McpConfig,
        mut reg: ToolRegistry,
    ) -> Result<(ToolRegistry, Option<Arc<McpPool>>), String> {
        let sources = front.tools_or_default();
        let mut missing = Vec::new();
        for s in &sources {
            let Some(name) = s.wasm_name() else { continue };
            match self.toolbox.wasm().iter().find(|c| c.name() == name) {
                Some(c) => c
                    .tools()
                    .into_iter()
                    .try_for_each(|t| reg.register(t))
                    .map_err(|e| e.to_string())?,
                None => missing.push(s.clone()),
            }
        }
        if !missing.is_empty() {
            let base = if self.options.trust_tasks {
                std::env::current_dir().unwrap_or_default()
            } else {
                self.agent.origin().base.clone()
            };
            self.toolbox
                .load_wasm(
                    &mut reg,
                    &missing,
                    &front.wasm_policy.clone().unwrap_or_default(),
                    &base,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        // The program's own tools (an embedding program's typed tools, say).
        for t in &self.agent.origin().own_tools {
            reg.register(t.clone()).map_err(|e| e.to_string())?;
        }
        reg.register_provider(self.toolbox.pool().clone());
        let own = if own_mcp.servers.is_empty() {
            None
        } else {
            let pool = self
                .toolbox
                .start_servers(own_mcp, &front.tool_choice_or_default())
                .await
                .map_err(|e| e.to_string())?;
            reg.register_provider(pool.clone());
            Some(pool)
        };
        Ok((reg, own))
    }

    /// Checks a `run_task` call's arguments and settles its settings: a bad call is refused
    /// here, before any task is created for it.
    pub(super) fn prepare(&self, args: &Value) -> Result<Prepared, ErrorData> {
        let bad = |m: String| ErrorData::invalid_params(m, None);
        let task_text = args
            .get("task")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("run_task: `task` (a string) is required".into()))?;
        let prepared = self.plan(task_text, args.get("options")).map_err(bad)?;
        // The wasm tool names too (built-in ones are checked by `plan`), so that a typo is
        // refused now rather than failing the run (or its task) later.
        for s in &prepared.front.tools_or_default() {
            let Some(name) = s.wasm_name() else { continue };
            let path = matches!(s, ToolSource::Wasm(spec) if spec.ends_with(".wasm"));
            if !path
                && !self.toolbox.wasm().iter().any(|c| c.name() == name)
                && agent_sandboxes::bundled::get(&name).is_none()
            {
                return Err(bad(format!(
                    "tools: wasm:{name}: no such tool here (bundled: {})",
                    agent_sandboxes::bundled::names().join(", ")
                )));
            }
        }
        Ok(prepared)
    }

    /// Runs a prepared task until it answers, runs out of steps or `ct` is cancelled (the
    /// trace is kept either way).
    pub(super) async fn execute(
        &self,
        prepared: Prepared,
        report: Report,
        ct: CancellationToken,
    ) -> Result<(CallToolResult, StopReason), ErrorData> {
        let Prepared {
            task,
            front,
            own_mcp,
            builtins,
        } = prepared;
        let run_id = crate::planner::new_run_id();
        let origin = self.agent.origin();
        let mut cfg = RunConfig::for_task(&front, &task, run_id.clone(), origin.max_tokens, None);
        // A thinking policy the agent was given in code holds unless the task sets its own.
        if let Some(p) = &origin.thinking_policy
            && front.thinking.is_none()
        {
            cfg.thinking = p.clone();
        }
        let notifier = Notifier::start(&report, cfg.max_steps);
        // A slot: at most `max_concurrent` runs share the model at once.
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let (waiting, ahead) = Waiting::enter(&self.waiting);
                notifier.send(
                    0,
                    format!(
                        "queued: {ahead} waiting; {} run at once",
                        self.options.max_concurrent
                    ),
                );
                let got = tokio::select! {
                    p = self.slots.clone().acquire_owned() => p.ok(),
                    _ = ct.cancelled() => None,
                };
                drop(waiting);
                match got {
                    Some(p) => p,
                    None => {
                        let result = CallToolResult::error(vec![ContentBlock::text(
                            "cancelled while queued, before it started",
                        )]);
                        return Ok((result, StopReason::Cancelled));
                    }
                }
            }
        };
        // First, so that nothing (the task's own MCP servers) is started for a run that
        // cannot be recorded.
        let trace_file = runs_dir().join(format!("{run_id}.jsonl"));
        cfg.results_dir = Some(trace_file.with_extension("results"));
        let trace = TraceWriter::create(&trace_file).map_err(|e| {
            ErrorData::internal_error(
                format!("cannot write the trace {}: {e}", trace_file.display()),
                None,
            )
        })?;
        let trace_failure = trace.failure();
        // Checked in `prepare`: what fails here is the server's (a compile, an MCP server).
        let (tools, own_pool) = self
            .tools(&front, &own_mcp, builtins)
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        cfg.trace = Some(trace_file.clone());
        let access = self.agent.access().clone();
        let mut agent = Agent::new(self.agent.backend().clone(), tools)
            .with_access(access.clone())
            .runner();
        // The client whose task it is is asked, when it can be.
        if let Some(a) = report.approver.clone() {
            agent.approver(a);
        } else if let Some(e) =
            super::approve::Elicit::for_client(&report.peer, access.approver.clone())
        {
            agent.approver(Arc::new(e));
        }
        agent.observe(Box::new(trace));
        agent.observe(Box::new(Collect(events.clone())));
        agent.observe(Box::new(notifier));
        // The run ends with its observers (the trace is closed).
        let outcome = agent.run(&cfg, &ct).await;
        drop(permit);
        if let Some(pool) = own_pool {
            pool.shutdown().await;
        }
        let outcome = outcome.map_err(|e| {
            ErrorData::internal_error(
                format!("the run failed: {e} (trace: agent://runs/{run_id})"),
                None,
            )
        })?;
        if let Some(e) = trace_failure.get() {
            return Err(ErrorData::internal_error(
                format!("the trace agent://runs/{run_id} is incomplete: {e}"),
                None,
            ));
        }
        let events = events.lock().map(|e| e.clone()).unwrap_or_default();
        let tool_calls: Vec<Value> = events
            .iter()
            .filter_map(|e| match e {
                Event::ToolCall {
                    name, arguments, ..
                } if name != agent_tools::builtin::FINAL_ANSWER => {
                    Some(json!({"name": name, "arguments": arguments}))
                }
                _ => None,
            })
            .collect();
        let thinking_tokens: usize = events
            .iter()
            .map(|e| {
                if let Event::ModelOutput {
                    thinking_tokens, ..
                } = e
                {
                    *thinking_tokens
                } else {
                    0
                }
            })
            .sum();
        let structured = json!({
            "answer": outcome.answer, "stop": outcome.stop, "steps": outcome.steps, "tool_calls": tool_calls,
            "thinking_tokens": thinking_tokens, "run_id": run_id, "trace": format!("agent://runs/{run_id}"),
        });
        // A failed run is returned as an error by `Agent::run`, handled above.
        let mut result = match outcome.stop {
            StopReason::Answer => CallToolResult::success(vec![ContentBlock::text(
                outcome.answer_text().unwrap_or_default(),
            )]),
            // The client cancelled it (the CLI's words, "interrupted", are for a person).
            StopReason::Cancelled => CallToolResult::error(vec![ContentBlock::text(format!(
                "cancelled at step {} (trace: agent://runs/{run_id})",
                outcome.steps
            ))]),
            other => CallToolResult::error(vec![ContentBlock::text(format!(
                "{} (trace: agent://runs/{run_id})",
                other.describe(outcome.steps)
            ))]),
        };
        result.structured_content = Some(structured);
        Ok((result, outcome.stop))
    }
}

/// Whether a task's `model` names another model than the served one: the same name (loosely
/// compared), or the same file or directory on disk, is the same model. Nothing is installed
/// or loaded to find out (this runs on the server's async workers).
fn models_differ(asked: &str, served: &str) -> bool {
    let norm = |s: &str| s.trim().to_ascii_lowercase();
    if norm(asked) == norm(served) {
        return false;
    }
    match (
        crate::models::locate(asked.trim()),
        crate::models::locate(served),
    ) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}
