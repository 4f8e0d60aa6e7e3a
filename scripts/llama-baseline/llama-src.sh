# Shared by scripts/llama-baseline/run.sh and scripts/server-bench/run.sh; source it
# (with `set -euo pipefail` on, from the repository root), don't run it.
#
#   WORK=target/llama-baseline LLAMA_PY=0.3.36; . scripts/llama-baseline/llama-src.sh
#   llama_tools                   # pip-installs cmake, ninja, numpy when missing
#   llama_src                     # sets LLAMA_SRC (unless given) and LLAMA_COMMIT
#   llama_build DIR SERVER T...   # configures LLAMA_SRC into DIR (SERVER: ON or OFF
#                                 # for LLAMA_BUILD_SERVER), builds targets T...
#   cpu_simd                      # prints " avx avx2 fma f16c avx512f" (no-X if absent)
#
# llama_src unpacks the llama.cpp source that the llama-cpp-python sdist vendors:
# `pip download llama-cpp-python==$LLAMA_PY --no-deps --no-binary llama-cpp-python
# -d $WORK/dl` (an sdist already in $WORK/dl is reused), its vendor/llama.cpp moved
# to $WORK/llama.cpp-$LLAMA_PY. Pass LLAMA_SRC=DIR to use a checkout instead.

llama_tools() {
    local need=()
    command -v cmake >/dev/null || need+=(cmake)
    command -v ninja >/dev/null || need+=(ninja)
    python3 -c 'import numpy' 2>/dev/null || need+=(numpy)
    [ ${#need[@]} -eq 0 ] || python3 -m pip install --quiet "${need[@]}"
}

llama_src() {
    if [ -z "${LLAMA_SRC:-}" ]; then
        LLAMA_SRC="$WORK/llama.cpp-$LLAMA_PY"
        if [ ! -d "$LLAMA_SRC" ]; then
            local sdist="$WORK/dl/llama_cpp_python-$LLAMA_PY.tar.gz"
            [ -f "$sdist" ] || python3 -m pip download "llama-cpp-python==$LLAMA_PY" --no-deps \
                --no-binary llama-cpp-python -d "$WORK/dl" >&2
            tar xzf "$sdist" -C "$WORK"
            local top="$WORK/llama_cpp_python-$LLAMA_PY"
            # the sdist carries its git metadata: the submodule entry names the commit
            git -C "$top" ls-tree HEAD vendor/llama.cpp 2>/dev/null | awk '{print $3}' \
                >"$top/vendor/llama.cpp/VENDORED_COMMIT" || true
            # (its .git, a gitlink into the sdist's .git, stays: broken once moved, it stops
            # llama.cpp's cmake from taking this repository's commit for its own)
            mv "$top/vendor/llama.cpp" "$LLAMA_SRC"
            rm -rf "$top"
        fi
    fi
    if [ -f "$LLAMA_SRC/VENDORED_COMMIT" ]; then LLAMA_COMMIT=$(cat "$LLAMA_SRC/VENDORED_COMMIT")
    elif [ -e "$LLAMA_SRC/.git" ]; then LLAMA_COMMIT=$(git -C "$LLAMA_SRC" rev-parse HEAD 2>/dev/null || true)
    else LLAMA_COMMIT=""; fi
    LLAMA_COMMIT="${LLAMA_COMMIT:-unknown}"
}

# llama_build BUILD_DIR ON|OFF TARGET...: logs to $WORK/configure[-SUFFIX].log and
# $WORK/build[-SUFFIX].log, SUFFIX being LLAMA_LOG_SUFFIX (empty by default).
# AMX is left out: hosts of this machine kind list amx_tile/amx_int8 but their
# sandbox does not enable the tile state, and ggml's AMX matmul (which -march=native
# turns on) dies there on its first `tilezero` (SIGILL). AVX-512 and VNNI stay on.
llama_build() {
    local dir="$1" server="$2"; shift 2
    local sfx="${LLAMA_LOG_SUFFIX:+-$LLAMA_LOG_SUFFIX}"
    local no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    cmake -S "$LLAMA_SRC" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER="$server" -DLLAMA_BUILD_COMMIT="${LLAMA_COMMIT:0:9}" \
        >"$WORK/configure$sfx.log" 2>&1 ||
        { echo "error: cmake configure of $LLAMA_SRC failed, see $WORK/configure$sfx.log" >&2; return 1; }
    cmake --build "$dir" -j "${LLAMA_JOBS:-$(nproc)}" --target "$@" >"$WORK/build$sfx.log" 2>&1 ||
        { echo "error: building $* failed, see $WORK/build$sfx.log" >&2; tail -20 "$WORK/build$sfx.log" >&2; return 1; }
}

cpu_simd() {
    local flags simd="" x
    flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)
    for x in avx avx2 fma f16c avx512f; do
        case " $flags " in *" $x "*) simd+=" $x" ;; *) simd+=" no-$x" ;; esac
    done
    echo "$simd"
}
