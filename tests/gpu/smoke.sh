#!/usr/bin/env bash
# The GPU check's plumbing without a GPU, so that tests/gpu/check.sh does not rot between the
# sessions that have one (tests/run.sh runs this): the CPU build of agent-bench stands in for
# the CUDA build and the CPU for the device, on the tiny dense Qwen3. It proves that the script
# makes the fixtures, runs transformers and the bench, and that the bench's results say what
# they should (the same device twice: identical logits; transformers within the CPU tests'
# 1e-5; the agent run's thinking budgets exact).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
AGENT_HOME="${AGENT_HOME:-$HOME/.cache/agent}"
target="${CARGO_TARGET_DIR:-$REPO/target}"
cargo build --quiet -p agent-bench
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/w/fixtures"
for t in tokenizer-qwen3 tokenizer-llama4; do ln -s "$AGENT_HOME/fixtures/$t" "$work/w/fixtures/$t"; done
(cd "$AGENT_HOME" && find models/qwen3-tiny models/qwen3-moe-tiny -type f ! -name .fixture-stamp -print0 |
  sort -z | xargs -0 sha256sum) > "$work/w/fixtures/gpu-checkpoints.sha256"
# Only the two checkpoints the manifest names are compared; the others are made all the same.
PATH="$AGENT_HOME/fixtures/reference-venv/bin:$PATH" OUT="$work/out" GPU_WORK="$work/w" \
  GPU_DEVICE=cpu GPU_BIN="$target/debug/agent-bench" PARITY_MODELS=qwen3-tiny PARITY_DTYPES=f32 \
  GGUF_PARITY=0 "$REPO/tests/gpu/check.sh" run parity > "$work/table" 2>&1 || true
python3 - "$work/out" "$work/table" <<'PY'
import json, os, sys
out, table = sys.argv[1], open(sys.argv[2]).read()
log = open(os.path.join(out, "log.txt")).read()
def fail(why):
    sys.exit(f"tests/gpu/smoke.sh: {why}\n--- table\n{table}\n--- log (end)\n{log[-3000:]}")
if "differ from the build machine" in log:
    fail("the checkpoints check.sh made differ from tests/fixtures/build.sh's")
rows = [json.loads(l) for l in open(os.path.join(out, "parity.jsonl"))]
if [r["prompt"] for r in rows] != ["chat", "many-experts"]:
    fail(f"parity rows: {[r.get('prompt') for r in rows]}")
for r in rows:
    same, ref = r["gpu_vs_cpu"], r["gpu_vs_reference"]
    if (same["max_logit_diff"], same["tokens_identical"], same["nan_at_step_token"]) != (0.0, True, None):
        fail(f"the same device twice differs: {r}")
    if not (ref["max_logit_diff"] <= 1e-5 and ref["tokens_identical"]):
        fail(f"not within 1e-5 of transformers: {r}")
summary = json.loads(open(os.path.join(out, "run.jsonl")).readline())
if not (summary["every_budget_exact"] and summary["tool_calls"] >= 1 and summary["steps"]):
    fail(f"agent run: {summary}")
print("tests/gpu/smoke.sh: check.sh's plumbing works (parity and an agent run, on the CPU)")
PY
