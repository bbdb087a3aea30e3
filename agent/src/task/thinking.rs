//! `thinking:`: how many tokens a thinking model may spend reasoning, per step kind.
//!
//! Thinking is the most expensive thing a small local model does, and its value
//! differs by step: planning benefits, a routine tool call rarely does. So the
//! budget can be one value for every step or a map per step kind, plus an
//! optional cap on the whole run.

use serde::{Deserialize, Serialize, Serializer};

use crate::thinking::{Budget, ThinkingPolicySpec};
use serde_yaml_ng::Value;

use super::check::{Checked, FieldError, Seg, child, entries, integer, integer_u32, wrong_type};

/// `thinking:` as written: one budget for all steps, or one per step kind.
///
/// Kept in the written form (rather than expanded on parse) so a front matter
/// serialises back to what the user wrote; use [`ThinkingSpec::policy`] for
/// the budget of each kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub enum ThinkingSpec {
    /// `thinking: 1024`, `thinking: off`, `thinking: {tokens: 512}`.
    Uniform(Budget),
    /// `thinking: {plan: 4096, act: off, total: 20000}`.
    PerKind(ThinkingPolicySpec),
}

impl From<Budget> for ThinkingSpec {
    /// One budget for every step.
    fn from(b: Budget) -> Self {
        ThinkingSpec::Uniform(b)
    }
}

impl From<ThinkingPolicySpec> for ThinkingSpec {
    fn from(p: ThinkingPolicySpec) -> Self {
        ThinkingSpec::PerKind(p)
    }
}

impl ThinkingSpec {
    /// The effective policy: a uniform budget applies to all four kinds; a
    /// per-kind map takes the default for kinds it leaves out.
    pub fn policy(&self) -> ThinkingPolicySpec {
        match self {
            ThinkingSpec::Uniform(budget) => ThinkingPolicySpec::uniform(*budget),
            ThinkingSpec::PerKind(spec) => spec.clone().with_defaults(),
        }
    }
}

const BUDGET: &str = "off, unlimited, a token count such as 1024, or {tokens: N}";
const SPEC: &str = "off, unlimited, a token count such as 1024, {tokens: N}, \
     or a mapping of plan, act, recover, answer, total";
const KINDS: [&str; 5] = ["plan", "act", "recover", "answer", "total"];

/// One budget. YAML 1.2 (what serde_yaml_ng implements) reads `off` as a
/// string, YAML 1.1 tools as `false`; both mean [`Budget::Off`].
fn check_budget(value: &Value, path: &[Seg], expected: &str) -> Checked<Budget> {
    match value {
        Value::Bool(false) => Ok(Budget::Off),
        Value::String(s) if s.eq_ignore_ascii_case("off") => Ok(Budget::Off),
        Value::String(s) if s.eq_ignore_ascii_case("unlimited") => Ok(Budget::Unlimited),
        Value::Number(_) => tokens(value, path),
        Value::Mapping(map) => {
            let mut budget = None;
            for (_, tokens_value) in entries(map, path, &["tokens"])? {
                budget = Some(tokens(tokens_value, &child(path, "tokens"))?);
            }
            budget.ok_or_else(|| {
                FieldError::new(
                    path,
                    format!("expected {expected}; found a mapping without `tokens`"),
                )
            })
        }
        other => Err(wrong_type(path, expected, other)),
    }
}

/// A token count: 0 is the same as off.
fn tokens(value: &Value, path: &[Seg]) -> Checked<Budget> {
    match integer(value, path, 0, u64::from(u32::MAX))? {
        0 => Ok(Budget::Off),
        n => u32::try_from(n)
            .map(Budget::Tokens)
            .map_err(|_| FieldError::new(path, format!("{n} does not fit in 32 bits"))),
    }
}

/// A per-kind map (no `tokens` key).
fn check_policy(value: &Value, path: &[Seg]) -> Checked<ThinkingPolicySpec> {
    let Value::Mapping(map) = value else {
        return Err(wrong_type(
            path,
            "a mapping of plan, act, recover, answer, total",
            value,
        ));
    };
    let mut spec = ThinkingPolicySpec {
        plan: None,
        act: None,
        recover: None,
        answer: None,
        total: None,
    };
    for (key, value) in entries(map, path, &KINDS)? {
        if value.is_null() {
            continue;
        }
        let path = child(path, key);
        match key {
            "plan" => spec.plan = Some(check_budget(value, &path, BUDGET)?),
            "act" => spec.act = Some(check_budget(value, &path, BUDGET)?),
            "recover" => spec.recover = Some(check_budget(value, &path, BUDGET)?),
            "answer" => spec.answer = Some(check_budget(value, &path, BUDGET)?),
            _ => spec.total = Some(integer_u32(value, &path, 1, u32::MAX)?),
        }
    }
    Ok(spec)
}

/// `thinking:` in any of its forms.
pub(crate) fn check_thinking(value: &Value, path: &[Seg]) -> Checked<ThinkingSpec> {
    let Value::Mapping(map) = value else {
        return check_budget(value, path, SPEC).map(ThinkingSpec::Uniform);
    };
    let has_tokens = map.keys().any(|k| k.as_str() == Some("tokens"));
    if !has_tokens {
        let allowed = ["tokens", "plan", "act", "recover", "answer", "total"];
        entries(map, path, &allowed)?;
        return check_policy(value, path).map(ThinkingSpec::PerKind);
    }
    // `{tokens: N}` is a uniform budget; mixing it with per-kind keys is
    // ambiguous (does `tokens` cap each step or the run?), so refuse it.
    if let Some(kind) = map
        .keys()
        .filter_map(Value::as_str)
        .find(|k| KINDS.contains(k))
    {
        return Err(FieldError::new(
            &child(path, kind),
            "cannot be combined with `tokens`: write either {tokens: N} \
             or per-step keys (plan, act, recover, answer, total)",
        ));
    }
    check_budget(value, path, SPEC).map(ThinkingSpec::Uniform)
}

impl TryFrom<Value> for Budget {
    type Error = FieldError;

    fn try_from(value: Value) -> Result<Self, FieldError> {
        check_budget(&value, &[], BUDGET)
    }
}

impl TryFrom<Value> for ThinkingSpec {
    type Error = FieldError;

    fn try_from(value: Value) -> Result<Self, FieldError> {
        check_thinking(&value, &[])
    }
}

impl TryFrom<Value> for ThinkingPolicySpec {
    type Error = FieldError;

    fn try_from(value: Value) -> Result<Self, FieldError> {
        check_policy(&value, &[])
    }
}

impl Serialize for ThinkingSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ThinkingSpec::Uniform(budget) => budget.serialize(serializer),
            ThinkingSpec::PerKind(spec) => spec.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ThinkingSpec, String> {
        let value: Value = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        check_thinking(&value, &[Seg::Key("thinking".into())]).map_err(|e| e.to_string())
    }

    #[test]
    fn every_written_form_parses() {
        use Budget::*;
        assert_eq!(parse("off"), Ok(ThinkingSpec::Uniform(Off)));
        assert_eq!(parse("false"), Ok(ThinkingSpec::Uniform(Off)));
        assert_eq!(parse("0"), Ok(ThinkingSpec::Uniform(Off)));
        assert_eq!(parse("1024"), Ok(ThinkingSpec::Uniform(Tokens(1024))));
        assert_eq!(parse("unlimited"), Ok(ThinkingSpec::Uniform(Unlimited)));
        assert_eq!(
            parse("{tokens: 512}"),
            Ok(ThinkingSpec::Uniform(Tokens(512)))
        );
        assert_eq!(
            parse("{plan: 4096, act: off, recover: 1024}"),
            Ok(ThinkingSpec::PerKind(ThinkingPolicySpec {
                plan: Some(Tokens(4096)),
                act: Some(Off),
                recover: Some(Tokens(1024)),
                answer: None,
                total: None,
            }))
        );
    }

    #[test]
    fn rejects_mixed_and_bad_budgets() {
        assert_eq!(
            parse("{tokens: 5, plan: 3}"),
            Err(
                "thinking.plan: cannot be combined with `tokens`: write either {tokens: N} \
                 or per-step keys (plan, act, recover, answer, total)"
                    .into()
            )
        );
        assert_eq!(
            parse("{plan: {tokens: 1, max: 2}}"),
            Err("thinking.plan.max: unknown key; allowed keys: tokens".into())
        );
        assert_eq!(
            parse("{total: 0}"),
            Err("thinking.total: 0 is out of range: must be between 1 and 4294967295".into())
        );
        assert_eq!(
            parse("true"),
            Err(format!("thinking: expected {SPEC}; found the boolean true"))
        );
    }

    #[test]
    fn policy_expands_uniform_and_fills_defaults() {
        use Budget::*;
        assert_eq!(
            ThinkingSpec::Uniform(Tokens(7)).policy(),
            ThinkingPolicySpec::uniform(Tokens(7))
        );
        let spec = ThinkingSpec::PerKind(ThinkingPolicySpec {
            plan: Some(Unlimited),
            act: None,
            recover: None,
            answer: Some(Off),
            total: Some(9000),
        });
        assert_eq!(
            spec.policy(),
            ThinkingPolicySpec {
                plan: Some(Unlimited),
                act: Some(Off),
                recover: Some(Tokens(1024)),
                answer: Some(Off),
                total: Some(9000),
            }
        );
    }

    #[test]
    fn serialises_back_to_the_written_form() {
        let spec = parse("{plan: 4096, act: off, total: 100}").unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"plan": 4096, "act": "off", "total": 100})
        );
        assert_eq!(serde_json::from_value::<ThinkingSpec>(json).unwrap(), spec);
        assert_eq!(
            serde_json::to_value(ThinkingSpec::Uniform(Budget::Unlimited)).unwrap(),
            "unlimited"
        );
    }
}
