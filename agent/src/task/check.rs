//! Building typed front matter from a parsed YAML tree, one key at a time.
//!
//! serde's derive would turn the YAML into [`FrontMatter`](super::FrontMatter)
//! in one call, but its errors say neither which key was wrong (in a form we can
//! rely on) nor what the allowed values are. So the task-file path walks the
//! [`serde_yaml_ng::Value`] tree by hand: every check knows its dotted key path
//! and produces a [`FieldError`] whose message names the expected type or range.
//! The same walkers back the types' `Deserialize` impls (through
//! `#[serde(try_from = "serde_yaml_ng::Value")]`), so a task file and a
//! serialised front matter accept exactly the same values.

use std::fmt;

use serde_yaml_ng::{Mapping, Value};

/// One step of a key path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a key path the way users write it: `sampling.temperature`, `tools[1]`.
pub(crate) fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(index) => {
                out.push_str(&format!("[{index}]"));
            }
        }
    }
    out
}

/// A path extended by one mapping key.
pub(crate) fn child(path: &[Seg], key: &str) -> Vec<Seg> {
    let mut out = path.to_vec();
    out.push(Seg::Key(key.to_owned()));
    out
}

/// A path extended by one list index.
pub(crate) fn item(path: &[Seg], index: usize) -> Vec<Seg> {
    let mut out = path.to_vec();
    out.push(Seg::Index(index));
    out
}

/// A rejected front-matter value: which key, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The key the message is about (what the user sees).
    pub(crate) path: Vec<Seg>,
    /// Where to point in the file; usually `path`, but deeper when the problem
    /// is inside a value (a bad keyword inside `output.schema`).
    pub(crate) at: Vec<Seg>,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(path: &[Seg], message: impl Into<String>) -> Self {
        FieldError {
            path: path.to_vec(),
            at: path.to_vec(),
            message: message.into(),
        }
    }

    /// The dotted key path (`sampling.top_p`); empty for the front matter as a whole.
    pub fn key(&self) -> String {
        render_path(&self.path)
    }

    /// What is wrong, without the key.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", render_path(&self.path), self.message)
        }
    }
}

impl std::error::Error for FieldError {}

pub(crate) type Checked<T> = Result<T, FieldError>;

/// Describes a value for "found ..." in messages, quoting scalars so the user
/// sees what the YAML parser actually made of their text.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "an empty value".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("the number {n}"),
        Value::Number(n) => format!("the integer {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

/// The standard wrong-type error.
pub(crate) fn wrong_type(path: &[Seg], expected: &str, found: &Value) -> FieldError {
    FieldError::new(
        path,
        format!("expected {expected}; found {}", describe(found)),
    )
}

/// Renders a mapping key as text; YAML allows non-string keys (`1: x`), which
/// we report by their scalar spelling.
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "~".to_owned(),
        other => describe(other),
    }
}

/// The entries of a mapping in document order, rejecting any key outside `allowed`.
///
/// Checking keys before values means a typo such as `temprature` is reported
/// as an unknown key rather than as a confusing consequence elsewhere.
pub(crate) fn entries<'v>(
    map: &'v Mapping,
    path: &[Seg],
    allowed: &[&str],
) -> Checked<Vec<(&'v str, &'v Value)>> {
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        match key {
            Value::String(name) if allowed.contains(&name.as_str()) => {
                out.push((name.as_str(), value));
            }
            other => {
                return Err(FieldError::new(
                    &child(path, &key_text(other)),
                    format!("unknown key; allowed keys: {}", allowed.join(", ")),
                ));
            }
        }
    }
    Ok(out)
}

/// An integer within `min..=max`.
pub(crate) fn integer(value: &Value, path: &[Seg], min: u64, max: u64) -> Checked<u64> {
    let range = || format!("between {min} and {max}");
    let out_of_range = |shown: String| {
        FieldError::new(
            path,
            format!("{shown} is out of range: must be {}", range()),
        )
    };
    let Value::Number(n) = value else {
        return Err(wrong_type(path, &format!("an integer {}", range()), value));
    };
    if let Some(u) = n.as_u64() {
        if (min..=max).contains(&u) {
            Ok(u)
        } else {
            Err(out_of_range(u.to_string()))
        }
    } else if let Some(i) = n.as_i64() {
        // as_u64 failed, so this is negative: below any minimum we use.
        Err(out_of_range(i.to_string()))
    } else {
        Err(wrong_type(path, &format!("an integer {}", range()), value))
    }
}

/// An integer that must fit a `u32`, within `min..=max`.
pub(crate) fn integer_u32(value: &Value, path: &[Seg], min: u32, max: u32) -> Checked<u32> {
    let n = integer(value, path, u64::from(min), u64::from(max))?;
    // The range check above guarantees the conversion; map the impossible case
    // to an error rather than panicking.
    u32::try_from(n).map_err(|_| FieldError::new(path, format!("{n} does not fit in 32 bits")))
}

/// A number (integer or decimal) accepted by `in_range`, described by `range`.
pub(crate) fn number(
    value: &Value,
    path: &[Seg],
    in_range: impl Fn(f64) -> bool,
    range: &str,
) -> Checked<f64> {
    let Value::Number(n) = value else {
        return Err(wrong_type(path, &format!("a number {range}"), value));
    };
    match n.as_f64() {
        Some(x) if in_range(x) => Ok(x),
        _ => Err(FieldError::new(
            path,
            format!("{n} is out of range: must be {range}"),
        )),
    }
}

/// A non-empty string.
pub(crate) fn string<'v>(value: &'v Value, path: &[Seg], expected: &str) -> Checked<&'v str> {
    match value {
        Value::String(s) if s.trim().is_empty() => Err(FieldError::new(
            path,
            format!("expected {expected}; found an empty string"),
        )),
        Value::String(s) => Ok(s),
        other => Err(wrong_type(path, expected, other)),
    }
}
