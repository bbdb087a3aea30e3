//! Task files: what `agent run TASK.md` reads.
//!
//! A task file is Markdown. It may start with YAML front matter between a first
//! line `---` and the next line `---`; everything after it (or the whole file,
//! without front matter) is the instructions given to the model. The format is
//! documented for users in `docs/TASK_FORMAT.md`.
//!
//! Parsing is strict (unknown keys, wrong types and out-of-range values are all
//! errors) because a task file is usually run unattended: a typo that silently
//! falls back to a default would waste a whole run. Every error is one line
//! naming file, line and key; see [`TaskError`].

mod access;
mod check;
mod error;
mod front;
mod limits;
mod locate;
mod output;
mod settings;
mod thinking;
mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_tools::permissions::{HookSpecs, Permissions};
use serde_yaml_ng::Value;

pub use check::FieldError;
pub use error::TaskError;
pub use front::{
    DEFAULT_MAX_STEPS, DEFAULT_MODEL, FrontMatter, MAX_STEPS_RANGE, Sampling, TEMPERATURE_RANGE,
};
pub use limits::{
    COMPACT_AT_RANGE, MAX_RESULT_BYTES_RANGE, MAX_RESULT_TOKENS_RANGE, RunLimits, SECONDS_RANGE,
    parse_duration,
};
pub use output::OutputSpec;
pub use settings::{project_settings, read_settings, remember_allow, user_settings, with_settings};
pub use thinking::ThinkingSpec;
pub use tools::ToolSource;

/// The path recorded for tasks that did not come from a file.
pub const INLINE_PATH: &str = "<inline>";

/// A parsed task: its settings and its instructions.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Where the task came from, as given (used in messages), or [`INLINE_PATH`].
    pub path: PathBuf,
    /// The Markdown body, without leading blank lines or trailing whitespace;
    /// never empty.
    pub instructions: String,
    /// The settings of the front matter (all unset when there is none).
    pub front: FrontMatter,
    /// The 1-based line of each top-level front-matter key, for errors found after loading
    /// (a `model:` path that does not exist): see [`Task::error_at`].
    pub key_lines: BTreeMap<String, usize>,
}

impl Task {
    /// Reads and parses a task file.
    pub fn load(path: &Path) -> Result<Task, TaskError> {
        let text = std::fs::read_to_string(path).map_err(|source| TaskError::Read {
            path: path.to_owned(),
            source,
        })?;
        Task::parse(path, &text)
    }

    /// Parses task text; `path` is only used in errors and recorded in the task.
    pub fn parse(path: &Path, text: &str) -> Result<Task, TaskError> {
        let split = split(text).ok_or_else(|| TaskError::UnclosedFrontMatter {
            path: path.to_owned(),
        })?;
        let front = match split.yaml {
            Some(yaml) => parse_front_matter(path, yaml)?,
            None => FrontMatter::default(),
        };
        let instructions = trim_body(split.body);
        if instructions.is_empty() {
            let reason = if split.yaml.is_some() {
                "nothing follows the front matter; write the task below the closing `---`"
            } else {
                "the task file is empty"
            };
            return Err(TaskError::NoInstructions {
                path: path.to_owned(),
                reason,
            });
        }
        Ok(Task {
            path: path.to_owned(),
            instructions: instructions.to_owned(),
            front,
            key_lines: split.yaml.map(key_lines).unwrap_or_default(),
        })
    }

    /// An error about the value of top-level key `key`, found after the task was loaded,
    /// naming the file and the key's line like every other task error.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> TaskError {
        TaskError::Invalid {
            path: self.path.clone(),
            line: self.key_lines.get(key).copied(),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    /// Parses task text that did not come from a file (front matter allowed),
    /// recording the path as [`INLINE_PATH`].
    pub fn parse_inline(text: &str) -> Result<Task, TaskError> {
        Task::parse(Path::new(INLINE_PATH), text)
    }

    /// A task made of plain instructions with default settings, e.g. from a
    /// command-line prompt. The text is taken as is, even if it starts with `---`.
    pub fn from_instructions(text: &str) -> Task {
        Task {
            path: PathBuf::from(INLINE_PATH),
            instructions: text.to_owned(),
            front: FrontMatter::default(),
            key_lines: BTreeMap::new(),
        }
    }
}

impl FrontMatter {
    /// Checks settings made in code (a builder's) as a task file's are checked: the error
    /// names the key and says what is accepted.
    pub fn check(&self) -> Result<(), FieldError> {
        // Through JSON, which writes enums as a task file does (`tool_choice: {tool: NAME}`),
        // where YAML would write tags.
        let value = serde_json::to_value(self)
            .map_err(|e| e.to_string())
            .and_then(|json| serde_yaml_ng::to_value(json).map_err(|e| e.to_string()))
            .map_err(|e| {
                FieldError::new(
                    &[],
                    format!("cannot be written as a task file's front matter: {e}"),
                )
            })?;
        front::check_front_matter(&value).map(|_| ())
    }

    /// `top` over `self`, key by key: a key `top` sets wins (a task's settings over a server's
    /// defaults).
    pub fn overlay(self, top: FrontMatter) -> FrontMatter {
        FrontMatter {
            model: top.model.or(self.model),
            device: top.device.or(self.device),
            isq: top.isq.or(self.isq),
            max_steps: top.max_steps.or(self.max_steps),
            limits: self.limits.overlay(top.limits),
            tools: top.tools.or(self.tools),
            thinking: top.thinking.or(self.thinking),
            sampling: top.sampling.or(self.sampling),
            output: top.output.or(self.output),
            tool_choice: top.tool_choice.or(self.tool_choice),
            tool_format: top.tool_format.or(self.tool_format),
            mcp_servers: top.mcp_servers.or(self.mcp_servers),
            wasm_policy: top.wasm_policy.or(self.wasm_policy),
            // Rules and hooks add up: a deny anywhere wins, every hook runs.
            permissions: merge(self.permissions, top.permissions, |a, b| {
                Permissions::merged([&a, &b])
            }),
            hooks: merge(self.hooks, top.hooks, |a, b| HookSpecs::merged([&a, &b])),
        }
    }
}

/// `a` and `b` combined by `both` when both are set, else whichever is.
fn merge<T>(a: Option<T>, b: Option<T>, both: impl FnOnce(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(both(a, b)),
        (a, b) => b.or(a),
    }
}

/// The line of each top-level key of block-style front matter (a line that starts with
/// `key:`), counted in the whole file.
fn key_lines(yaml: &str) -> BTreeMap<String, usize> {
    yaml.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with([' ', '\t', '#', '-', '{']))
        .filter_map(|(i, l)| {
            let key = l.split_once(':')?.0.trim().trim_matches(['"', '\'']);
            (!key.is_empty()).then(|| (key.to_string(), i + 1 + YAML_LINE_OFFSET))
        })
        .collect()
}

/// Lines of the file before the YAML starts: the opening `---`.
const YAML_LINE_OFFSET: usize = 1;

/// A task file cut into front matter and body.
struct Split<'a> {
    /// The YAML between the delimiters (which starts on line 2 of the file).
    yaml: Option<&'a str>,
    body: &'a str,
}

/// Cuts off the front matter; `None` when it is opened but never closed.
/// A delimiter is a line holding only `---` (trailing whitespace and `\r` allowed).
fn split(text: &str) -> Option<Split<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let is_delimiter = |line: &str| line.trim_end() == "---";
    match lines.next() {
        Some(first) if is_delimiter(first) => {
            let yaml_start = first.len();
            let mut offset = yaml_start;
            for line in lines {
                if is_delimiter(line) {
                    return Some(Split {
                        yaml: Some(&text[yaml_start..offset]),
                        body: &text[offset + line.len()..],
                    });
                }
                offset += line.len();
            }
            None
        }
        _ => Some(Split {
            yaml: None,
            body: text,
        }),
    }
}

/// The body without leading blank lines and trailing whitespace. Leading
/// indentation of the first line is kept: in Markdown it can be meaningful.
fn trim_body(body: &str) -> &str {
    let body = body.trim_end();
    let mut start = 0;
    for line in body.split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        start += line.len();
    }
    &body[start..]
}

fn parse_front_matter(path: &Path, yaml: &str) -> Result<FrontMatter, TaskError> {
    parse_front_matter_at(path, yaml, YAML_LINE_OFFSET)
}

/// Parses a file of front-matter keys alone (no `---` lines, no body), checked as in a task
/// file, with errors naming the file's own lines (`agent serve --defaults`).
pub fn parse_settings(path: &Path, yaml: &str) -> Result<FrontMatter, TaskError> {
    parse_front_matter_at(path, yaml, 0)
}

fn parse_front_matter_at(path: &Path, yaml: &str, offset: usize) -> Result<FrontMatter, TaskError> {
    let value: Value = if is_blank_yaml(yaml) {
        Value::Null
    } else {
        serde_yaml_ng::from_str(yaml).map_err(|error| yaml_error(path, yaml, &error, offset))?
    };
    front::check_front_matter(&value).map_err(|error| {
        let key = error.key();
        TaskError::Invalid {
            path: path.to_owned(),
            line: locate::line_of(yaml, &error.at).map(|line| line + offset),
            key: (!key.is_empty()).then_some(key),
            message: error.message,
        }
    })
}

/// A YAML error as a task error. Duplicate keys get the key and the line of
/// the repeat, which serde_yaml_ng's own error lacks.
fn yaml_error(path: &Path, yaml: &str, error: &serde_yaml_ng::Error, offset: usize) -> TaskError {
    let message = strip_positions(&error.to_string());
    if message.contains("duplicate entry")
        && let Some((key, line)) = locate::first_duplicate(yaml)
    {
        return TaskError::Invalid {
            path: path.to_owned(),
            line: Some(line + offset),
            key: Some(key),
            message: "duplicate key: each key may appear only once".to_owned(),
        };
    }
    TaskError::Yaml {
        path: path.to_owned(),
        line: error.location().map(|l| l.line() + offset),
        message,
    }
}

/// Only blank lines and comments: an empty front matter, which the YAML
/// parser would report as "EOF while parsing" rather than as empty.
fn is_blank_yaml(yaml: &str) -> bool {
    yaml.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
}

/// Removes `at line L column C` / `at position N` from a serde_yaml_ng message:
/// those count lines within the front matter, not the file, and the file line
/// is already in front of the message.
fn strip_positions(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" at ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + " at ".len()..];
        let skipped = skip_position(after);
        if skipped.len() == after.len() {
            out.push_str(" at ");
        }
        rest = skipped;
    }
    out.push_str(rest);
    out
}

/// Skips a leading `line L column C` or `position N`; returns `text` unchanged otherwise.
fn skip_position(text: &str) -> &str {
    fn number(text: &str) -> Option<&str> {
        let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        (digits > 0).then(|| &text[digits..])
    }
    let line_column = || {
        let rest = number(text.strip_prefix("line ")?)?;
        number(rest.strip_prefix(" column ")?)
    };
    let position = || number(text.strip_prefix("position ")?);
    line_column().or_else(position).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::FrontMatter;

    #[test]
    fn later_keys_win_and_absent_keys_fall_through() {
        let base = FrontMatter {
            max_steps: Some(4),
            tools: Some(vec!["wasm:text".parse().unwrap()]),
            ..FrontMatter::default()
        };
        let top = FrontMatter {
            max_steps: Some(9),
            ..FrontMatter::default()
        };
        assert_eq!(
            base.clone().overlay(top),
            FrontMatter {
                max_steps: Some(9),
                ..base
            }
        );
    }

    #[test]
    fn settings_files_name_their_own_lines() {
        let e = super::parse_settings(
            std::path::Path::new("serve.yaml"),
            "max_steps: 4\ntools: [nope]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("serve.yaml:2"), "{e}");
        assert!(e.contains("tools"), "{e}");
    }

    use super::*;

    #[test]
    fn splits_front_matter_and_body() {
        let task = Task::parse(
            Path::new("t.md"),
            "---\r\nmax_steps: 2\r\n---  \r\n\r\n  Do it.\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            task,
            Task {
                path: PathBuf::from("t.md"),
                instructions: "  Do it.".into(),
                front: FrontMatter {
                    max_steps: Some(2),
                    ..FrontMatter::default()
                },
                key_lines: [("max_steps".to_string(), 2)].into(),
            }
        );
    }

    #[test]
    fn without_front_matter_the_whole_file_is_instructions() {
        let task = Task::parse(Path::new("t.md"), "# Title\n\ntext ---\n---\n").unwrap();
        assert_eq!(task.instructions, "# Title\n\ntext ---\n---");
        assert_eq!(task.front, FrontMatter::default());
    }

    #[test]
    fn empty_or_comment_only_front_matter_is_default() {
        let task = Task::parse_inline("---\n# nothing yet\n\n---\nGo.").unwrap();
        assert_eq!(
            task,
            Task {
                path: PathBuf::from("<inline>"),
                instructions: "Go.".into(),
                front: FrontMatter::default(),
                key_lines: BTreeMap::new(),
            }
        );
        assert_eq!(
            Task::parse_inline("---\n---\nGo.").unwrap().front,
            FrontMatter::default()
        );
    }

    #[test]
    fn from_instructions_takes_text_verbatim() {
        assert_eq!(
            Task::from_instructions("---\nnot front matter"),
            Task {
                path: PathBuf::from("<inline>"),
                instructions: "---\nnot front matter".into(),
                front: FrontMatter::default(),
                key_lines: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn positions_are_stripped_from_yaml_messages() {
        assert_eq!(
            strip_positions(
                "did not find expected key at line 3 column 1, while parsing a block mapping at line 1 column 1"
            ),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(
            strip_positions("look at this at position 4"),
            "look at this"
        );
    }

    #[test]
    fn every_error_exits_with_2() {
        let err = Task::parse_inline("---\nmodel: x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "<inline>:1: front matter is not closed: add a line containing only `---` after it"
        );
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.line(), Some(1));
    }
}
