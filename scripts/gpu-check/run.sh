#!/usr/bin/env bash
# The GPU check, run on an NVIDIA machine (H200: driver + CUDA 13.0, no Rust, no
# network) from a copy of the repository whose scripts/gpu-check/bin/ was filled by
# build.sh. Steps, each capped with `timeout`, the whole well under 8 minutes:
#   1. every GPU kernel test against its CPU reference (gpu_kernels), and the GPU
#      forward pass against the CPU one on random models of every type (gpu_model);
#   2. golden tests on the GPU: the shared fixtures and mamba-shakespeare, converted
#      at f32 on the spot, against transformers' logits (gpu_golden; $MAMBA_SHARED,
#      else <repo>/shared, else <repo>/../shared);
#   3. the benchmark: mamba-convert --synthetic 2.8b at q4_0, f16 and q8_0 (in
#      $TMPDIR, default /tmp), prompt 1024 + 1024 greedy steps, batch 1..128 for q4_0
#      and 1, 128 for f16 and q8_0: total time and peak device memory per batch
#      (runtime/tests/gpu_bench.rs; each run capped, rows of finished runs kept).
# Writes a markdown report to $OUT/gpu-report.md if OUT is set, else ./gpu-report.md.
# Exit status: 0 if every test step passed (benchmark rows may be missing on timeout).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$here/bin"
report="${OUT:+$OUT/gpu-report.md}"
report="${report:-$PWD/gpu-report.md}"
work="${TMPDIR:-/tmp}/mamba-gpu-check"
budget=${GPU_CHECK_BUDGET_S:-420}   # whole run; each step gets what is left
start=$(date +%s)
mkdir -p "$work"
: >"$report"
export MAMBA_REQUIRE_GPU=1 RUST_BACKTRACE=1
status=0

say() { printf '%s\n' "$*" | tee -a "$report"; }
elapsed() { echo $(($(date +%s) - start)); }
# Seconds a step may take: its cap, or what is left of the budget (min 10).
cap() { local left=$((budget - $(elapsed))); [ "$left" -lt "$1" ] && echo $((left > 10 ? left : 10)) || echo "$1"; }
# run_step NAME CAP CMD...: runs a test executable, keeps its output, reports PASS/FAIL.
run_step() {
    local name=$1 limit; limit=$(cap "$2"); shift 2
    local log="$work/$name.log" t0 rc
    t0=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" >"$log" 2>&1
    rc=$?
    local dt=$(($(date +%s) - t0)) verdict=PASS
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict="FAIL (timed out after ${limit} s)"
    elif [ $rc -ne 0 ]; then verdict="FAIL (exit $rc)"; fi
    [ "$verdict" = PASS ] || status=1
    say ""
    say "### $name: $verdict, ${dt} s"
    say ""
    say '```'
    grep -E '^test |test result|panicked|error|SKIPPED|ratio|GLIBC|not found' "$log" | tail -n 60 | tee -a "$report"
    say '```'
}

say "# GPU check: $(date -u +%FT%TZ)"
say ""
say '```'
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available") | tee -a "$report"
(command -v nvcc >/dev/null && nvcc --version | tail -1 || echo "nvcc: not on PATH") | tee -a "$report"
echo "glibc: $(ldd --version 2>&1 | head -1)" | tee -a "$report"
[ -f "$bin/MANIFEST.txt" ] && tee -a "$report" <"$bin/MANIFEST.txt"
say '```'

# ---- 0. can the prebuilt binaries start here? ------------------------------------
missing=0
for b in gpu_kernels gpu_model gpu_golden gpu_bench mamba-convert; do
    if [ ! -x "$bin/$b" ]; then
        say "MISSING: $bin/$b (run scripts/gpu-check/build.sh on the build machine)"
        missing=1
    elif ! out=$("$bin/$b" --help 2>&1 >/dev/null); then
        say "CANNOT START: $bin/$b: $(echo "$out" | head -3)"
        say "(these binaries need glibc >= 2.34 and the NVIDIA driver's libcuda.so.1; see MANIFEST.txt)"
        missing=1
    fi
done
if [ $missing -ne 0 ]; then
    say "**GPU check aborted: prebuilt binaries missing or unable to start.**"
    exit 2
fi

# ---- 1. kernels and forward pass against the CPU references --------------------
say ""
say "## 1. GPU kernels and forward pass vs CPU references"
run_step gpu_kernels 120 "$bin/gpu_kernels"
run_step gpu_model 120 "$bin/gpu_model"

# ---- 2. golden tests -------------------------------------------------------------
say ""
say "## 2. Golden tests on the GPU (f32 conversions vs transformers' logits)"
if [ -z "${MAMBA_SHARED:-}" ]; then
    for d in "$root/shared" "$root/../shared"; do
        [ -d "$d/fixtures" ] && export MAMBA_SHARED=$(cd "$d" && pwd) && break
    done
fi
if [ -n "${MAMBA_SHARED:-}" ]; then
    say "shared data: $MAMBA_SHARED"
    run_step gpu_golden 90 "$bin/gpu_golden"
else
    say "SKIPPED: shared data not found (set MAMBA_SHARED to the folder holding fixtures/ and models/)"
    status=1
fi

# ---- 3. benchmark ----------------------------------------------------------------
say ""
say "## 3. Benchmark: synthetic mamba-2.8b, prompt 1024 + generate 1024 (greedy)"
say ""
say "Reference (mamba-2.8b fp16 on an MI210): batch 1 12.1 s and 5 GB; batch 128 75.8 s and 31 GB."
say "\"peak own\" = the most this process held in device buffers (weights, states, activations);"
say "\"peak device used\" = total - free from hipMemGetInfo/cudaMemGetInfo (includes the CUDA context)."
convert() { # TYPE: converts in the background, logs to $work/convert-TYPE.log
    timeout --kill-after=5 "$(cap 120)" "$bin/mamba-convert" --synthetic 2.8b --seed 1 --type "$1" -f -q \
        -o "$work/synthetic-2.8b.$1.mbin" >"$work/convert-$1.log" 2>&1
}
rows="$work/bench-rows.md"
: >"$rows"
bench() { # TYPE BATCHES CAP
    local model="$work/synthetic-2.8b.$1.mbin" limit; limit=$(cap "$3")
    if [ ! -s "$model" ]; then
        say "- $1: no model ($(tail -1 "$work/convert-$1.log" 2>/dev/null))"
        return
    fi
    local t0=$(date +%s)
    MAMBA_BENCH_MODEL="$model" MAMBA_BENCH_BATCHES="$2" MAMBA_BENCH_PROMPT=1024 MAMBA_BENCH_GEN=1024 \
        MAMBA_BENCH_OUT="$rows" timeout --kill-after=5 "$limit" "$bin/gpu_bench" --ignored --nocapture \
        >"$work/bench-$1-$2.log" 2>&1
    local rc=$? note=""
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && note=" (timed out after ${limit} s: batch sizes missing below did not finish; last progress: $(grep -E '^batch [0-9]+:' "$work/bench-$1-$2.log" | tail -1))"
    [ $rc -ne 0 ] && [ -z "$note" ] && note=" (exit $rc: $(grep -m1 -A1 -E 'panicked|error' "$work/bench-$1-$2.log" | tr '\n' ' '))"
    say "- $1, batches $2: $(($(date +%s) - t0)) s$note"
}
t0=$(date +%s)
convert q4_0
say "- converted q4_0 in $(($(date +%s) - t0)) s $(tail -1 "$work/convert-q4_0.log" 2>/dev/null | cut -c1-100)"
(convert f16; convert q8_0) &
conv_pid=$!
# Small batches of every type first, the three batch-128 runs (the longest) last,
# so that a slow machine still reports every type.
bench q4_0 1,2,4,8,16,32,64 120
wait $conv_pid
bench f16 1 30
bench q8_0 1 30
bench q4_0 128 100
bench f16 128 100
bench q8_0 128 100
say ""
say "| model | type | batch | prompt | gen | prefill s | decode s | total s | gen tok/s | peak own GiB | peak device used GiB |"
say "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
sort -t'|' -k3,3 -k4,4n "$rows" | tee -a "$report"
rm -f "$work"/synthetic-2.8b.*.mbin

say ""
say "Total: $(elapsed) s. Logs: $work. Exit status $status."
exit $status
