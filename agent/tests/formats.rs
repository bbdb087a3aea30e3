//! Tool-call formats: streaming parsing at every chunk boundary, the tricky cases from the
//! format notes, validation against schemas, and render/parse round trips.

use agent::formats::{
    CallError, Event, Format, Parsed, StreamParser, parse, parse_with_schema, render_call,
    render_calls, validate,
};
use agent::prompt::{Family, Message, Qwen3Variant, RenderOptions, TemplateInfo, ToolCall, render};
use agent_tools::ToolSpec;
use serde_json::{Value, json};

fn call(name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        name: name.into(),
        arguments,
    }
}

fn err(message: &str, raw: &str) -> CallError {
    CallError {
        message: message.into(),
        raw: raw.into(),
    }
}

fn content(s: &str) -> Event {
    Event::Content(s.into())
}

fn reasoning(s: &str) -> Event {
    Event::Reasoning(s.into())
}

/// Merges adjacent Content (and Reasoning) events and drops empty ones: how text is split
/// between events depends on the chunking, nothing else may.
fn normalize(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (_, Event::Content(s) | Event::Reasoning(s)) if s.is_empty() => {}
            (Some(Event::Content(a)), Event::Content(b)) => a.push_str(&b),
            (Some(Event::Reasoning(a)), Event::Reasoning(b)) => a.push_str(&b),
            (_, e) => out.push(e),
        }
    }
    out
}

fn run(format: Format, opened: bool, tools: &[ToolSpec], chunks: &[&str]) -> Vec<Event> {
    let mut p = StreamParser::with_tools(format, opened, tools);
    let mut events = Vec::new();
    for c in chunks {
        events.extend(p.push(c));
    }
    events.extend(p.finish());
    normalize(events)
}

/// The events for `text` fed in one push, after checking that every split into two chunks (at
/// each char boundary) and one char at a time give the same events.
fn stream_events(format: Format, text: &str, opened: bool, tools: &[ToolSpec]) -> Vec<Event> {
    let whole = run(format, opened, tools, &[text]);
    for (i, _) in text.char_indices().skip(1) {
        let (a, b) = text.split_at(i);
        assert_eq!(
            run(format, opened, tools, &[a, b]),
            whole,
            "{format}: split at {i} of {text:?}"
        );
    }
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
    assert_eq!(
        run(format, opened, tools, &refs),
        whole,
        "{format}: one char at a time: {text:?}"
    );
    whole
}

/// `parse_with_schema`, after checking the stream invariance above.
fn parsed(format: Format, text: &str, opened: bool, tools: &[ToolSpec]) -> Parsed {
    stream_events(format, text, opened, tools);
    parse_with_schema(format, text, opened, tools)
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "get_weather".into(),
            description: "Weather for a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}),
        },
        ToolSpec {
            name: "calc".into(),
            description: "Typed parameters".into(),
            parameters: json!({"type": "object", "properties": {
                "n": {"type": "integer"}, "x": {"type": "number"}, "flag": {"type": "boolean"},
                "items": {"type": "array", "items": {"type": "integer"}}, "opts": {"type": "object"},
                "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]}, "s": {"type": "string"}
            }}),
        },
    ]
}

// ---------------------------------------------------------------- Qwen3 (Hermes)

#[test]
fn qwen3_content_before_call_without_separator() {
    let text = "Hello, world!\nWhat's up?<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    assert_eq!(
        stream_events(Format::Qwen3, text, false, &[]),
        vec![
            content("Hello, world!\nWhat's up?"),
            Event::Call(call("get_weather", json!({"city": "Paris"})))
        ]
    );
    assert_eq!(
        parse(Format::Qwen3, text, false),
        Parsed {
            content: "Hello, world!\nWhat's up?".into(),
            calls: vec![call("get_weather", json!({"city": "Paris"}))],
            ..Parsed::default()
        }
    );
}

#[test]
fn qwen3_thinking_and_several_calls() {
    let text = "<think>\nTwo cities.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\", \"days\": 2}}\n</tool_call>";
    assert_eq!(
        stream_events(Format::Qwen3, text, false, &[]),
        vec![
            reasoning("\nTwo cities.\n"),
            content("\n\n"),
            Event::Call(call("get_weather", json!({"city": "Paris"}))),
            content("\n"),
            Event::Call(call("get_weather", json!({"city": "Rome", "days": 2}))),
        ]
    );
    assert_eq!(
        parsed(Format::Qwen3, text, false, &[]),
        Parsed {
            reasoning: Some("Two cities.".into()),
            reasoning_truncated: false,
            content: String::new(),
            calls: vec![
                call("get_weather", json!({"city": "Paris"})),
                call("get_weather", json!({"city": "Rome", "days": 2}))
            ],
            errors: vec![],
        }
    );
}

#[test]
fn qwen3_call_is_emitted_as_soon_as_it_closes() {
    let mut p = StreamParser::new(Format::Qwen3, false);
    assert_eq!(
        p.push("Let's call something\n<tool_"),
        vec![content("Let's call something\n")]
    );
    assert_eq!(p.push("call>{\"name"), vec![]);
    assert_eq!(
        p.push("\": \"f\", \"arguments\": {\"trigger\": true}}</tool_call"),
        vec![]
    );
    assert_eq!(
        p.push(">"),
        vec![Event::Call(call("f", json!({"trigger": true})))]
    );
    assert_eq!(p.push(" done</thi"), vec![content(" done")]);
    assert_eq!(p.finish(), vec![content("</thi")]);
}

#[test]
fn qwen3_missing_closing_tag() {
    for text in [
        "<tool_call>\n{\"name\":\"final_answer\",\"arguments\":{\"trigger\":true}}",
        "<tool_call>\n{\"name\":\"final_answer\",\"arguments\":{\"trigger\":true}}\n</tool_ca",
    ] {
        assert_eq!(
            parsed(Format::Qwen3, text, false, &[]),
            Parsed {
                calls: vec![call("final_answer", json!({"trigger": true}))],
                ..Parsed::default()
            },
            "{text:?}"
        );
    }
    // A second `<tool_call>` before the close ends the first call.
    assert_eq!(
        parsed(
            Format::Qwen3,
            "<tool_call>{\"name\": \"a\"}\n<tool_call>{\"name\": \"b\"}</tool_call>",
            false,
            &[]
        ),
        Parsed {
            calls: vec![call("a", json!({})), call("b", json!({}))],
            ..Parsed::default()
        }
    );
}

#[test]
fn qwen3_malformed_json_keeps_the_text() {
    let bad = "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": }\n</tool_call>";
    let text =
        format!("Sure.{bad} Then<tool_call>{{\"name\": \"b\", \"arguments\": {{}}}}</tool_call>");
    let p = parsed(Format::Qwen3, &text, false, &[]);
    let message = p
        .errors
        .first()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    assert!(
        message.starts_with("the tool call is not valid JSON: "),
        "{message}"
    );
    assert_eq!(
        p,
        Parsed {
            content: "Sure. Then".into(),
            calls: vec![call("b", json!({}))],
            errors: vec![err(&message, bad)],
            ..Parsed::default()
        }
    );
    // Not an object, no name, arguments not an object.
    let p = parsed(
        Format::Qwen3,
        "<tool_call>[1]</tool_call><tool_call>{\"arguments\": {}}</tool_call><tool_call>{\"name\": \"f\", \"arguments\": 3}</tool_call><tool_call></tool_call>",
        false,
        &[],
    );
    assert_eq!(
        p.errors,
        vec![
            err(
                "a tool call must be a JSON object with \"name\" and \"arguments\"",
                "<tool_call>[1]</tool_call>"
            ),
            err(
                "the tool call has no \"name\" string",
                "<tool_call>{\"arguments\": {}}</tool_call>"
            ),
            err(
                "the arguments of `f` must be a JSON object, not 3",
                "<tool_call>{\"name\": \"f\", \"arguments\": 3}</tool_call>"
            ),
            err("the tool call is empty", "<tool_call></tool_call>"),
        ]
    );
}

#[test]
fn qwen3_stringified_arguments_decoded_once() {
    let text = r#"<tool_call>
{"name": "set", "arguments": "{\"param\": \"max_connections\", \"value\": \"{\\\"a\\\": 1}\"}"}
</tool_call>"#;
    assert_eq!(
        parsed(Format::Qwen3, text, false, &[]).calls,
        vec![call(
            "set",
            json!({"param": "max_connections", "value": "{\"a\": 1}"})
        )]
    );
    let p = parsed(
        Format::Qwen3,
        "<tool_call>{\"name\": \"f\", \"arguments\": \"hello\"}</tool_call>",
        false,
        &[],
    );
    assert_eq!(
        p.errors,
        vec![err(
            "the arguments of `f` are a string, not a JSON object",
            "<tool_call>{\"name\": \"f\", \"arguments\": \"hello\"}</tool_call>"
        )]
    );
}

#[test]
fn qwen3_braces_and_escapes_inside_strings() {
    let text = "<tool_call>\n{\"name\": \"run\", \"arguments\": {\"code\": \"# This is a program:\\nprint('hey')\\nd = {'a': {1}}}\", \"re\": \"[{]\"}}\n</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3, text, false, &[]).calls,
        vec![call(
            "run",
            json!({"code": "# This is a program:\nprint('hey')\nd = {'a': {1}}}", "re": "[{]"})
        )]
    );
}

/// Markers written as text inside a JSON string (a model without them as special tokens can do
/// that, and the grammar lets it: the string is valid) are part of the string.
#[test]
fn qwen3_tags_inside_json_strings() {
    let text = "<tool_call>\n{\"name\": \"note\", \"arguments\": {\"s\": \"a </tool_call> b <tool_call> \\\" c\"}}\n</tool_call>\nDone";
    let p = parsed(Format::Qwen3, text, false, &[]);
    assert_eq!(
        p.calls,
        vec![call(
            "note",
            json!({"s": "a </tool_call> b <tool_call> \" c"})
        )]
    );
    assert_eq!((p.content.as_str(), p.errors.len()), ("Done", 0));
}

#[test]
fn qwen3_call_inside_thinking_is_reasoning() {
    let text = "<think>maybe <tool_call>{\"name\": \"a\"}</tool_call> or not</think>ok";
    assert_eq!(
        parsed(Format::Qwen3, text, false, &[]),
        Parsed {
            reasoning: Some("maybe <tool_call>{\"name\": \"a\"}</tool_call> or not".into()),
            content: "ok".into(),
            ..Parsed::default()
        }
    );
    let text = "<think><tool_call>nah uhg</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3, text, false, &[]),
        Parsed {
            reasoning: Some("<tool_call>nah uhg</tool_call>".into()),
            reasoning_truncated: true,
            ..Parsed::default()
        }
    );
}

#[test]
fn qwen3_unclosed_thinking_at_end() {
    assert_eq!(
        parsed(
            Format::Qwen3,
            "\n<think>\nI am still thinking about </thi",
            false,
            &[]
        ),
        Parsed {
            reasoning: Some("I am still thinking about </thi".into()),
            reasoning_truncated: true,
            ..Parsed::default()
        }
    );
    // The prompt opened thinking and the model never closed it.
    assert_eq!(
        parsed(Format::Qwen3, "hmm", true, &[]),
        Parsed {
            reasoning: Some("hmm".into()),
            reasoning_truncated: true,
            ..Parsed::default()
        }
    );
}

#[test]
fn qwen3_thinking_opened_by_prompt() {
    let text = "I'm\nthinking\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3, text, true, &[]),
        Parsed {
            reasoning: Some("I'm\nthinking".into()),
            calls: vec![call("get_weather", json!({"city": "Oslo"}))],
            ..Parsed::default()
        }
    );
    // Without the prompt's `<think>`, `</think>` is a stray tag: dropped, the rest is content.
    assert_eq!(
        parsed(Format::Qwen3, "I'm\nthinking\n</think>\n\n42", false, &[]),
        Parsed {
            content: "I'm\nthinking\n\n\n42".into(),
            ..Parsed::default()
        }
    );
}

#[test]
fn qwen3_stray_second_think_close() {
    let text = "<think>\n\n</think>\n\nAnswer: </think>42";
    assert_eq!(
        stream_events(Format::Qwen3, text, false, &[]),
        vec![reasoning("\n\n"), content("\n\nAnswer: 42")]
    );
    assert_eq!(
        parse(Format::Qwen3, text, false),
        Parsed {
            reasoning: Some(String::new()),
            content: "Answer: 42".into(),
            ..Parsed::default()
        }
    );
}

#[test]
fn qwen3_code_fenced_json() {
    for text in [
        "<tool_call>\n```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}\n```\n</tool_call>",
        "<tool_call>```\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}```</tool_call>",
    ] {
        assert_eq!(
            parsed(Format::Qwen3, text, false, &[]),
            Parsed {
                calls: vec![call("get_weather", json!({"city": "Lima"}))],
                ..Parsed::default()
            }
        );
    }
}

#[test]
fn qwen3_unicode_stays_unescaped() {
    let expected = call("get_weather", json!({"city": "北京", "note": "晴天 🎉"}));
    for text in [
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"北京\", \"note\": \"晴天 🎉\"}}\n</tool_call>",
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"\\u5317\\u4eac\", \"note\": \"\\u6674\\u5929 \\ud83c\\udf89\"}}\n</tool_call>",
    ] {
        assert_eq!(
            parsed(Format::Qwen3, text, false, &[]).calls,
            vec![expected.clone()]
        );
    }
    assert_eq!(
        render_call(Format::Qwen3, &expected),
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"北京\", \"note\": \"晴天 🎉\"}}\n</tool_call>"
    );
    // Chinese text around the tags, split inside multi-byte characters' neighbours.
    assert_eq!(
        parsed(
            Format::Qwen3,
            "好的😀<tool_call>{\"name\": \"a\"}</tool_call>完成",
            false,
            &[]
        ),
        Parsed {
            content: "好的😀完成".into(),
            calls: vec![call("a", json!({}))],
            ..Parsed::default()
        }
    );
}

#[test]
fn qwen3_xml_body_is_accepted() {
    let text =
        "<tool_call>\n<function=calc>\n<parameter=n>\n3\n</parameter>\n</function>\n</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3, text, false, &tools()).calls,
        vec![call("calc", json!({"n": 3}))]
    );
}

#[test]
fn qwen3_render_matches_the_prompt_renderer() {
    let calls = vec![
        call("get_weather", json!({"city": "Paris", "days": 2})),
        call("calc", json!({"x": 1.5, "items": [1, 2], "s": "é \"q\""})),
    ];
    let text = render_calls(Format::Qwen3, &calls);
    let args2 =
        agent::prompt::pyjson::to_string(&json!({"x": 1.5, "items": [1, 2], "s": "é \"q\""}));
    assert_eq!(
        text,
        format!(
            "<tool_call>\n{{\"name\": \"get_weather\", \"arguments\": {{\"city\": \"Paris\", \"days\": 2}}}}\n</tool_call>\n<tool_call>\n{{\"name\": \"calc\", \"arguments\": {args2}}}\n</tool_call>"
        )
    );
    let mut turn = Message::assistant("");
    turn.tool_calls = calls.clone();
    // The release's template gives the last assistant turn an (empty) thought block.
    let prompt = render(
        &Family::Qwen3(Qwen3Variant::Instruct2507),
        &TemplateInfo::default(),
        &[Message::user("q"), turn],
        &[],
        RenderOptions {
            add_generation_prompt: false,
            enable_thinking: None,
        },
    );
    let prompt = prompt.map_err(|e| e.to_string());
    assert_eq!(
        prompt,
        Ok(format!(
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n{text}<|im_end|>\n"
        ))
    );
}

// ---------------------------------------------------------------- Qwen3-Coder

#[test]
fn coder_typed_values_with_schema() {
    let text = "I'll compute.\n<tool_call>\n<function=calc>\n<parameter=n>\n42\n</parameter>\n<parameter=x>\n-1.5\n</parameter>\n<parameter=flag>\ntrue\n</parameter>\n<parameter=items>\n[1, 2, 3]\n</parameter>\n<parameter=opts>\n{'deep': {\"k\": None}}\n</parameter>\n<parameter=maybe>\nnull\n</parameter>\n<parameter=s>\n42\n</parameter>\n<parameter=unknown>\n7\n</parameter>\n</function>\n</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3Coder, text, false, &tools()),
        Parsed {
            content: "I'll compute.".into(),
            calls: vec![call(
                "calc",
                json!({"n": 42, "x": -1.5, "flag": true, "items": [1, 2, 3], "opts": {"deep": {"k": null}}, "maybe": null, "s": "42", "unknown": "7"})
            )],
            ..Parsed::default()
        }
    );
    // Without a schema every value stays a string.
    assert_eq!(
        parsed(Format::Qwen3Coder, text, false, &[]).calls,
        vec![call(
            "calc",
            json!({"n": "42", "x": "-1.5", "flag": "true", "items": "[1, 2, 3]", "opts": "{'deep': {\"k\": None}}", "maybe": "null", "s": "42", "unknown": "7"})
        )]
    );
}

#[test]
fn coder_missing_parameter_close_and_multiline_values() {
    let text = "<tool_call>\n<function=write>\n<parameter=path>\na.py\n<parameter=code>\n\ndef f():\n    return 1\n\n</function>\n</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3Coder, text, false, &[]),
        Parsed {
            calls: vec![call(
                "write",
                json!({"path": "a.py", "code": "\ndef f():\n    return 1\n"})
            )],
            ..Parsed::default()
        }
    );
}

/// Found by fuzzing: a bare `<function=…>` ends at a following `<tool_call>` or a stray
/// `</tool_call>` (it ran on past them), and a value keeps a `\r` before the template's `\n`.
#[test]
fn coder_bare_function_ends_at_call_tags() {
    let text =
        "<function=a>\n<parameter=x>\n1\n<tool_call>\n<function=b>\n</function>\n</tool_call>";
    let p = parsed(Format::Qwen3Coder, text, false, &[]);
    assert_eq!(
        (p.calls, p.errors),
        (
            vec![call("a", json!({"x": "1"})), call("b", json!({}))],
            vec![]
        )
    );
    let text = "<function=a>\n<parameter=x>\n1\n</parameter>\n</tool_call>after";
    let p = parsed(Format::Qwen3Coder, text, false, &[]);
    assert_eq!(
        (p.calls, p.content.as_str()),
        (vec![call("a", json!({"x": "1"}))], "after")
    );
    let text =
        "<tool_call>\n<function=a>\n<parameter=x>\nline\r\n</parameter>\n</function>\n</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3Coder, text, false, &[]).calls,
        vec![call("a", json!({"x": "line\r"}))]
    );
}

#[test]
fn coder_bare_function_and_several_calls() {
    let text = "Two calls:\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n<function=get_weather>\n<parameter=city>\n東京 🗼\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>";
    assert_eq!(
        stream_events(Format::Qwen3Coder, text, false, &tools()),
        vec![
            content("Two calls:\n"),
            Event::Call(call("get_weather", json!({"city": "Paris"}))),
            content("\n"),
            Event::Call(call("get_weather", json!({"city": "東京 🗼", "days": 3}))),
        ]
    );
    // Several functions in one `<tool_call>`, and one without any closing tags.
    let text = "<tool_call>\n<function=a>\n</function>\n<function=b>\n<parameter=x>\n1\n</parameter>\n</function>\n</tool_call><tool_call>\n<function=c>\n<parameter=y>\nend";
    assert_eq!(
        parsed(Format::Qwen3Coder, text, false, &[]),
        Parsed {
            calls: vec![
                call("a", json!({})),
                call("b", json!({"x": "1"})),
                call("c", json!({"y": "end"}))
            ],
            ..Parsed::default()
        }
    );
}

#[test]
fn coder_errors_keep_the_text() {
    let text = "<tool_call>\n<function=get_weather\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3Coder, text, false, &[]),
        Parsed {
            errors: vec![err("the `<function=NAME>` tag has no valid name", text)],
            ..Parsed::default()
        }
    );
    let text = "<tool_call>\n<function=f>\nsome words\n</function>\n</tool_call>";
    assert_eq!(
        parsed(Format::Qwen3Coder, text, false, &[]).errors,
        vec![err(
            "the body of `<function=f>` must be `<parameter=KEY>` tags or a JSON object",
            text
        )]
    );
    // Hermes JSON inside the tags still works for the coder format.
    assert_eq!(
        parsed(
            Format::Qwen3Coder,
            "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}}</tool_call>",
            false,
            &[]
        )
        .calls,
        vec![call("f", json!({"a": 1}))]
    );
}

#[test]
fn coder_thinking_and_stray_close() {
    let text = "<think>plan <function=x></think>\n</think>\n<function=f>\n<parameter=a>\nb\n</parameter>\n</function>";
    assert_eq!(
        parsed(Format::Qwen3Coder, text, false, &[]),
        Parsed {
            reasoning: Some("plan <function=x>".into()),
            calls: vec![call("f", json!({"a": "b"}))],
            ..Parsed::default()
        }
    );
}

// ---------------------------------------------------------------- Llama 4 pythonic

#[test]
fn pythonic_several_calls_and_wrappers() {
    let expected = vec![
        call("get_weather", json!({"city": "San Francisco"})),
        call("get_weather", json!({"city": "Seattle"})),
    ];
    for text in [
        "[get_weather(city=\"San Francisco\"), get_weather(city=\"Seattle\")]",
        "<|python_start|>[get_weather(city='San Francisco'),get_weather( city = 'Seattle', )]<|python_end|>",
        "\n <|python_start|> [ get_weather(city=\"San Francisco\") ,\n get_weather(city=\"Seattle\") ] <|python_end|>",
    ] {
        assert_eq!(
            parsed(Format::Llama4Pythonic, text, false, &[]),
            Parsed {
                calls: expected.clone(),
                ..Parsed::default()
            },
            "{text:?}"
        );
        assert_eq!(
            stream_events(Format::Llama4Pythonic, text, false, &[]),
            expected
                .iter()
                .cloned()
                .map(Event::Call)
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(
        parsed(
            Format::Llama4Pythonic,
            "<|python_start|>[get_weather(city='LA', metric='C')]<|python_end|>",
            false,
            &[]
        )
        .calls,
        vec![call("get_weather", json!({"city": "LA", "metric": "C"}))]
    );
}

#[test]
fn pythonic_call_is_emitted_as_soon_as_it_closes() {
    let mut p = StreamParser::new(Format::Llama4Pythonic, false);
    assert_eq!(p.push("[f(a=1"), vec![]);
    assert_eq!(
        p.push("), g(b="),
        vec![Event::Call(call("f", json!({"a": 1})))]
    );
    assert_eq!(
        p.finish(),
        vec![Event::Error(err(
            "the call list ends in the middle of a call",
            "g(b="
        ))]
    );
}

#[test]
fn pythonic_literals_and_escapes() {
    let text = r#"[f(a='Martha\'s Vineyard', b='\"cool units\"', c=None, d=True, e=False, n=-7, x=-2.5e-3, l=[1, (2, 'x'), {'k': [None]}], u='\u00e9\t\\', z={})]"#;
    assert_eq!(
        parsed(Format::Llama4Pythonic, text, false, &[]).calls,
        vec![call(
            "f",
            json!({"a": "Martha's Vineyard", "b": "\"cool units\"", "c": null, "d": true, "e": false, "n": -7, "x": -0.0025, "l": [1, [2, "x"], {"k": [null]}], "u": "é\t\\", "z": {}})
        )]
    );
    assert_eq!(
        parsed(Format::Llama4Pythonic, "[get_weather()]", false, &[]).calls,
        vec![call("get_weather", json!({}))]
    );
    assert_eq!(
        parsed(
            Format::Llama4Pythonic,
            "[translate(text='你好，世界 👋', to=\"日本語\")]",
            false,
            &[]
        )
        .calls,
        vec![call(
            "translate",
            json!({"text": "你好，世界 👋", "to": "日本語"})
        )]
    );
}

/// Positional arguments take the parameter names in schema order (BFCL's multi-turn ground
/// truth writes `sort('final_report.pdf')`); without the tool's schema they are an error.
#[test]
fn pythonic_positional_arguments() {
    let spec = ToolSpec {
        name: "mv".into(),
        description: String::new(),
        parameters: json!({"type": "object", "properties": {"source": {"type": "string"}, "destination": {"type": "string"}}}),
    };
    let tools = vec![spec];
    let p = parsed(
        Format::Llama4Pythonic,
        "[mv('a.txt', destination='b')]",
        false,
        &tools,
    );
    assert_eq!(
        (p.calls, p.errors),
        (
            vec![call("mv", json!({"source": "a.txt", "destination": "b"}))],
            vec![]
        )
    );
    let p = parsed(Format::Llama4Pythonic, "[mv('a', 'b', 'c')]", false, &tools);
    assert_eq!(
        p.errors[0].message,
        "`mv` takes 2 parameters; 3 positional arguments given"
    );
    let p = parsed(
        Format::Llama4Pythonic,
        "[mv(source='a', 'b')]",
        false,
        &tools,
    );
    assert_eq!(
        p.errors[0].message,
        "`mv`: a positional argument follows a keyword argument"
    );
    let p = parsed(
        Format::Llama4Pythonic,
        "[mv('a', source='b')]",
        false,
        &tools,
    );
    assert_eq!(
        p.errors[0].message,
        "`mv`: argument `source` is given twice"
    );
    let p = parsed(Format::Llama4Pythonic, "[cp('a')]", false, &tools);
    assert_eq!(
        p.errors[0].message,
        "`cp`: positional arguments need the tool's schema to be named; write key=value"
    );
}

#[test]
fn pythonic_dotted_names() {
    assert_eq!(
        parsed(
            Format::Llama4Pythonic,
            "[math.factorial(n=5), os.path.join(a='x')]",
            false,
            &[]
        )
        .calls,
        vec![
            call("math.factorial", json!({"n": 5})),
            call("os.path.join", json!({"a": "x"}))
        ]
    );
}

#[test]
fn pythonic_text_before_the_list_is_content() {
    for text in [
        "Let me check: [f()]",
        "[1] is a citation",
        "[link](http://x)",
        "The answer is 4.",
    ] {
        assert_eq!(
            parsed(Format::Llama4Pythonic, text, false, &[]),
            Parsed {
                content: text.into(),
                ..Parsed::default()
            },
            "{text:?}"
        );
    }
}

#[test]
fn pythonic_bad_call_does_not_drop_good_ones() {
    let text = "[good(x=1), bad(x=b'z'), huge(v=1e999), odd(x=1]), also(y=2)]";
    let p = parsed(Format::Llama4Pythonic, text, false, &[]);
    assert_eq!(
        p,
        Parsed {
            calls: vec![call("good", json!({"x": 1})), call("also", json!({"y": 2}))],
            errors: vec![
                err(
                    "bytes (b'…') have no JSON form; use a string",
                    "bad(x=b'z')"
                ),
                err(
                    "`1e999` is not a number: beyond what a 64-bit float holds",
                    "huge(v=1e999)"
                ),
                err(
                    "`odd`: mismatched brackets: expected `,` or `)`, found `]`",
                    "odd(x=1])"
                ),
            ],
            ..Parsed::default()
        }
    );
    assert_eq!(
        parsed(Format::Llama4Pythonic, "[f(1, 2)]", false, &[]).errors,
        vec![err(
            "`f`: positional arguments need the tool's schema to be named; write key=value",
            "f(1, 2)"
        )]
    );
}

// ---------------------------------------------------------------- Llama 4 JSON

#[test]
fn llama4_json_calls() {
    let expected = vec![
        call("calculator", json!({"expression": "1+1"})),
        call("get_weather", json!({"city": "Zürich"})),
    ];
    for text in [
        "<|python_start|>{\"name\": \"calculator\", \"parameters\": {\"expression\": \"1+1\"}}; {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\"}}<|python_end|>",
        "{\"name\": \"calculator\", \"parameters\": {\"expression\": \"1+1\"}}\n{\"name\": \"get_weather\", \"parameters\": \"{\\\"city\\\": \\\"Zürich\\\"}\"}",
    ] {
        assert_eq!(
            parsed(Format::Llama4Json, text, false, &[]),
            Parsed {
                calls: expected.clone(),
                ..Parsed::default()
            },
            "{text:?}"
        );
    }
    assert_eq!(
        parsed(Format::Llama4Json, "The answer is 2.", false, &[]),
        Parsed {
            content: "The answer is 2.".into(),
            ..Parsed::default()
        }
    );
    assert_eq!(
        parsed(Format::Llama4Json, "{\"answer\": 2}", false, &[]),
        Parsed {
            content: "{\"answer\": 2}".into(),
            ..Parsed::default()
        }
    );
}

#[test]
fn llama4_json_malformed_keeps_the_text() {
    let text =
        "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": }}";
    let p = parsed(Format::Llama4Json, text, false, &[]);
    let message = p
        .errors
        .first()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    assert!(
        message.starts_with("the tool call is not valid JSON: "),
        "{message}"
    );
    assert_eq!(
        p,
        Parsed {
            calls: vec![call("a", json!({}))],
            errors: vec![err(
                &message,
                "{\"name\": \"b\", \"parameters\": {\"x\": }}"
            )],
            ..Parsed::default()
        }
    );
    let p = parsed(
        Format::Llama4Json,
        "{\"name\": \"a\", \"parameters\": {\"x\": [1",
        false,
        &[],
    );
    assert_eq!(
        p.errors.iter().map(|e| e.raw.as_str()).collect::<Vec<_>>(),
        vec!["{\"name\": \"a\", \"parameters\": {\"x\": [1"]
    );
    // Found by fuzzing: the message of a number out of range must not depend on the chunking.
    let p = parsed(
        Format::Llama4Json,
        "{\"name\": 777777777777777E7777777634, \"x\": 1}",
        false,
        &[],
    );
    assert_eq!(
        p.errors[0].message,
        "the tool call is not valid JSON: number out of range at line 1 column 35"
    );
}

// ---------------------------------------------------------------- validation

#[test]
fn validate_unknown_tool_and_schema_violations() {
    let calls = vec![
        call("get_weather", json!({"city": "Paris", "days": 2})),
        call("get_wether", json!({"city": "Paris"})),
        call("get_weather", json!({"city": "Paris", "days": "two"})),
        call("get_weather", json!({})),
    ];
    let errors = validate(&calls, &tools());
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(
        errors.first(),
        Some(&err(
            "unknown tool `get_wether`; available tools: get_weather, calc",
            "{\"name\": \"get_wether\", \"arguments\": {\"city\": \"Paris\"}}"
        ))
    );
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages
            .get(1)
            .is_some_and(|m| m
                .starts_with("tool `get_weather`: arguments do not match the schema at /days: ")),
        "{messages:?}"
    );
    assert!(
        messages.get(2).is_some_and(
            |m| m.starts_with("tool `get_weather`: arguments do not match the schema at /: ")
        ),
        "{messages:?}"
    );
    assert_eq!(validate(&[], &tools()), vec![]);
}

// ---------------------------------------------------------------- round trips

#[test]
fn render_parse_round_trip_all_formats() {
    let calls = vec![
        call("get_weather", json!({"city": "北京 🎉", "days": 3})),
        call(
            "calc",
            json!({"n": -4, "x": 2.5, "flag": false, "items": [1, 2], "opts": {"a": [null, true], "b": "it's \"quoted\"\n"}, "maybe": null, "s": "line1\nline2"}),
        ),
        call("calc", json!({})),
    ];
    for format in Format::ALL {
        let text = render_calls(format, &calls);
        assert_eq!(
            parse_with_schema(format, &text, false, &tools()),
            Parsed {
                calls: calls.clone(),
                ..Parsed::default()
            },
            "{format}: {text}"
        );
        assert_eq!(
            parsed(format, &text, false, &tools()).calls,
            calls,
            "{format}"
        );
    }
    // Dotted names survive the pythonic and JSON formats.
    let dotted = vec![call("math.factorial", json!({"n": 5}))];
    for format in [Format::Llama4Pythonic, Format::Llama4Json, Format::Qwen3] {
        assert_eq!(
            parse(format, &render_calls(format, &dotted), false).calls,
            dotted,
            "{format}"
        );
    }
}

#[test]
fn render_shapes() {
    let c = call("get_weather", json!({"city": "San Francisco", "days": 2}));
    assert_eq!(
        render_call(Format::Llama4Pythonic, &c),
        "[get_weather(city=\"San Francisco\", days=2)]"
    );
    assert_eq!(
        render_call(Format::Llama4Json, &c),
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"San Francisco\", \"days\": 2}}"
    );
    assert_eq!(
        render_call(Format::Qwen3Coder, &c),
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nSan Francisco\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>"
    );
    assert_eq!(
        render_calls(
            Format::Llama4Pythonic,
            &[c.clone(), call("f", json!({"x": None::<i32>}))]
        ),
        "[get_weather(city=\"San Francisco\", days=2), f(x=None)]"
    );
}

#[test]
fn format_names() {
    for (name, f) in [
        ("qwen3", Format::Qwen3),
        ("qwen3-coder", Format::Qwen3Coder),
        ("llama4-pythonic", Format::Llama4Pythonic),
        ("llama4-json", Format::Llama4Json),
    ] {
        assert_eq!(name.parse::<Format>(), Ok(f));
        assert_eq!(f.name(), name);
    }
}

/// Arbitrary junk never panics and never loses text: every char ends up somewhere.
#[test]
fn junk_never_panics_or_loses_text() {
    let inputs = [
        "<<<tool_call><tool_call>>></think><think>",
        "</tool_call></function><function=<function=>>",
        "[[[(((('\\",
        "{\"name\": {\"name\": [",
        "<|python_start|><|python_end|><|python_start|>",
        "🎉<tool_call>🎉</tool_call>🎉",
        "<function=f>\n<parameter=\n</parameter>",
    ];
    for format in Format::ALL {
        for text in inputs {
            for opened in [false, true] {
                let events = stream_events(format, text, opened, &[]);
                let kept: usize = events
                    .iter()
                    .map(|e| match e {
                        Event::Reasoning(s) | Event::Content(s) => {
                            s.chars().filter(|c| !c.is_whitespace()).count()
                        }
                        Event::Error(e) => e.raw.chars().filter(|c| !c.is_whitespace()).count(),
                        Event::Call(_) => 1,
                    })
                    .sum();
                assert!(
                    kept > 0 || text.trim().is_empty(),
                    "{format} {text:?}: {events:?}"
                );
            }
        }
    }
}

/// Pseudo-random mixes of tags, fragments and text: no panic, same events at every split.
#[test]
fn random_fragments_stream_consistently() {
    let pieces = [
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "\n",
        " ",
        "{\"name\": \"f\", \"arguments\": {\"a\": 1}}",
        "{",
        "}",
        "\"",
        "<function=f>",
        "</function>",
        "<parameter=a>",
        "</parameter>",
        "1",
        "x",
        "é",
        "🎉",
        "[",
        "]",
        "(",
        ")",
        "f(",
        "g(a=1)",
        ",",
        "'",
        "\\",
        "<|python_start|>",
        "<|python_end|>",
        "<",
        "```json",
        "```",
        ";",
        "=",
        "None",
        "1e999",
        ".",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..400 {
        let n = 1 + (next() % 14) as usize;
        let text: String = (0..n)
            .map(|_| {
                pieces
                    .get((next() % pieces.len() as u64) as usize)
                    .copied()
                    .unwrap_or("")
            })
            .collect();
        for format in Format::ALL {
            stream_events(format, &text, next() % 2 == 0, &tools());
        }
    }
}
