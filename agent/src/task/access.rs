//! `permissions:` and `hooks:`, checked key by key so that an error names the rule or hook
//! (`permissions.deny[1]: rule "fs(": ...`). The same checks read the settings files.

use agent_tools::permissions::{CommandHook, HookSpecs, Mode, Permissions, Rule};
use serde_yaml_ng::Value;

use super::check::{Checked, FieldError, Seg, child, entries, item, number, string, wrong_type};

const PERMISSION_KEYS: [&str; 5] = ["allow", "ask", "deny", "default", "annotations"];
const HOOK_KEYS: [&str; 3] = ["pre_tool", "post_tool", "stop"];
const HOOK_FIELDS: [&str; 3] = ["match", "command", "timeout"];
const MODES: &str = "one of allow, ask, deny";

/// `permissions:`.
pub(crate) fn check_permissions(value: &Value, path: &[Seg]) -> Checked<Permissions> {
    let Value::Mapping(map) = value else {
        return Err(wrong_type(
            path,
            "a mapping with allow, ask, deny, default, annotations",
            value,
        ));
    };
    let mut out = Permissions::default();
    for (key, value) in entries(map, path, &PERMISSION_KEYS)? {
        let at = child(path, key);
        match key {
            "allow" => out.allow = rules(value, &at)?,
            "ask" => out.ask = rules(value, &at)?,
            "deny" => out.deny = rules(value, &at)?,
            "default" => {
                out.default = Some(match string(value, &at, MODES)? {
                    "allow" => Mode::Allow,
                    "ask" => Mode::Ask,
                    "deny" => Mode::Deny,
                    _ => return Err(wrong_type(&at, MODES, value)),
                })
            }
            _ => match value {
                Value::Bool(b) => out.annotations = Some(*b),
                other => return Err(wrong_type(&at, "true or false", other)),
            },
        }
    }
    Ok(out)
}

/// A list of rules (a single string is a list of one).
fn rules(value: &Value, path: &[Seg]) -> Checked<Vec<Rule>> {
    let expected = "a list of rules such as fs__* or fs__write_file(path: \"/tmp/**\")";
    let items: Vec<(Vec<Seg>, &Value)> = match value {
        Value::Sequence(s) => s
            .iter()
            .enumerate()
            .map(|(i, v)| (item(path, i), v))
            .collect(),
        Value::String(_) => vec![(path.to_vec(), value)],
        other => return Err(wrong_type(path, expected, other)),
    };
    items
        .into_iter()
        .map(|(at, v)| rule(v, &at, expected))
        .collect()
}

fn rule(value: &Value, path: &[Seg], expected: &str) -> Checked<Rule> {
    string(value, path, expected)?
        .parse::<Rule>()
        .map_err(|e| FieldError::new(path, e.to_string()))
}

/// `hooks:`.
pub(crate) fn check_hooks(value: &Value, path: &[Seg]) -> Checked<HookSpecs> {
    let Value::Mapping(map) = value else {
        return Err(wrong_type(
            path,
            "a mapping with pre_tool, post_tool, stop",
            value,
        ));
    };
    let mut out = HookSpecs::default();
    for (key, value) in entries(map, path, &HOOK_KEYS)? {
        let at = child(path, key);
        let Value::Sequence(list) = value else {
            return Err(wrong_type(
                &at,
                "a list of hooks ({command: ..., match: ..., timeout: ...})",
                value,
            ));
        };
        let hooks = list
            .iter()
            .enumerate()
            .map(|(i, h)| hook(h, &item(&at, i)))
            .collect::<Checked<Vec<_>>>()?;
        match key {
            "pre_tool" => out.pre_tool = hooks,
            "post_tool" => out.post_tool = hooks,
            _ => out.stop = hooks,
        }
    }
    Ok(out)
}

/// One hook: a command string, or `{command, match, timeout}`.
fn hook(value: &Value, path: &[Seg]) -> Checked<CommandHook> {
    let mut out = CommandHook {
        matcher: None,
        command: String::new(),
        timeout: None,
    };
    let map = match value {
        Value::String(s) => {
            out.command = s.clone();
            return Ok(out);
        }
        Value::Mapping(m) => m,
        other => {
            return Err(wrong_type(
                path,
                "a command, or a mapping with command, match, timeout",
                other,
            ));
        }
    };
    for (key, value) in entries(map, path, &HOOK_FIELDS)? {
        let at = child(path, key);
        match key {
            "command" => out.command = string(value, &at, "a shell command")?.to_owned(),
            "match" => out.matcher = Some(rule(value, &at, "a rule such as fs__*")?),
            _ => {
                let in_range = |s: f64| s > 0.0 && s <= 86_400.0;
                let range = "above 0 and at most 86400 (seconds)";
                out.timeout = Some(number(value, &at, in_range, range)?);
            }
        }
    }
    if out.command.trim().is_empty() {
        return Err(FieldError::new(
            &child(path, "command"),
            "a hook needs a command",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::task::Task;

    fn error(front: &str) -> String {
        Task::parse(Path::new("t.md"), &format!("---\n{front}---\nDo it.\n"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_file_line_and_rule() {
        assert_eq!(
            [
                error("permissions:\n  deny:\n    - fs__write_file\n    - \"fs(path x)\"\n"),
                error("permissions:\n  default: sometimes\n"),
                error("permissions:\n  alow: [x]\n"),
                error("hooks:\n  pre_tool:\n    - {command: check.sh, timeout: 0}\n"),
                error("hooks:\n  pre_tool:\n    - match: \"fs(\"\n      command: check.sh\n"),
                error("hooks:\n  stop:\n    - {match: x}\n"),
            ],
            [
                "t.md:5: permissions.deny[1]: rule \"fs(path x)\": a condition is `KEY: VALUE`",
                "t.md:3: permissions.default: expected one of allow, ask, deny; found the string \"sometimes\"",
                "t.md:3: permissions.alow: unknown key; allowed keys: allow, ask, deny, default, annotations",
                "t.md:4: hooks.pre_tool[0].timeout: 0 is out of range: must be above 0 and at most 86400 (seconds)",
                "t.md:4: hooks.pre_tool[0].match: rule \"fs(\": the conditions' `(` is not closed",
                "t.md:4: hooks.stop[0].command: a hook needs a command",
            ]
        );
    }

    #[test]
    fn a_string_is_a_list_of_one_and_a_hook_may_be_a_command() {
        let task = Task::parse(
            Path::new("t.md"),
            "---\npermissions:\n  allow: fs__*\n  default: deny\nhooks:\n  post_tool: [./log.sh]\n---\nDo it.\n",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value((&task.front.permissions, &task.front.hooks)).unwrap(),
            serde_json::json!([
                {"allow": ["fs__*"], "default": "deny"},
                {"post_tool": [{"command": "./log.sh"}]}
            ])
        );
    }
}
