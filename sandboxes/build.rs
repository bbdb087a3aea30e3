//! Builds the bundled wasm tools (`tools/`, Rust guests for wasm32-wasip2) into components, so
//! that a fresh clone gets them from the normal build. They are compiled by a nested cargo into
//! a target directory of their own (a sibling of ours, so it persists between builds).

use std::path::PathBuf;
use std::process::Command;

/// The tools that ship with the runtime (`bundled.rs` embeds them).
const BUNDLED: [&str; 5] = ["text", "number", "calc", "files", "json"];
/// Guests only the tests use (a hostile guest, a networked one, every WIT type shape): built
/// with the `test-guests` feature, so that a user's build does not compile them.
const TEST_GUESTS: [&str; 3] = ["hostile", "net", "shapes"];

fn main() -> Result<(), String> {
    let env = |k: &str| std::env::var(k).map_err(|_| format!("cargo did not set {k}"));
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let guests = manifest_dir.join("tools");
    println!("cargo:rerun-if-changed={}", guests.display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("wit").display()
    );
    let out = PathBuf::from(env("OUT_DIR")?);
    // OUT_DIR is TARGET/PROFILE/build/agent-sandboxes-HASH/out: keep the guests' build under
    // TARGET so it is incremental across hashes.
    let target_root = out
        .ancestors()
        .nth(4)
        .map(PathBuf::from)
        .unwrap_or_else(|| out.clone());
    let guest_target = target_root.join("wasm-guests");
    let mut guests_built: Vec<&str> = BUNDLED.to_vec();
    if std::env::var_os("CARGO_FEATURE_TEST_GUESTS").is_some() {
        guests_built.extend(TEST_GUESTS);
    }
    ensure_wasm_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(guests.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&guest_target);
    for guest in &guests_built {
        cmd.args(["-p", guest]);
    }
    // The outer build's settings are for the host; the guests have their own.
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME"
            || k == "RUSTFLAGS"
            || k == "RUSTC_WRAPPER"
            || k == "RUSTC_WORKSPACE_WRAPPER"
        {
            cmd.env_remove(k);
        }
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo for the wasm tools: {e}"))?;
    if !status.success() {
        return Err("building the bundled wasm tools failed (see above). They need the wasm32-wasip2 target: \
             `rustup target add wasm32-wasip2`"
            .into());
    }
    for tool in guests_built {
        let wasm = guest_target
            .join("wasm32-wasip2/release")
            .join(format!("{tool}.wasm"));
        let dest = out.join(format!("{tool}.wasm"));
        std::fs::copy(&wasm, &dest)
            .map_err(|e| format!("{}: {e} (was it built?)", wasm.display()))?;
    }
    Ok(())
}

/// rustup installs the targets that rust-toolchain.toml names only when it installs the
/// toolchain itself; a machine that already had the toolchain lacks wasm32-wasip2, and the
/// README's first command would fail after a long build. Add it here, once, through rustup.
fn ensure_wasm_target() -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.is_some_and(|d| d.is_dir()) {
        return Ok(());
    }
    let missing = "the wasm32-wasip2 target is missing; the bundled wasm tools need it: \
         `rustup target add wasm32-wasip2`";
    let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") else {
        return Err(format!(
            "{missing} (this toolchain is not managed by rustup)"
        ));
    };
    println!("cargo:warning=adding the wasm32-wasip2 target to {toolchain} with rustup (once)");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2", "--toolchain", &toolchain])
        .status()
        .map_err(|e| format!("{missing} (cannot run rustup: {e})"))?;
    if !status.success() {
        return Err(format!("{missing} (rustup failed, see above)"));
    }
    Ok(())
}
