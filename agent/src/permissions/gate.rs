//! One run's gate: before a call its `pre_tool` hooks (which may rewrite the arguments or
//! decide), then the rules on the final arguments, then, for `ask`, the approver; after it
//! its `post_tool` hooks; at the end its `stop` hooks. Each step is an event.

use std::path::PathBuf;
use std::sync::Mutex;

use agent_tools::permissions::{
    Each, HookAnswer, HookEvent, HookInput, HookRun, HookSpecs, Mode, Permissions, Reason, Rule,
    hooks::run_command,
};
use agent_tools::{Tool, ToolOutput};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use super::{Access, Approval, ApprovalRequest};
use crate::events::Event;

/// A decision on one call, as the trace records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The step whose call this is.
    pub step: u32,
    /// The call's id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// `allow` (it runs) or `deny` (the model is told why).
    pub decision: Mode,
    /// What the rules, annotations and hooks said before anyone was asked.
    pub verdict: Mode,
    /// What decided the verdict.
    #[serde(flatten)]
    pub reason: Reason,
    /// Who was asked, when someone was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// Their answer (`once`, `for_run`, `always`, `no`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// What the model is told of a refused call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The arguments the call runs with, when hooks rewrote them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
}

/// A hook that ran, as the trace records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookRecord {
    /// When it ran.
    pub hook: HookEvent,
    /// The step, for tool hooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The call's id, for tool hooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool, for tool hooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// What running it came to.
    #[serde(flatten)]
    pub run: HookRun,
}

/// What the gate says of a call.
pub(crate) enum Checked {
    /// Run it with these arguments.
    Run(Value),
    /// Do not; the model reads this.
    Refused(String),
}

/// One run's permissions and hooks.
pub(crate) struct Gate {
    perms: Permissions,
    hooks: HookSpecs,
    access: Access,
    run_id: String,
    trace: Option<PathBuf>,
    cwd: PathBuf,
    /// Tools allowed for the rest of the run by an answer, by exact name (a tool's name is
    /// not read as a glob).
    for_run: Mutex<std::collections::BTreeSet<String>>,
    /// One question at a time (a turn's calls run at once).
    asking: tokio::sync::Mutex<()>,
}

/// Where a call is.
pub(crate) struct CallInfo<'a> {
    pub step: u32,
    pub id: &'a str,
    pub tool: &'a dyn Tool,
}

impl Gate {
    pub(crate) fn new(
        perms: Permissions,
        hooks: HookSpecs,
        access: Access,
        run_id: String,
        trace: Option<PathBuf>,
        cwd: PathBuf,
    ) -> Gate {
        Gate {
            perms,
            hooks,
            access,
            run_id,
            trace,
            cwd,
            for_run: Mutex::default(),
            asking: tokio::sync::Mutex::new(()),
        }
    }

    fn input(&self, event: HookEvent, call: Option<(&CallInfo<'_>, &Value)>) -> HookInput {
        HookInput {
            event,
            run_id: self.run_id.clone(),
            trace: self.trace.clone(),
            cwd: self.cwd.clone(),
            tool: call.map(|(c, _)| c.tool.spec().name.clone()),
            arguments: call.map(|(_, a)| a.clone()),
            source: call.map(|(c, _)| c.tool.source()),
            annotations: call.map(|(c, _)| c.tool.annotations()),
            result: None,
            stop: None,
            answer: None,
        }
    }

    /// Runs the hooks of `event` that see `call` (all, for `stop`), command hooks first,
    /// each given `input` with the arguments the hooks before it left; each is an event.
    /// Returns the (name, run) pairs in order.
    async fn run_hooks(
        &self,
        event: HookEvent,
        call: Option<&CallInfo<'_>>,
        mut input: HookInput,
        events: &UnboundedSender<Event>,
        mut each: impl FnMut(&HookRun, &mut HookInput) -> bool,
    ) {
        let commands = match event {
            HookEvent::PreTool => &self.hooks.pre_tool,
            HookEvent::PostTool => &self.hooks.post_tool,
            HookEvent::Stop => &self.hooks.stop,
        };
        let sees = |m: Option<&Rule>, input: &HookInput| match (&input.tool, &input.arguments) {
            (Some(t), Some(a)) => m.is_none_or(|m| m.matches_with(t, a, Each::Any)),
            _ => true,
        };
        let tool = call.map(|c| c.tool.spec().name.clone());
        let record = |run: HookRun| {
            let _ = events.send(Event::Hook(HookRecord {
                hook: event,
                step: call.map(|c| c.step),
                id: call.map(|c| c.id.to_string()),
                tool: tool.clone(),
                run,
            }));
        };
        for h in commands {
            if !sees(h.matcher.as_ref(), &input) {
                continue;
            }
            let run = run_command(h, &input, &self.cwd).await;
            let go_on = each(&run, &mut input);
            record(run);
            if !go_on {
                return;
            }
        }
        for h in self.access.hooks.iter().filter(|h| h.event == event) {
            if !sees(h.matcher.as_ref(), &input) {
                continue;
            }
            let start = std::time::Instant::now();
            let answer = (h.f)(input.clone()).await;
            let run = HookRun {
                command: h.name.clone(),
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
                seconds: start.elapsed().as_secs_f64(),
                error: None,
                answer,
            };
            let go_on = each(&run, &mut input);
            record(run);
            if !go_on {
                return;
            }
        }
    }

    /// Whether `call` with `arguments` runs, and with what arguments.
    pub(crate) async fn before(
        &self,
        call: &CallInfo<'_>,
        arguments: Value,
        events: &UnboundedSender<Event>,
    ) -> Checked {
        let name = call.tool.spec().name.clone();
        let original = arguments.clone();
        // The hooks first: they may rewrite the arguments the rules then judge.
        let mut said: Option<(Mode, String, Option<String>)> = None;
        let mut failed: Option<(String, String)> = None;
        let input = self.input(HookEvent::PreTool, Some((call, &arguments)));
        let mut arguments = arguments;
        self.run_hooks(
            HookEvent::PreTool,
            Some(call),
            input,
            events,
            |run, input| {
                if let Some(e) = &run.error {
                    failed = Some((run.command.clone(), e.clone()));
                    return false;
                }
                if let Some(a) = &run.answer.arguments {
                    input.arguments = Some(a.clone());
                    arguments = a.clone();
                }
                match run.answer.decision {
                    Some(Mode::Deny) => {
                        said = Some((Mode::Deny, run.command.clone(), run.answer.reason.clone()));
                        false
                    }
                    Some(m) => {
                        // An `ask` from any hook holds over an `allow` from another.
                        if said.as_ref().is_none_or(|(s, ..)| *s != Mode::Ask) {
                            said = Some((m, run.command.clone(), run.answer.reason.clone()));
                        }
                        true
                    }
                    None => true,
                }
            },
        )
        .await;
        let rewritten = (arguments != original).then(|| arguments.clone());
        let mut decision = Decision {
            step: call.step,
            id: call.id.to_string(),
            name: name.clone(),
            decision: Mode::Deny,
            verdict: Mode::Deny,
            reason: Reason::Default,
            approver: None,
            answer: None,
            message: None,
            arguments: rewritten,
        };
        if let Some((hook, error)) = failed {
            decision.reason = Reason::Hook { hook: hook.clone() };
            return self.refuse(
                decision,
                format!(
                    "blocked: the hook `{hook}` failed ({error}), and a failed hook blocks the call"
                ),
                events,
            );
        }
        let annotations = call.tool.annotations();
        let (mut verdict, mut reason) = self.perms.decide(&name, &arguments, &annotations);
        // A deny rule holds whatever hooks say; otherwise a hook's word wins.
        let deny_rule = verdict == Mode::Deny && matches!(reason, Reason::Rule { .. });
        let mut hook_reason = None;
        if let Some((mode, hook, why)) = said
            && !deny_rule
        {
            (verdict, reason, hook_reason) = (mode, Reason::Hook { hook }, why);
        }
        decision.verdict = verdict;
        decision.reason = reason.clone();
        match verdict {
            Mode::Allow => self.allow(decision, arguments, events),
            Mode::Deny => {
                let why = match (&reason, hook_reason) {
                    (Reason::Hook { .. }, Some(why)) => format!("blocked by a hook: {why}"),
                    _ => format!("permission denied: {reason}"),
                };
                self.refuse(decision, why, events)
            }
            Mode::Ask => {
                let request = ApprovalRequest {
                    run_id: self.run_id.clone(),
                    tool: name,
                    arguments: arguments.clone(),
                    source: call.tool.source(),
                    annotations,
                    why: hook_reason.unwrap_or_else(|| reason.to_string()),
                };
                self.ask(decision, request, arguments, events).await
            }
        }
    }

    fn allow(&self, mut d: Decision, arguments: Value, events: &UnboundedSender<Event>) -> Checked {
        d.decision = Mode::Allow;
        let _ = events.send(Event::Permission(d));
        Checked::Run(arguments)
    }

    fn refuse(&self, mut d: Decision, message: String, events: &UnboundedSender<Event>) -> Checked {
        d.decision = Mode::Deny;
        d.message = Some(message.clone());
        let _ = events.send(Event::Permission(d));
        Checked::Refused(message)
    }

    fn allowed_for_run(&self, tool: &str) -> bool {
        self.for_run.lock().is_ok_and(|r| r.contains(tool))
    }

    async fn ask(
        &self,
        mut d: Decision,
        request: ApprovalRequest,
        arguments: Value,
        events: &UnboundedSender<Event>,
    ) -> Checked {
        let Some(approver) = self.access.approver.clone() else {
            return self.refuse(
                d,
                format!(
                    "permission denied: `{}` needs approval ({}) and nobody can be asked (the run is not interactive: allow it in `permissions`, or run with --yes)",
                    request.tool, request.why
                ),
                events,
            );
        };
        let _turn = self.asking.lock().await;
        // An earlier question of this turn may have allowed the tool for the run.
        if self.allowed_for_run(&request.tool) {
            d.answer = Some(Approval::ForRun.as_str().into());
            d.approver = Some("this run".into());
            return self.allow(d, arguments, events);
        }
        d.approver = Some(approver.name());
        let tool = request.tool.clone();
        let answer = approver.ask(request).await;
        d.answer = Some(answer.as_str().into());
        match answer {
            Approval::Once => self.allow(d, arguments, events),
            Approval::ForRun | Approval::Always => {
                if let Ok(mut r) = self.for_run.lock() {
                    r.insert(tool.clone());
                }
                if answer == Approval::Always
                    && let Some(file) = &self.access.remember_in
                {
                    // Saved as a rule naming the tool alone: a name a rule would read as a
                    // glob (or cannot hold) is not saved, lest it allow more than was asked.
                    let saved = tool
                        .parse::<Rule>()
                        .ok()
                        .filter(|r| r.text == tool && !tool.contains(['*', '?']))
                        .ok_or_else(|| format!("`{tool}` cannot be written as a rule naming it alone: allowed for this run only"))
                        .and_then(|rule| crate::task::remember_allow(file, &rule));
                    if let Err(message) = saved {
                        let _ = events.send(Event::Error { message });
                    }
                }
                self.allow(d, arguments, events)
            }
            Approval::No(why) => {
                let message = match why.filter(|w| !w.trim().is_empty()) {
                    Some(w) => format!("the user declined this call: {w}"),
                    None => "the user declined this call".to_string(),
                };
                self.refuse(d, message, events)
            }
        }
    }

    /// `out` after the `post_tool` hooks that see the call: a hook's `reason` is added for
    /// the model, and its `deny` (or exit code 2) marks the result failed. A hook that fails
    /// is recorded and changes nothing (the call has run).
    pub(crate) async fn after(
        &self,
        call: &CallInfo<'_>,
        arguments: &Value,
        mut out: ToolOutput,
        events: &UnboundedSender<Event>,
    ) -> ToolOutput {
        let mut input = self.input(HookEvent::PostTool, Some((call, arguments)));
        input.result = Some(out.clone());
        let mut notes: Vec<(bool, String)> = Vec::new();
        self.run_hooks(HookEvent::PostTool, Some(call), input, events, |run, _| {
            let HookAnswer {
                decision, reason, ..
            } = &run.answer;
            let deny = *decision == Some(Mode::Deny);
            if let Some(r) = reason.clone().filter(|r| !r.trim().is_empty()) {
                notes.push((deny, r));
            } else if deny {
                notes.push((
                    true,
                    format!("the hook `{}` rejected this result", run.command),
                ));
            }
            true
        })
        .await;
        for (deny, note) in notes {
            out.is_error |= deny;
            out.content = format!("{}\n\n[hook] {note}", out.content);
        }
        out
    }

    /// Runs the `stop` hooks; returns the reason when one of them rejects the answer
    /// (`deny`, or exit code 2).
    pub(crate) async fn stop(
        &self,
        stop: &str,
        answer: Option<&Value>,
        events: &UnboundedSender<Event>,
    ) -> Option<String> {
        let mut input = self.input(HookEvent::Stop, None);
        input.stop = Some(stop.to_string());
        input.answer = answer.cloned();
        let mut rejected = None;
        self.run_hooks(HookEvent::Stop, None, input, events, |run, _| {
            // A check that could not run has not passed: a failed stop hook rejects too.
            if let Some(e) = &run.error {
                rejected = Some(format!("the stop hook `{}` failed ({e})", run.command));
                return false;
            }
            if run.answer.decision == Some(Mode::Deny) {
                rejected =
                    Some(run.answer.reason.clone().unwrap_or_else(|| {
                        format!("the hook `{}` rejected the answer", run.command)
                    }));
                return false;
            }
            true
        })
        .await;
        rejected
    }
}
