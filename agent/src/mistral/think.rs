//! Thinking budgets enforced inside generation. The logits processor that samples each token
//! also watches the reasoning block: once it holds the budgeted number of tokens (and ends on
//! a whole UTF-8 character), it forces Qwen's early-stop sentence and `</think>`, token by
//! token, and lets the model continue into its answer or call. One request, one KV cache:
//! nothing is re-sent.

use std::sync::Mutex;

/// Token ids the enforcement needs, found once per model.
#[derive(Debug, Clone)]
pub(crate) struct ThinkTokens {
    pub open: u32,
    pub close: u32,
    /// [`crate::backend::EARLY_STOP`], tokenized: ends with `</think>` and the blank line after.
    pub stop: Vec<u32>,
    /// Each token's bytes (for UTF-8 boundaries); empty when unknown (every token is then
    /// taken to end on a character boundary).
    pub bytes: Vec<Vec<u8>>,
}

/// What happened to the reasoning block in one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ThinkState {
    /// Generated tokens seen so far.
    seen: usize,
    /// Index in the generated tokens where the reasoning starts (after `<think>`).
    start: Option<usize>,
    /// Index where the reasoning ended (the model's `</think>`, or the forced sentence).
    end: Option<usize>,
    /// Index where the forced sentence began.
    forced_from: Option<usize>,
}

impl ThinkState {
    /// Reasoning tokens, the forced sentence excluded; and whether the cap fired. `total`: the
    /// tokens generated in all (the last one is never seen as context).
    pub fn usage(&self, total: usize) -> (usize, bool) {
        let Some(start) = self.start else {
            return (0, false);
        };
        let end = self
            .forced_from
            .or(self.end)
            .unwrap_or(total.max(self.seen));
        (end.saturating_sub(start), self.forced_from.is_some())
    }
}

pub(crate) struct ThinkControl {
    pub tokens: ThinkTokens,
    /// Reasoning-token cap; `None` counts without capping.
    pub cap: Option<usize>,
    pub state: Mutex<ThinkState>,
}

impl ThinkControl {
    /// `opened`: the prompt ends inside the reasoning block.
    pub fn new(tokens: ThinkTokens, cap: Option<usize>, opened: bool) -> Self {
        let state = ThinkState {
            start: opened.then_some(0),
            ..ThinkState::default()
        };
        ThinkControl {
            tokens,
            cap,
            state: Mutex::new(state),
        }
    }

    /// Sees the generated tokens so far; returns the token to force next, if any.
    pub fn next_forced(&self, generated: &[u32]) -> Option<u32> {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        for (i, &t) in generated.iter().enumerate().skip(s.seen) {
            if s.start.is_none() && t == self.tokens.open {
                s.start = Some(i + 1);
            } else if s.start.is_some() && s.end.is_none() && t == self.tokens.close {
                s.end = Some(i);
            }
        }
        s.seen = generated.len();
        if let Some(f) = s.forced_from {
            return self.tokens.stop.get(generated.len() - f).copied();
        }
        let (start, cap) = (s.start?, self.cap?);
        if s.end.is_some()
            || generated.len() - start < cap
            || !self.ends_on_char(&generated[start..])
        {
            return None;
        }
        s.forced_from = Some(generated.len());
        self.tokens.stop.first().copied()
    }

    /// Whether the bytes of `tokens` end on a whole UTF-8 character.
    fn ends_on_char(&self, tokens: &[u32]) -> bool {
        if self.tokens.bytes.is_empty() {
            return true;
        }
        let mut tail: Vec<u8> = Vec::new();
        for &t in tokens.iter().rev().take(4) {
            let b = self
                .tokens
                .bytes
                .get(t as usize)
                .map_or(&[][..], Vec::as_slice);
            tail.splice(0..0, b.iter().copied());
        }
        utf8_complete(&tail)
    }

    pub fn usage(&self, total: usize) -> (usize, bool) {
        self.state.lock().map_or((0, false), |s| s.usage(total))
    }
}

/// Whether `bytes` (the end of a longer text) does not stop inside a multi-byte character.
pub(crate) fn utf8_complete(bytes: &[u8]) -> bool {
    // Walk back over at most three continuation bytes to the lead byte.
    for back in 1..=4.min(bytes.len()) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        return back >= need;
    }
    // Only continuation bytes in view: assume the character began earlier and is complete.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(cap: Option<usize>, opened: bool, bytes: Vec<Vec<u8>>) -> ThinkControl {
        ThinkControl::new(
            ThinkTokens {
                open: 1,
                close: 2,
                stop: vec![7, 8, 2, 9],
                bytes,
            },
            cap,
            opened,
        )
    }

    /// Drives the control like the engine: force when told, else the model's next token.
    fn run(c: &ThinkControl, model: &[u32], len: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut m = model.iter();
        while out.len() < len {
            match c.next_forced(&out) {
                Some(t) => out.push(t),
                None => out.push(*m.next().unwrap_or(&5)),
            }
        }
        out
    }

    #[test]
    fn caps_exactly_then_forces_the_sentence() {
        for cap in [0, 1, 3] {
            let c = control(Some(cap), true, vec![]);
            let out = run(&c, &[5; 20], cap + 6);
            let mut want = vec![5; cap];
            want.extend([7, 8, 2, 9, 5, 5]);
            assert_eq!(out, want, "cap {cap}");
            assert_eq!(c.usage(out.len()), (cap, true));
        }
    }

    #[test]
    fn the_models_own_close_ends_the_block() {
        let c = control(Some(5), false, vec![]);
        let out = run(&c, &[1, 5, 5, 2, 5, 5, 5, 5, 5], 9);
        assert_eq!(out, vec![1, 5, 5, 2, 5, 5, 5, 5, 5]);
        assert_eq!(c.usage(out.len()), (2, false));
        // No block at all: nothing counted, nothing forced.
        let c = control(Some(0), false, vec![]);
        assert_eq!(run(&c, &[5, 5], 2), vec![5, 5]);
        assert_eq!(c.usage(2), (0, false));
    }

    #[test]
    fn never_cuts_a_character() {
        // Token 3 is the first two bytes of "中" (E4 B8 AD), token 4 the last.
        let mut bytes = vec![vec![]; 10];
        bytes[5] = b"a".to_vec();
        bytes[3] = vec![0xE4, 0xB8];
        bytes[4] = vec![0xAD];
        let c = control(Some(2), true, bytes);
        let out = run(&c, &[5, 3, 4, 5], 7);
        assert_eq!(out, vec![5, 3, 4, 7, 8, 2, 9]);
        assert_eq!(c.usage(out.len()), (3, true));
        assert!(
            utf8_complete("é".as_bytes())
                && !utf8_complete(&"é".as_bytes()[..1])
                && utf8_complete(b"ab")
        );
        assert!(!utf8_complete(&"🎉".as_bytes()[..3]) && utf8_complete("🎉".as_bytes()));
    }
}
