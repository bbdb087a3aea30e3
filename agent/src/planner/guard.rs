//! The loop guard: a model that makes the same call (name and arguments) or writes the same
//! reply `loop_repeats` times, or fills a turn with one phrase over and over, is told once;
//! if it goes on, the run stops with [`StopReason::Loop`](crate::events::StopReason::Loop).

use std::collections::BTreeMap;

use agent_tools::builtin::FINAL_ANSWER;
use serde::{Deserialize, Serialize};

use super::resume::fnv1a;

use crate::prompt::ToolCall;

/// Told to the model when it repeats a call.
pub(super) const REPEAT_NOTE: &str =
    "You already made that call and have its result above. Give your final answer now.";

/// Told to the model when it repeats its text.
pub(super) const TEXT_NOTE: &str = "You are repeating yourself. Give your final answer now.";

/// What the guard makes of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing repeated (often enough).
    Fresh,
    /// A first loop: tell the model this, and ask for the answer.
    Warn(&'static str),
    /// A loop after the warning: stop the run.
    Stop,
}

/// How often a run made each call and wrote each reply (by hash), and whether the model was
/// told it loops; kept in each checkpoint, so a resumed run counts on.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopGuard {
    calls: BTreeMap<u64, u32>,
    replies: BTreeMap<u64, u32>,
    warned: bool,
}

impl LoopGuard {
    /// Counts a turn that does not end the run: `text` as generated, `content` without its
    /// reasoning and calls, `cut` when the token limit ended it. `repeats`: `loop_repeats`.
    pub(super) fn turn(
        &mut self,
        repeats: u32,
        text: &str,
        content: &str,
        calls: &[ToolCall],
        cut: bool,
    ) -> Verdict {
        let mut note = None;
        for c in calls.iter().filter(|c| c.name != FINAL_ANSWER) {
            let key = fnv1a(format!("{}{}", c.name, c.arguments).as_bytes());
            let n = self.calls.entry(key).or_insert(0);
            *n += 1;
            if *n >= repeats {
                note = Some(REPEAT_NOTE);
            }
        }
        let reply = content.trim();
        if !reply.is_empty() {
            let n = self.replies.entry(fnv1a(reply.as_bytes())).or_insert(0);
            *n += 1;
            if *n >= repeats {
                note = Some(TEXT_NOTE);
            }
        }
        // Only a turn the token limit ended: a finished turn that repeats a line is a list.
        if cut && degenerate(text) {
            note = Some(TEXT_NOTE);
        }
        match note {
            None => Verdict::Fresh,
            Some(note) if !self.warned => {
                self.warned = true;
                Verdict::Warn(note)
            }
            Some(_) => Verdict::Stop,
        }
    }

    /// Forgets the calls made so far: their results left the conversation (compaction), so
    /// making one again is no repeat.
    pub(super) fn forget_calls(&mut self) {
        self.calls.clear();
    }
}

/// `text` ends in one phrase (up to 200 characters) repeated at least 8 times and over 200
/// characters in all: a model stuck in a loop within its turn.
fn degenerate(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    tail_repeats(&chars, 8).is_some_and(|(p, copies)| copies * p >= 200)
}

/// `text` with a phrase that it ends in, repeated three times or more, kept once (a summary
/// from a small model that went round in circles).
pub(super) fn without_repeats(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    match tail_repeats(&chars, 3) {
        Some((p, copies)) => chars[..chars.len() - (copies - 1) * p].iter().collect(),
        None => text.to_string(),
    }
}

/// The phrase (period up to 200 characters) that `chars` ends in at least `min` times over,
/// covering the most characters: its length and how many times it repeats.
fn tail_repeats(chars: &[char], min: usize) -> Option<(usize, usize)> {
    let n = chars.len();
    (1..=200.min(n / min))
        .map(|p| {
            let unit = &chars[n - p..];
            let copies = chars.rchunks_exact(p).take_while(|c| *c == unit).count();
            (p, copies)
        })
        .filter(|&(_, copies)| copies >= min)
        .max_by_key(|&(p, copies)| (p * copies, std::cmp::Reverse(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, n: i64) -> ToolCall {
        ToolCall {
            name: name.into(),
            arguments: json!({ "n": n }),
        }
    }

    #[test]
    fn a_repeated_call_is_told_once_then_stops_the_run() {
        let mut g = LoopGuard::default();
        let verdicts: Vec<_> = [1, 2, 1, 2, 3]
            .iter()
            .map(|&n| g.turn(2, "", "", &[call("calc", n)], false))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Fresh,
                Verdict::Fresh,
                Verdict::Warn(REPEAT_NOTE),
                Verdict::Stop,
                Verdict::Fresh
            ]
        );
    }

    #[test]
    fn repeats_count_up_to_the_setting_and_compaction_forgets_calls() {
        let mut g = LoopGuard::default();
        let mut v = vec![];
        for _ in 0..2 {
            v.push(g.turn(3, "", "", &[call("calc", 1)], false));
        }
        g.forget_calls();
        for _ in 0..3 {
            v.push(g.turn(3, "", "", &[call("calc", 1)], false));
        }
        assert_eq!(
            v,
            vec![
                Verdict::Fresh,
                Verdict::Fresh,
                Verdict::Fresh,
                Verdict::Fresh,
                Verdict::Warn(REPEAT_NOTE)
            ]
        );
    }

    #[test]
    fn the_same_reply_and_a_phrase_over_and_over_are_loops() {
        let mut g = LoopGuard::default();
        assert_eq!(
            g.turn(2, "Let me think.", "Let me think.", &[], false),
            Verdict::Fresh
        );
        assert_eq!(
            g.turn(2, " Let me think. ", "Let me think.", &[], false),
            Verdict::Warn(TEXT_NOTE)
        );
        let stuck = format!("The answer is{}", " the file, the file,".repeat(20));
        let mut g = LoopGuard::default();
        assert_eq!(
            (
                g.turn(2, &stuck, &stuck, &[], false),
                g.turn(2, &stuck[..60], "x", &[], true),
                LoopGuard::default().turn(2, &stuck, "y", &[], true)
            ),
            (Verdict::Fresh, Verdict::Fresh, Verdict::Warn(TEXT_NOTE))
        );
    }

    #[test]
    fn a_phrase_said_over_and_over_is_kept_once() {
        let said = "Pages 1 and 2 read. I'm ready to continue. What next? I'm ready to continue. What next? I'm ready to continue. What next?";
        let plain = "A short summary. It repeats nothing.";
        assert_eq!(
            (without_repeats(said), without_repeats(plain)),
            (
                "Pages 1 and 2 read. I'm ready to continue. What next?".to_string(),
                plain.to_string()
            )
        );
    }

    #[test]
    fn final_answer_calls_are_not_counted() {
        let mut g = LoopGuard::default();
        let answer = ToolCall {
            name: FINAL_ANSWER.into(),
            arguments: json!({ "answer": "4" }),
        };
        let v: Vec<_> = (0..3)
            .map(|_| g.turn(2, "", "", std::slice::from_ref(&answer), false))
            .collect();
        assert_eq!(v, vec![Verdict::Fresh; 3]);
    }
}
