//! Which calls run: `allow`, `ask` and `deny` rules, the tools' own annotations, and a
//! default for the rest. Deny wins, then ask, then allow, whatever the order the rules were
//! written in or the file they came from.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Each, Rule};
use crate::ToolAnnotations;

/// What happens to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// It runs.
    Allow,
    /// Someone is asked first (a person at the terminal, the MCP client, a program's
    /// approver); with nobody to ask it does not run.
    Ask,
    /// It does not run; the model is told why.
    Deny,
}

impl Mode {
    /// The word used in settings and the trace.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Allow => "allow",
            Mode::Ask => "ask",
            Mode::Deny => "deny",
        }
    }
}

/// A `permissions:` block (task file front matter, or a settings file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Permissions {
    /// Calls that run without asking.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Rule>,
    /// Calls someone must approve.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ask: Vec<Rule>,
    /// Calls that never run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Rule>,
    /// What happens to a call no rule or annotation decides. Unset, calls run: a program
    /// chose its tools; `agent run` and `agent serve` set `ask` when no settings do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Mode>,
    /// Whether tools' annotations decide calls no rule matches (unset: yes): read-only tools
    /// run, destructive ones are asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<bool>,
}

/// Why a call got its [`Mode`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Reason {
    /// A rule in the list of that mode.
    Rule {
        /// The rule's text.
        rule: String,
    },
    /// The tool's annotations (`readOnlyHint`, `destructiveHint`).
    Annotation {
        /// The hint that decided.
        hint: String,
    },
    /// No rule or annotation: the default mode.
    Default,
    /// A hook's answer (or its failure).
    Hook {
        /// The hook's command (or a Rust hook's name).
        hook: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Rule { rule } => write!(f, "rule `{rule}`"),
            Reason::Annotation { hint } => write!(f, "the tool is annotated {hint}"),
            Reason::Default => write!(f, "no rule matches, and the default is used"),
            Reason::Hook { hook } => write!(f, "the hook `{hook}`"),
        }
    }
}

impl Permissions {
    /// `layers` merged, lowest precedence first (user settings, project settings, task): the
    /// rule lists are joined (so a deny anywhere wins), `default` and `annotations` are the
    /// last layer's that sets them.
    pub fn merged<'a>(layers: impl IntoIterator<Item = &'a Permissions>) -> Permissions {
        let mut all = Permissions::default();
        for layer in layers {
            all.allow.extend(layer.allow.iter().cloned());
            all.ask.extend(layer.ask.iter().cloned());
            all.deny.extend(layer.deny.iter().cloned());
            all.default = layer.default.or(all.default);
            all.annotations = layer.annotations.or(all.annotations);
        }
        all
    }

    /// The mode of no rule and no annotation.
    pub fn default_mode(&self) -> Mode {
        self.default.unwrap_or(Mode::Allow)
    }

    /// What happens to `tool(arguments)`: the first of a matching deny, ask or allow rule,
    /// the tool's annotations, the default.
    pub fn decide(
        &self,
        tool: &str,
        arguments: &Value,
        annotations: &ToolAnnotations,
    ) -> (Mode, Reason) {
        // A list argument: deny and ask rules see any element, allow rules need them all.
        for (mode, rules, each) in [
            (Mode::Deny, &self.deny, Each::Any),
            (Mode::Ask, &self.ask, Each::Any),
            (Mode::Allow, &self.allow, Each::All),
        ] {
            if let Some(r) = rules.iter().find(|r| r.matches_with(tool, arguments, each)) {
                return (
                    mode,
                    Reason::Rule {
                        rule: r.text.clone(),
                    },
                );
            }
        }
        if self.annotations.unwrap_or(true) {
            // A tool that says it only reads is trusted to; one that says it destroys is
            // asked about even when the default would let it run (and denied when the
            // default denies).
            if annotations.read_only == Some(true) {
                return (
                    Mode::Allow,
                    Reason::Annotation {
                        hint: "readOnlyHint".into(),
                    },
                );
            }
            // Asked about unless the default is stricter still.
            if annotations.destructive == Some(true) && self.default_mode() != Mode::Deny {
                return (
                    Mode::Ask,
                    Reason::Annotation {
                        hint: "destructiveHint".into(),
                    },
                );
            }
        }
        (self.default_mode(), Reason::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn perms(yaml_like: Value) -> Permissions {
        serde_json::from_value(yaml_like).unwrap()
    }

    const NONE: ToolAnnotations = ToolAnnotations {
        read_only: None,
        destructive: None,
        idempotent: None,
        open_world: None,
    };

    #[test]
    fn deny_then_ask_then_allow() {
        let p = perms(json!({
            "allow": ["fs__*"],
            "ask": ["fs__write_file"],
            "deny": [r#"fs__write_file(path: "/etc/**")"#],
            "default": "deny",
        }));
        let d = |tool: &str, args: Value| p.decide(tool, &args, &NONE);
        assert_eq!(
            d("fs__write_file", json!({"path": "/etc/passwd"})),
            (
                Mode::Deny,
                Reason::Rule {
                    rule: r#"fs__write_file(path: "/etc/**")"#.into()
                }
            )
        );
        assert_eq!(
            d("fs__write_file", json!({"path": "/tmp/a"})),
            (
                Mode::Ask,
                Reason::Rule {
                    rule: "fs__write_file".into()
                }
            )
        );
        assert_eq!(
            d("fs__read_text_file", json!({"path": "/etc/passwd"})),
            (
                Mode::Allow,
                Reason::Rule {
                    rule: "fs__*".into()
                }
            )
        );
        assert_eq!(
            d("everything__echo", json!({})),
            (Mode::Deny, Reason::Default)
        );
    }

    #[test]
    fn annotations_decide_what_rules_leave() {
        let p = perms(json!({"default": "ask"}));
        let read = ToolAnnotations {
            read_only: Some(true),
            ..NONE
        };
        let destructive = ToolAnnotations {
            read_only: Some(false),
            destructive: Some(true),
            ..NONE
        };
        let quiet = ToolAnnotations {
            read_only: Some(false),
            destructive: Some(false),
            ..NONE
        };
        let args = json!({});
        assert_eq!(
            [&read, &destructive, &quiet, &NONE].map(|a| p.decide("t", &args, a).0),
            [Mode::Allow, Mode::Ask, Mode::Ask, Mode::Ask]
        );
        // Unset, the default lets calls run (a program's own choice of tools).
        assert_eq!(
            Permissions::default().decide("t", &args, &NONE),
            (Mode::Allow, Reason::Default)
        );
        // Allowed by default, destructive tools are still asked about; annotations off, not.
        let allow = perms(json!({"default": "allow"}));
        assert_eq!(
            [&read, &destructive, &quiet, &NONE].map(|a| allow.decide("t", &args, a).0),
            [Mode::Allow, Mode::Ask, Mode::Allow, Mode::Allow]
        );
        // Denied by default, destructive tools are denied too; read-only ones still run.
        let deny = perms(json!({"default": "deny"}));
        assert_eq!(
            [&read, &destructive, &quiet, &NONE].map(|a| deny.decide("t", &args, a).0),
            [Mode::Allow, Mode::Deny, Mode::Deny, Mode::Deny]
        );
        let off = perms(json!({"default": "deny", "annotations": false}));
        assert_eq!(off.decide("t", &args, &read), (Mode::Deny, Reason::Default));
        // A rule wins over an annotation.
        let deny = perms(json!({"deny": ["t"]}));
        assert_eq!(deny.decide("t", &args, &read).0, Mode::Deny);
    }

    #[test]
    fn layers_merge_lists_and_the_last_default_wins() {
        let user = perms(json!({"allow": ["a"], "default": "allow"}));
        let project = perms(json!({"deny": ["a"], "annotations": false}));
        let task = perms(json!({"ask": ["b"]}));
        let all = Permissions::merged([&user, &project, &task]);
        assert_eq!(
            all,
            perms(json!({
                "allow": ["a"], "deny": ["a"], "ask": ["b"],
                "default": "allow", "annotations": false
            }))
        );
        assert_eq!(all.decide("a", &json!({}), &NONE).0, Mode::Deny);
        let unknown = serde_json::from_value::<Permissions>(json!({"alow": ["a"]}))
            .unwrap_err()
            .to_string();
        assert!(unknown.starts_with("unknown field `alow`"), "{unknown}");
    }
}
