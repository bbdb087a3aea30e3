//! The streaming parser. Text is buffered only while it is undecided (a possible tag cut by a
//! chunk boundary, an open call); everything decided is emitted at once, so the events do not
//! depend on how the text was chunked (adjacent Content or Reasoning events may be split
//! differently, nothing else).

use agent_tools::ToolSpec;

use super::{CallError, Event, Format, body_events, call_from_value, coder, pythonic};

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
const CALL_OPEN: &str = "<tool_call>";
const CALL_CLOSE: &str = "</tool_call>";
const PY_START: &str = "<|python_start|>";
const PY_END: &str = "<|python_end|>";

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Before any text: does the turn open with `<think>`?
    Start,
    /// Inside `<think>`.
    Think,
    /// Qwen formats: free text between calls.
    Text,
    /// Qwen formats: inside `<tool_call>` (`bare`: a `<function=…>` without the wrapper).
    Call { bare: bool },
    /// Llama 4: is this a call list or an answer?
    L4Start,
    /// Llama 4: plain content to the end.
    L4Content,
    /// Llama 4: inside the call list (pythonic: after `[`).
    L4Calls,
    /// Llama 4 JSON: a malformed object; the rest of the turn is its raw text.
    L4Bad(String),
    /// Llama 4: after the calls (drop `<|python_end|>`, the rest is content).
    L4After,
}

/// Separates reasoning, content and tool calls in text that arrives in chunks.
pub struct StreamParser {
    format: Format,
    tools: Vec<ToolSpec>,
    think_opened: bool,
    state: State,
    buf: String,
    saw_reasoning: bool,
}

/// Where `buf` can be cut so that no possible start of one of `tags` is emitted: the length of
/// the longest prefix whose remainder is not a proper prefix of a tag.
fn safe_len(buf: &str, tags: &[&str]) -> usize {
    for (i, _) in buf.char_indices() {
        let rest = buf.get(i..).unwrap_or("");
        if !rest.is_empty()
            && tags
                .iter()
                .any(|t| t.len() > rest.len() && t.starts_with(rest))
        {
            return i;
        }
    }
    buf.len()
}

/// The earliest occurrence of any of `tags`: (offset, tag index).
fn find_first(buf: &str, tags: &[&str]) -> Option<(usize, usize)> {
    tags.iter()
        .enumerate()
        .filter_map(|(k, t)| buf.find(t).map(|i| (i, k)))
        .min()
}

fn push_text(out: &mut Vec<Event>, reasoning: bool, text: &str) {
    if text.is_empty() {
        return;
    }
    match (out.last_mut(), reasoning) {
        (Some(Event::Reasoning(r)), true) => r.push_str(text),
        (Some(Event::Content(c)), false) => c.push_str(text),
        (_, true) => out.push(Event::Reasoning(text.to_string())),
        (_, false) => out.push(Event::Content(text.to_string())),
    }
}

impl StreamParser {
    /// `think_opened`: the prompt already opened `<think>`, so only `</think>` will appear.
    pub fn new(format: Format, think_opened: bool) -> Self {
        Self::with_tools(format, think_opened, &[])
    }

    /// Like [`StreamParser::new`], with the tools whose schemas type Qwen3-Coder's values.
    pub fn with_tools(format: Format, think_opened: bool, tools: &[ToolSpec]) -> Self {
        Self {
            format,
            tools: tools.to_vec(),
            think_opened,
            state: State::Start,
            buf: String::new(),
            saw_reasoning: false,
        }
    }

    /// True while the text so far ends inside `<think>` (so far, thinking never closed).
    pub fn in_reasoning(&self) -> bool {
        self.state == State::Think || (self.state == State::Start && self.think_opened)
    }

    /// True once a thinking block was opened (by the text or by the prompt).
    pub fn saw_reasoning(&self) -> bool {
        self.saw_reasoning || self.think_opened
    }

    /// Reads the next chunk and returns the events it completes. Text that may still begin a
    /// tag is held back until a later chunk, or [`StreamParser::finish`], decides it.
    pub fn push(&mut self, chunk: &str) -> Vec<Event> {
        self.buf.push_str(chunk);
        let mut out = Vec::new();
        while self.step(false, &mut out) {}
        out
    }

    /// Ends the stream: whatever is still buffered is decided now (a call missing its closing
    /// tag is still a call, an unfinished one is an error carrying the text).
    pub fn finish(mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while self.step(true, &mut out) {}
        if !self.buf.is_empty() {
            // Not reachable by design; never lose text all the same.
            let rest = std::mem::take(&mut self.buf);
            push_text(&mut out, self.state == State::Think, &rest);
        }
        out
    }

    fn body_state(&self) -> State {
        match self.format {
            Format::Qwen3 | Format::Qwen3Coder => State::Text,
            Format::Llama4Pythonic | Format::Llama4Json => State::L4Start,
        }
    }

    /// Drops the first `n` bytes of the buffer (`n` is always a char boundary).
    fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        if self.buf.is_char_boundary(n) {
            self.buf.drain(..n);
        }
    }

    /// One step of the state machine; false when nothing more can be decided now.
    fn step(&mut self, fin: bool, out: &mut Vec<Event>) -> bool {
        match self.state.clone() {
            State::Start => {
                let t = self.buf.trim_start();
                if let Some(rest) = t.strip_prefix(THINK_OPEN) {
                    let n = self.buf.len() - rest.len();
                    self.consume(n);
                    self.saw_reasoning = true;
                    self.state = State::Think;
                    return true;
                }
                if !fin && (t.is_empty() || THINK_OPEN.starts_with(t)) {
                    return false;
                }
                self.state = if self.think_opened {
                    self.saw_reasoning = true;
                    State::Think
                } else {
                    self.body_state()
                };
                true
            }
            State::Think => {
                if let Some(i) = self.buf.find(THINK_CLOSE) {
                    let text = self.buf.get(..i).unwrap_or("").to_string();
                    push_text(out, true, &text);
                    self.consume(i + THINK_CLOSE.len());
                    self.state = self.body_state();
                    return true;
                }
                let n = if fin {
                    self.buf.len()
                } else {
                    safe_len(&self.buf, &[THINK_CLOSE])
                };
                let text = self.buf.get(..n).unwrap_or("").to_string();
                push_text(out, true, &text);
                self.consume(n);
                false
            }
            State::Text => self.step_text(fin, out),
            State::Call { bare } => self.step_call(bare, fin, out),
            State::L4Start => {
                let t = self.buf.trim_start();
                if let Some(rest) = t.strip_prefix(PY_START) {
                    let n = self.buf.len() - rest.len();
                    self.consume(n);
                    return true;
                }
                let decided = if PY_START.starts_with(t) && !t.is_empty() {
                    None
                } else if self.format == Format::Llama4Pythonic {
                    pythonic::looks_like_call_list(t)
                } else {
                    looks_like_json_call(t)
                };
                match decided {
                    None if !fin => false,
                    Some(true) => {
                        let ws = self.buf.len() - t.len();
                        // Pythonic: step over the `[` too.
                        let n = if self.format == Format::Llama4Pythonic {
                            ws + 1
                        } else {
                            ws
                        };
                        self.consume(n);
                        self.state = State::L4Calls;
                        true
                    }
                    _ => {
                        self.state = State::L4Content;
                        true
                    }
                }
            }
            State::L4Content => {
                let text = std::mem::take(&mut self.buf);
                push_text(out, false, &text);
                false
            }
            State::L4Calls => {
                if self.format == Format::Llama4Pythonic {
                    self.step_pythonic(fin, out)
                } else {
                    self.step_json(fin, out)
                }
            }
            State::L4Bad(message) => {
                if fin {
                    let raw = std::mem::take(&mut self.buf);
                    // Read again whole: where serde_json gives up on a partial number (found
                    // by fuzzing) depends on where the chunk ended; the whole text does not.
                    let mut stream =
                        serde_json::Deserializer::from_str(&raw).into_iter::<serde_json::Value>();
                    let message = match stream.next() {
                        Some(Err(e)) => format!("the tool call is not valid JSON: {e}"),
                        _ => message,
                    };
                    out.push(Event::Error(CallError { message, raw }));
                }
                false
            }
            State::L4After => {
                let t = self.buf.trim_start();
                if let Some(rest) = t.strip_prefix(PY_END) {
                    let n = self.buf.len() - rest.len();
                    self.consume(n);
                    self.state = State::L4Content;
                    return true;
                }
                if !fin && (t.is_empty() || PY_END.starts_with(t)) {
                    return false;
                }
                self.state = State::L4Content;
                true
            }
        }
    }

    fn step_text(&mut self, fin: bool, out: &mut Vec<Event>) -> bool {
        let coder = self.format == Format::Qwen3Coder;
        let tags: &[&str] = if coder {
            &[CALL_OPEN, THINK_CLOSE, CALL_CLOSE, coder::FUNCTION_OPEN]
        } else {
            &[CALL_OPEN, THINK_CLOSE, CALL_CLOSE]
        };
        match find_first(&self.buf, tags) {
            Some((i, k)) => {
                let text = self.buf.get(..i).unwrap_or("").to_string();
                push_text(out, false, &text);
                let tag = tags.get(k).copied().unwrap_or("");
                if tag == coder::FUNCTION_OPEN {
                    // The `<function=` stays: it is part of the call's text.
                    self.consume(i);
                    self.state = State::Call { bare: true };
                } else {
                    self.consume(i + tag.len());
                    if tag == CALL_OPEN {
                        self.state = State::Call { bare: false };
                    }
                    // A stray `</think>` or `</tool_call>` in content is dropped.
                }
                true
            }
            None => {
                let n = if fin {
                    self.buf.len()
                } else {
                    safe_len(&self.buf, tags)
                };
                let text = self.buf.get(..n).unwrap_or("").to_string();
                push_text(out, false, &text);
                self.consume(n);
                false
            }
        }
    }

    fn step_call(&mut self, bare: bool, fin: bool, out: &mut Vec<Event>) -> bool {
        let (open, close) = if bare {
            ("", coder::FUNCTION_CLOSE)
        } else {
            (CALL_OPEN, CALL_CLOSE)
        };
        // A new `<tool_call>` before the close also ends this call (the close was dropped; for a
        // bare `<function=…>`, there was none).
        // Tags inside a JSON string are text (a model without the tags as special tokens can
        // write them there).
        let find = |tag: &str| {
            if bare {
                self.buf.find(tag)
            } else {
                find_outside_json_string(&self.buf, tag)
            }
        };
        // A bare call also ends at a stray `</tool_call>` (dropped with it).
        let stray_close = if bare {
            find(CALL_CLOSE).map(|i| (i, CALL_CLOSE.len()))
        } else {
            None
        };
        let found = [
            find(close).map(|i| (i, close.len())),
            find(CALL_OPEN).map(|i| (i, 0)),
            stray_close,
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(i, _)| *i);
        let (body_len, taken) = match found {
            Some((i, tag_len)) => (i, i + tag_len),
            None if fin => {
                // Missing closing tag at the end of the turn: a partial one is dropped.
                let n = safe_len(&self.buf, &[close]);
                (n, self.buf.len())
            }
            None => return false,
        };
        let body = self.buf.get(..body_len).unwrap_or("").to_string();
        let raw = format!("{open}{}", self.buf.get(..taken).unwrap_or(""));
        let events = if bare {
            // The body holds the `<function=` but not the `</function>`; give the parser both.
            let full = format!("{body}{}", coder::FUNCTION_CLOSE);
            super::body_events(&full, &raw, &self.tools)
        } else {
            body_events(&body, &raw, &self.tools)
        };
        out.extend(events);
        self.consume(taken);
        self.state = State::Text;
        true
    }

    fn step_pythonic(&mut self, fin: bool, out: &mut Vec<Event>) -> bool {
        let buf = self.buf.as_str();
        let start = buf.len() - buf.trim_start().len();
        let Some(c) = buf.get(start..).and_then(|r| r.chars().next()) else {
            if fin {
                self.buf.clear();
            }
            return false;
        };
        match c {
            ']' => {
                self.consume(start + 1);
                self.state = State::L4After;
                true
            }
            ',' => {
                self.consume(start + 1);
                true
            }
            _ => match pythonic::parse_call(buf, start, &self.tools) {
                Ok((call, end)) => {
                    out.push(Event::Call(call));
                    self.consume(end);
                    true
                }
                Err(pythonic::PyErr::Incomplete) => {
                    if fin {
                        let raw = buf.get(start..).unwrap_or("").to_string();
                        out.push(Event::Error(CallError {
                            message: "the call list ends in the middle of a call".into(),
                            raw,
                        }));
                        self.buf.clear();
                    }
                    false
                }
                Err(pythonic::PyErr::Bad(message)) => match pythonic::skip_item(buf, start) {
                    Some(end) => {
                        let raw = buf.get(start..end).unwrap_or("").trim_end().to_string();
                        out.push(Event::Error(CallError { message, raw }));
                        self.consume(end);
                        true
                    }
                    None if fin => {
                        let raw = buf.get(start..).unwrap_or("").to_string();
                        out.push(Event::Error(CallError { message, raw }));
                        self.buf.clear();
                        false
                    }
                    None => false,
                },
            },
        }
    }

    fn step_json(&mut self, fin: bool, out: &mut Vec<Event>) -> bool {
        let buf = self.buf.as_str();
        let start = buf.len()
            - buf
                .trim_start_matches(|c: char| c.is_whitespace() || c == ';' || c == ',')
                .len();
        let rest = buf.get(start..).unwrap_or("");
        if rest.is_empty() {
            if fin {
                self.buf.clear();
            }
            return false;
        }
        if !rest.starts_with('{') {
            // `<|python_end|>` or trailing text: the calls are over.
            self.consume(start);
            self.state = State::L4After;
            return true;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
        match stream.next() {
            Some(Ok(v)) => {
                let end = start + stream.byte_offset();
                let raw = buf.get(start..end).unwrap_or("").to_string();
                out.push(match call_from_value(v) {
                    Ok(c) => Event::Call(c),
                    Err(message) => Event::Error(CallError { message, raw }),
                });
                self.consume(end);
                true
            }
            Some(Err(e)) if e.is_eof() => {
                if fin {
                    let raw = rest.to_string();
                    out.push(Event::Error(CallError {
                        message: format!("the tool call is not valid JSON: {e}"),
                        raw,
                    }));
                    self.buf.clear();
                }
                false
            }
            Some(Err(e)) => {
                self.consume(start);
                self.state = State::L4Bad(format!("the tool call is not valid JSON: {e}"));
                true
            }
            None => false,
        }
    }
}

/// The first `tag` in a call body that is not inside a string of the body's JSON (when the body
/// is JSON at all; otherwise simply the first).
fn find_outside_json_string(body: &str, tag: &str) -> Option<usize> {
    let json = body.trim_start().starts_with('{');
    let mut from = 0;
    loop {
        let i = from + body.get(from..)?.find(tag)?;
        if !json || !in_json_string(body.get(..i).unwrap_or("")) {
            return Some(i);
        }
        from = i + tag.len();
    }
}

/// Whether JSON text, cut at its end, is inside a string.
fn in_json_string(text: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if inside && c == '\\' {
            escaped = true;
        } else if c == '"' {
            inside = !inside;
        }
    }
    inside
}

/// Whether text starts like `{"name":`: `None` while undecided.
fn looks_like_json_call(t: &str) -> Option<bool> {
    let Some(rest) = t.strip_prefix('{') else {
        return if t.is_empty() { None } else { Some(false) };
    };
    let rest = rest.trim_start();
    let key = "\"name\"";
    if rest.len() < key.len() {
        return if key.starts_with(rest) {
            None
        } else {
            Some(false)
        };
    }
    if !rest.starts_with(key) {
        return Some(false);
    }
    let after = rest.get(key.len()..).unwrap_or("").trim_start();
    after.chars().next().map(|c| c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdback() {
        assert_eq!(safe_len("abc<tool_", &[CALL_OPEN]), 3);
        assert_eq!(safe_len("abc<x", &[CALL_OPEN]), 5);
        assert_eq!(safe_len("中<", &[CALL_OPEN]), "中".len());
        assert_eq!(looks_like_json_call("{ \"na"), None);
        assert_eq!(looks_like_json_call("{\"name\" :"), Some(true));
        assert_eq!(looks_like_json_call("{\"a\": 1}"), Some(false));
    }
}
