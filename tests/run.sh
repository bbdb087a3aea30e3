#!/usr/bin/env bash
# Runs every test: installs what the tests need (registry fixtures, cached outside the repo in
# $AGENT_HOME), then the whole workspace's tests, end-to-end ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/fixtures/build.sh
cargo test --workspace "$@"
# The fuzz targets (run with cargo fuzz on nightly, see agent/fuzz/README.md) must keep compiling.
cargo check --quiet --manifest-path agent/fuzz/Cargo.toml
