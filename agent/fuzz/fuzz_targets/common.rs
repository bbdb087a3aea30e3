// Shared by every target (included with `include!`): the parser's properties, per format.
//
// 1. It never panics or hangs, whatever the text.
// 2. Chunking does not matter: the text split at the points the input's first byte picks gives
//    the same calls, errors, reasoning and content as the whole text.
// 3. What it reads as calls, rendered back in the same format, reads back as the same calls.

use agent::formats::{self, Event, Format, StreamParser};

fn check(format: Format, data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let think_opened = step & 1 == 1;
    let whole = formats::parse(format, text, think_opened);

    let step = (step as usize >> 1) + 1;
    let mut parser = StreamParser::new(format, think_opened);
    let mut events = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        end = i + c.len_utf8();
        if end - start >= step {
            events.extend(parser.push(&text[start..end]));
            start = end;
        }
    }
    events.extend(parser.push(&text[start..end.max(start)]));
    events.extend(parser.finish());
    let mut calls = Vec::new();
    let mut errors = Vec::new();
    let (mut reasoning, mut content) = (String::new(), String::new());
    for e in events {
        match e {
            Event::Call(c) => calls.push(c),
            Event::Error(e) => errors.push(e),
            Event::Reasoning(r) => reasoning.push_str(&r),
            Event::Content(c) => content.push_str(&c),
        }
    }
    assert_eq!(calls, whole.calls, "chunked calls differ");
    assert_eq!(errors, whole.errors, "chunked errors differ");
    assert_eq!(content.trim(), whole.content, "chunked content differs");
    if let Some(r) = &whole.reasoning {
        assert_eq!(reasoning.trim_matches('\n'), r, "chunked reasoning differs");
    }

    // Names as tools have them (the Hermes template writes the name unescaped, as Qwen's does).
    let plain_name = |n: &str| n.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c));
    if !whole.calls.is_empty() && whole.calls.iter().all(|c| c.arguments.is_object() && plain_name(&c.name)) {
        let rendered = formats::render_calls(format, &whole.calls);
        let again = formats::parse(format, &rendered, false);
        // Qwen3-Coder values are untyped text without a schema: compare the text form.
        if format == Format::Qwen3Coder {
            assert_eq!(formats::render_calls(format, &again.calls), rendered, "re-rendered calls differ");
        } else {
            assert_eq!(again.calls, whole.calls, "re-rendered calls read back differently: {rendered:?}");
        }
        assert!(again.errors.is_empty(), "re-rendered calls have errors: {:?}", again.errors);
    }
}
