//! Who decides whether a tool call runs: the run's rules and hooks ([`Gate`], one per run),
//! and whoever is asked when the rules say `ask` ([`Approver`]: a person at the terminal,
//! the MCP client of `agent serve`, a program's closure, or `--yes`). Every decision is an
//! [`Event::Permission`](crate::events::Event::Permission) in the trace.

mod gate;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use agent_tools::{BoxFuture, ToolAnnotations};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use agent_tools::permissions::{
    CommandHook, HookAnswer, HookEvent, HookInput, HookRun, HookSpecs, Mode, Permissions, Reason,
    Rule,
};
pub(crate) use gate::{CallInfo, Checked, Gate};
pub use gate::{Decision, HookRecord};

/// What someone is asked about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRequest {
    /// The run asking.
    pub run_id: String,
    /// The tool.
    pub tool: String,
    /// The call's arguments (as hooks left them).
    pub arguments: Value,
    /// Where the tool comes from (`builtin`, `mcp:SERVER`, `wasm:NAME (...)`).
    pub source: String,
    /// What the tool says of itself.
    pub annotations: ToolAnnotations,
    /// Why the call is asked about (an `ask` rule, `destructiveHint`, the default).
    pub why: String,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Run this call.
    Once,
    /// Run this call and every later call of the tool in this run.
    ForRun,
    /// As [`Approval::ForRun`], and allow the tool from now on (written to the project's
    /// settings file where the approver has one, see [`Access::remember_in`]).
    Always,
    /// Do not run it; the model is told, with the reason when there is one.
    No(Option<String>),
}

impl Approval {
    /// The word for the trace.
    pub fn as_str(&self) -> &'static str {
        match self {
            Approval::Once => "once",
            Approval::ForRun => "for_run",
            Approval::Always => "always",
            Approval::No(_) => "no",
        }
    }
}

/// Whoever is asked about calls the rules say to ask about. Questions come one at a time.
pub trait Approver: Send + Sync {
    /// Who answers, for the trace (`terminal`, `mcp client`, `program`, `--yes`).
    fn name(&self) -> String;
    /// The answer to `request`.
    fn ask(&self, request: ApprovalRequest) -> BoxFuture<'static, Approval>;
}

/// A program's approver: an async closure.
pub struct ApproveWith<F>(pub F);

impl<F, Fut> Approver for ApproveWith<F>
where
    F: Fn(ApprovalRequest) -> Fut + Send + Sync,
    Fut: Future<Output = Approval> + Send + 'static,
{
    fn name(&self) -> String {
        "program".into()
    }

    fn ask(&self, request: ApprovalRequest) -> BoxFuture<'static, Approval> {
        Box::pin((self.0)(request))
    }
}

/// `--yes`: every question answered "run it once". Deny rules and hooks still hold.
pub struct Yes;

impl Approver for Yes {
    fn name(&self) -> String {
        "--yes".into()
    }

    fn ask(&self, _: ApprovalRequest) -> BoxFuture<'static, Approval> {
        Box::pin(std::future::ready(Approval::Once))
    }
}

/// A hook written in Rust: what it is told, and its answer (a program's counterpart of a
/// hook command; it cannot fail, so it never blocks by failing).
pub type HookFn = Arc<dyn Fn(HookInput) -> BoxFuture<'static, HookAnswer> + Send + Sync>;

/// A Rust hook with when it runs and which calls it sees.
#[derive(Clone)]
pub struct RustHook {
    /// When it runs.
    pub event: HookEvent,
    /// The calls it sees (all when `None`).
    pub matcher: Option<Rule>,
    /// Its name in the trace.
    pub name: String,
    /// The hook.
    pub f: HookFn,
}

/// What an agent's runs are decided by beyond their settings: who is asked, Rust hooks, and
/// where "always" answers are written. Shared by an agent's clones.
#[derive(Clone, Default)]
pub struct Access {
    /// Who is asked (none: calls the rules ask about are refused).
    pub approver: Option<Arc<dyn Approver>>,
    /// Hooks in Rust, run after the command hooks of the same event.
    pub hooks: Vec<RustHook>,
    /// The settings file "always" answers add allow rules to.
    pub remember_in: Option<PathBuf>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("approver", &self.approver.as_ref().map(|a| a.name()))
            .field(
                "hooks",
                &self.hooks.iter().map(|h| &h.name).collect::<Vec<_>>(),
            )
            .field("remember_in", &self.remember_in)
            .finish()
    }
}

impl crate::builder::AgentBuilder {
    /// Asks `approver` about the calls the permissions say to ask about (nobody is asked by
    /// default, and such calls are refused).
    pub fn approver(mut self, approver: impl Approver + 'static) -> Self {
        self.access.approver = Some(Arc::new(approver));
        self
    }

    /// Asks an async closure about the calls the permissions say to ask about.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), agent::BuildError> {
    /// use agent::permissions::Approval;
    ///
    /// let agent = agent::Agent::builder()
    ///     .approve_with(|request| async move {
    ///         if request.tool.starts_with("fs__") { Approval::Once } else { Approval::No(None) }
    ///     })
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn approve_with<F, Fut>(self, f: F) -> Self
    where
        F: Fn(ApprovalRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Approval> + Send + 'static,
    {
        self.approver(ApproveWith(f))
    }

    /// Adds a hook written in Rust, run when `event` happens to the calls `matcher` matches
    /// (every call when `None`), after the settings' hook commands.
    pub fn hook<F, Fut>(
        mut self,
        event: HookEvent,
        name: impl Into<String>,
        matcher: Option<Rule>,
        f: F,
    ) -> Self
    where
        F: Fn(HookInput) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookAnswer> + Send + 'static,
    {
        let f = Arc::new(f);
        self.access.hooks.push(RustHook {
            event,
            matcher,
            name: name.into(),
            f: Arc::new(move |input| {
                let f = f.clone();
                Box::pin(async move { f(input).await })
            }),
        });
        self
    }

    /// Writes "always" answers as allow rules into the settings file `path` (by default they
    /// last for the run only).
    pub fn remember_in(mut self, path: impl Into<PathBuf>) -> Self {
        self.access.remember_in = Some(path.into());
        self
    }
}
