//! The bundled tools under wasmtime: the answers small models get wrong, right.

use std::sync::Arc;

use agent_sandboxes::{Policy, Sandbox, WasmComponent, bundled};
use serde_json::{Value, json};

async fn load(name: &str) -> Arc<WasmComponent> {
    let sandbox = Arc::new(Sandbox::new(None).unwrap());
    let component = sandbox
        .compile(name, bundled::get(name).unwrap().to_vec())
        .await
        .unwrap();
    WasmComponent::load(sandbox, name, component, Policy::default())
        .await
        .unwrap()
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
    assert_eq!(
        call(&text, "count", count("strawberry", "r")).await,
        json!("\"r\" occurs 3 times in \"strawberry\" (at characters 3, 8, 9). The count is 3.")
    );
    let n = |v: Value| {
        v.as_str()
            .unwrap()
            .rsplit("The count is ")
            .next()
            .unwrap()
            .trim_end_matches('.')
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(n(call(&text, "count", count("strawberry", "rr")).await), 1);
    assert_eq!(n(call(&text, "count", count("Mississippi", "ss")).await), 2);
    assert_eq!(
        n(call(
            &text,
            "count",
            json!({"text": "Rhubarb RR", "find": "r", "ignore_case": true})
        )
        .await),
        4
    );
    // One reader's character: e + combining acute is one "é", not an "e".
    assert_eq!(
        n(call(&text, "count", count("cafe\u{301} e", "e")).await),
        1
    );
    assert_eq!(
        n(call(&text, "count", count("草莓有几个草", "草")).await),
        2
    );
    assert_eq!(n(call(&text, "count", count("banana", "x")).await), 0);
    let len = call(&text, "length", json!({"text": "👩‍👩‍👧 héllo"})).await;
    assert_eq!(
        (len["characters"].as_u64(), len["words"].as_u64()),
        (Some(7), Some(1))
    );
    let out = text
        .call("count", &json!({"text": "abc", "find": ""}))
        .await;
    assert!(
        out.is_error && out.content.contains("`find` is empty"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn number_compares_decimals_exactly() {
    let number = load("number").await;
    let cmp = |a: &str, b: &str| json!({"a": a, "b": b});
    assert_eq!(
        call(&number, "compare", cmp("9.8", "9.11")).await,
        json!("9.8 is larger than 9.11 (9.8 > 9.11). The larger number is 9.8.")
    );
    assert_eq!(
        call(&number, "compare", cmp("9.11", "9.8")).await,
        json!("9.8 is larger than 9.11 (9.11 < 9.8). The larger number is 9.8.")
    );
    assert_eq!(
        call(&number, "compare", cmp("3.10", "3.1")).await,
        json!("3.10 and 3.1 are equal (3.10 = 3.1).")
    );
    assert_eq!(
        call(&number, "compare", cmp("-9.8", "-9.11")).await,
        json!("-9.11 is larger than -9.8 (-9.8 < -9.11). The larger number is -9.11.")
    );
    assert!(
        call(&number, "compare", cmp("100000000000000000001", "1e20"))
            .await
            .as_str()
            .unwrap()
            .ends_with("The larger number is 100000000000000000001.")
    );
    let sorted = call(
        &number,
        "sort",
        json!({"numbers": ["9.11", "9.8", "9.9", "10", "-1", "9.10"]}),
    )
    .await;
    assert_eq!(
        sorted["sorted"],
        json!(["-1", "9.10", "9.11", "9.8", "9.9", "10"])
    );
    let out = number
        .call("compare", &json!({"a": "9.8.1", "b": "1"}))
        .await;
    assert!(
        out.is_error && out.content.contains("`9.8.1` is not a decimal number"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calc_is_exact() {
    let calc = load("calc").await;
    let spec = &calc.specs()[0];
    assert_eq!(spec.name, "calc__evaluate");
    assert!(
        spec.description
            .starts_with("Evaluate an arithmetic expression exactly"),
        "{}",
        spec.description
    );
    assert_eq!(spec.parameters["required"], json!(["expression"]));
    assert_eq!(
        call(&calc, "evaluate", json!({"expression": "0.1 + 0.2"})).await,
        json!("0.1 + 0.2 = 0.3")
    );
    assert_eq!(
        call(
            &calc,
            "evaluate",
            json!({"expression": "(9.8 - 9.11) * 100"})
        )
        .await,
        json!("(9.8 - 9.11) * 100 = 69")
    );
    assert_eq!(
        call(
            &calc,
            "evaluate",
            json!({"expression": "2/3", "decimal_places": 4})
        )
        .await,
        json!("2/3 ≈ 0.6667 (exactly 2/3)")
    );
    let out = calc.call("evaluate", &json!({"expression": "1 / 0"})).await;
    assert_eq!(
        (out.content.as_str(), out.is_error),
        ("division by zero", true)
    );
    let out = calc.call("evaluate", &json!({"expression": "3 +"})).await;
    assert_eq!(
        (out.content.as_str(), out.is_error),
        (
            "the expression ends too early: expected a number or `(`",
            true
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_queries_documents() {
    let j = load("json").await;
    let doc = r#"{"users": [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}]}"#;
    let q = |path: &str| json!({"document": doc, "path": path});
    assert_eq!(
        call(&j, "query", q("$.users[?(@.age > 40)].name")).await,
        json!("\"Alan\"")
    );
    assert_eq!(
        call(&j, "query", q("$..name")).await,
        json!(r#"["Ada","Alan"]"#)
    );
    let out = j.call("query", &q("$.people")).await;
    assert_eq!(
        (out.content.as_str(), out.is_error),
        (
            "no match for `$.people`: the document is an object with keys `users`",
            true
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn files_work_within_their_preopens_only() {
    let base = std::env::temp_dir().join(format!("agent-files-tool-{}", std::process::id()));
    let (ro, rw) = (base.join("ro"), base.join("rw"));
    std::fs::create_dir_all(ro.join("sub")).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(
        ro.join("notes.txt"),
        "alpha\nThe secret word is heron.\nomega\n",
    )
    .unwrap();
    std::fs::write(ro.join("sub/more.txt"), "nothing\nanother SECRET here\n").unwrap();
    std::fs::write(base.join("outside.txt"), "secret outside").unwrap();
    let policy = Policy {
        preopens: vec![
            agent_sandboxes::Preopen {
                host: ro.clone(),
                guest: "/data".into(),
                mode: agent_sandboxes::Mode::ReadOnly,
            },
            agent_sandboxes::Preopen {
                host: rw.clone(),
                guest: "/out".into(),
                mode: agent_sandboxes::Mode::ReadWrite,
            },
        ],
        ..Policy::default()
    }
    .checked()
    .unwrap();
    let sandbox = Arc::new(Sandbox::new(None).unwrap());
    let compiled = sandbox
        .compile("files", bundled::get("files").unwrap().to_vec())
        .await
        .unwrap();
    let f = WasmComponent::load(sandbox, "files", compiled, policy)
        .await
        .unwrap();
    let names: Vec<&str> = f.specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "files__list",
            "files__read",
            "files__search",
            "files__write"
        ]
    );
    assert_eq!(
        call(&f, "list", json!({"path": "/data"})).await,
        json!([{"name": "notes.txt", "kind": "file", "size": 38}, {"name": "sub", "kind": "directory", "size": 0}])
    );
    assert_eq!(
        call(
            &f,
            "read",
            json!({"path": "/data/notes.txt", "offset": 6, "max_bytes": 10})
        )
        .await,
        json!("The secret\n[read bytes 6..16 of 38; pass offset 16 for more]")
    );
    assert_eq!(
        call(
            &f,
            "search",
            json!({"path": "/data", "text": "secret", "ignore_case": true})
        )
        .await,
        json!([{"path": "/data/notes.txt", "line": 2, "text": "The secret word is heron."}, {"path": "/data/sub/more.txt", "line": 2, "text": "another SECRET here"}])
    );
    assert_eq!(
        call(
            &f,
            "write",
            json!({"path": "/out/answer.txt", "content": "heron"})
        )
        .await,
        json!("created /out/answer.txt (5 bytes)")
    );
    assert_eq!(
        std::fs::read_to_string(rw.join("answer.txt")).unwrap(),
        "heron"
    );
    let out = f
        .call(
            "write",
            &json!({"path": "/out/answer.txt", "content": "again"}),
        )
        .await;
    assert!(
        out.is_error && out.content.starts_with("cannot write /out/answer.txt"),
        "{out:?}"
    );
    call(
        &f,
        "write",
        json!({"path": "/out/answer.txt", "content": "!", "mode": "append"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(rw.join("answer.txt")).unwrap(),
        "heron!"
    );
    // Outside the preopens, and writing in the read-only one: refused by the sandbox.
    for (tool, args) in [
        ("read", json!({"path": "/data/../outside.txt"})),
        ("read", json!({"path": "/etc/passwd"})),
        ("list", json!({"path": "/"})),
        ("write", json!({"path": "/data/new.txt", "content": "x"})),
    ] {
        let out = f.call(tool, &args).await;
        assert!(
            out.is_error && out.content.starts_with("cannot "),
            "{tool} {args}: {out:?}"
        );
    }
    // A granted directory that is gone fails the call, naming it; the tool never runs as if
    // the directory were empty.
    std::fs::remove_dir_all(&rw).unwrap();
    let out = f.call("list", &json!({"path": "/data"})).await;
    assert!(out.is_error, "{out:?}");
    assert!(
        out.content.starts_with(&format!(
            "cannot open the granted directory {} (the tool's /out): ",
            rw.display()
        )),
        "{out:?}"
    );
    std::fs::remove_dir_all(&base).unwrap();
}
