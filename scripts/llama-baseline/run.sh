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
# Work files go to WORK=target/llama-baseline (git-ignored).
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

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja)
python3 -c 'import numpy' 2>/dev/null || need+=(numpy)
[ ${#need[@]} -eq 0 ] || python3 -m pip install --quiet "${need[@]}"

if [ -z "${LLAMA_SRC:-}" ]; then
    LLAMA_SRC="$WORK/llama.cpp-$LLAMA_PY"
    if [ ! -d "$LLAMA_SRC" ]; then
        sdist="$WORK/dl/llama_cpp_python-$LLAMA_PY.tar.gz"
        [ -f "$sdist" ] || python3 -m pip download "llama-cpp-python==$LLAMA_PY" --no-deps \
            --no-binary llama-cpp-python -d "$WORK/dl" >&2
        tar xzf "$sdist" -C "$WORK"
        top="$WORK/llama_cpp_python-$LLAMA_PY"
        # the sdist carries its git metadata: the submodule entry names the commit
        git -C "$top" ls-tree HEAD vendor/llama.cpp 2>/dev/null | awk '{print $3}' \
            >"$top/vendor/llama.cpp/VENDORED_COMMIT" || true
        # (its .git, a gitlink into the sdist's .git, stays: broken once moved, it stops
        # llama.cpp's cmake from taking this repository's commit for its own)
        mv "$top/vendor/llama.cpp" "$LLAMA_SRC"
        rm -rf "$top"
    fi
fi
if [ -f "$LLAMA_SRC/VENDORED_COMMIT" ]; then commit=$(cat "$LLAMA_SRC/VENDORED_COMMIT")
elif [ -e "$LLAMA_SRC/.git" ]; then commit=$(git -C "$LLAMA_SRC" rev-parse HEAD 2>/dev/null || true)
else commit=""; fi
commit="${commit:-unknown}"
B="$LLAMA_SRC/build"
cmake -S "$LLAMA_SRC" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_COMMIT="${commit:0:9}" >"$WORK/configure.log" 2>&1
cmake --build "$B" -j "$(nproc)" --target llama-bench llama-quantize >"$WORK/build.log"
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
flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)
simd=""
for x in avx avx2 fma f16c avx512f; do
    case " $flags " in *" $x "*) simd+=" $x" ;; *) simd+=" no-$x" ;; esac
done
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
