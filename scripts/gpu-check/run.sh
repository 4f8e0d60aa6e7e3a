#!/usr/bin/env bash
# The GPU check, run on an NVIDIA machine (H200: driver + CUDA 13.0, no Rust, no
# network) from a copy of the repository that carries scripts/gpu-check/bin/, which
# build.sh filled (binaries, the fixtures the golden step needs, MANIFEST.txt) and
# whose size it checked against the device's 64 MiB carry limit. Steps, each capped
# with `timeout`, the whole within GPU_CHECK_BUDGET_S (default 330 s, so that with
# the machine's start-up the check stays under 7 minutes of device time):
#   0. every staged file is there and every binary starts; else FAIL (exit 2);
#   1. every GPU kernel test against its CPU reference (gpu_kernels), run with
#      KQ_SYNC_EACH_LAUNCH=1 so that a device fault names its kernel; the GPU forward
#      pass against the CPU one on random models of every type (gpu_model);
#   2. golden tests on the GPU: the staged fixtures converted at f32 on the spot,
#      against transformers' logits (gpu_golden);
#   3. the benchmark, 2.8b-shaped synthetic model, prompt 1024 + 1024 greedy steps:
#      the models are converted first (all types at once, timed apart), then the
#      headline rows (q4_0 and f16 at batch 1 and 128), then the q4_0 sweep 2..64,
#      then q8_0; one process per row with its own cap; the report lists the rows
#      that were cut and why.
#   4. with GPU_CHECK_PROFILE=1 (and ncu there), between 2 and 3: Nsight Compute's
#      time per kernel over one batch-1 and one batch-8 decode step of the q4_0
#      model (summed by kernel in the report; CSVs in the logs).
# Writes $OUT/gpu-report.md (else ./gpu-report.md) and $OUT/gpu-logs.tar.gz with
# every step's full log. Exit status: 0 if every test step passed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/bin"
out="${OUT:-$PWD}"
report="$out/gpu-report.md"
work="${TMPDIR:-/tmp}/mamba-gpu-check"
budget=${GPU_CHECK_BUDGET_S:-330}
start=$(date +%s)
rm -rf "$work" && mkdir -p "$work/logs"
: >"$report"
export MAMBA_REQUIRE_GPU=1 RUST_BACKTRACE=1 MAMBA_SHARED="$bin/shared"
status=0

say() { printf '%s\n' "$*" | tee -a "$report"; }
elapsed() { echo $(($(date +%s) - start)); }
# Seconds a step may take: its cap, or what is left of the budget (at least 5).
cap() { local left=$((budget - $(elapsed))); [ "$left" -lt "$1" ] && echo $((left > 5 ? left : 5)) || echo "$1"; }
save_logs() { tar -czf "$out/gpu-logs.tar.gz" -C "$work" logs 2>/dev/null; }
trap save_logs EXIT
# panics LOG: each panic's location and message (the line after "panicked at").
panics() { grep -A1 'panicked at' "$1" | grep -v '^--$' | head -n 20; }
# run_step NAME CAP CMD...: runs a test executable, keeps its full log, reports PASS/FAIL.
run_step() {
    local name=$1 limit; limit=$(cap "$2"); shift 2
    local log="$work/logs/$name.log" t0 rc
    t0=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" >"$log" 2>&1
    rc=$?
    local dt=$(($(date +%s) - t0)) verdict=PASS
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict="FAIL (timed out after ${limit} s)"
    elif [ $rc -ne 0 ]; then verdict="FAIL (exit $rc)"; fi
    [ "$verdict" = PASS ] || status=1
    say ""
    say "### $name: $verdict, ${dt} s (full log: gpu-logs.tar.gz, logs/$name.log)"
    say ""
    say '```'
    grep -E '^test |test result|SKIPPED|KQ_SYNC|error ratio|GLIBC|not found' "$log" | tail -n 50 | tee -a "$report"
    panics "$log" | tee -a "$report"
    say '```'
}

say "# GPU check: $(date -u +%FT%TZ)"
say ""
say '```'
(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available") | tee -a "$report"
(command -v nvcc >/dev/null && nvcc --version | tail -1 || echo "nvcc: not on PATH") | tee -a "$report"
echo "glibc: $(ldd --version 2>&1 | head -1); cpus: $(nproc)" | tee -a "$report"
[ -f "$bin/MANIFEST.txt" ] && tee -a "$report" <"$bin/MANIFEST.txt"
say '```'

# ---- 0. is everything staged, and can the binaries start here? ------------------
missing=0
if [ -f "$bin/MANIFEST.txt" ]; then
    # Every staged file the manifest lists ("path: N bytes") must be here, at its size.
    while IFS= read -r line; do
        f=${line%%: *} n=${line##*: }
        n=${n%% bytes*}
        if [ ! -f "$bin/$f" ]; then say "MISSING: $bin/$f"; missing=1
        elif [ "$(stat -c %s "$bin/$f")" != "$n" ]; then say "WRONG SIZE: $bin/$f ($(stat -c %s "$bin/$f") bytes, staged $n)"; missing=1
        fi
    done < <(grep -E '^[^ ]+: [0-9]+ bytes' "$bin/MANIFEST.txt")
else
    say "MISSING: $bin/MANIFEST.txt (run scripts/gpu-check/build.sh on the build machine and carry scripts/gpu-check/bin)"
    missing=1
fi
for b in gpu_kernels gpu_model gpu_golden gpu_bench mamba-convert; do
    if [ ! -x "$bin/$b" ]; then
        say "MISSING: $bin/$b"
        missing=1
    elif ! o=$("$bin/$b" --help 2>&1 >/dev/null); then
        say "CANNOT START: $bin/$b: $(echo "$o" | head -3)"
        say "(these binaries need glibc >= 2.34 and the NVIDIA driver's libcuda.so.1; see MANIFEST.txt)"
        missing=1
    fi
done
if [ ! -d "$MAMBA_SHARED/fixtures" ]; then
    say "MISSING: $MAMBA_SHARED/fixtures (staged by build.sh)"
    missing=1
fi
if [ $missing -ne 0 ]; then
    say "**GPU check aborted: staged files missing or unable to start.**"
    exit 2
fi

# ---- 1. kernels and forward pass against the CPU references --------------------
say ""
say "## 1. GPU kernels and forward pass vs CPU references"
run_step gpu_kernels 60 env KQ_SYNC_EACH_LAUNCH=1 "$bin/gpu_kernels"
run_step gpu_model 60 "$bin/gpu_model"

# ---- 2. golden tests -------------------------------------------------------------
say ""
say "## 2. Golden tests on the GPU (f32 conversions vs transformers' logits)"
say "staged: $(ls "$MAMBA_SHARED/fixtures" | tr '\n' ' ')$( [ -d "$MAMBA_SHARED/models/mamba-shakespeare" ] || echo '(models/mamba-shakespeare not staged: over the carry limit; its greedy test reports SKIPPED)')"
run_step gpu_golden 45 "$bin/gpu_golden"

# ---- 3. benchmark ----------------------------------------------------------------
say ""
say "## 3. Benchmark: synthetic mamba-2.8b, prompt 1024 + generate 1024 (greedy)"
say ""
say "Reference (mamba-2.8b fp16 on an MI210): batch 1 12.1 s and 5 GB; batch 128 75.8 s and 31 GB."
say "\"peak own\" = the most this process held in device buffers (weights, states, activations);"
say "\"peak device used\" = total - free from cudaMemGetInfo (includes the CUDA context)."
say ""
# Conversions first, all at once and timed apart: nothing runs beside a timed row.
t0=$(date +%s)
climit=$(cap 90)
for ty in q4_0 f16 q8_0; do
    timeout --kill-after=5 "$climit" "$bin/mamba-convert" --synthetic 2.8b --seed 1 --type "$ty" -f -q \
        -o "$work/synthetic-2.8b.$ty.mbin" >"$work/logs/convert-$ty.log" 2>&1 &
done
wait
for ty in q4_0 f16 q8_0; do
    [ -s "$work/synthetic-2.8b.$ty.mbin" ] || say "- convert $ty failed or timed out: $(tail -2 "$work/logs/convert-$ty.log" | tr '\n' ' ')"
done
say "- converted q4_0, f16 and q8_0 side by side in $(($(date +%s) - t0)) s (cap ${climit} s)"
# ---- 4. optional: time per kernel of one decode step ----------------------------
profile() { # BATCH: ncu over the launches of decode step 2 (after prefill and step 1)
    local b=$1 csv="$work/logs/ncu-decode-b$1.csv" per
    # Launches per forward: 1 embedding + 7 per layer + final norm + lm_head; the
    # synthetic 2.8b has mamba-2.8b's 64 layers.
    per=$((64 * 7 + 3))
    MAMBA_GPU_GRAPHS=0 MAMBA_BENCH_MODEL="$work/synthetic-2.8b.q4_0.mbin" MAMBA_BENCH_BATCHES="$b" MAMBA_BENCH_PROMPT=16 \
        MAMBA_BENCH_GEN=2 timeout --kill-after=5 "$(cap 40)" ncu --clock-control none \
        --launch-skip $((2 * per)) --launch-count "$per" --metrics gpu__time_duration.sum --csv \
        "$bin/gpu_bench" --ignored --nocapture >"$csv" 2>"$work/logs/ncu-decode-b$b.err"
    python3 - "$csv" "$b" <<'PY' | tee -a "$report"
import csv, re, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows:
    sys.exit(f"- batch {sys.argv[2]}: no ncu rows (see logs)")
h = rows[0]
k, m, v = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
u = h.index("Metric Unit")
to_us = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6}
tot, cnt = {}, {}
for r in rows[1:]:
    if r[m] != "gpu__time_duration.sum":
        continue
    name = re.sub(r"\(.*", "", r[k]).replace("void ", "")
    tot[name] = tot.get(name, 0.0) + float(r[v].replace(",", "")) * to_us.get(r[u], 1e-3)
    cnt[name] = cnt.get(name, 0) + 1
s = sum(tot.values())
print(f"- batch {sys.argv[2]}: {sum(cnt.values())} kernels, {s:.0f} us of kernel time in one decode step")
for n in sorted(tot, key=tot.get, reverse=True)[:12]:
    print(f"  - {n}: {cnt[n]} launches, {tot[n]:.0f} us ({100 * tot[n] / s:.0f}%)")
PY
}
if [ "${GPU_CHECK_PROFILE:-0}" = 1 ]; then
    say ""
    say "## Profile: kernel time of one decode step (ncu, q4_0)"
    if command -v ncu >/dev/null && [ -s "$work/synthetic-2.8b.q4_0.mbin" ]; then
        profile 1
        profile 8
    else
        say "- skipped: no ncu on PATH or no q4_0 model"
    fi
    say ""
fi

rows="$work/bench-rows.md"
: >"$rows"
cut=""
bench() { # TYPE BATCH CAP [GRAPHS]: one row, one process; GRAPHS=0 launches kernel by kernel
    local ty=$1 b=$2 model="$work/synthetic-2.8b.$1.mbin" limit log="$work/logs/bench-$1-b$2${4:+-graphs$4}.log"
    if [ ! -s "$model" ]; then cut="$cut\n- $ty batch $b: not run, no model"; return; fi
    if [ $((budget - $(elapsed))) -lt 8 ]; then cut="$cut\n- $ty batch $b: not run, budget spent"; return; fi
    limit=$(cap "$3")
    MAMBA_GPU_GRAPHS=${4:-1} MAMBA_BENCH_MODEL="$model" MAMBA_BENCH_BATCHES="$b" MAMBA_BENCH_PROMPT=1024 \
        MAMBA_BENCH_GEN=1024 MAMBA_BENCH_OUT="$rows" timeout --kill-after=5 "$limit" "$bin/gpu_bench" --ignored --nocapture \
        >"$log" 2>&1
    local rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        cut="$cut\n- $ty batch $b: cut at its cap of ${limit} s; last progress: $(grep -E '^batch [0-9]+:' "$log" | tail -1)"
    elif [ $rc -ne 0 ]; then
        cut="$cut\n- $ty batch $b: failed (exit $rc): $(panics "$log" | tr '\n' ' ')"
        status=1
    fi
    grep -E 'uploaded' "$log" | head -1 >>"$work/uploads.txt"
    grep -E 'graph replay' "$log" | sed "s/^/$ty (MAMBA_GPU_GRAPHS=${4:-1}) /" >>"$work/uploads.txt"
}
bench q4_0 1 40
bench f16 1 40
bench q4_0 1 40 0   # the same without graph replay, to show what it saves
bench q4_0 128 75
bench f16 128 75
for b in 2 4 8 16 32 64; do bench q4_0 "$b" 40; done
bench q8_0 1 40
bench q8_0 128 60
say "| model | type | batch | prompt | gen | prefill s | decode s | total s | gen tok/s | peak own GiB | peak device used GiB |"
say "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
tee -a "$report" <"$rows"
[ -s "$work/uploads.txt" ] && { say ""; sort -u "$work/uploads.txt" | tee -a "$report"; }
if [ -n "$cut" ]; then say ""; say "Rows missing:"; printf '%b\n' "$cut" | sed '/^$/d' | tee -a "$report"; fi
rm -f "$work"/synthetic-2.8b.*.mbin

say ""
say "Total: $(elapsed) s (budget $budget s). Exit status $status."
exit $status
