//! Asking the person at the terminal about a tool call: the prompt goes to `/dev/tty` (so
//! stdout stays the answer's, and `--json` output stays machine-readable), the reply is read
//! from it.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;

use agent::permissions::{Approval, ApprovalRequest, Approver};
use agent::tools::BoxFuture;
use serde_json::Value;

/// The most lines of arguments shown (head and tail), and characters of one string in them
/// (head and tail too: what matters may come last, as `; rm -rf ~` would).
const HEAD_LINES: usize = 30;
const TAIL_LINES: usize = 10;
const HEAD_CHARS: usize = 240;
const TAIL_CHARS: usize = 120;

/// Asks on the controlling terminal.
pub(super) struct Terminal {
    /// Where "always" answers are saved, for the prompt to say.
    settings: PathBuf,
    /// The progress line, hidden while the question is asked.
    bar: Option<indicatif::ProgressBar>,
}

impl Terminal {
    /// A terminal approver when the agent runs on one: stdin is a terminal and `/dev/tty`
    /// opens.
    pub(super) fn detect(
        settings: PathBuf,
        bar: Option<indicatif::ProgressBar>,
    ) -> Option<Terminal> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty");
        (std::io::stdin().is_terminal() && tty.is_ok()).then_some(Terminal { settings, bar })
    }
}

impl Approver for Terminal {
    fn name(&self) -> String {
        "terminal".into()
    }

    fn ask(&self, request: ApprovalRequest) -> BoxFuture<'static, Approval> {
        let (settings, bar) = (self.settings.clone(), self.bar.clone());
        Box::pin(async move {
            // Reading a terminal blocks: on its own thread, the progress line hidden meanwhile.
            tokio::task::spawn_blocking(move || match bar {
                Some(bar) => bar.suspend(|| ask(&request, &settings)),
                None => ask(&request, &settings),
            })
            .await
            .unwrap_or(Approval::No(None))
        })
    }
}

/// The question, then answers until one is understood; no terminal or end of input is "no".
fn ask(request: &ApprovalRequest, settings: &std::path::Path) -> Approval {
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return Approval::No(None);
    };
    let Ok(mut out) = tty.try_clone() else {
        return Approval::No(None);
    };
    let mut lines = BufReader::new(tty).lines();
    // `\r\x1b[K`: the progress line, if one is drawn, is cleared first.
    let _ = write!(out, "\r\x1b[K{}", question(request, settings));
    loop {
        let _ = write!(
            out,
            "Run it? [y] once, [a] for this run, [A] always, [n] no (n REASON tells the model why): "
        );
        let _ = out.flush();
        let Some(Ok(line)) = lines.next() else {
            let _ = writeln!(out);
            return Approval::No(None);
        };
        if let Some(a) = parse_answer(&line) {
            return a;
        }
    }
}

/// `y`, `a`, `A`, `n`, or `n` with a reason; `None` for anything else.
fn parse_answer(line: &str) -> Option<Approval> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    Some(match word {
        "y" | "Y" | "yes" => Approval::Once,
        "a" | "run" => Approval::ForRun,
        "A" | "always" => Approval::Always,
        "n" | "N" | "no" => Approval::No(Some(rest.trim().to_string()).filter(|r| !r.is_empty())),
        _ => return None,
    })
}

/// What the person reads: the tool, where it comes from, what it says of itself, why it is
/// asked about, and its arguments (pretty, long strings and many lines cut).
fn question(request: &ApprovalRequest, settings: &std::path::Path) -> String {
    let args = serde_json::to_string_pretty(&shorten(&request.arguments)).unwrap_or_default();
    let lines: Vec<&str> = args.lines().collect();
    let cut = lines.len().saturating_sub(HEAD_LINES + TAIL_LINES);
    let marker = format!("… ({cut} lines not shown) …");
    let shown: Vec<&str> = if cut == 0 {
        lines
    } else {
        let mut s = lines[..HEAD_LINES].to_vec();
        s.push(&marker);
        s.extend_from_slice(&lines[lines.len() - TAIL_LINES..]);
        s
    };
    format!(
        "\n── permission ── {} ({}, {})\n  why: {}\n  arguments:\n{}\n  [A] saves an allow rule in {}\n",
        request.tool,
        request.source,
        request.annotations.describe(),
        request.why,
        shown
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        settings.display()
    )
}

/// `v` with long strings cut to their head and tail.
fn shorten(v: &Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > HEAD_CHARS + TAIL_CHARS => {
            let n = s.chars().count();
            let head: String = s.chars().take(HEAD_CHARS).collect();
            let tail: String = s.chars().skip(n - TAIL_CHARS).collect();
            Value::String(format!(
                "{head}… ({} characters not shown) …{tail}",
                n - HEAD_CHARS - TAIL_CHARS
            ))
        }
        Value::Array(a) => Value::Array(a.iter().map(shorten).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shorten(v))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers() {
        assert_eq!(
            ["y", " yes ", "a", "A", "n", "n not there", "maybe", ""].map(parse_answer),
            [
                Some(Approval::Once),
                Some(Approval::Once),
                Some(Approval::ForRun),
                Some(Approval::Always),
                Some(Approval::No(None)),
                Some(Approval::No(Some("not there".into()))),
                None,
                None
            ]
        );
    }

    #[test]
    fn long_arguments_are_cut() {
        let request = ApprovalRequest {
            run_id: "r".into(),
            tool: "fs__write_file".into(),
            arguments: json!({"path": "/tmp/a", "content": "x".repeat(1000) + "; rm -rf ~"}),
            source: "mcp:fs".into(),
            annotations: agent::tools::ToolAnnotations {
                read_only: Some(false),
                destructive: Some(true),
                ..Default::default()
            },
            why: "the tool is annotated destructiveHint".into(),
        };
        let q = question(&request, std::path::Path::new(".agent/settings.yaml"));
        assert_eq!(
            q,
            format!(
                "\n── permission ── fs__write_file (mcp:fs, destructive)\n  why: the tool is annotated destructiveHint\n  arguments:\n    {{\n      \"path\": \"/tmp/a\",\n      \"content\": \"{}… (650 characters not shown) …{}; rm -rf ~\"\n    }}\n  [A] saves an allow rule in .agent/settings.yaml\n",
                "x".repeat(240),
                "x".repeat(110)
            )
        );
    }
}
