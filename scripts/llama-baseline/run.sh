#!/usr/bin/env bash
# Same-run comparison with llama.cpp (issues 5 and 13): builds llama.cpp for this CPU
# from the source that the llama-cpp-python sdist vendors (pass LLAMA_SRC=DIR to use
# a checkout instead), then for each model family in ARCHS writes a random-weight
# GGUF of the 130m shape (mamba: mamba_gguf.py, mamba-130m; mamba2: mamba2_gguf.py,
# mamba2-130m) and quantizes it with llama-quantize, converts the same shape with
# `mamba-convert --synthetic`, and runs llama-bench and mamba-bench (-p 512 -n 128
# -r 3) interleaved, ROUNDS times, printing one markdown table of ratios.
#
#   scripts/llama-baseline/run.sh     # LLAMA_PY=0.3.36 THREADS=2 ROUNDS=3
#                                     # ARCHS="mamba mamba2" TYPES="q8_0 q4_0"
#
# Before the timed part it waits (up to WAIT_S=600 s) for the 1-minute load average
# to drop below LOAD_MAX=1.5, and prints uptime, the CPU and its SIMD flags, and
# both sides' versions above the table.
#
# Needs: python3 with pip, a C/C++ compiler, cargo, git (only to name the vendored
# llama.cpp commit). It gets the rest with pip, into the current Python environment:
#   - cmake, ninja, numpy: `pip install` when missing (numpy for the GGUF writers);
#   - the llama-cpp-python sdist: `pip download llama-cpp-python==$LLAMA_PY --no-deps
#     --no-binary llama-cpp-python -d $WORK/dl` (an sdist already in $WORK/dl is
#     reused; pip prepares its metadata but builds nothing), unpacked for its
#     vendor/llama.cpp.
# Work files go to WORK=target/llama-baseline (git-ignored). The fetching and building
# is in llama-src.sh, shared with scripts/server-bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK="${WORK:-target/llama-baseline}"
LLAMA_PY="${LLAMA_PY:-0.3.36}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
TYPES="${TYPES:-q8_0 q4_0}"
ARCHS="${ARCHS:-mamba mamba2}"
LOAD_MAX="${LOAD_MAX:-1.5}"
WAIT_S="${WAIT_S:-600}"
mkdir -p "$WORK"

. scripts/llama-baseline/llama-src.sh
llama_tools
llama_src
commit="$LLAMA_COMMIT"
B="$LLAMA_SRC/build"
llama_build "$B" OFF llama-bench llama-quantize
export LD_LIBRARY_PATH="$B/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo build --release --quiet --bin mamba-convert --bin mamba-bench
T="${CARGO_TARGET_DIR:-target}/release"

size() { case "$1" in mamba) echo 130m ;; mamba2) echo mamba2-130m ;; *) echo "unknown arch $1" >&2; exit 1 ;; esac; }
stem() { case "$1" in mamba) echo mamba-130m ;; mamba2) echo mamba2-130m ;; esac; }
for a in $ARCHS; do
    f="$WORK/$(stem "$a")"
    [ -f "$f-f32.gguf" ] ||
        python3 "scripts/llama-baseline/${a}_gguf.py" "$LLAMA_SRC" "$f-f32.gguf" >/dev/null
    for t in $TYPES; do
        [ -f "$f-$t.gguf" ] ||
            "$B/bin/llama-quantize" "$f-f32.gguf" "$f-$t.gguf" "$t" >"$WORK/quantize.log" 2>&1
        [ -f "$f-$t.mbin" ] ||
            "$T"/mamba-convert --synthetic "$(size "$a")" --type "$t" -o "$f-$t.mbin" --quiet
    done
done

waited=0
while awk -v m="$LOAD_MAX" '{ exit !($1 >= m) }' /proc/loadavg && [ "$waited" -lt "$WAIT_S" ]; do
    sleep 15; waited=$((waited + 15))
done
simd=$(cpu_simd)
echo "- host: $(uptime | sed 's/^ *//') (waited ${waited}s for load < $LOAD_MAX)"
echo "- cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) logical CPUs;$simd"
echo "- llama.cpp: ${commit:0:9} (llama-cpp-python ${LLAMA_PY}'s vendored source unless LLAMA_SRC), -t $THREADS"
echo "- mamba: $(git describe --always --dirty 2>/dev/null || echo unknown), -t $THREADS"
echo
echo "| round | arch | type | llama.cpp pp512 | mamba pp512 | ratio | llama.cpp tg128 | mamba tg128 | ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
    for a in $ARCHS; do
        f="$WORK/$(stem "$a")"
        for t in $TYPES; do
            l=$("$B/bin/llama-bench" -m "$f-$t.gguf" -t "$THREADS" -p 512 -n 128 -r 3 -o json 2>"$WORK/llama-bench.log" |
                python3 -c 'import json,sys; print(" ".join(str(r["avg_ts"]) for r in json.load(sys.stdin)))' || true)
            m=$("$T"/mamba-bench "$f-$t.mbin" -t "$THREADS" -p 512 -n 128 -r 3 --json 2>"$WORK/mamba-bench.log" |
                python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["tokens_per_s"]) for l in sys.stdin if l.strip().startswith("{")))' || true)
            set -- $l $m
            [ $# -eq 4 ] || { echo "round $r $a $t: llama-bench gave '$l', mamba-bench '$m'" >&2
                tail -5 "$WORK/llama-bench.log" "$WORK/mamba-bench.log" >&2; exit 1; }
            awk -v r="$r" -v a="$a" -v t="$t" -v lp="$1" -v lt="$2" -v mp="$3" -v mt="$4" 'BEGIN {
                printf "| %s | %s | %s | %.1f | %.1f | %.2f× | %.1f | %.1f | %.2f× |\n", r, a, t, lp, mp, mp/lp, lt, mt, mt/lt }'
        done
    done
done
