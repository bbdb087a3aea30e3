//! The live progress line on stderr: one line per step (step n/N, tokens, tokens/s, the tool
//! being called). indicatif draws nothing when stderr is not a terminal.

use agent::Budget;
use agent::events::{Event, Observer, Progress};
use agent_tools::mcp::McpEvent;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct ProgressLine {
    bar: ProgressBar,
    /// The model's context window, from the run's first event.
    window: Option<usize>,
}

impl ProgressLine {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self { bar, window: None }
    }

    /// Shows each status it is called with (a build's), for as long as the line is up.
    /// The bar, to hide while a question is asked on the terminal.
    pub fn bar(&self) -> ProgressBar {
        self.bar.clone()
    }

    pub fn status(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let bar = self.bar.clone();
        move |s| bar.set_message(s.to_string())
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn line(p: &Progress) -> String {
    let mut s = format!("step {}/{}", p.step, p.max_steps);
    match (p.prompt_tokens, p.context_window) {
        (Some(n), Some(w)) => s.push_str(&format!(" · prompt {n}/{w} tokens")),
        (Some(n), None) => s.push_str(&format!(" · prompt {n} tokens")),
        _ => {}
    }
    s.push_str(&format!(
        " · {} tokens · {:.1} tok/s",
        p.tokens, p.tokens_per_sec
    ));
    if let Some(t) = &p.tool {
        s.push_str(" · calling ");
        s.push_str(t);
        if let Some(tp) = &p.tool_progress {
            s.push_str(" · ");
            s.push_str(tp);
        }
    }
    s
}

/// One line for what an MCP server did, or nothing for the routine.
fn mcp_line(e: &McpEvent) -> Option<String> {
    Some(match e {
        McpEvent::Started {
            server,
            tools,
            millis,
            ..
        } => format!(
            "  MCP server {server}: {tools} tools, ready in {:.1}s",
            *millis as f64 / 1000.0
        ),
        McpEvent::Failed {
            server,
            error,
            required: false,
        } => format!("  ✗ MCP server {server} (optional) is left out: {error}"),
        McpEvent::Failed {
            server,
            error,
            required: true,
        } => format!("  ✗ MCP server {server}: {error}"),
        McpEvent::Lost { server, error } => format!("  ✗ MCP server {server} stopped: {error}"),
        McpEvent::Restarted { server, attempt } => {
            format!("  MCP server {server} restarted (attempt {attempt})")
        }
        McpEvent::ToolsChanged { server, tools } => {
            format!("  MCP server {server} now has {tools} tools")
        }
        McpEvent::Sampling { server, tokens, .. } => {
            format!("  MCP server {server} asked the model: {tokens} tokens answered")
        }
        McpEvent::ElicitationDeclined {
            server, message, ..
        } => format!("  MCP server {server} asked for user input, declined: {message}"),
    })
}

fn budget_text(b: &Budget) -> String {
    match b {
        Budget::Off => "off".into(),
        Budget::Tokens(n) => n.to_string(),
        Budget::Unlimited => "unlimited".into(),
    }
}

impl Observer for ProgressLine {
    fn progress(&mut self, p: &Progress) {
        self.bar.set_message(line(p));
    }

    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { context_window, .. } => self.window = *context_window,
            Event::StepStarted {
                step,
                max_steps,
                kind,
                thinking_budget,
                thinking_applies,
            } => {
                let budget = if *thinking_applies {
                    format!(" · thinking budget {}", budget_text(thinking_budget))
                } else {
                    String::new()
                };
                self.bar.set_message(
                    format!("step {step}/{max_steps} · {kind:?}{budget} · prompt…").to_lowercase(),
                )
            }
            Event::ModelOutput {
                step,
                stats,
                tokens_per_sec,
                thinking_tokens,
                thinking_capped,
                ..
            } => {
                let thinking = match (*thinking_tokens, *thinking_capped) {
                    (0, false) => String::new(),
                    (n, false) => format!(" · thought {n} tokens"),
                    (n, true) => format!(" · thought {n} tokens (budget reached)"),
                };
                let cached = match stats.cached_tokens {
                    Some(n) if n > 0 => format!(" ({n} cached)"),
                    _ => String::new(),
                };
                let window = self.window.map(|w| format!("/{w}")).unwrap_or_default();
                self.bar.println(format!(
                    "step {step}: {}{window} prompt tokens{cached} in {:.2}s, {} generated at {:.1} tok/s{thinking}",
                    stats.prompt_tokens, stats.prompt_secs, stats.completion_tokens, tokens_per_sec
                ));
            }
            Event::ToolResult {
                name,
                is_error,
                content,
                cut,
                ..
            } => {
                let first = content.lines().next().unwrap_or_default();
                let short: String = first.chars().take(80).collect();
                let cut = match cut {
                    Some(c) => format!(
                        " ({} of {} bytes shown, result {})",
                        c.shown_bytes, c.bytes, c.id
                    ),
                    None => String::new(),
                };
                self.bar.println(format!(
                    "  {} {name}: {short}{cut}",
                    if *is_error { "✗" } else { "✓" }
                ));
            }
            Event::Compacted {
                before_tokens,
                after_tokens,
                summarized,
                dropped_results,
                ..
            } => self.bar.println(format!(
                "  ↺ compacted: {before_tokens} → {after_tokens} prompt tokens ({summarized} messages summarized, {dropped_results} results dropped)"
            )),
            Event::Final {
                usage,
                elapsed_secs,
                ..
            } => self.bar.println(format!(
                "run: {} prompt tokens ({} cached), {} generated ({} thinking) in {elapsed_secs:.1}s",
                usage.prompt_tokens, usage.cached_tokens, usage.generated_tokens, usage.thinking_tokens
            )),
            Event::Permission(d) if d.decision == agent::permissions::Mode::Deny => {
                self.bar.println(format!(
                    "  ✗ {} refused: {}",
                    d.name,
                    d.message.as_deref().unwrap_or_default()
                ))
            }
            Event::Hook(h) if h.run.error.is_some() => self.bar.println(format!(
                "  ✗ {} hook `{}` failed: {}",
                h.hook.as_str(),
                h.run.command,
                h.run.error.as_deref().unwrap_or_default()
            )),
            Event::ParseError { message, .. } => self
                .bar
                .println(format!("  ✗ malformed tool call: {message}")),
            Event::McpServer(e) => {
                if let Some(l) = mcp_line(e) {
                    self.bar.println(l);
                }
            }
            _ => {}
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}
