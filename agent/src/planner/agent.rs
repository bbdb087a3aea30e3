//! [`Agent`]: a model, its tools and its settings, shared by every run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use agent_tools::{Tool, ToolRegistry};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Chat, Outcome, Run, RunConfig, RunError, new_run_id};
use crate::backend::Backend;
use crate::events::{Event, StopReason};
use crate::permissions::Access;
use crate::task::FrontMatter;
use crate::thinking::ThinkingPolicy;
use crate::toolbox::Toolbox;

/// A model, its tools and its settings: cheap to clone (the model is shared, never copied),
/// `Send + Sync`, and able to run any number of tasks at once, each with its own conversation
/// and state. Made by [`Agent::builder`](crate::builder::AgentBuilder), or from a loaded model
/// and tools with [`Agent::new`].
///
/// The MCP servers and wasm sandbox it was built with stay up while any clone is alive; the
/// last one dropped stops them (or call [`Agent::shutdown`] to wait for them to exit).
#[derive(Clone)]
pub struct Agent {
    backend: Arc<dyn Backend>,
    tools: ToolRegistry,
    /// Every run's settings but its instructions and id ([`Agent::config`]).
    settings: Arc<RunConfig>,
    /// The MCP servers and sandbox the tools need, when the agent started them.
    toolbox: Option<Arc<Toolbox>>,
    /// The MCP servers' events, lent to one run at a time (see [`Run::run`]).
    server_events: Arc<Mutex<Option<mpsc::UnboundedReceiver<Event>>>>,
    origin: Arc<Origin>,
    /// Who is asked about calls, and the Rust hooks.
    access: Arc<Access>,
}

/// What an agent was built from, for those that make runs of their own settings from it (the
/// MCP server overlays a client's task on these).
#[derive(Clone, Default)]
pub(crate) struct Origin {
    /// The settings, as a task file's front matter.
    pub front: FrontMatter,
    /// Where their relative paths are resolved from.
    pub base: PathBuf,
    /// The program's own tools (beside the built-in, wasm and MCP ones `front` names).
    pub own_tools: Vec<Arc<dyn Tool>>,
    /// A thinking policy given in code, which `front` cannot hold.
    pub thinking_policy: Option<ThinkingPolicy>,
    pub max_tokens: usize,
}

impl Agent {
    /// An agent over a loaded model and `tools`, with the settings of a task file that sets
    /// nothing ([`RunConfig::default`]).
    pub fn new(backend: Arc<dyn Backend>, tools: ToolRegistry) -> Self {
        Self {
            backend,
            tools,
            settings: Arc::new(RunConfig::default()),
            toolbox: None,
            server_events: Arc::default(),
            origin: Arc::new(Origin {
                max_tokens: super::DEFAULT_MAX_TOKENS,
                ..Origin::default()
            }),
            access: Arc::default(),
        }
    }

    /// The same agent with `access`: who is asked about calls its permissions say to ask
    /// about (nobody by default: such calls are refused), its Rust hooks, and where "always"
    /// answers are written.
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = Arc::new(access);
        self
    }

    /// Who is asked about calls, and the Rust hooks.
    pub fn access(&self) -> &Access {
        &self.access
    }

    pub(crate) fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = Arc::new(origin);
        self
    }

    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The same agent with other settings for its runs (the instructions and run id in
    /// `settings` are not used: each run has its own).
    pub fn with_settings(mut self, settings: RunConfig) -> Self {
        self.settings = Arc::new(settings);
        self
    }

    /// Keeps `toolbox` (the MCP servers and sandbox behind `tools`) alive as long as the agent,
    /// and merges its servers' events into runs.
    pub(crate) fn with_toolbox(mut self, mut toolbox: Toolbox) -> Self {
        self.server_events = Arc::new(Mutex::new(toolbox.take_events()));
        self.toolbox = Some(Arc::new(toolbox));
        self
    }

    /// The model the agent runs on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The agent's tools.
    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    /// The MCP servers and sandbox the agent started, if it did.
    pub fn toolbox(&self) -> Option<&Toolbox> {
        self.toolbox.as_deref()
    }

    pub(crate) fn toolbox_arc(&self) -> Option<Arc<Toolbox>> {
        self.toolbox.clone()
    }

    /// The settings of a run of `instructions`: the agent's, with a new run id.
    pub fn config(&self, instructions: impl Into<String>) -> RunConfig {
        let origin = &self.origin;
        RunConfig {
            run_id: new_run_id(),
            instructions: instructions.into(),
            // What `agent resume` sets the agent up from again (a program's own tools and a
            // thinking policy in code are the program's to give again).
            settings: Some(serde_json::json!({
                "front": origin.front,
                // Absolute (an empty base is the working folder): a resumed run may start in
                // another folder.
                "base": if origin.base.as_os_str().is_empty() {
                    std::env::current_dir().unwrap_or_default()
                } else {
                    std::path::absolute(&origin.base).unwrap_or_else(|_| origin.base.clone())
                },
                "max_tokens": origin.max_tokens,
            })),
            ..RunConfig::clone(&self.settings)
        }
    }

    /// One run, to which observers and side events can be attached before it starts.
    pub fn runner<'a>(&self) -> Run<'a> {
        Run {
            agent: self.clone(),
            tools: self.tools.clone(),
            history: Vec::new(),
            observers: Vec::new(),
            guard: Default::default(),
            thinking_used: 0,
            usage: Default::default(),
            task_index: 0,
            saved: 0,
            resume: None,
            last_tool_result: None,
            side_events: None,
            kept: Default::default(),
            gate: None,
            approver: None,
        }
    }

    /// Runs `instructions` with the agent's settings, to its end. A run that stops without
    /// an answer is still `Ok`: see [`Outcome::stop`].
    pub async fn run(&self, instructions: impl Into<String>) -> Result<Outcome, RunError> {
        self.run_with(&self.config(instructions), &CancellationToken::new())
            .await
    }

    /// Runs one task with settings of its own, unobserved; `cancel` stops it (see
    /// [`Run::run`]).
    pub async fn run_with(
        &self,
        cfg: &RunConfig,
        cancel: &CancellationToken,
    ) -> Result<Outcome, RunError> {
        self.runner().run(cfg, cancel).await
    }

    /// Runs `instructions` and returns the answer as a `T`: `T`'s JSON Schema is the output
    /// schema, so the answer is constrained to it as it is written, then deserialized.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::sync::Arc;
    /// # let model = Arc::new(agent::replay::Replay::chatml([
    /// #     r#"<tool_call>{"name": "final_answer", "arguments": {"answer": {"city": "Oslo", "celsius": -3.5}}}</tool_call>"#,
    /// # ]));
    /// # let agent = agent::Agent::builder().backend(model).build().await?;
    /// /// A city's temperature.
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Weather {
    ///     city: String,
    ///     celsius: f64,
    /// }
    ///
    /// let weather: Weather = agent.run_typed("How cold is it in Oslo now?").await?;
    /// assert_eq!((weather.city.as_str(), weather.celsius), ("Oslo", -3.5));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_typed<T: DeserializeOwned + JsonSchema>(
        &self,
        instructions: impl Into<String>,
    ) -> Result<T, RunError> {
        let mut cfg = self.config(instructions);
        cfg.output_schema = Some(agent_tools::typed::parameters::<T>());
        let outcome = self.run_with(&cfg, &CancellationToken::new()).await?;
        serde_json::from_value(outcome.into_answer()?).map_err(RunError::AnswerType)
    }

    /// A conversation: each [`Chat::send`] continues the last one's messages.
    pub fn chat(&self) -> Chat {
        Chat::new(self.clone())
    }

    /// The agent as a tool another agent can call with a task (a handoff): it
    /// runs with its own tools, steps and thinking, and its answer is the tool's result.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    ///
    /// use agent::replay::Replay;
    /// use agent::{Agent, Budget};
    ///
    /// // One model for both agents; its turns, in the order the two agents ask for them.
    /// let model = Arc::new(Replay::chatml([
    ///     r#"<tool_call>{"name": "researcher", "arguments": {"task": "Find the capital of Norway."}}</tool_call>"#,
    ///     r#"<tool_call>{"name": "final_answer", "arguments": {"answer": "Oslo"}}</tool_call>"#,
    ///     r#"<tool_call>{"name": "final_answer", "arguments": {"answer": "Oslo is the capital."}}</tool_call>"#,
    /// ]));
    /// let researcher = Agent::builder().backend(model.clone()).max_steps(4).build().await?;
    /// let lead = Agent::builder()
    ///     .backend(model)
    ///     .thinking(Budget::Off)
    ///     .tool(researcher.as_tool("researcher", "Looks a fact up and reports it."))
    ///     .build()
    ///     .await?;
    /// let outcome = lead.run("What is the capital of Norway?").await?;
    /// assert_eq!(outcome.answer_text().as_deref(), Some("Oslo is the capital."));
    /// # Ok(())
    /// # }
    /// ```
    pub fn as_tool(
        &self,
        name: impl Into<String>,
        description: impl Into<String>,
    ) -> Arc<dyn Tool> {
        Arc::new(super::handoff::AgentTool::new(
            self.clone(),
            name.into(),
            description.into(),
        ))
    }

    /// Stops the MCP servers the agent started and waits for them to exit (dropping the last
    /// clone stops them too, without waiting).
    pub async fn shutdown(&self) {
        if let Some(t) = &self.toolbox {
            t.shutdown().await;
        }
    }

    pub(super) fn take_server_events(&self) -> Option<mpsc::UnboundedReceiver<Event>> {
        self.server_events.lock().ok()?.take()
    }

    pub(super) fn return_server_events(&self, rx: mpsc::UnboundedReceiver<Event>) {
        if let Ok(mut slot) = self.server_events.lock() {
            *slot = Some(rx);
        }
    }
}

impl Outcome {
    /// The answer, or [`RunError::NoAnswer`] when the run stopped without one.
    pub fn into_answer(self) -> Result<serde_json::Value, RunError> {
        match (self.stop, self.answer) {
            (StopReason::Answer, Some(a)) => Ok(a),
            (stop, _) => Err(RunError::NoAnswer {
                stop,
                steps: self.steps,
            }),
        }
    }
}

/// The answer as [`Outcome::answer_text`] gives it, or why there is none.
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.answer_text() {
            Some(a) if self.stop == StopReason::Answer => f.write_str(&a),
            _ => write!(f, "(no answer: {:?} after {} steps)", self.stop, self.steps),
        }
    }
}
