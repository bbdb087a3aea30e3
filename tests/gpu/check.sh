#!/usr/bin/env bash
# The GPU check (docs/GPU.md), run on the GPU machine from the repository root with `.gpu/`
# (tests/gpu/build.sh's output: the CUDA build of agent-bench and the tiny fixtures) carried:
#
#   OUT=/some/dir tests/gpu/check.sh [STAGE...]     stages: env run parity speed (default all)
#
# Writes into $OUT: env.txt (driver, CUDA, libraries, Python packages), parity.jsonl (every
# fixture on the GPU against the CPU and against transformers on the GPU), run.jsonl (one agent
# run on the GPU: its summary, then its events), speed.jsonl (full-width Qwen3 checkpoints made
# here: agent against transformers, with peak GPU memory), log.txt (everything else).
# Each stage has a time limit, and a failed stage does not stop the next.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:?set OUT to the results folder}"
W="${GPU_WORK:-/tmp/agent-gpu}"
STAGES="${*:-env run parity speed}"
mkdir -p "$OUT" "$W"
# GPU_DEVICE=cpu runs the same plumbing without a GPU (a smoke test of this script). The
# other settings narrow a run to what a second call must measure again.
DEV="${GPU_DEVICE:-cuda}"
PARITY_MODELS="${PARITY_MODELS:-qwen3-tiny qwen3-moe-tiny qwen3-moe-experts-tiny qwen3-moe-tf5-tiny llama4-scout-tiny llama4-maverick-tiny llama4-scout-tf5-tiny}"
PARITY_DTYPES="${PARITY_DTYPES:-f32 bf16}"  # float32 against float32; bf16 is what a GPU runs
GGUF_PARITY="${GGUF_PARITY:-1}"
MOE_LAYERS="${MOE_LAYERS:-4}" DENSE_LAYERS="${DENSE_LAYERS:-4}"  # 0: not measured
ISQ="${ISQ-Q4K}"  # empty: not measured
LOG="$OUT/log.txt"
say() { echo "[$(date +%T)] $*" | tee -a "$LOG" >&2; }
has() { [[ " $STAGES " == *" $1 "* ]]; }

# The CUDA libraries the build loads (cuBLAS, cuRAND, NVRTC, the runtime) come from the NVIDIA
# wheels of the machine's Python environment; the driver library is the system's.
SITE="$(python3 -c 'import site; print(site.getsitepackages()[0])')"
LIBS="$(find "$SITE/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')"
DRIVER="$(dirname "$(ldconfig -p | awk '/libcuda\.so\.1 / {print $NF; exit}')" 2>/dev/null)"
for d in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu "$DRIVER"; do
  [ -e "$d/libcuda.so.1" ] && LIBS="$LIBS$d:"
done
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:-}"
export AGENT_HOME="$W/home" RUST_LOG="${RUST_LOG:-warn}"
BIN="${GPU_BIN:-$W/agent-bench}"
if [ -z "${GPU_BIN:-}" ] && [ ! -x "$BIN" ]; then
  xz -dc "$REPO/.gpu/agent-bench.xz" > "$BIN.tmp" && chmod +x "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
  tar -xJf "$REPO/.gpu/fixtures.tar.xz" -C "$W"
fi
M="$W/models"
F="$W/fixtures"
# The tiny checkpoints, made here by the tool that made them on the build machine, from the
# same tokenizers: the same bytes (the manifest says whether they are).
if [ ! -f "$W/made" ]; then
  say "making the tiny checkpoints"
  TOOL="$REPO/tests/fixtures/tiny_checkpoints.py"
  QT="$F/tokenizer-qwen3"; LT="$F/tokenizer-llama4"
  {
    python3 "$TOOL" qwen3-moe --tokenizer-dir "$QT" --out "$M/qwen3-moe-tiny" --stamp gpu
    for e in qwen3-tiny:dense qwen3-moe-experts-tiny:moe-per-expert qwen3-moe-tf5-tiny:moe-transformers5; do
      python3 "$TOOL" qwen3 --form "${e#*:}" --tokenizer-dir "$QT" --out "$M/${e%%:*}" --stamp gpu
    done
    for e in llama4-scout-tiny:scout llama4-maverick-tiny:maverick llama4-scout-tf5-tiny:scout-transformers5; do
      python3 "$TOOL" llama4 --form "${e#*:}" --tokenizer-dir "$LT" --out "$M/${e%%:*}" --stamp gpu
    done
    for e in qwen3:gguf-dense qwen3moe:gguf-moe; do
      python3 "$TOOL" qwen3 --form "${e#*:}" --tokenizer-dir "$QT" --out "$F/gguf-src/${e%%:*}" --stamp gpu
    done
  } >> "$LOG" 2>&1
  if ! (cd "$W" && sha256sum --quiet -c "$F/gpu-checkpoints.sha256") >> "$LOG" 2>&1; then
    say "the tiny checkpoints made here differ from the build machine's (log.txt); going on with them"
  fi
  touch "$W/made"
fi
if [ "$GGUF_PARITY" = 1 ] && [ ! -f "$W/made-gguf" ]; then
  say "making the GGUF files"
  LC="$F/llama-cpp"
  LIBLLAMA="$LC/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libllama.v0.4.0.so"
  # Six conversions at once: each is one Python process.
  for a in qwen3 qwen3moe; do
    for q in f32 q8_0 q4_k_m; do
      n="$a-tiny-$q"; mkdir -p "$M/$n"
      if [ "$q" != q4_k_m ]; then
        python3 "$LC/src/convert_hf_to_gguf.py" "$F/gguf-src/$a" --outtype "$q" --outfile "$M/$n/$n.gguf" &
      else
        (python3 "$LC/src/convert_hf_to_gguf.py" "$F/gguf-src/$a" --outtype bf16 --outfile "$W/$a-bf16.gguf" &&
          python3 "$REPO/tests/fixtures/gguf_quantize.py" "$LIBLLAMA" "$W/$a-bf16.gguf" "$M/$n/$n.gguf" Q4_K_M
         rm -f "$W/$a-bf16.gguf") &
      fi
    done
  done >> "$LOG" 2>&1
  wait
  # Another Python stack can write other bytes; the check goes on with the files made here,
  # which both devices read, and says so.
  (cd "$W" && sha256sum -c "$F/gpu-gguf.sha256") > "$OUT/gguf-identity.txt" 2>&1 ||
    say "GGUF files made here differ from the build machine's (gguf-identity.txt)"
  touch "$W/made-gguf"
fi

# `with_peak SECS CMD...`: CMD under a time limit, and the peak GPU memory in use while it ran
# (whole device, sampled every 100 ms; the machine runs nothing else) as a JSON line after its
# own: {"peak_gpu_mib": N, "of": the command's words without their folders, "rc": its status}.
with_peak() {
  local limit="$1"; shift
  local samples="$W/mem.$$"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$samples" 2>/dev/null &
  local sampler=$!
  timeout "$limit" "$@"
  local rc=$?
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  local peak; peak="$(sort -n "$samples" | tail -1)"
  echo "{\"peak_gpu_mib\": ${peak:-null}, \"of\": \"$(echo "$@" | sed 's|[^ ]*/||g')\", \"rc\": $rc}"
  return $rc
}

if has env; then
  say "stage env"
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
    nvidia-smi | head -4
    echo "--- nvcc"; nvcc --version 2>&1 | tail -2
    echo "--- os"; head -2 /etc/os-release; ldd --version | head -1; nproc; free -g | head -2
    echo "--- python"; python3 -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
    echo "--- CUDA libraries in $SITE/nvidia"
    find "$SITE/nvidia" -name 'lib*.so*' | sed "s|$SITE/||" | sort
    echo "--- what agent-bench loads"
    ldd "$BIN"
  } > "$OUT/env.txt" 2>&1
  grep -q "not found" "$OUT/env.txt" && say "env: a library is missing (see env.txt)"
fi

if has run; then
  say "stage run"
  timeout 180 "$BIN" gpu-run --device "$DEV" --model "$M/qwen3-moe-tiny" --events "$W/events.jsonl" \
    > "$OUT/run.jsonl" 2>> "$LOG" || say "run: failed"
  cat "$W/events.jsonl" >> "$OUT/run.jsonl" 2>/dev/null
fi

if has parity; then
  say "stage parity"
  REF="$W/reference-gpu"
  pairs=()
  for m in $PARITY_MODELS; do pairs+=("$M/$m" "$REF/$m"); done
  [ "$GGUF_PARITY" = 1 ] && for a in qwen3 qwen3moe; do pairs+=("$F/gguf-src/$a" "$REF/gguf-src-$a"); done
  timeout 300 python3 "$REPO/tests/fixtures/reference.py" --device "$DEV" "${pairs[@]}" >> "$LOG" 2>&1 \
    || say "parity: transformers on the GPU failed"
  for m in $PARITY_MODELS; do
    for dtype in $PARITY_DTYPES; do
      timeout 120 "$BIN" gpu-parity --device "$DEV" --model "$M/$m" --reference "$REF/$m" --dtype "$dtype" \
        >> "$OUT/parity.jsonl" 2>> "$LOG" || say "parity: $m $dtype failed"
    done
  done
  for a in qwen3 qwen3moe; do
    [ "$GGUF_PARITY" = 1 ] || break
    for q in f32 q8_0 q4_k_m; do
      n="$a-tiny-$q"
      timeout 120 "$BIN" gpu-parity --device "$DEV" --model "$M/$n/$n.gguf" --reference "$REF/gguf-src-$a" \
        >> "$OUT/parity.jsonl" 2>> "$LOG" || say "parity: $n failed"
    done
  done
fi

if has speed; then
  say "stage speed"
  BIG="$W/big"
  mkdir -p "$BIG"
  # Fewer layers than the releases (48 and 36) so that the files fit the disk and the time;
  # every layer has the release's widths.
  moe="$BIG/qwen3-30b-a3b-${MOE_LAYERS}l"
  dense="$BIG/qwen3-8b-${DENSE_LAYERS}l"
  speed() {  # $1 = checkpoint, then gpu-speed's options
    local dir="$1"; shift
    with_peak 240 "$BIN" gpu-speed --device "$DEV" --model "$dir" --prompt-tokens 512 --decode-tokens 128 \
      --concurrency 1,8 "$@" >> "$OUT/speed.jsonl" 2>> "$LOG" || say "speed: agent on $dir $* failed"
  }
  hf() {
    with_peak 240 python3 "$REPO/tests/gpu/hf_speed.py" "$1" 512 128 1,8 \
      >> "$OUT/speed.jsonl" 2>> "$LOG" || say "speed: transformers on $1 failed"
  }
  checkpoint() {  # $1 = shape, $2 = layers, $3 = directory
    timeout 240 python3 "$REPO/tests/gpu/big_checkpoint.py" "$1" "$2" "$F/tokenizer-qwen3" "$3" \
      >> "$OUT/speed.jsonl" 2>> "$LOG" || { say "speed: making $1 failed"; return 1; }
  }
  if [ "$MOE_LAYERS" != 0 ] && checkpoint qwen3-30b-a3b "$MOE_LAYERS" "$moe"; then speed "$moe"; hf "$moe"; fi
  if [ "$DENSE_LAYERS" != 0 ] && checkpoint qwen3-8b "$DENSE_LAYERS" "$dense"; then speed "$dense"; hf "$dense"; fi
  # Quantized while loading, as the catalogue runs a large MoE on a GPU.
  if [ -d "$moe" ] && [ -n "$ISQ" ]; then speed "$moe" --isq "$ISQ"; fi
  rm -rf "$BIG"
fi
say "done"
# A short table last (the device tool returns the end of the output).
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def lines(name):
    path = os.path.join(out, name)
    return [json.loads(l) for l in open(path) if l.startswith("{")] if os.path.exists(path) else []
def d(x):
    v = x.get("max_logit_diff")
    return f"{v:.2e} same={x.get('tokens_identical')}" if v is not None else str(x)
for r in lines("parity.jsonl"):
    print(f"parity {r['model']:24} {r['prompt']:12} {r['gpu_dtype']:4} gpu-cpu {d(r['gpu_vs_cpu'])} "
          f"gpu-ref {d(r['gpu_vs_reference'])} cpu-ref {d(r['cpu_vs_reference'])}")
run = lines("run.jsonl")
if run:
    print("run", json.dumps(run[0])[:600])
for r in lines("speed.jsonl"):
    print("speed", json.dumps(r)[:400])
PY
