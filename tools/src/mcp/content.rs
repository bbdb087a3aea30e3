//! A `tools/call` result as the model reads it: text parts joined; `structuredContent`
//! preferred when present (as JSON text, with any text the server added after it); images,
//! audio and resources kept whole as attachments for the trace and named in one line each
//! for the model; `isError` made a tool error; the text cut to the server's `max_output`.

use serde_json::Value;

use crate::{Attachment, ToolOutput};

/// Builds the output from the result as JSON (the wire shape, so that every content type a
/// server may send is handled, including ones rmcp may add later).
pub(crate) fn to_output(result: &Value, max_output: usize) -> ToolOutput {
    // Each part of the content, and whether it names an attachment (kept beside structured
    // content) or is plain text (replaced by it).
    let mut texts: Vec<(bool, String)> = Vec::new();
    let mut attachments = Vec::new();
    for block in result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let s = |k: &str| block.get(k).and_then(Value::as_str).map(String::from);
        match kind {
            "text" => texts.push((false, s("text").unwrap_or_default())),
            "image" | "audio" => {
                let a = Attachment {
                    kind: kind.into(),
                    mime_type: s("mimeType"),
                    uri: None,
                    data: s("data"),
                };
                texts.push((true, note(&a)));
                attachments.push(a);
            }
            "resource" => {
                let r = block.get("resource").cloned().unwrap_or(Value::Null);
                let rs = |k: &str| r.get(k).and_then(Value::as_str).map(String::from);
                let a = Attachment {
                    kind: kind.into(),
                    mime_type: rs("mimeType"),
                    uri: rs("uri"),
                    data: rs("text").or_else(|| rs("blob")),
                };
                // A text resource is content the model can read; a blob is only named.
                match rs("text") {
                    Some(t) => texts.push((true, format!("{}\n{t}", note(&a)))),
                    None => texts.push((true, note(&a))),
                }
                attachments.push(a);
            }
            "resource_link" => {
                let a = Attachment {
                    kind: kind.into(),
                    mime_type: s("mimeType"),
                    uri: s("uri"),
                    data: None,
                };
                let name = s("name").map(|n| format!(" ({n})")).unwrap_or_default();
                texts.push((true, format!("{}{name}", note(&a))));
                attachments.push(a);
            }
            other => texts.push((true, format!("[{other} content]"))),
        }
    }
    let structured = result
        .get("structuredContent")
        .filter(|v| !v.is_null())
        .cloned();
    let content = match &structured {
        // Structured content is preferred: the text blocks beside it are, by the spec, its
        // serialisation for older clients (or a rendering of it), and a small model reads one
        // copy better than two. Notes about attachments stay.
        Some(v) => std::iter::once(v.to_string())
            .chain(texts.into_iter().filter(|(note, _)| *note).map(|(_, t)| t))
            .collect::<Vec<_>>()
            .join("\n"),
        None => texts
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    ToolOutput {
        content: cap_output(&content, max_output),
        structured,
        is_error,
        attachments,
    }
}

/// One line naming an attachment, e.g. `[image: image/png, 1.2 KB]`.
fn note(a: &Attachment) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &a.mime_type {
        parts.push(m.clone());
    }
    if let Some(u) = &a.uri {
        parts.push(u.clone());
    }
    if let Some(d) = &a.data {
        // Base64 is 4 characters for 3 bytes; text resources are measured as they are.
        let bytes = if a.kind == "resource" {
            d.len()
        } else {
            d.len() / 4 * 3
        };
        parts.push(size(bytes));
    }
    format!("[{}: {}]", a.kind, parts.join(", "))
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b < 1024 => format!("{b} bytes"),
        b if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// The first `max` characters of `text`, and a note saying how much was cut.
pub fn cap_output(text: &str, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!(
        "{cut}\n[output cut: showed {max} of {total} characters; {} more not shown]",
        total - max
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_structured_media_and_errors() {
        let r = json!({"content": [{"type": "text", "text": "{\"t\":1}"}, {"type": "text", "text": "t is 1"}], "structuredContent": {"t": 1}});
        assert_eq!(
            to_output(&r, 100),
            ToolOutput {
                content: "{\"t\":1}".into(),
                structured: Some(json!({"t": 1})),
                is_error: false,
                attachments: vec![]
            }
        );
        let r = json!({"content": [
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a.txt", "mimeType": "text/plain", "text": "hello"}},
            {"type": "resource_link", "uri": "demo://r/1", "name": "one"}], "isError": true});
        assert_eq!(
            to_output(&r, 1000),
            ToolOutput {
                content: "[image: image/png, 3 bytes]\n[resource: text/plain, file:///a.txt, 5 bytes]\nhello\n[resource_link: demo://r/1] (one)".into(),
                structured: None,
                is_error: true,
                attachments: vec![
                    Attachment { kind: "image".into(), mime_type: Some("image/png".into()), uri: None, data: Some("AAAA".into()) },
                    Attachment { kind: "resource".into(), mime_type: Some("text/plain".into()), uri: Some("file:///a.txt".into()), data: Some("hello".into()) },
                    Attachment { kind: "resource_link".into(), mime_type: None, uri: Some("demo://r/1".into()), data: None },
                ],
            }
        );
    }

    #[test]
    fn long_output_is_cut_with_a_note() {
        assert_eq!(
            cap_output("héllo wörld", 5),
            "héllo\n[output cut: showed 5 of 11 characters; 6 more not shown]"
        );
        assert_eq!(cap_output("short", 5), "short");
    }
}
