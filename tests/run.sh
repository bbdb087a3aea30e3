#!/usr/bin/env bash
# Runs every test: installs what the tests need (registry fixtures, cached outside the repo in
# $AGENT_HOME), then the whole workspace's tests, end-to-end ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/fixtures/build.sh
# The bundled wasm tools are Rust guests built for wasm32-wasip2 (sandboxes/build.rs).
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -qx wasm32-wasip2 \
  || { echo "tests/run.sh: the wasm32-wasip2 target is missing and rustup could not add it" >&2; exit 1; }
cargo test --workspace "$@"
# The fuzz targets (run with cargo fuzz on nightly, see agent/fuzz/README.md) must keep compiling.
cargo check --quiet --manifest-path agent/fuzz/Cargo.toml
# The wasm guests' own unit tests (calc's arithmetic, json's paths), run natively.
cargo test --quiet --manifest-path sandboxes/tools/Cargo.toml -p calc -p json
