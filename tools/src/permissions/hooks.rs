//! Hooks: commands (or, from a program, closures) that see a run's tool calls before and
//! after they run, and its end. A hook reads one JSON object ([`HookInput`]) on stdin and may
//! answer one ([`HookAnswer`]) on stdout; exit code 2 blocks, with stderr as the reason.
//! A hook that fails (another exit code, a signal, its timeout, an answer that is not one)
//! is an error, and before a call an error blocks it: hooks fail closed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Mode, Rule};
use crate::{ToolAnnotations, ToolOutput};

/// How long a hook may take unless it says (`timeout`, seconds).
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// The most bytes of a hook's stdout and of its stderr that are kept.
const MAX_OUTPUT: usize = 64 << 10;

/// A `hooks:` block: commands by when they run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookSpecs {
    /// Before a call: may allow it, deny it, ask about it, or rewrite its arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_tool: Vec<CommandHook>,
    /// After a call, with its result: may add a note for the model or mark it failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_tool: Vec<CommandHook>,
    /// When the run ends, with how it ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<CommandHook>,
}

impl HookSpecs {
    /// `layers` joined in order (user settings, project settings, task): every hook runs.
    pub fn merged<'a>(layers: impl IntoIterator<Item = &'a HookSpecs>) -> HookSpecs {
        let mut all = HookSpecs::default();
        for l in layers {
            all.pre_tool.extend(l.pre_tool.iter().cloned());
            all.post_tool.extend(l.post_tool.iter().cloned());
            all.stop.extend(l.stop.iter().cloned());
        }
        all
    }

    /// True when there is no hook at all.
    pub fn is_empty(&self) -> bool {
        self.pre_tool.is_empty() && self.post_tool.is_empty() && self.stop.is_empty()
    }
}

/// One hook command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandHook {
    /// The calls it sees, as a permission rule (`fs__*`, `fs__write_file(path: "/tmp/**")`);
    /// every call when absent. Not used by `stop` hooks.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Rule>,
    /// Run by `sh -c` in the run's base folder.
    pub command: String,
    /// Seconds it may take ([`DEFAULT_HOOK_TIMEOUT`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

impl CommandHook {
    /// Whether the hook sees `tool(arguments)`.
    pub fn sees(&self, tool: &str, arguments: &Value) -> bool {
        self.matcher
            .as_ref()
            .is_none_or(|m| m.matches_with(tool, arguments, super::Each::Any))
    }
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    /// Before a call.
    PreTool,
    /// After a call.
    PostTool,
    /// At the end of the run.
    Stop,
}

impl HookEvent {
    /// The name used in settings and the trace.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreTool => "pre_tool",
            HookEvent::PostTool => "post_tool",
            HookEvent::Stop => "stop",
        }
    }
}

/// What a hook is told: the JSON object on its stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookInput {
    /// When it runs.
    pub event: HookEvent,
    /// The run's id.
    pub run_id: String,
    /// The run's trace file, when it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace: Option<PathBuf>,
    /// The folder the hook runs in.
    pub cwd: PathBuf,
    /// The tool (tool hooks).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool: Option<String>,
    /// The call's arguments, as earlier hooks left them (tool hooks).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arguments: Option<Value>,
    /// Where the tool comes from (`builtin`, `mcp:SERVER`, `wasm:NAME (...)`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<String>,
    /// The tool's annotations.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<ToolAnnotations>,
    /// The call's result (`post_tool`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<ToolOutput>,
    /// Why the run ended (`stop`): `answer`, `max_steps`, ...
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stop: Option<String>,
    /// The run's answer (`stop`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub answer: Option<Value>,
}

/// What a hook may answer on stdout (every key optional; no answer lets the call go on).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookAnswer {
    /// `pre_tool`: `allow` runs a call the rules would ask about (a deny rule still wins),
    /// `ask` asks about it, `deny` blocks it. `post_tool`: `deny` marks the result failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Mode>,
    /// Told to the model: why a call was blocked, or a note after its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `pre_tool`: the arguments the call runs with instead (checked against the rules and
    /// the tool's schema again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
}

impl HookAnswer {
    /// A hook's block: `deny`, with the reason the model reads.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            decision: Some(Mode::Deny),
            reason: Some(reason.into()),
            arguments: None,
        }
    }
}

/// What running a hook command came to, for the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRun {
    /// The command.
    pub command: String,
    /// Its exit code (none when a signal ended it or it did not start).
    pub exit_code: Option<i32>,
    /// Its stdout (at most 64 KiB).
    pub stdout: String,
    /// Its stderr (at most 64 KiB).
    pub stderr: String,
    /// How long it took.
    pub seconds: f64,
    /// Why it failed, when it did (fails closed before a call).
    pub error: Option<String>,
    /// Its answer: from stdout, or a deny from exit code 2.
    pub answer: HookAnswer,
}

/// A hook's process group, killed when the hook ends, overruns its timeout or is dropped (a
/// cancelled run): no process a hook started outlives it.
struct Group(Option<i32>);

impl Group {
    fn kill(&self) {
        if let Some(pid) = self.0 {
            // SAFETY: killpg only sends a signal, to the group the hook leads.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `hook` on `input` in `cwd`: the JSON on stdin, the answer from stdout, exit code 2 a
/// block with stderr as its reason. The hook leads its own process group, which is killed when
/// the hook exits (what it left running goes with it), overruns its timeout, or is dropped.
pub async fn run_command(hook: &CommandHook, input: &HookInput, cwd: &Path) -> HookRun {
    let start = Instant::now();
    let limit = hook
        .timeout
        .filter(|t| *t > 0.0)
        .and_then(|t| Duration::try_from_secs_f64(t).ok())
        .unwrap_or(DEFAULT_HOOK_TIMEOUT);
    let mut run = HookRun {
        command: hook.command.clone(),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        seconds: 0.0,
        error: None,
        answer: HookAnswer::default(),
    };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&hook.command)
        .current_dir(cwd)
        .env("AGENT_HOOK_EVENT", input.event.as_str())
        .env("AGENT_RUN_ID", &input.run_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(t) = &input.trace {
        cmd.env("AGENT_TRACE", t);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            run.error = Some(format!("could not start: {e}"));
            return run;
        }
    };
    let group = Group(child.id().and_then(|p| i32::try_from(p).ok()));
    let json = serde_json::to_vec(input).unwrap_or_default();
    let (mut stdin, mut out, mut err) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let talk = async {
        // A hook that does not read its input is fine: a closed pipe is not an error.
        if let Some(mut s) = stdin.take() {
            let _ = s.write_all(&json).await;
            let _ = s.shutdown().await;
        }
        let exited = async {
            let status = child.wait().await;
            // Whatever it left running (and holding its pipes open) goes with it.
            group.kill();
            status
        };
        tokio::join!(read_capped(out.take()), read_capped(err.take()), exited)
    };
    match tokio::time::timeout(limit, talk).await {
        Err(_) => {
            group.kill();
            run.error = Some(format!(
                "did not finish within {}s and was killed",
                limit.as_secs_f64()
            ));
        }
        Ok((stdout, stderr, status)) => {
            run.stdout = stdout;
            run.stderr = stderr;
            match status {
                Err(e) => run.error = Some(format!("could not be waited for: {e}")),
                Ok(status) => {
                    run.exit_code = status.code();
                    match status.code() {
                        Some(0) => match answer_in(&run.stdout) {
                            Ok(a) => run.answer = a.unwrap_or_default(),
                            Err(e) => run.error = Some(e),
                        },
                        Some(2) => {
                            let why = run.stderr.trim();
                            run.answer = HookAnswer::deny(if why.is_empty() {
                                format!("blocked by hook `{}`", hook.command)
                            } else {
                                why.to_string()
                            });
                        }
                        Some(code) => {
                            run.error =
                                Some(format!("exited with status {code}{}", tail(&run.stderr)))
                        }
                        None => {
                            run.error = Some(format!("was killed by a signal{}", tail(&run.stderr)))
                        }
                    }
                }
            }
        }
    }
    run.seconds = start.elapsed().as_secs_f64();
    run
}

/// The answer in a hook's stdout: all of it, or its last line, when that is a JSON object;
/// other text is only recorded. An object anywhere else is an error rather than ignored, so
/// that a hook that prints before its answer cannot have it pass unread.
fn answer_in(stdout: &str) -> Result<Option<HookAnswer>, String> {
    let parse = |t: &str| {
        serde_json::from_str::<HookAnswer>(t)
            .map(Some)
            .map_err(|e| format!("its answer is not one: {e}"))
    };
    let text = stdout.trim();
    if text.starts_with('{') {
        return parse(text);
    }
    let last = text.lines().next_back().unwrap_or_default().trim();
    if last.starts_with('{') {
        return parse(last);
    }
    if text.lines().any(|l| l.trim_start().starts_with('{')) {
        return Err("its answer must be the whole of its output or its last line".into());
    }
    Ok(None)
}

/// The first [`MAX_OUTPUT`] bytes of `pipe`, as text; the rest is read and dropped, so a
/// chatty hook does not block on a full pipe.
async fn read_capped(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut kept = Vec::new();
    if let Some(mut p) = pipe {
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = p.read(&mut chunk).await {
            let room = MAX_OUTPUT.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&chunk[..room]);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// `: LAST LINE OF STDERR`, or nothing.
fn tail(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> HookInput {
        HookInput {
            event: HookEvent::PreTool,
            run_id: "r1".into(),
            trace: None,
            cwd: std::env::temp_dir(),
            tool: Some("fs__write_file".into()),
            arguments: Some(json!({"path": "a.txt"})),
            source: Some("mcp:fs".into()),
            annotations: None,
            result: None,
            stop: None,
            answer: None,
        }
    }

    fn hook(command: &str, timeout: Option<f64>) -> CommandHook {
        CommandHook {
            matcher: None,
            command: command.into(),
            timeout,
        }
    }

    async fn run(command: &str, timeout: Option<f64>) -> HookRun {
        run_command(&hook(command, timeout), &input(), &std::env::temp_dir()).await
    }

    #[tokio::test]
    async fn answers_blocks_and_failures() {
        // The input arrives on stdin; an answer on stdout rewrites.
        let r = run(
            r#"python3 -c 'import json,sys; i=json.load(sys.stdin); print(json.dumps({"arguments": {"path": "safe/" + i["arguments"]["path"]}}))'"#,
            None,
        )
        .await;
        assert_eq!((r.error, r.exit_code), (None, Some(0)));
        assert_eq!(
            r.answer,
            HookAnswer {
                decision: None,
                reason: None,
                arguments: Some(json!({"path": "safe/a.txt"}))
            }
        );
        // Exit 2 blocks with stderr.
        let r = run("echo 'not there' >&2; exit 2", None).await;
        assert_eq!((r.error, r.answer), (None, HookAnswer::deny("not there")));
        // Plain text is recorded, not an answer; an answer may follow text, on the last line.
        let r = run("echo looks fine", None).await;
        assert_eq!((r.error, r.answer), (None, HookAnswer::default()));
        let r = run(
            r#"echo checking; echo '{"decision": "deny", "reason": "no"}'"#,
            None,
        )
        .await;
        assert_eq!((r.error, r.answer), (None, HookAnswer::deny("no")));
        let r = run(r#"echo x; echo '{"decision": "deny"}'; echo done"#, None).await;
        assert_eq!(
            r.error.as_deref(),
            Some("its answer must be the whole of its output or its last line")
        );
        // Failures: another exit code, a bad answer, a signal, a timeout.
        let r = run("echo oops >&2; exit 3", None).await;
        assert_eq!(r.error.as_deref(), Some("exited with status 3: oops"));
        let r = run(r#"echo '{"decision": "maybe"}'"#, None).await;
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("its answer is not one: unknown variant `maybe`")),
            "{r:?}"
        );
        let r = run("kill -9 $$", None).await;
        assert_eq!(r.error.as_deref(), Some("was killed by a signal"));
        // The child that holds the pipes open dies with the group.
        let r = run("sleep 30 & sleep 30", Some(0.5)).await;
        assert_eq!(
            r.error.as_deref(),
            Some("did not finish within 0.5s and was killed")
        );
        assert!(r.seconds < 10.0, "{}", r.seconds);
        // What a hook leaves running when it exits goes with it (and does not hold it up).
        let marker = std::env::temp_dir().join(format!("agent-hook-left-{}", std::process::id()));
        let r = run(
            &format!("(sleep 2; touch {}) & echo ok", marker.display()),
            Some(20.0),
        )
        .await;
        assert_eq!(
            (r.error, r.exit_code, r.stdout.trim()),
            (None, Some(0), "ok")
        );
        assert!(r.seconds < 2.0, "{}", r.seconds);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!marker.exists());
        // An absurd timeout is the default, not a panic.
        let r = run("true", Some(1e300)).await;
        assert_eq!(r.error, None);
    }

    #[test]
    fn specs_parse_with_matchers() {
        let h: HookSpecs = serde_json::from_value(json!({
            "pre_tool": [{"match": "fs__write_file(path: \"/tmp/**\")", "command": "true", "timeout": 5}],
            "stop": [{"command": "notify-send done"}]
        }))
        .unwrap();
        assert!(h.pre_tool[0].sees("fs__write_file", &json!({"path": "/tmp/x"})));
        assert!(!h.pre_tool[0].sees("fs__write_file", &json!({"path": "/etc/x"})));
        assert!(h.stop[0].sees("anything", &json!({})));
        let bad = serde_json::from_value::<HookSpecs>(json!({"pre": []}))
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("unknown field `pre`"), "{bad}");
    }
}
