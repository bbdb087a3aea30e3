//! Hostile guests: each attack ends in a clear error within its limits, the host is unharmed
//! and the next call works. The guest is `tools/hostile` (and `tools/net`), built by build.rs;
//! a few components are written here as WebAssembly text.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_sandboxes::{LoadError, Mode, Policy, Preopen, Sandbox, WasmComponent};
use serde_json::json;

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(agent_sandboxes::built_guests_dir()).join(format!("{name}.wasm")))
        .unwrap()
}

async fn hostile(policy: Policy) -> Arc<WasmComponent> {
    let sandbox = Arc::new(Sandbox::new(None).unwrap());
    let c = sandbox.compile("hostile", guest("hostile")).await.unwrap();
    WasmComponent::load(sandbox, "hostile", c, policy.checked().unwrap())
        .await
        .unwrap()
}

async fn err(c: &WasmComponent, tool: &str, args: serde_json::Value) -> String {
    let out = c.call(tool, &args).await;
    assert!(out.is_error, "{tool} succeeded: {}", out.content);
    out.content
}

async fn still_works(c: &WasmComponent) {
    let out = c.call("calls", &json!({})).await;
    // A fresh instance per call: the counter never sees an earlier call.
    assert_eq!((out.content.as_str(), out.is_error), ("1", false));
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_wall_memory_stack_and_traps() {
    let c = hostile(Policy {
        cpu_ms: 200,
        wall_ms: 1_000,
        memory_bytes: 16 << 20,
        ..Policy::default()
    })
    .await;
    let t = Instant::now();
    assert_eq!(
        err(&c, "spin", json!({})).await,
        "stopped after 200 ms of CPU time (the tool's limit)"
    );
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    // Blocked in a host call (a sleep): epochs cannot stop it, the wall clock does.
    let t = Instant::now();
    assert_eq!(
        err(&c, "sleep", json!({"ms": 60_000})).await,
        "stopped after 1000 ms of wall-clock time (the tool's limit)"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let before = rss_kib();
    let e = err(&c, "grow", json!({"mib": 64})).await;
    assert!(e.contains("16 MiB") || e.contains("crashed"), "{e}");
    assert!(
        rss_kib() < before + 32 * 1024,
        "host memory grew: {} -> {} KiB",
        before,
        rss_kib()
    );
    assert_eq!(
        err(&c, "recurse", json!({"depth": 100_000_000u64})).await,
        "the tool overflowed its stack (too deep a recursion)"
    );
    assert!(
        err(&c, "trap", json!({}))
            .await
            .starts_with("the tool crashed")
    );
    still_works(&c).await;
    still_works(&c).await;
}

fn tree() -> (PathBuf, PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!(
        "agent-sandbox-fs-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let (ro, rw) = (base.join("ro"), base.join("rw"));
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("keep.txt"), "keep me").unwrap();
    std::fs::write(base.join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), ro.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc", ro.join("etc")).unwrap();
    (base, ro, rw)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread")]
async fn files_stay_inside_their_preopens() {
    let (base, ro, rw) = tree();
    let policy = Policy {
        preopens: vec![
            Preopen {
                host: ro.clone(),
                guest: "/ro".into(),
                mode: Mode::ReadOnly,
            },
            Preopen {
                host: rw.clone(),
                guest: "/rw".into(),
                mode: Mode::ReadWrite,
            },
        ],
        ..Policy::default()
    };
    let c = hostile(policy).await;
    assert_eq!(
        c.call("read", &json!({"path": "/ro/keep.txt"}))
            .await
            .content,
        "keep me"
    );
    for path in [
        "/etc/passwd",
        "/ro/../secret.txt",
        "/ro/../../etc/passwd",
        "/ro/link",
        "/ro/link/",
        "/ro/etc/passwd",
        "/ro/etc/",
        "/rw/../ro/keep.txt/..",
    ] {
        let e = err(&c, "read", json!({"path": path})).await;
        assert!(e.starts_with("io error"), "{path}: {e}");
    }
    assert!(
        err(&c, "list", json!({"path": "/ro/etc"}))
            .await
            .starts_with("io error")
    );
    // Read-only means read-only: no write, no truncate, no link or rename out of it.
    assert!(
        err(&c, "write", json!({"path": "/ro/new.txt", "text": "x"}))
            .await
            .starts_with("io error")
    );
    assert!(
        err(&c, "truncate", json!({"path": "/ro/keep.txt"}))
            .await
            .starts_with("io error")
    );
    assert!(
        err(
            &c,
            "hardlink",
            json!({"from": "/ro/keep.txt", "to": "/rw/stolen.txt"})
        )
        .await
        .starts_with("io error")
    );
    assert!(
        err(
            &c,
            "rename",
            json!({"from": "/ro/keep.txt", "to": "/rw/moved.txt"})
        )
        .await
        .starts_with("io error")
    );
    assert_eq!(
        std::fs::read_to_string(ro.join("keep.txt")).unwrap(),
        "keep me"
    );
    assert!(!rw.join("stolen.txt").exists() && !rw.join("moved.txt").exists());
    // Read-write works where granted.
    assert_eq!(
        c.call("write", &json!({"path": "/rw/note.txt", "text": "hi"}))
            .await
            .content,
        "written"
    );
    assert_eq!(std::fs::read_to_string(rw.join("note.txt")).unwrap(), "hi");
    // Handles are capped.
    let e = err(
        &c,
        "handles",
        json!({"path": "/ro/keep.txt", "count": 100_000}),
    )
    .await;
    assert_eq!(
        e,
        "the tool opened more than 1000 files or streams at once (its limit)"
    );
    still_works(&c).await;
    std::fs::remove_dir_all(&base).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_output_and_results() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe {
        std::env::set_var("AGENT_TEST_GRANTED", "yes");
        std::env::set_var("AGENT_TEST_SECRET", "no");
    }
    let c = hostile(Policy {
        env: vec!["AGENT_TEST_GRANTED".into()],
        memory_bytes: 256 << 20,
        output_bytes: 1000,
        stdio_bytes: 4096,
        ..Policy::default()
    })
    .await;
    assert_eq!(
        c.call("env", &json!({"name": "AGENT_TEST_GRANTED"}))
            .await
            .content,
        "yes"
    );
    assert!(
        err(&c, "env", json!({"name": "AGENT_TEST_SECRET"}))
            .await
            .contains("not found")
    );
    // 1 GiB to stdout stops at the pipe's cap.
    let t = Instant::now();
    let e = err(&c, "print", json!({"bytes": 1u64 << 30})).await;
    assert!(e.contains("stdout") || e.contains("output"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // A 100 MB result cannot even be built within the memory cap; a 2 MB one is cut to the
    // output cap.
    let e = err(&c, "big", json!({"bytes": 100_000_000})).await;
    assert!(
        e.starts_with("the tool needs more memory than its limit of 256 MiB"),
        "{e}"
    );
    let out = c.call("big", &json!({"bytes": 2_000_000})).await;
    assert!(
        out.content.len() < 1200
            && out
                .content
                .contains("[output cut: showed 1000 of 2000000 bytes]"),
        "{}",
        &out.content[..100.min(out.content.len())]
    );
    assert!(
        err(&c, "bad_json", json!({}))
            .await
            .starts_with("the tool returned text that is not JSON")
    );
    let e = err(&c, "bad_utf8", json!({})).await;
    assert!(e.contains("utf-8") || e.contains("UTF-8"), "{e}");
    still_works(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn components_that_are_refused_at_load() {
    let sandbox = Arc::new(Sandbox::new(None).unwrap());
    // Network: importing wasi:sockets is enough.
    let net = sandbox.compile("net", guest("net")).await.unwrap();
    let e = WasmComponent::load(sandbox.clone(), "net", net, Policy::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("imports `wasi:sockets/") && e.contains("network access is not granted"),
        "{e}"
    );
    // A function the host does not provide.
    let wat = r#"(component (import "evil:host/steal" (instance (export "grab" (func)))))"#;
    let c = sandbox
        .compile("evil", wat::parse_str(wat).unwrap())
        .await
        .unwrap();
    let e = WasmComponent::load(sandbox.clone(), "evil", c, Policy::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "evil: imports `evil:host/steal`: the host does not provide it"
    );
    // Not a component: a core module, and garbage.
    let e = sandbox
        .compile("core", wat::parse_str("(module)").unwrap())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, LoadError::Invalid { .. }), "{e}");
    let e = sandbox
        .compile("garbage", b"\0asm garbage".to_vec())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, LoadError::Invalid { .. }), "{e}");
    // Too big to compile.
    let e = sandbox
        .compile("huge", vec![0u8; agent_sandboxes::MAX_COMPONENT_BYTES + 1])
        .await
        .err()
        .unwrap();
    assert!(matches!(e, LoadError::TooBig { .. }), "{e}");
    // A guest whose declared minimum memory is above the policy's cap cannot start: refused at
    // load, clearly (the Rust guest's linear memory starts at more than 64 KiB).
    let c = sandbox.compile("hostile", guest("hostile")).await.unwrap();
    let e = WasmComponent::load(
        sandbox.clone(),
        "hostile",
        c,
        Policy {
            memory_bytes: 64 << 10,
            ..Policy::default()
        },
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.starts_with("hostile: describe failed: the tool needs more memory than its limit"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compile_cache_refuses_tampered_code() {
    let dir = std::env::temp_dir().join(format!(
        "agent-sandbox-cache-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let sandbox = Arc::new(Sandbox::new(Some(&dir)).unwrap());
    let c = sandbox.compile("hostile", guest("hostile")).await.unwrap();
    let _ = c;
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    // Flip bytes in the cached machine code: the next load must not trust it.
    let mut code = std::fs::read(&entry).unwrap();
    let mid = code.len() / 2;
    for b in &mut code[mid..mid + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&entry, &code).unwrap();
    let c = sandbox.compile("hostile", guest("hostile")).await.unwrap();
    let loaded = WasmComponent::load(sandbox.clone(), "hostile", c, Policy::default())
        .await
        .unwrap();
    still_works(&loaded).await;
    assert_ne!(
        std::fs::read(&entry).unwrap(),
        code,
        "the tampered entry was replaced"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Call 2 cannot see call 1's scratch files (nor its memory: `still_works`), and nothing is
/// left on the host after a call.
#[tokio::test(flavor = "multi_thread")]
async fn scratch_files_do_not_outlive_their_call() {
    let c = hostile(Policy {
        scratch: true,
        ..Policy::default()
    })
    .await;
    assert_eq!(
        c.call(
            "write",
            &json!({"path": "/tmp/left.txt", "text": "from call 1"})
        )
        .await
        .content,
        "written"
    );
    let e = err(&c, "read", json!({"path": "/tmp/left.txt"})).await;
    assert!(
        e.starts_with("io error") && e.contains("No such file"),
        "{e}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("agent-scratch-{}-", std::process::id()))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Without a scratch directory there is no /tmp at all.
    let c = hostile(Policy::default()).await;
    assert!(
        err(&c, "write", json!({"path": "/tmp/x.txt", "text": "x"}))
            .await
            .starts_with("io error")
    );
    still_works(&c).await;
}

/// Fuel: a deterministic CPU cap, for when the same call must stop at the same point.
#[tokio::test(flavor = "multi_thread")]
async fn fuel_stops_a_spinning_guest() {
    let c = hostile(Policy {
        fuel: Some(50_000_000),
        ..Policy::default()
    })
    .await;
    assert_eq!(
        err(&c, "spin", json!({})).await,
        "stopped after burning its fuel of 50000000 (the tool's limit)"
    );
    still_works(&c).await;
    // With fuel to spare, the wall clock still stops it: the guest yields to the runtime as it
    // burns fuel, so the timeout gets to run.
    let c = hostile(Policy {
        fuel: Some(u64::MAX / 2),
        wall_ms: 500,
        ..Policy::default()
    })
    .await;
    let t = Instant::now();
    assert_eq!(
        err(&c, "spin", json!({})).await,
        "stopped after 500 ms of wall-clock time (the tool's limit)"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(c.specs().iter().all(|s| s.name.starts_with("hostile__")));
}

/// A compile bomb: a module small enough to pass the size cap that takes long to compile
/// (thousands of functions of deeply nested blocks) is abandoned at the compile timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_compile_bomb_hits_the_compile_timeout() {
    let depth = 1_000;
    let body = format!("{}{}", "(block ".repeat(depth), ")".repeat(depth));
    let funcs: String = (0..4_000).map(|_| format!("(func {body})")).collect();
    let wat = format!("(component (core module {funcs}))");
    let bytes = wat::parse_str(&wat).unwrap();
    assert!(
        bytes.len() < agent_sandboxes::MAX_COMPONENT_BYTES,
        "{}",
        bytes.len()
    );
    let sandbox = Sandbox::new(None)
        .unwrap()
        .with_compile_timeout(Duration::from_millis(500));
    let t = Instant::now();
    let e = sandbox.compile("bomb", bytes).await.err().unwrap();
    assert!(matches!(e, LoadError::CompileTimeout { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "bomb: compiling took more than 500ms; refused"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// More calls at once than there are instance slots: the rest wait for a slot (the wall clock
/// starts once they have one), and all complete.
#[tokio::test(flavor = "multi_thread")]
async fn calls_beyond_the_instance_slots_wait_their_turn() {
    let c = hostile(Policy {
        wall_ms: 2_000,
        ..Policy::default()
    })
    .await;
    let n = agent_sandboxes::MAX_CONCURRENT_CALLS * 2 + 8;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..n {
        let c = c.clone();
        calls.spawn(async move { c.call("sleep", &json!({"ms": 300})).await });
    }
    let mut done = 0;
    while let Some(out) = calls.join_next().await {
        let out = out.unwrap();
        assert_eq!((out.content.as_str(), out.is_error), ("woke", false));
        done += 1;
    }
    assert_eq!(done, n);
}
