//! Tool results that fit the prompt. A result longer than the run's limit (bytes, and tokens
//! when the backend counts them) enters the conversation as its head and tail around a marker
//! that says how much was left out; the whole result is kept (in memory, and in a file beside
//! the trace when the run has a folder for them), and the `read_result` tool, offered from the
//! first cut on, reads any part of it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use agent_tools::{BoxFuture, CallContext, Tool, ToolOutput, ToolSpec};
use serde_json::{Value, json};

/// The tool that reads a result the prompt holds only part of.
pub const READ_RESULT: &str = "read_result";

/// A result's bytes in the prompt when the task sets no `max_result_bytes`.
pub const DEFAULT_RESULT_BYTES: usize = 64 << 10;

/// A result's tokens in the prompt when the task sets no `max_result_tokens`: an eighth of the
/// context window (at least 256), so that several results and the conversation still fit.
pub fn default_result_tokens(context_window: Option<usize>) -> Option<usize> {
    context_window.map(|w| (w / 8).max(256))
}

/// The whole results of a run that were cut, by id (from 1).
#[derive(Clone, Default)]
pub(crate) struct Kept(Arc<Mutex<Vec<Arc<str>>>>);

impl Kept {
    /// Keeps `whole`; its id.
    pub(crate) fn keep(&self, whole: &str) -> usize {
        let Ok(mut v) = self.0.lock() else {
            return 0;
        };
        v.push(Arc::from(whole));
        v.len()
    }

    /// How many results are kept.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().map_or(0, |v| v.len())
    }

    fn get(&self, id: usize) -> Option<Arc<str>> {
        let v = self.0.lock().ok()?;
        id.checked_sub(1).and_then(|i| v.get(i).cloned())
    }
}

/// Where a whole result is written when the run keeps them on disk: `DIR/result-ID.txt`.
pub(crate) fn result_file(dir: &std::path::Path, id: usize) -> PathBuf {
    dir.join(format!("result-{id}.txt"))
}

/// The largest index at most `i` that is a character boundary of `s`.
fn floor_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `text` in at most about `budget` bytes: its head and tail, each cut at a line break when
/// one is in the last (first) quarter of its half, around a marker naming result `id`. `None`
/// when `text` fits.
pub fn cut(text: &str, budget: usize, id: usize) -> Option<String> {
    if text.len() <= budget {
        return None;
    }
    let half = budget / 2;
    let mut head = floor_boundary(text, half);
    if let Some(nl) = text[..head].rfind('\n')
        && nl >= half * 3 / 4
    {
        head = nl + 1;
    }
    // `text` is longer than twice `half`, so the tail starts after the head.
    let mut tail = floor_boundary(text, text.len() - half);
    if let Some(nl) = text[tail..].find('\n')
        && nl <= half / 4
    {
        tail += nl + 1;
    }
    let left = &text[head..tail];
    let lines = left.matches('\n').count();
    Some(format!(
        "{}\n[… {} bytes ({} lines) of this result left out: bytes {}-{} of {}. read_result \
         with {{\"id\": {id}, \"offset\": {head}}} reads on from there …]\n{}",
        &text[..head],
        left.len(),
        lines,
        head,
        tail,
        text.len(),
        &text[tail..]
    ))
}

/// `read_result`: a part of a result that was cut, by byte offset.
pub(crate) struct ReadResult {
    spec: ToolSpec,
    kept: Kept,
    max_bytes: usize,
}

impl ReadResult {
    /// Reads from `kept`, at most `max_bytes` at a time (the run's limit on a result).
    pub(crate) fn new(kept: Kept, max_bytes: usize) -> Self {
        let spec = ToolSpec {
            name: READ_RESULT.into(),
            description: format!(
                "Read part of an earlier tool result that was too long to show whole (its \
                 marker gives the id and where the left-out part starts). Returns at most \
                 {max_bytes} bytes."
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 1, "description": "The result's id, from its marker."},
                    "offset": {"type": "integer", "minimum": 0, "description": "The byte to start at."},
                    "limit": {"type": "integer", "minimum": 1, "description": "The most bytes to read."}
                },
                "required": ["id", "offset"]
            }),
        };
        Self {
            spec,
            kept,
            max_bytes,
        }
    }
}

impl Tool for ReadResult {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn annotations(&self) -> agent_tools::ToolAnnotations {
        agent_tools::ToolAnnotations::READ_ONLY
    }

    fn call(&self, arguments: Value, _cx: CallContext) -> BoxFuture<'_, ToolOutput> {
        let arg = |k: &str| {
            arguments
                .get(k)
                .and_then(Value::as_u64)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        let (id, offset) = (arg("id").unwrap_or(0), arg("offset").unwrap_or(0));
        let limit = arg("limit").unwrap_or(self.max_bytes).min(self.max_bytes);
        let out = match self.kept.get(id) {
            None => ToolOutput::error(format!("there is no cut result with id {id}")),
            Some(whole) if offset >= whole.len() => ToolOutput::error(format!(
                "offset {offset} is past the end of result {id} ({} bytes)",
                whole.len()
            )),
            Some(whole) => {
                let start = floor_boundary(&whole, offset);
                let end = floor_boundary(&whole, start.saturating_add(limit));
                let more = if end < whole.len() {
                    format!(
                        "\n[… bytes {start}-{end} of {}; more from offset {end} …]",
                        whole.len()
                    )
                } else {
                    format!("\n[… bytes {start}-{end} of {}: the end …]", whole.len())
                };
                ToolOutput::text(format!("{}{more}", &whole[start..end]))
            }
        };
        Box::pin(async move { out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_that_fits_is_not_cut() {
        assert_eq!(cut("short", 5, 1), None);
    }

    #[test]
    fn a_long_result_keeps_head_and_tail_at_line_breaks() {
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let got = cut(&text, 200, 3).unwrap();
        // Lines are 9 bytes: the head ends after line 10 (99 bytes), the tail starts at line 89.
        let expected = format!(
            "{}\n[… 702 bytes (78 lines) of this result left out: bytes 99-801 of 900. \
             read_result with {{\"id\": 3, \"offset\": 99}} reads on from there …]\n{}",
            &text[..99],
            &text[801..]
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let text = "é".repeat(1000);
        let got = cut(&text, 101, 1).unwrap();
        assert!(got.starts_with(&"é".repeat(25)), "{got}");
        assert!(got.ends_with(&"é".repeat(25)), "{got}");
    }

    #[tokio::test]
    async fn read_result_pages_through_the_whole_result() {
        let kept = Kept::default();
        let whole = "abcdefghij".repeat(3);
        assert_eq!(kept.keep(&whole), 1);
        let tool = ReadResult::new(kept, 12);
        let read = |args: Value| tool.call(args, CallContext::default());
        let page = read(json!({"id": 1, "offset": 10, "limit": 5})).await;
        assert_eq!(
            (page.content, page.is_error),
            (
                "abcde\n[… bytes 10-15 of 30; more from offset 15 …]".into(),
                false
            )
        );
        // The limit is capped at the run's.
        let last = read(json!({"id": 1, "offset": 15, "limit": 100})).await;
        assert_eq!(
            last.content,
            "fghijabcdefg\n[… bytes 15-27 of 30; more from offset 27 …]"
        );
        let end = read(json!({"id": 1, "offset": 27})).await;
        assert_eq!(end.content, "hij\n[… bytes 27-30 of 30: the end …]");
        let missing = read(json!({"id": 2, "offset": 0})).await;
        assert_eq!(
            (missing.content, missing.is_error),
            ("there is no cut result with id 2".into(), true)
        );
    }
}
