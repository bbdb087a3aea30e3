//! The keys that bound a run: what one tool result puts into the prompt, when the conversation
//! is compacted, when repetition ends a run, how many calls a turn may make and run at once,
//! and how long a run and a tool call may take.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Serialize;
use serde_yaml_ng::Value;

use super::check::{Checked, FieldError, Seg, integer, integer_u32, number, wrong_type};

/// Allowed `max_result_bytes`: from a few lines to 64 MiB.
pub const MAX_RESULT_BYTES_RANGE: RangeInclusive<u64> = 256..=(64 << 20);
/// Allowed `max_result_tokens`.
pub const MAX_RESULT_TOKENS_RANGE: RangeInclusive<u64> = 64..=10_000_000;
/// Allowed `compact_at`, a fraction of the context window: below a tenth there is no room
/// for the recent turns, above 0.95 none for the summary.
pub const COMPACT_AT_RANGE: RangeInclusive<f64> = 0.1..=0.95;
/// `compact_at` when not set: as goose, a fifth of the window is left for the step.
pub const DEFAULT_COMPACT_AT: f64 = 0.8;
/// Allowed `loop_repeats`.
pub const LOOP_REPEATS_RANGE: RangeInclusive<u32> = 2..=1000;
/// `loop_repeats` when not set: the second identical call is a repeat, since its result is in
/// the conversation already.
pub const DEFAULT_LOOP_REPEATS: u32 = 2;
/// Allowed `max_calls` and `parallel_calls`.
pub const CALLS_RANGE: RangeInclusive<u32> = 1..=64;
/// `parallel_calls` when not set.
pub const DEFAULT_PARALLEL_CALLS: u32 = 4;
/// Allowed `time_limit` and `tool_timeout`, in seconds: up to a week.
pub const SECONDS_RANGE: RangeInclusive<u64> = 1..=(7 * 24 * 3600);

/// The keys of this group, in the order the front matter lists them.
pub(crate) const KEYS: [&str; 9] = [
    "max_result_bytes",
    "max_result_tokens",
    "compact",
    "compact_at",
    "loop_repeats",
    "max_calls",
    "parallel_calls",
    "time_limit",
    "tool_timeout",
];

/// The keys that bound a run; each is a top-level key of the front matter. `None` means the
/// default (see the `*_or_default` methods).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunLimits {
    /// The most bytes of one tool result the prompt holds; a longer one is cut to its head
    /// and tail, the whole kept for `read_result`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u64>,
    /// The most tokens of one tool result the prompt holds (default: an eighth of the
    /// model's context window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_result_tokens: Option<u64>,
    /// Whether a conversation that outgrows `compact_at` is compacted (default `true`);
    /// without it the run stops when the next prompt would not fit the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact: Option<bool>,
    /// The fraction of the context window a prompt may fill before the conversation is
    /// compacted, within [`COMPACT_AT_RANGE`] (default [`DEFAULT_COMPACT_AT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact_at: Option<f64>,
    /// How many times the same call (name and arguments), or the same reply, counts as a
    /// loop: the model is told once, and the run stops (`loop`) if it goes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loop_repeats: Option<u32>,
    /// The most calls one turn may make (default 1, as the system prompt then asks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// How many of one turn's calls run at once (default [`DEFAULT_PARALLEL_CALLS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_calls: Option<u32>,
    /// The most seconds a run may take; it then stops (`time_limit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<u64>,
    /// The most seconds one tool call may take; it is then cancelled and the model told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_timeout: Option<u64>,
}

impl RunLimits {
    /// `top` over `self`, key by key.
    pub fn overlay(self, top: RunLimits) -> RunLimits {
        RunLimits {
            max_result_bytes: top.max_result_bytes.or(self.max_result_bytes),
            max_result_tokens: top.max_result_tokens.or(self.max_result_tokens),
            compact: top.compact.or(self.compact),
            compact_at: top.compact_at.or(self.compact_at),
            loop_repeats: top.loop_repeats.or(self.loop_repeats),
            max_calls: top.max_calls.or(self.max_calls),
            parallel_calls: top.parallel_calls.or(self.parallel_calls),
            time_limit: top.time_limit.or(self.time_limit),
            tool_timeout: top.tool_timeout.or(self.tool_timeout),
        }
    }

    /// The fraction of the window at which to compact, or `None` when `compact: false`.
    pub fn compact_at_or_default(&self) -> Option<f64> {
        match self.compact {
            Some(false) => None,
            _ => Some(self.compact_at.unwrap_or(DEFAULT_COMPACT_AT)),
        }
    }

    /// `loop_repeats`, or [`DEFAULT_LOOP_REPEATS`].
    pub fn loop_repeats_or_default(&self) -> u32 {
        self.loop_repeats.unwrap_or(DEFAULT_LOOP_REPEATS)
    }

    /// `max_calls`, or 1.
    pub fn max_calls_or_default(&self) -> u32 {
        self.max_calls.unwrap_or(1)
    }

    /// `parallel_calls`, or [`DEFAULT_PARALLEL_CALLS`].
    pub fn parallel_calls_or_default(&self) -> u32 {
        self.parallel_calls.unwrap_or(DEFAULT_PARALLEL_CALLS)
    }

    /// `time_limit` as a duration.
    pub fn time_limit(&self) -> Option<Duration> {
        self.time_limit.map(Duration::from_secs)
    }

    /// `tool_timeout` as a duration.
    pub fn tool_timeout(&self) -> Option<Duration> {
        self.tool_timeout.map(Duration::from_secs)
    }
}

/// Checks one key of the group (`key` is one of [`KEYS`]) into `limits`.
pub(crate) fn check_key(
    limits: &mut RunLimits,
    key: &str,
    value: &Value,
    path: &[Seg],
) -> Checked<()> {
    let calls = || integer_u32(value, path, *CALLS_RANGE.start(), *CALLS_RANGE.end());
    match key {
        "max_result_bytes" => {
            let r = &MAX_RESULT_BYTES_RANGE;
            limits.max_result_bytes = Some(integer(value, path, *r.start(), *r.end())?);
        }
        "max_result_tokens" => {
            let r = &MAX_RESULT_TOKENS_RANGE;
            limits.max_result_tokens = Some(integer(value, path, *r.start(), *r.end())?);
        }
        "compact" => match value {
            Value::Bool(b) => limits.compact = Some(*b),
            other => return Err(wrong_type(path, "true or false", other)),
        },
        "compact_at" => {
            let r = &COMPACT_AT_RANGE;
            let range = format!(
                "between {} and {} (a fraction of the context window)",
                r.start(),
                r.end()
            );
            limits.compact_at = Some(number(value, path, |x| r.contains(&x), &range)?);
        }
        "loop_repeats" => {
            let r = &LOOP_REPEATS_RANGE;
            limits.loop_repeats = Some(integer_u32(value, path, *r.start(), *r.end())?);
        }
        "max_calls" => limits.max_calls = Some(calls()?),
        "parallel_calls" => limits.parallel_calls = Some(calls()?),
        "time_limit" => limits.time_limit = Some(seconds(value, path)?),
        _ => limits.tool_timeout = Some(seconds(value, path)?),
    }
    Ok(())
}

/// A duration: whole seconds, or a number with a unit (`90s`, `5m`, `2h`, `1.5h`), within
/// [`SECONDS_RANGE`].
fn seconds(value: &Value, path: &[Seg]) -> Checked<u64> {
    let (min, max) = (*SECONDS_RANGE.start(), *SECONDS_RANGE.end());
    let expected = "a duration: seconds, or a number with s, m or h (90s, 5m, 2h)";
    let secs = match value {
        Value::Number(_) => return integer(value, path, min, max),
        Value::String(s) => parse_duration(s).ok_or_else(|| wrong_type(path, expected, value))?,
        other => return Err(wrong_type(path, expected, other)),
    };
    if (min..=max).contains(&secs) {
        Ok(secs)
    } else {
        Err(FieldError::new(
            path,
            format!("{secs} seconds is out of range: must be between {min} and {max}"),
        ))
    }
}

/// `90s`, `5m`, `2h`, `1.5h`, `30` (seconds) as whole seconds (rounded up).
pub fn parse_duration(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, unit) = match t.char_indices().last()? {
        (i, 's') => (&t[..i], 1.0),
        (i, 'm') => (&t[..i], 60.0),
        (i, 'h') => (&t[..i], 3600.0),
        _ => (t, 1.0),
    };
    let n: f64 = number.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = (n * unit).ceil();
    (secs <= u64::MAX as f64).then_some(secs as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        let read: Vec<_> = ["90s", "5m", "2h", "1.5h", "30", " 2 m", "m", "-1s", "5d"]
            .iter()
            .map(|t| parse_duration(t))
            .collect();
        assert_eq!(
            read,
            vec![
                Some(90),
                Some(300),
                Some(7200),
                Some(5400),
                Some(30),
                Some(120),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn compaction_is_on_at_four_fifths_unless_turned_off() {
        let on = RunLimits::default();
        let off = RunLimits {
            compact: Some(false),
            compact_at: Some(0.5),
            ..RunLimits::default()
        };
        let at = RunLimits {
            compact_at: Some(0.5),
            ..RunLimits::default()
        };
        assert_eq!(
            (
                on.compact_at_or_default(),
                off.compact_at_or_default(),
                at.compact_at_or_default()
            ),
            (Some(0.8), None, Some(0.5))
        );
    }
}
