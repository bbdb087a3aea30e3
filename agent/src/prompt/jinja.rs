//! Renders a model's own Jinja chat template the way Hugging Face transformers does
//! (`trim_blocks`, `lstrip_blocks`, Python string methods, Python-style `tojson`). It is the
//! renderer of the generic family and the reference that the native renderers are tested
//! against, token by token.

use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value;

use super::{Message, RenderError, RenderOptions, TemplateInfo, pyjson};
use agent_tools::ToolSpec;

fn tojson(value: JValue, kwargs: Kwargs) -> Result<JValue, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json: Value = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    let text = match indent {
        Some(n) => pyjson::to_string_indent(&json, n),
        None => pyjson::to_string(&json),
    };
    Ok(JValue::from_safe_string(text))
}

fn raise_exception(msg: String) -> Result<JValue, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

/// Renders `template` with `messages` and `tools` as transformers' `apply_chat_template` would.
pub fn render(
    template: &str,
    messages: &[Message],
    tools: &[ToolSpec],
    opts: RenderOptions,
    info: &TemplateInfo,
) -> Result<String, RenderError> {
    let messages: Vec<Value> = messages.iter().map(Message::to_template_value).collect();
    let tools: Vec<Value> = tools.iter().map(ToolSpec::to_openai).collect();
    render_values(template, &messages, &tools, opts, info)
}

/// Same as [`render`] for messages already in template shape (tests build odd ones by hand).
pub fn render_values(
    template: &str,
    messages: &[Value],
    tools: &[Value],
    opts: RenderOptions,
    info: &TemplateInfo,
) -> Result<String, RenderError> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", raise_exception);
    // minijinja has no negative-step slices; templates use `[::-1]` only to reverse.
    let template = template.replace("[::-1]", "|reverse");
    env.add_template("chat", &template)
        .map_err(|e| RenderError::Template(e.to_string()))?;
    let tmpl = env
        .get_template("chat")
        .map_err(|e| RenderError::Template(e.to_string()))?;
    let mut ctx = serde_json::Map::new();
    ctx.insert("messages".into(), Value::Array(messages.to_vec()));
    ctx.insert(
        "tools".into(),
        if tools.is_empty() {
            Value::Null
        } else {
            Value::Array(tools.to_vec())
        },
    );
    ctx.insert(
        "add_generation_prompt".into(),
        Value::Bool(opts.add_generation_prompt),
    );
    if let Some(t) = opts.enable_thinking {
        ctx.insert("enable_thinking".into(), Value::Bool(t));
    }
    for (key, tok) in [
        ("bos_token", &info.bos_token),
        ("eos_token", &info.eos_token),
    ] {
        ctx.insert(key.into(), Value::String(tok.clone().unwrap_or_default()));
    }
    tmpl.render(JValue::from_serialize(&ctx))
        .map_err(|e| RenderError::Template(format!("{e:#}")))
}
