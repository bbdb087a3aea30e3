//! Getting a catalogue model from the Hugging Face hub, against a local server on 127.0.0.1
//! that answers the hub's routes (`/api/models/REPO/revision/REV?blobs=true` and
//! `/REPO/resolve/COMMIT/FILE`) from fixture files. No test reaches a real hub.
//!
//! The served "Qwen/Qwen3-0.6B" is the tiny Qwen3 fixture (same layout, random weights), so a
//! catalogue name downloads, verifies and then runs.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use common::*;

struct Served {
    bytes: Vec<u8>,
    /// Stored with Git LFS (listed with a SHA-256) rather than as a git blob.
    lfs: bool,
    /// The SHA-256 the listing claims, when it is not the content's (a corrupted mirror).
    claimed_sha256: Option<String>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, HashMap<String, Served>>,
    /// Repositories that need `Authorization: Bearer good`.
    gated: Vec<String>,
    /// File name -> bytes after which a transfer from the start is cut (the connection drops),
    /// and how many more times to do it.
    drop_after: HashMap<String, (usize, usize)>,
    /// Every request: "PATH range=START" (START empty without a Range header).
    log: Vec<String>,
}

struct LocalHub {
    url: String,
    state: Arc<Mutex<State>>,
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

impl LocalHub {
    fn start(state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Self { url, state }
    }

    fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

fn respond(mut s: &TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut range, mut auth) = (None::<usize>, None::<String>);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "range" => {
                range = v
                    .trim()
                    .strip_prefix("bytes=")
                    .and_then(|r| r.trim_end_matches('-').parse().ok())
            }
            "authorization" => auth = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let mut st = state.lock().unwrap();
    st.log.push(format!(
        "{path} range={}",
        range.map(|r| r.to_string()).unwrap_or_default()
    ));
    let (repo, rest) = if let Some(p) = path.strip_prefix("/api/models/") {
        let (repo, _) = p.split_once("/revision/").unwrap_or((p, ""));
        (repo.to_string(), None)
    } else {
        match path[1..].split_once(&format!("/resolve/{COMMIT}/")) {
            Some((repo, file)) => (repo.to_string(), Some(file.to_string())),
            None => return respond(&stream, "404 Not Found", &[], b"{}"),
        }
    };
    if st.gated.contains(&repo) {
        match auth.as_deref() {
            None => return respond(&stream, "401 Unauthorized", &[], b"{}"),
            Some("Bearer good") => {}
            Some(_) => return respond(&stream, "403 Forbidden", &[], b"{}"),
        }
    }
    let Some(files) = st.repos.get(&repo) else {
        return respond(
            &stream,
            "404 Not Found",
            &[],
            b"{\"error\":\"Repository not found\"}",
        );
    };
    let Some(file) = rest else {
        let siblings: Vec<serde_json::Value> = files
            .iter()
            .map(|(name, f)| {
                let sha256 = f
                    .claimed_sha256
                    .clone()
                    .unwrap_or_else(|| hex::encode(Sha256::digest(&f.bytes)));
                let mut blob = Sha1::new();
                blob.update(format!("blob {}\0", f.bytes.len()).as_bytes());
                blob.update(&f.bytes);
                let mut s = serde_json::json!({"rfilename": name, "size": f.bytes.len(),
                    "blobId": hex::encode(blob.finalize())});
                if f.lfs {
                    s["lfs"] = serde_json::json!({"sha256": sha256, "size": f.bytes.len()});
                }
                s
            })
            .collect();
        let body = serde_json::json!({"id": repo, "sha": COMMIT, "siblings": siblings});
        return respond(&stream, "200 OK", &[], body.to_string().as_bytes());
    };
    let Some(served) = files.get(&file) else {
        return respond(&stream, "404 Not Found", &[], b"Entry not found");
    };
    let bytes = served.bytes.clone();
    let cut = match st.drop_after.get_mut(&file) {
        Some((after, times)) if *times > 0 => {
            *times -= 1;
            Some(*after)
        }
        _ => None,
    };
    drop(st);
    let start = range.unwrap_or(0).min(bytes.len());
    let status = if range.is_some() {
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let body = &bytes[start..];
    match cut {
        // Headers promise the whole file; the connection closes at byte `after` (at once when
        // the request starts past it: the link is down).
        Some(after) => {
            let mut s = &stream;
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body[..after.saturating_sub(start).min(body.len())]);
            let _ = s.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        _ => respond(&stream, status, &[], body),
    }
}

/// The files of a fixture model directory, as the hub would list them.
fn repo_from(dir: &Path) -> HashMap<String, Served> {
    let mut files = HashMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "FIXTURE_INFO.json" {
            continue;
        }
        let mut bytes = Vec::new();
        std::fs::File::open(e.path())
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        let lfs =
            name.ends_with(".safetensors") || name.ends_with(".gguf") || name == "tokenizer.json";
        files.insert(
            name,
            Served {
                bytes,
                lfs,
                claimed_sha256: None,
            },
        );
    }
    files
}

fn run_agent(home: &Path, hub: &LocalHub, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent"));
    cmd.args(args)
        .env("AGENT_HOME", home)
        .env("HF_ENDPOINT", &hub.url)
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn qwen3_repo() -> HashMap<String, Served> {
    repo_from(&require_fixture("models/qwen3-tiny"))
}

fn home(name: &str) -> PathBuf {
    tmp_dir(&format!("hub-{name}"))
}

#[test]
fn a_catalogue_model_downloads_resumes_a_dropped_connection_and_runs() {
    let size = qwen3_repo()["model.safetensors"].bytes.len();
    let mut state = State::default();
    state.repos.insert("Qwen/Qwen3-0.6B".into(), qwen3_repo());
    // The weights' first transfer breaks a third of the way in.
    state
        .drop_after
        .insert("model.safetensors".into(), (size / 3, 1));
    let hub = LocalHub::start(state);
    let home = home("pull");
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-0.6b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = home.join("models/qwen3-0.6b");
    assert_eq!(stdout(&o).trim(), dir.display().to_string());
    // Resumed where it broke, and every file equals the fixture's.
    let log = hub.log();
    let resumed = format!(
        "/Qwen/Qwen3-0.6B/resolve/{COMMIT}/model.safetensors range={}",
        size / 3
    );
    assert!(log.contains(&resumed), "{log:#?}");
    for (name, f) in qwen3_repo() {
        assert_eq!(std::fs::read(dir.join(&name)).unwrap(), f.bytes, "{name}");
    }
    assert!(!home.join("models/qwen3-0.6b.partial").exists());
    // A second pull finds it and asks the hub nothing.
    let before = hub.log().len();
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-0.6b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(hub.log().len(), before);
    // And it runs: one step with a tool call, offline.
    let task = tool_task(&home);
    let o = run_agent(
        &home,
        &hub,
        &[],
        &[
            "run",
            task.to_str().unwrap(),
            "--model",
            "qwen3-0.6b",
            "--offline",
            "--max-tokens",
            "120",
            "--json",
        ],
    );
    let ev = events(&o);
    assert!(
        ev.iter().any(|e| e["event"] == "tool_call"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_interrupted_pull_resumes_in_the_next_one() {
    let size = qwen3_repo()["model.safetensors"].bytes.len();
    let mut state = State::default();
    state.repos.insert("Qwen/Qwen3-0.6B".into(), qwen3_repo());
    // Every attempt of the first pull breaks at the same place: it gives up.
    state
        .drop_after
        .insert("model.safetensors".into(), (size / 2, 5));
    let hub = LocalHub::start(state);
    let home = home("resume");
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-0.6b"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("qwen3-0.6b (Qwen/Qwen3-0.6B): ") && err.contains("connection"),
        "{err}"
    );
    assert!(!home.join("models/qwen3-0.6b").exists());
    let part = home.join("models/qwen3-0.6b.partial/model.safetensors.incomplete");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), (size / 2) as u64);
    // The next pull asks for the rest only.
    let first = hub.log().len();
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-0.6b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let weights: Vec<String> = hub.log()[first..]
        .iter()
        .filter(|l| l.contains("model.safetensors"))
        .cloned()
        .collect();
    assert_eq!(
        weights,
        vec![format!(
            "/Qwen/Qwen3-0.6B/resolve/{COMMIT}/model.safetensors range={}",
            size / 2
        )]
    );
    assert_eq!(
        std::fs::read(home.join("models/qwen3-0.6b/model.safetensors")).unwrap(),
        qwen3_repo()["model.safetensors"].bytes
    );
}

#[test]
fn a_file_that_does_not_match_its_checksum_is_refused_and_deleted() {
    let mut repo = qwen3_repo();
    repo.get_mut("model.safetensors").unwrap().claimed_sha256 = Some("ab".repeat(32));
    let mut state = State::default();
    state.repos.insert("Qwen/Qwen3-0.6B".into(), repo);
    let hub = LocalHub::start(state);
    let home = home("checksum");
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-0.6b"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "model.safetensors: the download does not match the hub's checksum (sha256 {}",
            "ab".repeat(32)
        )),
        "{err}"
    );
    let partial = home.join("models/qwen3-0.6b.partial");
    assert!(!partial.join("model.safetensors").exists());
    assert!(!partial.join("model.safetensors.incomplete").exists());
    assert!(!home.join("models/qwen3-0.6b").exists());
}

#[test]
fn gated_missing_and_offline_models_say_what_to_do() {
    let mut state = State::default();
    state.repos.insert(
        "meta-llama/Llama-4-Scout-17B-16E-Instruct".into(),
        HashMap::new(),
    );
    state
        .gated
        .push("meta-llama/Llama-4-Scout-17B-16E-Instruct".into());
    let hub = LocalHub::start(state);
    let home = home("errors");
    let o = run_agent(&home, &hub, &[], &["pull", "llama4-scout"]);
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "agent: llama4-scout (meta-llama/Llama-4-Scout-17B-16E-Instruct): meta-llama/Llama-4-Scout-17B-16E-Instruct is gated: accept its license at {0}/meta-llama/Llama-4-Scout-17B-16E-Instruct with your account, then set HF_TOKEN to an access token of that account",
            hub.url
        )
    );
    let o = run_agent(
        &home,
        &hub,
        &[("HF_TOKEN", "stale")],
        &["pull", "llama4-scout"],
    );
    assert!(
        stderr(&o).contains("refused the token in HF_TOKEN (HTTP 403)"),
        "{}",
        stderr(&o)
    );
    // Not on the (local) hub at all.
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-4b"]);
    assert!(
        stderr(&o).contains(&format!(
            "{}/api/models/Qwen/Qwen3-4B/revision/main?blobs=true: not found (HTTP 404)",
            hub.url
        )),
        "{}",
        stderr(&o)
    );
    // Offline, a run names the model and what to do, and asks the hub nothing.
    let before = hub.log().len();
    let task = home.join("task.md");
    std::fs::write(&task, "Say hello.\n").unwrap();
    for (env, flag) in [
        (vec![("HF_HUB_OFFLINE", "1")], None),
        (vec![], Some("--offline")),
    ] {
        let mut args = vec!["run", task.to_str().unwrap(), "--model", "qwen3-4b"];
        args.extend(flag);
        let o = run_agent(&home, &hub, &env, &args);
        assert_eq!(o.status.code(), Some(2));
        assert_eq!(
            stderr(&o).trim(),
            "agent: --model qwen3-4b: qwen3-4b (Qwen/Qwen3-4B): `qwen3-4b` is not on this machine and downloads are off (--offline or HF_HUB_OFFLINE): run `agent pull qwen3-4b` with the network on, or pass --model with a local path"
        );
    }
    assert_eq!(hub.log().len(), before);
}

#[test]
fn a_gguf_quantization_downloads_by_its_tag() {
    let mut files = HashMap::new();
    for (name, bytes) in [
        ("Qwen3-0.6B-Q8_0.gguf", b"GGUF eight".to_vec()),
        ("Qwen3-0.6B-Q4_K_M.gguf", b"GGUF four".to_vec()),
        ("README.md", b"# readme".to_vec()),
    ] {
        files.insert(
            name.to_string(),
            Served {
                bytes,
                lfs: name.ends_with(".gguf"),
                claimed_sha256: None,
            },
        );
    }
    let mut state = State::default();
    state.repos.insert("Qwen/Qwen3-0.6B-GGUF".into(), files);
    let hub = LocalHub::start(state);
    let home = home("gguf");
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-0.6b:q4_k_m"]);
    // The file is fetched and verified; these bytes are no model, so reading it fails after.
    let dir = home.join("models/qwen3-0.6b-q4_k_m");
    assert_eq!(
        std::fs::read(dir.join("Qwen3-0.6B-Q4_K_M.gguf")).unwrap(),
        b"GGUF four"
    );
    assert!(!dir.join("Qwen3-0.6B-Q8_0.gguf").exists());
    assert!(!o.status.success());
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-0.6b:q2_k"]);
    assert!(
        stderr(&o).contains("Qwen/Qwen3-0.6B-GGUF has no file matching *-q2_k.gguf"),
        "{}",
        stderr(&o)
    );
}

/// One `agent run` step with a tool the grammar makes the model call, offline; the events.
fn tool_step(home: &Path, hub: &LocalHub, model: &str) -> Vec<serde_json::Value> {
    let task = tool_task(home);
    let args = [
        "run",
        task.to_str().unwrap(),
        "--model",
        model,
        "--offline",
        "--max-tokens",
        "160",
        "--json",
    ];
    let o = run_agent(home, hub, &[], &args);
    let ev = events(&o);
    assert!(
        ev.iter().any(|e| e["event"] == "tool_result")
            && !ev.iter().any(|e| e["event"] == "parse_error"),
        "{model}: {}\n{ev:#?}",
        stderr(&o)
    );
    ev
}

/// `agent pull NAME`, then the given fields of NAME's row in `agent models --json`.
fn pull_and_describe(
    home: &Path,
    hub: &LocalHub,
    name: &str,
    keys: &[&str],
) -> Vec<serde_json::Value> {
    let o = run_agent(home, hub, &[], &["pull", name]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    let o = run_agent(home, hub, &[], &["models", "--json"]);
    let row: serde_json::Value = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed by agent models"));
    keys.iter().map(|k| row[k].clone()).collect()
}

/// The text of a run's first model output event.
fn model_output(ev: &[serde_json::Value]) -> String {
    ev.iter()
        .find(|e| e["event"] == "model_output")
        .and_then(|e| e["text"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Qwen3-Coder ships its own template (XML tool calls). Downloaded by its catalogue name, the
/// model is known by that template: `agent models --json` says so, and a step's call is
/// written in XML under the grammar and parsed from it.
#[test]
fn qwen3_coder_is_driven_with_its_own_tool_call_format() {
    let mut state = State::default();
    let files = repo_from(&require_fixture("models/qwen3-coder-tiny"));
    let size = files["model.safetensors"].bytes.len();
    state
        .repos
        .insert("Qwen/Qwen3-Coder-30B-A3B-Instruct".into(), files);
    let hub = LocalHub::start(state);
    let home = home("coder");
    let described = pull_and_describe(
        &home,
        &hub,
        "qwen3-coder-30b-a3b",
        &[
            "cached",
            "family",
            "format",
            "tool_call_format",
            "thinking",
            "context_length",
            "size_bytes",
        ],
    );
    assert_eq!(
        described,
        vec![
            serde_json::json!(true),
            serde_json::json!("qwen3-coder"),
            serde_json::json!("safetensors"),
            serde_json::json!("qwen3-coder"),
            serde_json::json!(false),
            serde_json::json!(40960),
            serde_json::json!(size),
        ]
    );
    let text = model_output(&tool_step(&home, &hub, "qwen3-coder-30b-a3b"));
    // `<tool_call>` is a special token, not in the text.
    assert!(
        text.contains("<function=") && text.contains("<parameter=") && text.contains("</function>"),
        "not an XML call: {text:?}"
    );
}

/// The July 2025 releases, each with its own template (fixtures: the per-expert Qwen3-MoE with
/// the template the release ships): downloaded by catalogue name, each is known as its variant
/// (Instruct-2507 never thinks; Thinking-2507 opens the block in its template and the step's
/// budget closes it), and a step's call is written and parsed in Qwen3's JSON format.
#[test]
fn the_2507_releases_are_driven_by_their_own_templates() {
    for (name, repo, fixture, family, thinks) in [
        (
            "qwen3-30b-a3b-instruct-2507",
            "Qwen/Qwen3-30B-A3B-Instruct-2507",
            "models/qwen3-instruct-2507-tiny",
            "qwen3-instruct-2507",
            false,
        ),
        (
            "qwen3-30b-a3b-thinking-2507",
            "Qwen/Qwen3-30B-A3B-Thinking-2507",
            "models/qwen3-thinking-2507-tiny",
            "qwen3-thinking-2507",
            true,
        ),
    ] {
        let mut state = State::default();
        state
            .repos
            .insert(repo.into(), repo_from(&require_fixture(fixture)));
        let hub = LocalHub::start(state);
        let home = home(name);
        let described = pull_and_describe(
            &home,
            &hub,
            name,
            &["family", "tool_call_format", "thinking"],
        );
        assert_eq!(
            described,
            vec![
                serde_json::json!(family),
                serde_json::json!("qwen3"),
                serde_json::json!(thinks),
            ],
            "{name}"
        );
        let text = model_output(&tool_step(&home, &hub, name));
        assert!(
            text.contains("\"name\"") && text.contains("\"arguments\""),
            "{name}: not a JSON call: {text:?}"
        );
    }
}

/// A GGUF of a Qwen3 MoE, as llama.cpp's converter and quantizer write it (the Q4_K_M fixture),
/// downloaded by its catalogue tag, runs on the CPU.
#[test]
fn a_downloaded_qwen3moe_gguf_runs_on_the_cpu() {
    let fixture = require_fixture("models/qwen3moe-tiny-q4_k_m/qwen3moe-tiny-q4_k_m.gguf");
    let mut files = HashMap::new();
    files.insert(
        "Qwen3-30B-A3B-Q4_K_M.gguf".to_string(),
        Served {
            bytes: std::fs::read(&fixture).unwrap(),
            lfs: true,
            claimed_sha256: None,
        },
    );
    let mut state = State::default();
    state.repos.insert("Qwen/Qwen3-30B-A3B-GGUF".into(), files);
    let hub = LocalHub::start(state);
    let home = home("gguf-moe");
    let o = run_agent(&home, &hub, &[], &["pull", "qwen3-30b-a3b:q4_k_m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    tool_step(&home, &hub, "qwen3-30b-a3b:q4_k_m");
}
