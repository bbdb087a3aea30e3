//! Grammar-constrained calls: every format's grammar, in every mode, run through llguidance
//! with the real Qwen3 and Llama 4 tokenizers. Accepts what each model writes for valid calls,
//! rejects invalid calls, calls where none are allowed and text where a call is required.

mod llg;

use agent::formats::{Format, GrammarOptions, Thinking, ToolChoice as Choice, lark, render_calls};
use agent::prompt::ToolCall;
use agent_tools::ToolSpec;
use llg::Checker;
use serde_json::{Value, json};

fn tools() -> Vec<ToolSpec> {
    let spec = |name: &str, parameters: Value| ToolSpec {
        name: name.into(),
        description: String::new(),
        parameters,
    };
    vec![
        spec(
            "calculator",
            json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
        ),
        spec(
            "get_weather",
            json!({"type": "object", "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "hourly": {"type": "boolean"},
                "coords": {"type": "array", "items": {"type": "number"}},
                "extra": {"type": "object", "properties": {"lang": {"type": ["string", "null"]}}}
            }, "required": ["city"]}),
        ),
        spec("ping", json!({"type": "object", "properties": {}})),
    ]
}

fn call(name: &str, args: Value) -> ToolCall {
    ToolCall {
        name: name.into(),
        arguments: args,
    }
}

/// The tokenizer for a format, and the markers it has as special tokens.
fn setup(format: Format) -> (Checker, Vec<String>) {
    match format {
        Format::Qwen3 | Format::Qwen3Coder => (
            Checker::new("fixtures/tokenizer-qwen3"),
            ["<tool_call>", "</tool_call>", "<think>", "</think>"]
                .map(String::from)
                .to_vec(),
        ),
        _ => (
            Checker::new("fixtures/tokenizer-llama4"),
            ["<|python_start|>", "<|python_end|>"]
                .map(String::from)
                .to_vec(),
        ),
    }
}

fn opts(format: Format, special: &[String], thinking: Thinking) -> GrammarOptions {
    GrammarOptions {
        special_tokens: special.to_vec(),
        thinking,
        ..GrammarOptions::new(format)
    }
}

fn good_calls() -> Vec<Vec<ToolCall>> {
    vec![
        vec![call("calculator", json!({"expression": "1234 * 5678"}))],
        vec![call(
            "get_weather",
            json!({"city": "北京 🌧️ \"Peking\"\n", "days": -3, "unit": "celsius", "hourly": true, "coords": [39.9, 116.4e0, -1], "extra": {"lang": null}}),
        )],
        vec![
            call(
                "get_weather",
                json!({"city": "Paris", "unit": "fahrenheit"}),
            ),
            call("ping", json!({})),
            call("calculator", json!({"expression": "2+2"})),
        ],
    ]
}

fn bad_calls() -> Vec<(&'static str, Vec<ToolCall>)> {
    vec![
        ("unknown tool", vec![call("launch", json!({}))]),
        (
            "missing required",
            vec![call("get_weather", json!({"days": 2}))],
        ),
        (
            "wrong type",
            vec![call("get_weather", json!({"city": "Paris", "days": "two"}))],
        ),
        (
            "not in enum",
            vec![call(
                "get_weather",
                json!({"city": "Paris", "unit": "kelvin"}),
            )],
        ),
        (
            "invented parameter",
            vec![call(
                "calculator",
                json!({"expression": "1", "precise": true}),
            )],
        ),
        (
            "one bad among good",
            vec![
                call("ping", json!({})),
                call("calculator", json!({"expr": "1"})),
            ],
        ),
    ]
}

#[test]
fn required_accepts_valid_calls_and_nothing_else() {
    let tools = tools();
    for format in Format::ALL {
        let (checker, special) = setup(format);
        let g = lark(
            &opts(format, &special, Thinking::Off),
            &tools,
            &Choice::Required,
        )
        .unwrap();
        for calls in good_calls() {
            let text = render_calls(format, &calls);
            checker
                .accepts(&g, &text, true)
                .unwrap_or_else(|e| panic!("[{format}] rejected {text:?}: {e}\n{g}"));
        }
        for (what, calls) in bad_calls() {
            let text = render_calls(format, &calls);
            assert!(
                checker.accepts(&g, &text, true).is_err(),
                "[{format}] accepted {what}: {text:?}"
            );
        }
        for text in ["The answer is 4.", ""] {
            assert!(
                checker.accepts(&g, text, true).is_err(),
                "[{format}] required accepted text {text:?}"
            );
        }
    }
}

#[test]
fn auto_allows_text_and_constrains_calls() {
    let tools = tools();
    for format in Format::ALL {
        let (checker, special) = setup(format);
        let g = lark(
            &opts(format, &special, Thinking::Off),
            &tools,
            &Choice::Auto,
        )
        .unwrap();
        for text in [
            "The answer is 4.",
            "Line one\n\n```python\nprint([1])\n```\n😀 中文",
        ] {
            checker
                .accepts(&g, text, true)
                .unwrap_or_else(|e| panic!("[{format}] rejected text {text:?}: {e}"));
        }
        for calls in good_calls() {
            let text = render_calls(format, &calls);
            checker
                .accepts(&g, &text, true)
                .unwrap_or_else(|e| panic!("[{format}] rejected {text:?}: {e}"));
            if matches!(format, Format::Qwen3 | Format::Qwen3Coder) {
                let with_text = format!("Let me check.\n{text}");
                checker
                    .accepts(&g, &with_text, true)
                    .unwrap_or_else(|e| panic!("[{format}] rejected {with_text:?}: {e}"));
            }
        }
        for (what, calls) in bad_calls() {
            let text = render_calls(format, &calls);
            assert!(
                checker.accepts(&g, &text, true).is_err(),
                "[{format}] auto accepted {what}: {text:?}"
            );
        }
    }
}

#[test]
fn none_forbids_calls() {
    let tools = tools();
    for format in Format::ALL {
        let (checker, special) = setup(format);
        let g = lark(
            &opts(format, &special, Thinking::Off),
            &tools,
            &Choice::None,
        )
        .unwrap();
        checker.accepts(&g, "No tools needed: 4.", true).unwrap();
        let text = render_calls(format, &good_calls()[0]);
        assert!(
            checker.accepts(&g, &text, true).is_err(),
            "[{format}] none accepted a call"
        );
    }
}

#[test]
fn named_tool_only() {
    let tools = tools();
    for format in Format::ALL {
        let (checker, special) = setup(format);
        let g = lark(
            &opts(format, &special, Thinking::Off),
            &tools,
            &Choice::Tool("calculator".into()),
        )
        .unwrap();
        checker
            .accepts(&g, &render_calls(format, &good_calls()[0]), true)
            .unwrap();
        let other = render_calls(format, &[call("ping", json!({}))]);
        assert!(
            checker.accepts(&g, &other, true).is_err(),
            "[{format}] named accepted another tool"
        );
    }
    let err = lark(
        &GrammarOptions::new(Format::Qwen3),
        &tools,
        &Choice::Tool("nope".into()),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tool_choice names `nope`, which is not an enabled tool (enabled: calculator, get_weather, ping)"
    );
    let err = lark(&GrammarOptions::new(Format::Qwen3), &[], &Choice::Required).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tool_choice is `required` but no tool is enabled"
    );
}

#[test]
fn thinking_comes_first_and_never_holds_a_call() {
    let tools = tools();
    let (checker, special) = setup(Format::Qwen3);
    let call_text = render_calls(Format::Qwen3, &good_calls()[0]);
    let g = lark(
        &opts(Format::Qwen3, &special, Thinking::Optional),
        &tools,
        &Choice::Required,
    )
    .unwrap();
    for text in [
        format!("<think>\nEasy: multiply.\n</think>\n\n{call_text}"),
        call_text.clone(),
    ] {
        checker
            .accepts(&g, &text, true)
            .unwrap_or_else(|e| panic!("rejected {text:?}: {e}"));
    }
    // A call inside the reasoning is not a call: `<tool_call>` cannot be written there.
    let inside = format!("<think>\n{call_text}\n</think>\n\n{call_text}");
    assert!(checker.accepts(&g, &inside, true).is_err());
    // Thinking-2507: the prompt opened `<think>`; only `</think>` appears.
    let g = lark(
        &opts(Format::Qwen3, &special, Thinking::Open),
        &tools,
        &Choice::Auto,
    )
    .unwrap();
    checker
        .accepts(&g, &format!("Multiply.\n</think>\n\n{call_text}"), true)
        .unwrap();
    checker
        .accepts(&g, "Nothing to do.\n</think>\n\nDone.", true)
        .unwrap();
    assert!(
        checker.accepts(&g, "Done.", true).is_err(),
        "an unclosed think block is not a whole turn"
    );
}

/// A model without the markers in its vocabulary (SmolLM2) writes them as text: free text must
/// then not contain them, or a call could slip past the grammar.
#[test]
fn textual_markers() {
    let tools = tools();
    let checker = Checker::new("fixtures/tokenizer-qwen3");
    for format in [Format::Qwen3, Format::Qwen3Coder] {
        let auto = lark(
            &opts(format, &[], Thinking::Optional),
            &tools,
            &Choice::Auto,
        )
        .unwrap();
        let required = lark(&opts(format, &[], Thinking::Off), &tools, &Choice::Required).unwrap();
        for calls in good_calls() {
            let text = render_calls(format, &calls);
            checker
                .accepts(&required, &text, false)
                .unwrap_or_else(|e| panic!("[{format}] rejected {text:?}: {e}"));
            checker
                .accepts(&auto, &format!("Sure.\n{text}"), false)
                .unwrap_or_else(|e| panic!("[{format}] rejected {text:?}: {e}"));
        }
        let bad = render_calls(format, &bad_calls()[0].1);
        assert!(
            checker
                .accepts(&auto, &format!("Sure.\n{bad}"), false)
                .is_err(),
            "[{format}] a bad textual call passed as text"
        );
        assert!(
            checker
                .accepts(&auto, "<think>\nhm\n</think>\nHi", false)
                .is_err(),
            "thinking needs the special tokens"
        );
    }
}

#[test]
fn bounds() {
    let tools = tools();
    for format in Format::ALL {
        let (checker, special) = setup(format);
        let o = GrammarOptions {
            max_string_chars: Some(8),
            max_calls: Some(2),
            ..opts(format, &special, Thinking::Off)
        };
        let g = lark(&o, &tools, &Choice::Required).unwrap();
        checker
            .accepts(
                &g,
                &render_calls(
                    format,
                    &[call("calculator", json!({"expression": "12345678"}))],
                ),
                true,
            )
            .unwrap();
        let long = render_calls(
            format,
            &[call("calculator", json!({"expression": "123456789"}))],
        );
        assert!(
            checker.accepts(&g, &long, true).is_err(),
            "[{format}] string over the bound"
        );
        let three = render_calls(format, &good_calls()[2]);
        assert!(
            checker.accepts(&g, &three, true).is_err(),
            "[{format}] three calls over the bound of two"
        );
        let one = lark(
            &GrammarOptions {
                max_calls: Some(1),
                ..o.clone()
            },
            &tools,
            &Choice::Auto,
        )
        .unwrap();
        checker
            .accepts(
                &one,
                &render_calls(format, &[call("calculator", json!({"expression": "1+1"}))]),
                true,
            )
            .unwrap();
        let two = render_calls(format, &[call("ping", json!({})), call("ping", json!({}))]);
        assert!(
            checker.accepts(&one, &two, true).is_err(),
            "[{format}] two calls over the bound of one"
        );
    }
}

/// The schemas the sandbox derives from WIT types (anyOf for options and variants, prefixItems
/// for tuples, const cases, bounded integers) compile into every format's grammar, which then
/// accepts the calls the guests accept and rejects what they would refuse.
#[test]
fn typed_wasm_tools_constrain_calls() {
    use agent_sandboxes::{Policy, Sandbox, WasmComponent, bundled};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tools: Vec<ToolSpec> = rt.block_on(async {
        let sandbox = std::sync::Arc::new(Sandbox::new(None).unwrap());
        let shapes = std::fs::read(
            std::path::Path::new(agent_sandboxes::built_guests_dir()).join("shapes.wasm"),
        )
        .unwrap();
        let mut specs = Vec::new();
        for (name, bytes) in [
            ("calc", bundled::get("calc").unwrap().to_vec()),
            ("files", bundled::get("files").unwrap().to_vec()),
            ("shapes", shapes),
        ] {
            let compiled = sandbox.compile(name, bytes).await.unwrap();
            specs.extend(
                WasmComponent::load(sandbox.clone(), name, compiled, Policy::default())
                    .await
                    .unwrap()
                    .specs()
                    .to_vec(),
            );
        }
        specs
    });
    let good = [
        vec![call("calc__evaluate", json!({"expression": "(1 + 2) / 3"}))],
        vec![call(
            "files__read",
            json!({"path": "/data/a.txt", "offset": null, "max_bytes": 100}),
        )],
        vec![call(
            "files__write",
            json!({"path": "/out/b.txt", "content": "x", "mode": "append"}),
        )],
        vec![call(
            "shapes__show",
            json!({"p": {"x": -1, "y": 2}, "c": "blue", "s": {"circle": 3}, "f": ["read"], "t": [1, "one"], "tags": [], "big": 7, "ch": "x", "ratio": 1.5}),
        )],
        vec![call("shapes__mirror", json!({"s": "nothing", "c": "red"}))],
    ];
    let bad = [
        (
            "a string for an integer",
            call("files__read", json!({"path": "/a", "offset": "three"})),
        ),
        (
            "an unknown mode",
            call(
                "files__write",
                json!({"path": "/a", "content": "x", "mode": "delete"}),
            ),
        ),
        (
            "an unknown variant case",
            call("shapes__mirror", json!({"s": "hexagon"})),
        ),
        (
            "a missing required field",
            call("shapes__mirror", json!({"s": {"square": {"x": 1}}})),
        ),
        (
            "a tuple of the wrong length",
            call(
                "shapes__show",
                json!({"p": {"x": 1, "y": 2}, "c": "red", "s": "nothing", "f": [], "t": [1], "tags": [], "big": 1, "ch": "x", "ratio": 1}),
            ),
        ),
    ];
    for format in Format::ALL {
        let (checker, special) = setup(format);
        let g = lark(
            &opts(format, &special, Thinking::Off),
            &tools,
            &Choice::Required,
        )
        .unwrap_or_else(|e| panic!("[{format}] {e}"));
        for calls in &good {
            let text = render_calls(format, calls);
            checker
                .accepts(&g, &text, true)
                .unwrap_or_else(|e| panic!("[{format}] rejected {text:?}: {e}"));
        }
        for (what, c) in &bad {
            let text = render_calls(format, std::slice::from_ref(c));
            assert!(
                checker.accepts(&g, &text, true).is_err(),
                "[{format}] accepted {what}: {text:?}"
            );
        }
    }
}

/// A tool made from a typed Rust function (`agent_tools::typed`): the schema generated from
/// its argument type constrains calls as a hand-written one does.
#[test]
fn a_typed_tools_schema_constrains_calls() {
    /// A forecast.
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Forecast {
        city: String,
        days: Option<u8>,
        unit: Unit,
    }
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Unit {
        Celsius,
        Fahrenheit,
    }
    let spec = ToolSpec {
        name: "forecast".into(),
        description: "A forecast.".into(),
        parameters: agent_tools::typed::parameters::<Forecast>(),
    };
    for format in Format::ALL {
        let (checker, special) = setup(format);
        let g = lark(
            &opts(format, &special, Thinking::Off),
            std::slice::from_ref(&spec),
            &Choice::Required,
        )
        .unwrap();
        for args in [
            json!({"city": "Lyon", "unit": "celsius"}),
            json!({"city": "Lyon", "days": 3, "unit": "fahrenheit"}),
            json!({"city": "Lyon", "days": null, "unit": "celsius"}),
        ] {
            let text = render_calls(format, &[call("forecast", args)]);
            checker
                .accepts(&g, &text, true)
                .unwrap_or_else(|e| panic!("[{format}] rejected {text:?}: {e}\n{g}"));
        }
        let mut bad = vec![
            json!({"city": "Lyon", "unit": "kelvin"}),
            json!({"unit": "celsius"}),
        ];
        // Qwen3-Coder writes every value as text (`3` and `"3"` are the same call there).
        if format != Format::Qwen3Coder {
            bad.push(json!({"city": "Lyon", "days": "3", "unit": "celsius"}));
            bad.push(json!({"city": 7, "unit": "celsius"}));
        }
        for args in bad {
            let text = render_calls(format, &[call("forecast", args)]);
            assert!(
                checker.accepts(&g, &text, true).is_err(),
                "[{format}] accepted {text:?}"
            );
        }
    }
}
