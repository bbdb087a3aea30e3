//! Misbehaves on request: each tool is one way a guest can attack or exhaust its host. The
//! sandbox's tests call them and check that each ends in a clear error within its limits.

use std::io::Write;

use serde_json::{Value, json};

wit_bindgen::generate!({ world: "json-tool", path: "../../wit" });

static mut CALLS: u64 = 0;

fn recurse(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 + recurse(std::hint::black_box(n - 1))
    }
}

fn fs_err(e: std::io::Error) -> String {
    format!("io error: {e}")
}

struct Hostile;

impl exports::agent::tool::json::Guest for Hostile {
    fn describe() -> String {
        let names = [
            "spin", "sleep", "grow", "recurse", "trap", "read", "write", "truncate", "list",
            "hardlink", "rename", "env", "print", "big", "calls", "bad_utf8", "bad_json",
            "handles",
        ];
        let tools: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "description": n, "parameters": {"type": "object"}}))
            .collect();
        Value::Array(tools).to_string()
    }

    fn call(name: String, arguments: String) -> Result<String, String> {
        let a: Value = serde_json::from_str(&arguments).map_err(|e| e.to_string())?;
        let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let n = |k: &str| a.get(k).and_then(Value::as_u64).unwrap_or(0);
        // SAFETY: a component instance is single-threaded.
        unsafe {
            CALLS += 1;
        }
        let out: Value = match name.as_str() {
            "spin" => loop {
                std::hint::black_box(0);
            },
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(n("ms")));
                json!("woke")
            }
            "grow" => {
                let mut v: Vec<Vec<u8>> = Vec::new();
                for _ in 0..n("mib") {
                    v.push(vec![1u8; 1 << 20]);
                }
                json!(v.len())
            }
            "recurse" => json!(recurse(n("depth"))),
            "trap" => panic!("deliberate trap"),
            "read" => json!(std::fs::read_to_string(s("path")).map_err(fs_err)?),
            "write" => {
                std::fs::write(s("path"), s("text")).map_err(fs_err)?;
                json!("written")
            }
            "truncate" => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(s("path"))
                    .map_err(fs_err)?;
                json!("truncated")
            }
            "list" => {
                let names: Vec<String> = std::fs::read_dir(s("path"))
                    .map_err(fs_err)?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                json!(names)
            }
            "hardlink" => {
                std::fs::hard_link(s("from"), s("to")).map_err(fs_err)?;
                json!("linked")
            }
            "rename" => {
                std::fs::rename(s("from"), s("to")).map_err(fs_err)?;
                json!("renamed")
            }
            "env" => json!(std::env::var(s("name")).map_err(|e| e.to_string())?),
            "print" => {
                let chunk = vec![b'x'; 1 << 16];
                let mut out = std::io::stdout().lock();
                let mut left = n("bytes");
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    out.write_all(&chunk[..k])
                        .map_err(|e| format!("stdout: {e}"))?;
                    left -= k as u64;
                }
                json!("printed")
            }
            "big" => json!("y".repeat(n("bytes") as usize)),
            // SAFETY: as above.
            "calls" => json!(unsafe { CALLS }),
            // SAFETY: deliberately invalid, to test that the host refuses it.
            "bad_utf8" => {
                return Ok(unsafe { String::from_utf8_unchecked(vec![b'"', 0xff, 0xfe, b'"']) });
            }
            "bad_json" => return Ok("this is not JSON {".into()),
            "handles" => {
                let mut kept = Vec::new();
                for i in 0..n("count") {
                    match std::fs::File::open(s("path")) {
                        Ok(f) => kept.push(f),
                        Err(e) => return Err(format!("open number {i} failed: {e}")),
                    }
                }
                json!(kept.len())
            }
            other => return Err(format!("no tool {other}")),
        };
        Ok(out.to_string())
    }
}

export!(Hostile);
