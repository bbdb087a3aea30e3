#!/usr/bin/env bash
# Build `agent-bench` with CUDA on a machine without a GPU, from registry packages only, and
# pack what a GPU machine needs to run tests/gpu/check.sh (docs/GPU.md).
#
#   tests/gpu/build.sh          # toolchain (once), build, pack into .gpu/ (git-ignored)
#
# The toolchain is NVIDIA's PyPI wheels of CUDA 13.0 (the H200 machine's driver is 580, CUDA
# 13.0: PTX from a newer nvcc would not load there), unpacked under ${AGENT_GPU:-~/.cache/agent-gpu}.
# The build links `-lcuda`, the driver library, which only exists where a GPU is: a stand-in
# with the same SONAME and every `cu*` entry point of cuda.h satisfies the linker, and the
# real driver replaces it at run time (what the toolkit's own lib64/stubs/libcuda.so is for).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${AGENT_GPU:-$HOME/.cache/agent-gpu}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agent-build/target}"
WHEELS=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
)
CUDA="$CACHE/root/nvidia/cu13"
if [ ! -x "$CUDA/bin/nvcc" ]; then
  mkdir -p "$CACHE/wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$CACHE/wheels" "${WHEELS[@]}"
  rm -rf "$CACHE/root.tmp" && mkdir -p "$CACHE/root.tmp"
  for w in "$CACHE"/wheels/*.whl; do unzip -q -o "$w" -d "$CACHE/root.tmp"; done
  chmod +x "$CACHE"/root.tmp/nvidia/cu13/bin/* "$CACHE"/root.tmp/nvidia/cu13/nvvm/bin/*
  # The wheels ship only versioned libraries; the linker looks for lib*.so.
  for so in "$CACHE"/root.tmp/nvidia/cu13/lib/lib*.so.[0-9]*; do
    base="${so%%.so.*}.so"
    [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
  done
  rm -rf "$CACHE/root" && mv "$CACHE/root.tmp" "$CACHE/root"
fi
STUB="$CACHE/stub"
if [ ! -e "$STUB/libcuda.so" ]; then
  mkdir -p "$STUB"
  grep -oE '\bcu[A-Z][A-Za-z0-9_]*\b' "$CUDA/include/cuda.h" | sort -u |
    sed 's/.*/void &(void) {}/' > "$STUB/stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$STUB/libcuda.so" "$STUB/stub.c"
fi
export CUDA_HOME="$CUDA" CUDA_ROOT="$CUDA" CUDA_PATH="$CUDA" CUDA_COMPUTE_CAP=90
export PATH="$CUDA/bin:$PATH"
export LIBRARY_PATH="$CUDA/lib:$STUB${LIBRARY_PATH:+:$LIBRARY_PATH}"
cd "$REPO"
start=$(date +%s)
cargo build -p agent-bench --features cuda --bin agent-bench
echo "build: $(( $(date +%s) - start )) s" >&2
bin="$CARGO_TARGET_DIR/debug/agent-bench"
mkdir -p "$REPO/.gpu"
strip -o "$REPO/.gpu/agent-bench" "$bin"
rm -f "$REPO/.gpu/agent-bench.xz"
xz -6 -T2 "$REPO/.gpu/agent-bench"
ls -l "$bin" "$REPO/.gpu/agent-bench.xz" >&2
# The tiny fixtures the parity check and the agent run use (tests/fixtures/build.sh makes them).
# Their random weights do not compress and do not fit the 64 MiB a GPU machine receives, so
# they travel as what they are made from: the tokenizers for tiny_checkpoints.py, and for the
# GGUF files llama.cpp's converter (Python) and the quantizer's library from the same
# llama.cpp build. check.sh makes them there and compares their SHA-256 with the files here.
AGENT_HOME="${AGENT_HOME:-$HOME/.cache/agent}"
LCPP=fixtures/llama-cpp
LIBS=$LCPP/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
parts=(fixtures/tokenizer-qwen3 fixtures/tokenizer-llama4 $LCPP/src/convert_hf_to_gguf.py
       $LCPP/src/conversion $LCPP/src/gguf-py $LIBS/libllama.v0.4.0.so $LIBS/libggml.v0.4.0.so
       $LIBS/libggml-base.so $LIBS/libggml-cpu-x64.so)
made=(fixtures/gguf-src/qwen3 fixtures/gguf-src/qwen3moe)
for m in qwen3-tiny qwen3-moe-tiny qwen3-moe-experts-tiny qwen3-moe-tf5-tiny llama4-scout-tiny \
         llama4-maverick-tiny llama4-scout-tf5-tiny; do made+=("models/$m"); done
gguf=()
for a in qwen3 qwen3moe; do for q in f32 q8_0 q4_k_m; do gguf+=("models/$a-tiny-$q/$a-tiny-$q.gguf"); done; done
for p in "${parts[@]}" "${made[@]}" "${gguf[@]}"; do
  [ -e "$AGENT_HOME/$p" ] || { echo "build.sh: $AGENT_HOME/$p is missing: run tests/fixtures/build.sh" >&2; exit 1; }
done
(cd "$AGENT_HOME" && find "${made[@]}" -type f ! -name .fixture-stamp -print0 | sort -z |
  xargs -0 sha256sum) > "$AGENT_HOME/fixtures/gpu-checkpoints.sha256"
(cd "$AGENT_HOME" && sha256sum "${gguf[@]}") > "$AGENT_HOME/fixtures/gpu-gguf.sha256"
tar -C "$AGENT_HOME" --exclude=__pycache__ -cf - "${parts[@]}" fixtures/gpu-checkpoints.sha256 \
  fixtures/gpu-gguf.sha256 | xz -9e -T2 > "$REPO/.gpu/fixtures.tar.xz"
du -sh "$REPO/.gpu"/* >&2
