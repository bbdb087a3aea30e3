//! agent patch 11: `config.json` as transformers 5 writes it, for the 4.x field names the model
//! configs here read. transformers 5 (every fine-tune saved since) moved `rope_theta` and
//! `rope_scaling` into `rope_parameters`, renamed Qwen3-MoE's `num_experts` to
//! `num_local_experts`, stopped writing Qwen3-MoE's `max_window_layers`, and writes Llama 4's
//! `attn_temperature_tuning` as a bool; without this a model saved today fails to load with
//! "missing field `rope_theta`" (or, for Llama 4, "invalid type: boolean `true`"). Tested end
//! to end by tests/e2e_published.rs (the vendored crate's own tests are not run).

use serde_json::{Map, Value};

/// The config text with the 4.x names filled in wherever only the 5.x ones are present
/// (nested configs such as Llama 4's `text_config` included). Text that is not a JSON object
/// is returned unchanged, for the model's own parser to report.
pub(crate) fn normalize(raw: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(raw) else {
        return raw.to_string();
    };
    if !normalize_value(&mut value) {
        return raw.to_string();
    }
    serde_json::to_string(&value).unwrap_or_else(|_| raw.to_string())
}

fn normalize_value(value: &mut Value) -> bool {
    let Value::Object(o) = value else {
        return false;
    };
    let mut changed = normalize_object(o);
    for child in o.values_mut() {
        changed |= normalize_value(child);
    }
    changed
}

fn normalize_object(o: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    if let Some(Value::Object(rope)) = o.get("rope_parameters").cloned() {
        if !o.contains_key("rope_theta") {
            if let Some(theta) = rope.get("rope_theta") {
                o.insert("rope_theta".into(), theta.clone());
                changed = true;
            }
        }
        let scaled = rope
            .get("rope_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "default");
        if scaled && o.get("rope_scaling").is_none_or(Value::is_null) {
            let mut scaling = rope.clone();
            scaling.remove("rope_theta");
            o.insert("rope_scaling".into(), Value::Object(scaling));
            changed = true;
        }
    }
    let qwen3_moe = o.get("model_type").and_then(Value::as_str) == Some("qwen3_moe");
    if qwen3_moe {
        if !o.contains_key("num_experts") {
            if let Some(n) = o.get("num_local_experts").cloned() {
                o.insert("num_experts".into(), n);
                changed = true;
            }
        }
        // 4.x's default placed no layer past the window (and the window is off unless
        // `use_sliding_window`).
        if !o.contains_key("max_window_layers") {
            if let Some(n) = o.get("num_hidden_layers").cloned() {
                o.insert("max_window_layers".into(), n);
                changed = true;
            }
        }
    }
    // Llama 4: transformers 5 declares `attn_temperature_tuning` a bool and writes `true`
    // where the releases have 4; the model config here reads a number and acts only on
    // whether it is set.
    if o.get("model_type").and_then(Value::as_str) == Some("llama4_text") {
        if let Some(&Value::Bool(on)) = o.get("attn_temperature_tuning") {
            let value = if on { Value::from(4.0) } else { Value::Null };
            o.insert("attn_temperature_tuning".into(), value);
            changed = true;
        }
    }
    changed
}
