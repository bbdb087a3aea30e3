//! Typed tools: components that export WIT functions, with JSON Schemas derived from the WIT
//! types and descriptions from the WIT's doc comments. The guest `tools/shapes` has a function
//! over every kind of type; a component written here in WebAssembly text has no embedded WIT.

use std::path::Path;
use std::sync::Arc;

use agent_sandboxes::{Policy, Sandbox, WasmComponent};
use agent_tools::validate_arguments;
use serde_json::{Value, json};

async fn shapes() -> Arc<WasmComponent> {
    let sandbox = Arc::new(Sandbox::new(None).unwrap());
    let bytes =
        std::fs::read(Path::new(agent_sandboxes::built_guests_dir()).join("shapes.wasm")).unwrap();
    let c = sandbox.compile("shapes", bytes).await.unwrap();
    WasmComponent::load(sandbox, "shapes", c, Policy::default())
        .await
        .unwrap()
}

fn spec<'a>(c: &'a WasmComponent, name: &str) -> &'a agent_tools::ToolSpec {
    c.specs()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no {name} in {:?}",
                c.specs().iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_come_from_wit_types_and_docs() {
    let c = shapes().await;
    let names: Vec<&str> = c.specs().iter().map(|s| s.name.as_str()).collect();
    // The function taking a resource is left out; top-level and interface functions are in.
    assert_eq!(
        names,
        [
            "shapes__ping",
            "shapes__fail",
            "shapes__show",
            "shapes__diagonal",
            "shapes__mirror"
        ]
    );
    assert_eq!(spec(&c, "shapes__ping").description, "Answers pong.");
    let show = spec(&c, "shapes__show");
    assert_eq!(
        show.description,
        "Say what every argument was, in one line."
    );
    let int = |min: i64, max: u64| json!({"type": "integer", "minimum": min, "maximum": max});
    let point = json!({
        "type": "object",
        "properties": {
            "x": {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX, "description": "Across, from the left."},
            "y": {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX},
            "label": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "A name to show beside it."},
        },
        "required": ["x", "y"],
        "additionalProperties": false,
        "description": "A point on a plane.",
    });
    let expected = json!({
        "type": "object",
        "properties": {
            "p": point,
            "c": {"type": "string", "enum": ["red", "green", "blue"], "description": "A color. green: The color of grass."},
            "s": {"anyOf": [
                {"type": "object", "properties": {"circle": int(0, u32::MAX as u64)}, "required": ["circle"], "additionalProperties": false, "description": "A circle of this radius."},
                {"type": "object", "properties": {"square": point}, "required": ["square"], "additionalProperties": false},
                {"const": "nothing"},
            ], "description": "Something to draw."},
            "f": {"type": "array", "items": {"type": "string", "enum": ["read", "write", "exec"]}},
            "t": {"type": "array", "prefixItems": [int(0, 255), {"type": "string"}], "items": false, "minItems": 2, "maxItems": 2},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "big": int(0, u64::MAX),
            "ch": {"type": "string", "minLength": 1, "maxLength": 1},
            "ratio": {"type": "number"},
        },
        "required": ["p", "c", "s", "f", "t", "tags", "big", "ch", "ratio"],
        "additionalProperties": false,
    });
    assert_eq!(show.parameters, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_and_results_cross_as_json() {
    let c = shapes().await;
    let args = json!({
        "p": {"x": -3, "y": 4, "label": "A"},
        "c": "green",
        "s": {"square": {"x": 1, "y": 2}},
        "f": ["read", "exec", "read"],
        "t": [7, "seven"],
        "tags": ["a", "b"],
        "big": u64::MAX,
        "ch": "字",
        "ratio": 0.5,
    });
    // The schema the model is constrained by accepts what the guest accepts.
    validate_arguments(&spec(&c, "shapes__show").parameters, &args).unwrap();
    let out = c.call("show", &args).await;
    assert_eq!(
        (out.content.as_str(), out.is_error),
        (
            r#"Point { x: -3, y: 4, label: Some("A") } Color::Green Shape::Square(Point { x: 1, y: 2, label: None }) Perms(READ | EXEC) (7, "seven") ["a", "b"] None 18446744073709551615 字 0.5"#,
            false
        )
    );
    let out = c.call("diagonal", &json!({"n": 2})).await;
    assert_eq!(
        out.structured,
        Some(json!([{"x": 0, "y": 0, "label": "origin"}, {"x": 1, "y": 1, "label": null}]))
    );
    // `result` errors are tool errors, strings as they are, anything else as JSON.
    let out = c.call("diagonal", &json!({"n": 9})).await;
    assert_eq!(
        (out.content.as_str(), out.is_error),
        ("9 is more than 3", true)
    );
    let out = c.call("fail", &json!({})).await;
    assert_eq!(
        (out.content.as_str(), out.is_error),
        (r#"{"code":7,"why":"on purpose"}"#, true)
    );
    let out = c.call("mirror", &json!({"s": "nothing", "c": null})).await;
    assert_eq!(out.structured, Some(json!(["nothing", null])));
    let out = c.call("mirror", &json!({"s": {"circle": 5}})).await;
    assert_eq!(out.structured, Some(json!([{"circle": 5}, null])));
    assert_eq!(c.call("ping", &json!({})).await.content, "pong");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_are_named() {
    let c = shapes().await;
    let cases: [(&str, Value, &str); 6] = [
        (
            "diagonal",
            json!({"n": 300}),
            "invalid arguments: `n`: expected a whole number from 0 to 255, found 300",
        ),
        ("diagonal", json!({}), "invalid arguments: `n` is missing"),
        (
            "diagonal",
            json!({"n": 1, "m": 2}),
            "invalid arguments: unknown argument `m`",
        ),
        (
            "mirror",
            json!({"s": "hexagon"}),
            "invalid arguments: `s`: `hexagon` is not one of circle, square, nothing",
        ),
        (
            "mirror",
            json!({"s": "circle"}),
            "invalid arguments: `s`: the case `circle` needs a value: {\"circle\": ...}",
        ),
        (
            "mirror",
            json!({"s": {"square": {"x": 1}}}),
            "invalid arguments: `s.square`: the field `y` is missing",
        ),
    ];
    for (tool, args, want) in cases {
        let out = c.call(tool, &args).await;
        assert_eq!(
            (out.content.as_str(), out.is_error),
            (want, true),
            "{tool} {args}"
        );
    }
}

/// A typed component written by hand, with no embedded WIT: tools without descriptions, and a
/// table that grows until the limit stops it.
#[tokio::test(flavor = "multi_thread")]
async fn components_without_docs_and_table_growth() {
    let wat = r#"
        (component
          (core module $m
            (table $t 1 funcref)
            (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
            (func (export "grow") (result i32)
              (loop $again
                (br_if $again (i32.ne (table.grow $t (ref.null func) (i32.const 10000)) (i32.const -1))))
              (table.size $t)))
          (core instance $i (instantiate $m))
          (func (export "add") (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
          (func (export "grow-table") (result u32) (canon lift (core func $i "grow"))))
    "#;
    let sandbox = Arc::new(Sandbox::new(None).unwrap());
    let compiled = sandbox
        .compile("adder", wat::parse_str(wat).unwrap())
        .await
        .unwrap();
    let c = WasmComponent::load(sandbox.clone(), "adder", compiled, Policy::default())
        .await
        .unwrap();
    let add = spec(&c, "adder__add");
    assert_eq!(add.description, "");
    assert_eq!(add.parameters["required"], json!(["a", "b"]));
    assert_eq!(c.call("add", &json!({"a": 2, "b": 3})).await.content, "5");
    let out = c.call("grow_table", &json!({})).await;
    assert!(
        out.is_error
            && out
                .content
                .starts_with("the tool's tables grew past their limit of 20000 elements"),
        "{out:?}"
    );
    assert_eq!(c.call("add", &json!({"a": 2, "b": 3})).await.content, "5");
    // A table declared bigger than the limit cannot be instantiated at all.
    let wat = r#"
        (component
          (core module $m (table 200000 funcref) (func (export "f") (result i32) (i32.const 1)))
          (core instance $i (instantiate $m))
          (func (export "f") (result u32) (canon lift (core func $i "f"))))
    "#;
    // With the pooling allocator it is refused at compile time; allocating per call, at the call.
    match sandbox.compile("wide", wat::parse_str(wat).unwrap()).await {
        Err(e) => assert!(
            e.to_string()
                .contains("table index 0 has a minimum element size of 200000"),
            "{e}"
        ),
        Ok(compiled) => {
            let c = WasmComponent::load(sandbox.clone(), "wide", compiled, Policy::default())
                .await
                .unwrap();
            let out = c.call("f", &json!({})).await;
            assert!(out.is_error && out.content.contains("table"), "{out:?}");
        }
    }
    // A component with nothing callable is refused, saying why.
    let wat = r#"(component)"#;
    let compiled = sandbox
        .compile("empty", wat::parse_str(wat).unwrap())
        .await
        .unwrap();
    let e = WasmComponent::load(sandbox, "empty", compiled, Policy::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "empty: offers no tools: it exports neither `agent:tool/json` nor functions with JSON-compatible types"
    );
}
