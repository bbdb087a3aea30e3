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
    assert_eq!(call(&text, "count", count("strawberry", "r")).await, json!("\"r\" occurs 3 times in \"strawberry\" (at characters 3, 8, 9). The count is 3."));
    let n = |v: Value| v.as_str().unwrap().rsplit("The count is ").next().unwrap().trim_end_matches('.').parse::<u64>().unwrap();
    assert_eq!(n(call(&text, "count", count("strawberry", "rr")).await), 1);
    assert_eq!(n(call(&text, "count", count("Mississippi", "ss")).await), 2);
    assert_eq!(n(call(&text, "count", json!({"text": "Rhubarb RR", "find": "r", "ignore_case": true})).await), 4);
    // One reader's character: e + combining acute is one "é", not an "e".
    assert_eq!(n(call(&text, "count", count("cafe\u{301} e", "e")).await), 1);
    assert_eq!(n(call(&text, "count", count("草莓有几个草", "草")).await), 2);
    assert_eq!(n(call(&text, "count", count("banana", "x")).await), 0);
    let len = call(&text, "length", json!({"text": "👩‍👩‍👧 héllo"})).await;
    assert_eq!((len["characters"].as_u64(), len["words"].as_u64()), (Some(7), Some(1)));
    let out = text.call("count", &json!({"text": "abc", "find": ""})).await;
    assert!(out.is_error && out.content.contains("`find` is empty"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn number_compares_decimals_exactly() {
    let number = load("number").await;
    let cmp = |a: &str, b: &str| json!({"a": a, "b": b});
    assert_eq!(call(&number, "compare", cmp("9.8", "9.11")).await, json!("9.8 is larger than 9.11 (9.8 > 9.11). The larger number is 9.8."));
    assert_eq!(call(&number, "compare", cmp("9.11", "9.8")).await, json!("9.8 is larger than 9.11 (9.11 < 9.8). The larger number is 9.8."));
    assert_eq!(call(&number, "compare", cmp("3.10", "3.1")).await, json!("3.10 and 3.1 are equal (3.10 = 3.1)."));
    assert_eq!(call(&number, "compare", cmp("-9.8", "-9.11")).await, json!("-9.11 is larger than -9.8 (-9.8 < -9.11). The larger number is -9.11."));
    assert!(call(&number, "compare", cmp("100000000000000000001", "1e20")).await.as_str().unwrap().ends_with("The larger number is 100000000000000000001."));
    let sorted = call(&number, "sort", json!({"numbers": ["9.11", "9.8", "9.9", "10", "-1", "9.10"]})).await;
    assert_eq!(sorted["sorted"], json!(["-1", "9.10", "9.11", "9.8", "9.9", "10"]));
    let out = number.call("compare", &json!({"a": "9.8.1", "b": "1"})).await;
    assert!(out.is_error && out.content.contains("`9.8.1` is not a decimal number"), "{out:?}");
}
