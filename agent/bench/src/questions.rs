//! `agent-bench questions`: the seed tasks' front matter with other questions of their kind
//! (tests/data/questions_of_the_kind.yaml), each run by the real binary with the task's
//! default model; prints what the model called, what the tool answered, what the model
//! answered, and the pass rate. An answer passes when the first number in it is the expected
//! one. This measures the model around the tools: the tools' own answers are exact and tested
//! in sandboxes/tests/bundled.rs.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Question {
    seed: String,
    question: String,
    answer: String,
}

/// The front matter of `examples/tasks/SEED.md`, with its `---` lines.
fn front_matter(seed: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(seed).map_err(|e| anyhow::anyhow!("{}: {e}", seed.display()))?;
    let end = text
        .get(3..)
        .and_then(|t| t.find("\n---"))
        .ok_or_else(|| anyhow::anyhow!("{}: no front matter", seed.display()))?;
    Ok(text[..end + 3 + 4].to_string())
}

/// The first number written in `text` (`-2.65`, `3`), if any.
fn first_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let start = chars.iter().position(|c| c.is_ascii_digit())?;
    let mut from = start;
    if start > 0 && matches!(chars[start - 1], '-' | '−') {
        from -= 1;
    }
    let mut end = start;
    while end < chars.len()
        && (chars[end].is_ascii_digit()
            || (chars[end] == '.' && chars.get(end + 1).is_some_and(char::is_ascii_digit)))
    {
        end += 1;
    }
    Some(
        chars[from..end]
            .iter()
            .collect::<String>()
            .replace('−', "-"),
    )
}

pub async fn questions(file: &Path, examples: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let questions: Vec<Question> =
        serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let dir = std::env::temp_dir().join(format!("agent-bench-questions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let exe = crate::agent_exe()?;
    println!("| seed | question | tool call | tool result | answer | right |");
    println!("|---|---|---|---|---|---|");
    let mut right = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for (i, q) in questions.iter().enumerate() {
        let front = front_matter(&examples.join(format!("{}.md", q.seed)))?;
        let task: PathBuf = dir.join(format!("q{i}.md"));
        std::fs::write(&task, format!("{front}\n{}\n", q.question))?;
        let out = tokio::process::Command::new(&exe)
            .arg("run")
            .arg(&task)
            .arg("--json")
            .output()
            .await?;
        let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let tool = |kind: &str| {
            events
                .iter()
                .find(|e| {
                    e["event"] == kind && e["name"].as_str().is_some_and(|n| n != "final_answer")
                })
                .cloned()
        };
        let call = tool("tool_call")
            .map(|c| format!("{} {}", c["name"].as_str().unwrap_or(""), c["arguments"]))
            .unwrap_or_else(|| "none".into());
        let result = tool("tool_result")
            .map(|r| r["content"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let answer = events
            .last()
            .filter(|e| e["event"] == "final" && e["stop"] == "answer")
            .and_then(|e| e["text"].as_str())
            .map(str::to_string);
        let ok = answer.as_deref().and_then(first_number).as_deref() == Some(q.answer.as_str());
        let group = format!(
            "{}, {}",
            q.seed,
            if q.question.is_ascii() {
                "English"
            } else {
                "Chinese"
            }
        );
        let tally = right.entry(group).or_default();
        tally.0 += usize::from(ok);
        tally.1 += 1;
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        println!(
            "| {} | {} | `{}` | {} | {} | {} |",
            q.seed,
            cell(&q.question),
            cell(&call),
            cell(&result),
            cell(answer.as_deref().unwrap_or("(no answer)")),
            if ok { "yes" } else { "no" }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    let (mut all, mut n) = (0, 0);
    for (group, (ok, total)) in &right {
        println!("{group}: {ok} of {total} right");
        all += ok;
        n += total;
    }
    println!("all: {all} of {n} right");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_numbers() {
        assert_eq!(first_number("-2.65 is larger"), Some("-2.65".into()));
        assert_eq!(first_number("The answer is 3."), Some("3".into()));
        assert_eq!(first_number("答案是 4 个"), Some("4".into()));
        assert_eq!(first_number("none"), None);
    }
}
