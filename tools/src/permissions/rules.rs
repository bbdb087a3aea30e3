//! A permission rule: which calls a rule (or a hook's matcher) applies to.
//!
//! A rule is a tool-name glob with optional argument conditions:
//!   `fs__*`, `wasm:text`, `fs__write_file(path: "/tmp/**")`,
//!   `calc(/options/precision: 0..=10, expression: "*")`.
//! Name globs: `*` any run of characters, `?` one. A condition's key is a top-level argument
//! name or a JSON pointer (`/a/b`); its value a quoted glob (for a pattern written as a path,
//! `*` stops at `/`, `**` does not, and the value's `.`/`..` are resolved) or a number range
//! (`1..10`, `1..=10`, `..5`, `3..`). All conditions must hold; a missing argument fails its
//! condition; an array argument matches when all (allow) or any (deny, ask) of its elements do.

use serde_json::Value;

/// A parsed rule; it serializes back to its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule as written (trimmed), for the trace and error messages.
    pub text: String,
    name: String,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    pointer: String,
    test: Test,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Glob(String),
    Range {
        low: Option<f64>,
        high: Option<f64>,
        inclusive: bool,
    },
}

/// Why a rule's text is not a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rule {rule:?}: {message}")]
pub struct RuleError {
    /// The text as given.
    pub rule: String,
    /// What is wrong with it.
    pub message: String,
}

impl TryFrom<String> for Rule {
    type Error = RuleError;

    fn try_from(text: String) -> Result<Rule, RuleError> {
        text.parse()
    }
}

impl From<Rule> for String {
    fn from(rule: Rule) -> String {
        rule.text
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Rule, RuleError> {
        let err = |m: &str| RuleError {
            rule: text.to_string(),
            message: m.to_string(),
        };
        let t = text.trim();
        let (name, rest) = match t.find('(') {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(err("no tool name"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-:.*?/".contains(c))
        {
            return Err(err(
                "a tool name is letters, digits, `_-:./` and the globs `*` `?`",
            ));
        }
        let mut conditions = Vec::new();
        if let Some(rest) = rest {
            let body = rest
                .trim_end()
                .strip_suffix(')')
                .ok_or_else(|| err("the conditions' `(` is not closed"))?;
            for part in split_top(body).map_err(|m| err(&m))? {
                let (key, value) = part
                    .split_once(':')
                    .ok_or_else(|| err("a condition is `KEY: VALUE`"))?;
                let key = key.trim();
                if key.is_empty() {
                    return Err(err("a condition has no key"));
                }
                let pointer = if key.starts_with('/') {
                    key.to_string()
                } else {
                    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
                };
                conditions.push(Condition {
                    pointer,
                    test: test(value.trim()).map_err(|m| err(&m))?,
                });
            }
        }
        Ok(Rule {
            text: t.to_string(),
            name: name.to_string(),
            conditions,
        })
    }
}

/// Splits `a: "x,y", b: 1..2` at the commas outside quotes.
fn split_top(body: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("a quoted value is not closed".into());
    }
    parts.push(&body[start..]);
    Ok(parts.into_iter().filter(|p| !p.trim().is_empty()).collect())
}

fn test(value: &str) -> Result<Test, String> {
    if value.starts_with('"') {
        let s: String = serde_json::from_str(value)
            .map_err(|e| format!("a quoted value is a JSON string: {e}"))?;
        return Ok(Test::Glob(s));
    }
    let (low, high, inclusive) = match value.split_once("..=") {
        Some((l, h)) => (l, h, true),
        None => match value.split_once("..") {
            Some((l, h)) => (l, h, false),
            None => {
                return Err(format!(
                    "`{value}` is neither a quoted glob nor a range (1..10)"
                ));
            }
        },
    };
    let num = |s: &str| -> Result<Option<f64>, String> {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse::<f64>()
                .map(Some)
                .map_err(|_| format!("`{s}` is not a number"))
        }
    };
    let (low, high) = (num(low)?, num(high)?);
    if low.is_none() && high.is_none() {
        return Err("a range needs at least one bound".into());
    }
    Ok(Test::Range {
        low,
        high,
        inclusive,
    })
}

/// How a condition reads an array argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Each {
    /// Every element must match (allow rules: one allowed path must not let others through).
    All,
    /// One element matching is enough (deny and ask rules, hooks' matchers: a forbidden path
    /// among allowed ones is still forbidden).
    Any,
}

impl Rule {
    /// Whether the call `tool(arguments)` matches, an array argument matching when `each`
    /// of its elements does.
    pub fn matches_with(&self, tool: &str, arguments: &Value, each: Each) -> bool {
        glob(&self.name, tool, false)
            && self.conditions.iter().all(|c| {
                let Some(v) = arguments.pointer(&c.pointer) else {
                    return false;
                };
                match (v, each) {
                    // An empty list holds nothing forbidden, and allows nothing either.
                    (Value::Array(items), Each::All) => {
                        !items.is_empty() && items.iter().all(|v| c.test.holds(v))
                    }
                    (Value::Array(items), Each::Any) => items.iter().any(|v| c.test.holds(v)),
                    (v, _) => c.test.holds(v),
                }
            })
    }

    /// Whether the call matches, as an allow rule reads it ([`Each::All`]).
    pub fn matches(&self, tool: &str, arguments: &Value) -> bool {
        self.matches_with(tool, arguments, Each::All)
    }
}

impl Test {
    fn holds(&self, v: &Value) -> bool {
        match (self, v) {
            (Test::Glob(g), Value::String(s)) => glob_value(g, s),
            (Test::Glob(g), other @ (Value::Number(_) | Value::Bool(_))) => {
                glob_value(g, &other.to_string())
            }
            (
                Test::Range {
                    low,
                    high,
                    inclusive,
                },
                Value::Number(n),
            ) => n.as_f64().is_some_and(|x| {
                low.is_none_or(|l| x >= l)
                    && high.is_none_or(|h| if *inclusive { x <= h } else { x < h })
            }),
            _ => false,
        }
    }
}

/// A value glob: a pattern written as a path (starting with `/`, `./`, `../` or `~/`) is
/// matched as one (`*` stops at `/`, `**` does not, the value's `.` and `..` resolved); any
/// other pattern is text, where `*` is any run of characters (`"*BEGIN PRIVATE KEY*"` finds
/// a key whose base64 has slashes in it; a URL keeps its `//`).
fn glob_value(pattern: &str, value: &str) -> bool {
    let path = ["/", "./", "../", "~/"]
        .iter()
        .any(|p| pattern.starts_with(p));
    if path {
        glob(pattern, &normalize(value), true)
    } else {
        glob(pattern, value, false)
    }
}

/// Glob match: `?` one character, `*` any run (not across `/` when `paths`), `**` any run.
/// Linear in the pattern times the text (no backtracking blow-up on hostile patterns).
fn glob(pattern: &str, text: &str, paths: bool) -> bool {
    enum Tok {
        Star { cross: bool },
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '*' => {
                let double = chars.next_if_eq(&'*').is_some();
                Tok::Star {
                    cross: double || !paths,
                }
            }
            '?' => Tok::One,
            c => Tok::Lit(c),
        });
    }
    let t: Vec<char> = text.chars().collect();
    // reach[j]: the tokens so far match t[..j].
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for tok in &toks {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = match tok {
                Tok::Star { cross } => {
                    reach[j] || (j > 0 && next[j - 1] && (*cross || t[j - 1] != '/'))
                }
                Tok::One => j > 0 && reach[j - 1] && !(paths && t[j - 1] == '/'),
                Tok::Lit(c) => j > 0 && reach[j - 1] && t[j - 1] == *c,
            };
        }
        reach = next;
    }
    reach[t.len()]
}

/// `value` with `.` and `..` segments resolved and repeated `/` collapsed, as text (nothing
/// is looked up on disk), so that `/tmp/ok/../../etc/passwd` cannot pass for a path under
/// `/tmp/ok`. A `..` that would climb above the start of a relative path is kept.
fn normalize(value: &str) -> String {
    if !value.contains('/') {
        return value.to_string();
    }
    let absolute = value.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in value.split('/') {
        match seg {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    let trailing = if value.ends_with('/') && !joined.is_empty() {
        "/"
    } else {
        ""
    };
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}{trailing}"),
        (false, true) => ".".to_string(),
        (false, false) => format!("{joined}{trailing}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(s: &str) -> Rule {
        s.parse().unwrap()
    }

    #[test]
    fn names_and_conditions() {
        let w = rule(r#"fs__write_file(path: "/tmp/**")"#);
        assert!(w.matches("fs__write_file", &json!({"path": "/tmp/a/b.txt"})));
        assert!(!w.matches("fs__write_file", &json!({"path": "/etc/passwd"})));
        assert!(!w.matches("fs__write_file", &json!({})));
        let one = rule(r#"fs__*(path: "/tmp/*")"#);
        assert!(one.matches("fs__read_text_file", &json!({"path": "/tmp/a"})));
        assert!(!one.matches("fs__read_text_file", &json!({"path": "/tmp/a/b"})));
        let r = rule("calc(/opts/n: 0..=10)");
        assert!(r.matches("calc", &json!({"opts": {"n": 10}})));
        assert!(!r.matches("calc", &json!({"opts": {"n": 11}})));
        assert!(rule("wasm:text").matches("wasm:text", &json!({})));
        assert!(!rule("fs__*").matches("everything__echo", &json!({})));
    }

    #[test]
    fn bad_rules_say_why() {
        let errs: Vec<String> = [
            "",
            "fs(path \"x\")",
            "fs(path: x)",
            "fs(path: \"x)",
            "fs(n: ..)",
            "fs(path: \"x\"",
            "f s",
        ]
        .iter()
        .map(|s| s.parse::<Rule>().unwrap_err().message)
        .collect();
        assert_eq!(
            errs,
            [
                "no tool name",
                "a condition is `KEY: VALUE`",
                "`x` is neither a quoted glob nor a range (1..10)",
                "a quoted value is not closed",
                "a range needs at least one bound",
                "the conditions' `(` is not closed",
                "a tool name is letters, digits, `_-:./` and the globs `*` `?`",
            ]
        );
    }

    #[test]
    fn globs_and_ranges() {
        // In a pattern written as a path, `*` and `?` never match a `/`; `**` crosses them.
        assert!(rule(r#"t(p: "/a?c")"#).matches("t", &json!({"p": "/abc"})));
        assert!(!rule(r#"t(p: "/a?c")"#).matches("t", &json!({"p": "/a/c"})));
        assert!(!rule(r#"t(p: "./*.md")"#).matches("t", &json!({"p": "./docs/a.md"})));
        assert!(rule(r#"t(p: "/x/**/y")"#).matches("t", &json!({"p": "/x/a/b/y"})));
        // Any other pattern is text: `*` is any run, slashes and all, and nothing is resolved.
        assert!(rule(r#"t(cmd: "git *")"#).matches("t", &json!({"cmd": "git status"})));
        assert!(rule(r#"t(cmd: "rm *")"#).matches("t", &json!({"cmd": "rm -rf /"})));
        let key = rule(r#"t(content: "*BEGIN PRIVATE KEY*")"#);
        assert!(key.matches(
            "t",
            &json!({"content": "ab/c+d\n-----BEGIN PRIVATE KEY-----"})
        ));
        assert!(
            rule(r#"t(url: "https://example.com/*")"#)
                .matches("t", &json!({"url": "https://example.com/a/b"}))
        );
        // Arrays: an allow rule needs every element, a deny rule one.
        let paths = rule(r#"t(paths: "/ok/**")"#);
        let mixed = json!({"paths": ["/ok/a", "/etc/passwd"]});
        assert!(!paths.matches_with("t", &mixed, Each::All));
        assert!(paths.matches_with("t", &mixed, Each::Any));
        assert!(paths.matches_with("t", &json!({"paths": ["/ok/a", "/ok/b"]}), Each::All));
        assert!(!paths.matches_with("t", &json!({"paths": []}), Each::All));
        assert!(!paths.matches_with("t", &json!({"paths": []}), Each::Any));
        // Exclusive and open ranges; a string is not a number.
        let r = rule("t(n: 1..3)");
        assert_eq!(
            [1, 2, 3].map(|n| r.matches("t", &json!({"n": n}))),
            [true, true, false]
        );
        assert!(rule("t(n: 3..)").matches("t", &json!({"n": 1e9})));
        assert!(rule("t(n: ..0)").matches("t", &json!({"n": -1})));
        assert!(!rule("t(n: 1..3)").matches("t", &json!({"n": "2"})));
        // Numbers and booleans match a quoted glob by their JSON text.
        assert!(rule(r#"t(b: "true")"#).matches("t", &json!({"b": true})));
        // Conditions all hold, and commas inside quotes do not split them.
        let two = rule(r#"t(a: "x,y", b: 0..=1)"#);
        assert!(two.matches("t", &json!({"a": "x,y", "b": 1})));
        assert!(!two.matches("t", &json!({"a": "x,y", "b": 2})));
        // Paths are compared after `.` and `..` are resolved.
        let tmp = rule(r#"w(path: "/tmp/ok/**")"#);
        assert!(!tmp.matches("w", &json!({"path": "/tmp/ok/../../etc/passwd"})));
        assert!(tmp.matches("w", &json!({"path": "/tmp//ok/./a/../b"})));
        assert_eq!(normalize("a/../../b/"), "../b/");
        // A key with `/` in it is escaped when it is not a pointer.
        assert!(rule(r#"t(a~b: "1")"#).matches("t", &json!({"a~b": "1"})));
        // Serde: the text round-trips, and a bad rule is an error naming it.
        let back: Rule = serde_json::from_value(json!("fs__*(path: \"/tmp/**\")")).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            json!("fs__*(path: \"/tmp/**\")")
        );
        let err = serde_json::from_value::<Rule>(json!("fs("))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "rule \"fs(\": the conditions' `(` is not closed");
    }
}
