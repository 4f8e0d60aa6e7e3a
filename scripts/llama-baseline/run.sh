#!/usr/bin/env bash
# Same-run comparison with llama.cpp (issue 5): builds llama.cpp for this CPU from
# the source that llama-cpp-python vendors on PyPI (GitHub may be unreachable from
# here; pass LLAMA_SRC=DIR to use a checkout instead), writes a random-weight
# mamba-130m GGUF and quantizes it, converts the same shape with mamba-convert,
# then runs llama-bench and mamba-bench interleaved, ROUNDS times.
#
#   scripts/llama-baseline/run.sh            # LLAMA_PY=0.3.36 THREADS=2 ROUNDS=3
#
# Needs curl, cmake, ninja (pip install cmake ninja), a C++ compiler, numpy.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK="${WORK:-target/llama-baseline}"
LLAMA_PY="${LLAMA_PY:-0.3.36}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
TYPES="${TYPES:-q8_0 q4_0}"
mkdir -p "$WORK"
if [ -z "${LLAMA_SRC:-}" ]; then
    LLAMA_SRC="$WORK/llama.cpp-$LLAMA_PY"
    if [ ! -d "$LLAMA_SRC" ]; then
        url=$(curl -s "https://pypi.org/pypi/llama-cpp-python/$LLAMA_PY/json" | python3 -c \
            'import json,sys; print([u["url"] for u in json.load(sys.stdin)["urls"] if u["packagetype"]=="sdist"][0])')
        curl -sL "$url" | tar xz -C "$WORK"
        mv "$WORK/llama_cpp_python-$LLAMA_PY/vendor/llama.cpp" "$LLAMA_SRC"
        rm -rf "$WORK/llama_cpp_python-$LLAMA_PY"
    fi
fi
B="$LLAMA_SRC/build"
if [ ! -x "$B/bin/llama-bench" ] || [ ! -x "$B/bin/llama-quantize" ]; then
    cmake -S "$LLAMA_SRC" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=OFF >/dev/null
    cmake --build "$B" -j "$(nproc)" --target llama-bench llama-quantize >/dev/null
fi
export LD_LIBRARY_PATH="$B/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo build --release --quiet --bin mamba-convert --bin mamba-bench
[ -f "$WORK/mamba-130m-f32.gguf" ] ||
    python3 scripts/llama-baseline/mamba_gguf.py "$LLAMA_SRC" "$WORK/mamba-130m-f32.gguf" >/dev/null
for t in $TYPES; do
    [ -f "$WORK/mamba-130m-$t.gguf" ] ||
        "$B/bin/llama-quantize" "$WORK/mamba-130m-f32.gguf" "$WORK/mamba-130m-$t.gguf" "$t" >/dev/null 2>&1
    [ -f "$WORK/mamba-130m-$t.mbin" ] ||
        target/release/mamba-convert --synthetic 130m --type "$t" -o "$WORK/mamba-130m-$t.mbin" --quiet
done
echo "| round | type | llama.cpp pp512 | mamba pp512 | ratio | llama.cpp tg128 | mamba tg128 | ratio |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
    for t in $TYPES; do
        l=$("$B/bin/llama-bench" -m "$WORK/mamba-130m-$t.gguf" -t "$THREADS" -p 512 -n 128 -r 3 -o json 2>/dev/null |
            python3 -c 'import json,sys; print(" ".join(str(r["avg_ts"]) for r in json.load(sys.stdin)))')
        m=$(target/release/mamba-bench "$WORK/mamba-130m-$t.mbin" -t "$THREADS" -p 512 -n 128 -r 3 --json 2>/dev/null |
            python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["tokens_per_s"]) for l in sys.stdin if l.strip().startswith("{")))')
        set -- $l $m
        awk -v r="$r" -v t="$t" -v lp="$1" -v lt="$2" -v mp="$3" -v mt="$4" 'BEGIN {
            printf "| %s | %s | %.1f | %.1f | %.2f× | %.1f | %.1f | %.2f× |\n", r, t, lp, mp, mp/lp, lt, mt, mt/lt }'
    done
done
