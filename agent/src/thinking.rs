//! Thinking budgets per step: the policy that picks a step's budget, and how a budget becomes
//! a prompt and a generation limit for each model family.
//!
//! Qwen3 hybrid: `off` is the template's own switch (`enable_thinking: false`, the empty think
//! block); otherwise the block is opened in the prompt (`<think>\n`, what the model writes
//! first itself when thinking is on), and `tokens: N` caps it inside generation (see
//! `mistral::think`). Qwen3-Thinking-2507 opens the block in its template and cannot switch off: `off` is a
//! cap of 0. Models that do not think accept any budget; it is recorded as not applicable.

use std::fmt;
use std::sync::Arc;

use crate::backend::ThinkLimit;
use crate::events::StepKind;
use crate::formats::Thinking;
use crate::prompt::{Family, Qwen3Variant, RenderOptions};
use serde::{Deserialize, Serialize, Serializer};

/// A thinking budget for one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub enum Budget {
    /// No thinking (`off`, `false` or `0`).
    Off,
    /// At most this many thinking tokens (always at least 1; `0` parses as [`Budget::Off`]).
    Tokens(u32),
    /// Think as long as the model wants (`unlimited`).
    Unlimited,
}

impl Serialize for Budget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Budget::Off => serializer.serialize_str("off"),
            Budget::Unlimited => serializer.serialize_str("unlimited"),
            Budget::Tokens(n) => serializer.serialize_u32(*n),
        }
    }
}

/// A budget per step kind plus an optional run-wide cap.
///
/// `None` for a kind means "not specified": [`ThinkingPolicySpec::with_defaults`]
/// fills it from the default policy. [`Default`] is that default policy:
/// plan 2048, act off, recover 1024, answer 512, no total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub struct ThinkingPolicySpec {
    /// The budget of [`StepKind::Plan`] steps (the first step: read the task and plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Budget>,
    /// The budget of [`StepKind::Act`] steps (after tool results).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Budget>,
    /// The budget of [`StepKind::Recover`] steps (after a tool error or a malformed call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recover: Option<Budget>,
    /// The budget of [`StepKind::Answer`] steps (the last allowed step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Budget>,
    /// Cap on thinking tokens across the whole run (at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
}

impl Default for ThinkingPolicySpec {
    /// Plans are worth thinking about; routine actions are not; recovering from
    /// a failed step and composing the answer get a moderate budget.
    fn default() -> Self {
        ThinkingPolicySpec {
            plan: Some(Budget::Tokens(2048)),
            act: Some(Budget::Off),
            recover: Some(Budget::Tokens(1024)),
            answer: Some(Budget::Tokens(512)),
            total: None,
        }
    }
}

impl ThinkingPolicySpec {
    /// The same budget for every step kind, no run-wide cap.
    pub fn uniform(budget: Budget) -> Self {
        ThinkingPolicySpec {
            plan: Some(budget),
            act: Some(budget),
            recover: Some(budget),
            answer: Some(budget),
            total: None,
        }
    }

    /// Fills unspecified kinds from the default policy (`total` stays as is).
    pub fn with_defaults(self) -> Self {
        let default = ThinkingPolicySpec::default();
        ThinkingPolicySpec {
            plan: self.plan.or(default.plan),
            act: self.act.or(default.act),
            recover: self.recover.or(default.recover),
            answer: self.answer.or(default.answer),
            total: self.total,
        }
    }
}

/// What a policy sees when it picks a step's budget.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// Why the step runs.
    pub kind: StepKind,
    /// 1-based.
    pub step: u32,
    /// Reasoning tokens spent by earlier steps of the run.
    pub thinking_used: usize,
    /// The content of the last tool result, if the previous step produced one.
    pub last_tool_result: Option<&'a str>,
}

/// Chooses each step's thinking budget.
#[derive(Clone)]
pub enum ThinkingPolicy {
    /// A budget per step kind, and an optional cap on the run's total (a task's `thinking:`).
    Kinds(ThinkingPolicySpec),
    /// The caller's own choice, from the step's context (library use: adaptive policies).
    Custom(Arc<dyn Fn(&StepContext) -> Budget + Send + Sync>),
}

/// Kinds by their budgets; a custom policy only equals itself (the same closure).
impl PartialEq for ThinkingPolicy {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ThinkingPolicy::Kinds(a), ThinkingPolicy::Kinds(b)) => a == b,
            (ThinkingPolicy::Custom(a), ThinkingPolicy::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for ThinkingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThinkingPolicy::Kinds(spec) => f.debug_tuple("Kinds").field(spec).finish(),
            ThinkingPolicy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Default for ThinkingPolicy {
    /// plan 2048, act off, recover 1024, answer 512.
    fn default() -> Self {
        ThinkingPolicy::Kinds(ThinkingPolicySpec::default())
    }
}

impl ThinkingPolicy {
    /// The step's budget. A run-wide total caps what is left of it.
    pub fn budget(&self, cx: &StepContext) -> Budget {
        match self {
            ThinkingPolicy::Custom(f) => f(cx),
            ThinkingPolicy::Kinds(spec) => {
                let spec = spec.clone().with_defaults();
                let budget = match cx.kind {
                    StepKind::Plan => spec.plan,
                    StepKind::Act => spec.act,
                    StepKind::Recover => spec.recover,
                    StepKind::Answer => spec.answer,
                }
                .unwrap_or(Budget::Unlimited);
                match spec.total {
                    None => budget,
                    Some(total) => {
                        let left = (total as usize).saturating_sub(cx.thinking_used) as u32;
                        match budget {
                            Budget::Off => Budget::Off,
                            _ if left == 0 => Budget::Off,
                            Budget::Tokens(n) => Budget::Tokens(n.min(left)),
                            Budget::Unlimited => Budget::Tokens(left),
                        }
                    }
                }
            }
        }
    }
}

/// How one step's budget is carried out for a model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkPlan {
    /// How the prompt is rendered (Qwen3 hybrid's `enable_thinking` switch).
    pub render: RenderOptions,
    /// Written after the rendered prompt (`<think>\n` to open the block).
    pub prefill: &'static str,
    /// How the completion's reasoning block is counted and capped.
    pub limit: ThinkLimit,
    /// What the step's grammar allows before the answer.
    pub grammar: Thinking,
    /// Whether the family thinks at all (else the budget is recorded, not applied).
    pub applies: bool,
}

/// How `budget` is carried out for `family`: Qwen3 hybrid and Qwen3-Thinking-2507 apply it;
/// the other families get `applies: false` and an unchanged prompt, though for
/// [`Family::Template`] the grammar allows a reasoning block that the model opens itself.
pub fn plan(family: &Family, budget: Budget) -> ThinkPlan {
    let base = ThinkPlan {
        render: RenderOptions::default(),
        prefill: "",
        limit: ThinkLimit::default(),
        grammar: Thinking::Off,
        applies: false,
    };
    match family {
        Family::Qwen3(Qwen3Variant::Hybrid) => match budget {
            Budget::Off => ThinkPlan {
                render: RenderOptions {
                    enable_thinking: Some(false),
                    ..RenderOptions::default()
                },
                applies: true,
                ..base
            },
            Budget::Tokens(n) => ThinkPlan {
                prefill: "<think>\n",
                limit: ThinkLimit {
                    opened: true,
                    cap: Some(n as usize),
                },
                grammar: Thinking::Open,
                applies: true,
                ..base
            },
            Budget::Unlimited => ThinkPlan {
                prefill: "<think>\n",
                limit: ThinkLimit {
                    opened: true,
                    cap: None,
                },
                grammar: Thinking::Open,
                applies: true,
                ..base
            },
        },
        Family::Qwen3(Qwen3Variant::Thinking2507) => {
            let cap = match budget {
                Budget::Off => Some(0),
                Budget::Tokens(n) => Some(n as usize),
                Budget::Unlimited => None,
            };
            ThinkPlan {
                limit: ThinkLimit { opened: true, cap },
                grammar: Thinking::Open,
                applies: true,
                ..base
            }
        }
        // A model's own template may think (its reasoning is counted, not capped); without
        // `<think>` as a special token the grammar turns this off itself.
        Family::Template => ThinkPlan {
            grammar: Thinking::Optional,
            ..base
        },
        Family::Qwen3(Qwen3Variant::Instruct2507)
        | Family::Qwen3Coder
        | Family::Llama4
        | Family::ChatMl { .. } => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(kind: StepKind, used: usize) -> StepContext<'static> {
        StepContext {
            kind,
            step: 1,
            thinking_used: used,
            last_tool_result: None,
        }
    }

    #[test]
    fn default_policy_and_total() {
        let p = ThinkingPolicy::default();
        let got: Vec<Budget> = [
            StepKind::Plan,
            StepKind::Act,
            StepKind::Recover,
            StepKind::Answer,
        ]
        .map(|k| p.budget(&cx(k, 0)))
        .to_vec();
        assert_eq!(
            got,
            vec![
                Budget::Tokens(2048),
                Budget::Off,
                Budget::Tokens(1024),
                Budget::Tokens(512)
            ]
        );
        let spec = ThinkingPolicySpec {
            plan: Some(Budget::Unlimited),
            total: Some(3000),
            ..ThinkingPolicySpec::default()
        };
        let p = ThinkingPolicy::Kinds(spec);
        assert_eq!(p.budget(&cx(StepKind::Plan, 1000)), Budget::Tokens(2000));
        assert_eq!(p.budget(&cx(StepKind::Recover, 2500)), Budget::Tokens(500));
        assert_eq!(p.budget(&cx(StepKind::Recover, 3000)), Budget::Off);
        let custom = ThinkingPolicy::Custom(Arc::new(|c: &StepContext| {
            if c.step > 2 {
                Budget::Off
            } else {
                Budget::Tokens(9)
            }
        }));
        assert_eq!(
            custom.budget(&StepContext {
                step: 3,
                ..cx(StepKind::Plan, 0)
            }),
            Budget::Off
        );
    }

    #[test]
    fn plans_per_family() {
        let hybrid = Family::Qwen3(Qwen3Variant::Hybrid);
        assert_eq!(
            plan(&hybrid, Budget::Off).render.enable_thinking,
            Some(false)
        );
        let p = plan(&hybrid, Budget::Tokens(7));
        assert_eq!(
            (p.prefill, p.limit, p.grammar),
            (
                "<think>\n",
                ThinkLimit {
                    opened: true,
                    cap: Some(7)
                },
                Thinking::Open
            )
        );
        let p = plan(&Family::Qwen3(Qwen3Variant::Thinking2507), Budget::Off);
        assert_eq!(
            (p.prefill, p.limit),
            (
                "",
                ThinkLimit {
                    opened: true,
                    cap: Some(0)
                }
            )
        );
        for family in [
            Family::Llama4,
            Family::ChatMl {
                default_system: None,
            },
            Family::Qwen3(Qwen3Variant::Instruct2507),
        ] {
            for b in [Budget::Off, Budget::Tokens(5), Budget::Unlimited] {
                let p = plan(&family, b);
                assert_eq!(
                    (p.applies, p.prefill, p.limit, p.render),
                    (false, "", ThinkLimit::default(), RenderOptions::default())
                );
            }
        }
    }
}
