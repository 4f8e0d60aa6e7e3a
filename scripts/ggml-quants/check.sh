#!/usr/bin/env bash
# Checks mamba-format's quantizers and dequantizers byte for byte against ggml's:
# builds harness.c with ggml/src/ggml-quants.c of a llama.cpp tree, unmodified and
# with the flags llama.cpp's CMake gives it on x86-64 (ggml-base: -O3 -DNDEBUG
# -std=gnu11, no -march, so no FMA contraction), writes the test rows and the Rust
# output with `cargo run --example ggml_vectors`, and compares (see harness.c).
# CFLAGS_OPT overrides -O3: with FMA contraction (e.g. "-O3 -march=native" on an FMA
# CPU, or any aarch64 build, where gcc contracts by default) ggml's own K-quant bytes
# change, and the comparison is expected to fail.
#
# Usage: bash scripts/ggml-quants/check.sh [LLAMA_SRC]
#   LLAMA_SRC defaults to target/llama-baseline/llama.cpp-0.3.36, the tree
#   scripts/llama-baseline/run.sh unpacks (ggml-org/llama.cpp@0c1e5709).
# Work files go to target/ggml-quants. Needs gcc.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
src="${1:-target/llama-baseline/llama.cpp-0.3.36}"
ggml="$src/ggml"
if [ ! -f "$ggml/src/ggml-quants.c" ]; then
    echo "no $ggml/src/ggml-quants.c: run scripts/llama-baseline/run.sh first or pass LLAMA_SRC" >&2
    exit 2
fi
work=target/ggml-quants
mkdir -p "$work"
cflags=(${CFLAGS_OPT:--O3} -DNDEBUG -std=gnu11 -I"$ggml/include" -I"$ggml/src" -I"$ggml/src/ggml-cpu")
gcc "${cflags[@]}" -c "$ggml/src/ggml-quants.c" -o "$work/ggml-quants.o"
gcc "${cflags[@]}" -Wall -Wextra -c scripts/ggml-quants/harness.c -o "$work/harness.o"
gcc "$work/harness.o" "$work/ggml-quants.o" -lm -o "$work/harness"
cargo run --quiet --release -p mamba-format --example ggml_vectors -- "$work"
"$work/harness" "$work/vectors.bin" "$work/rust.bin"
