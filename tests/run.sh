#!/usr/bin/env bash
# Runs every test: installs what the tests need (registry fixtures, cached outside the repo in
# $AGENT_HOME), then the whole workspace's tests, end-to-end ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
# The code stays rustfmt'd (the toolchain file brings rustfmt).
cargo fmt --all --check
before="$(git status --porcelain --untracked-files=all 2>/dev/null || true)"
cargo fmt --manifest-path sandboxes/tools/Cargo.toml --all --check
cargo fmt --manifest-path agent/fuzz/Cargo.toml --all --check
tests/fixtures/build.sh
cargo test --workspace "$@"
# The GPU check's script, run on the CPU (a GPU machine is rarely there; docs/GPU.md).
tests/gpu/smoke.sh
# The nested workspaces build into the main target directory, so the tree stays clean.
target="${CARGO_TARGET_DIR:-$PWD/target}"
# The fuzz targets (run with cargo fuzz on nightly, see agent/fuzz/README.md) must keep compiling.
cargo check --quiet --manifest-path agent/fuzz/Cargo.toml --target-dir "$target"
# The wasm guests' own unit tests (calc's arithmetic, json's paths), run natively.
cargo test --quiet --manifest-path sandboxes/tools/Cargo.toml -p calc -p json --target-dir "$target"
# Nothing the tests wrote may be left in the tree.
after="$(git status --porcelain --untracked-files=all 2>/dev/null || true)"
left="$(comm -13 <(echo "$before" | sort) <(echo "$after" | sort))"
if [ -n "$left" ]; then
  echo "tests/run.sh: the tests left these in the tree:" >&2
  echo "$left" >&2
  exit 1
fi
