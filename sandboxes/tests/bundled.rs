//! The bundled tools under wasmtime: the answers small models get wrong, right.

use std::sync::Arc;

use agent_sandboxes::{Policy, Sandbox, WasmComponent, bundled};
use serde_json::{Value, json};

async fn load(name: &str) -> Arc<WasmComponent> {
    let sandbox = Arc::new(Sandbox::new(None).unwrap());
    let component = sandbox.compile(name, bundled::get(name).unwrap().to_vec()).await.unwrap();
    WasmComponent::load(sandbox, name, component, Policy::default()).await.unwrap()
}

async fn call(c: &WasmComponent, tool: &str, args: Value) -> Value {
    let out = c.call(tool, &args).await;
    assert!(!out.is_error, "{tool} {args}: {}", out.content);
    out.structured.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn text_counts_like_a_reader() {
    let text = load("text").await;
    let names: Vec<&str> = text.specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["text__count", "text__length"]);
    let count = |t: &str, f: &str| json!({"text": t, "find": f});
    assert_eq!(call(&text, "count", count("strawberry", "r")).await["count"], 3);
    assert_eq!(call(&text, "count", count("strawberry", "rr")).await["count"], 1);
    assert_eq!(call(&text, "count", count("Mississippi", "ss")).await["count"], 2);
    assert_eq!(call(&text, "count", json!({"text": "Rhubarb RR", "find": "r", "ignore_case": true})).await["count"], 4);
    // One reader's character: e + combining acute is one "é", not an "e".
    assert_eq!(call(&text, "count", count("cafe\u{301} e", "e")).await["count"], 1);
    assert_eq!(call(&text, "count", count("草莓有几个草", "草")).await["count"], 2);
    let len = call(&text, "length", json!({"text": "👩‍👩‍👧 héllo"})).await;
    assert_eq!((len["characters"].as_u64(), len["words"].as_u64()), (Some(7), Some(1)));
    let out = text.call("count", &json!({"text": "abc", "find": ""})).await;
    assert!(out.is_error && out.content.contains("`find` is empty"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn number_compares_decimals_exactly() {
    let number = load("number").await;
    let cmp = call(&number, "compare", json!({"a": "9.8", "b": "9.11"})).await;
    assert_eq!(cmp, json!({"a": "9.8", "b": "9.11", "relation": ">", "larger": "9.8", "statement": "9.8 > 9.11"}));
    assert_eq!(call(&number, "compare", json!({"a": "3.10", "b": "3.1"})).await["relation"], "=");
    assert_eq!(call(&number, "compare", json!({"a": "-9.8", "b": "-9.11"})).await["larger"], "-9.11");
    assert_eq!(call(&number, "compare", json!({"a": "100000000000000000001", "b": "1e20"})).await["relation"], ">");
    let sorted = call(&number, "sort", json!({"numbers": ["9.11", "9.8", "9.9", "10", "-1", "9.10"]})).await;
    assert_eq!(sorted["sorted"], json!(["-1", "9.10", "9.11", "9.8", "9.9", "10"]));
    let out = number.call("compare", &json!({"a": "9.8.1", "b": "1"})).await;
    assert!(out.is_error && out.content.contains("`9.8.1` is not a decimal number"), "{out:?}");
}
