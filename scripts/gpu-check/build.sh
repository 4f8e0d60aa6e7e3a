#!/usr/bin/env bash
# Builds, on this machine (Rust + network), everything scripts/gpu-check/run.sh
# needs on the NVIDIA H200 machine (no Rust, no network), into scripts/gpu-check/bin/:
#   gpu_kernels gpu_model gpu_golden gpu_bench   GPU test executables (NVIDIA build)
#   mamba-convert                                 the converter (the benchmark's models)
# All with HIP_PLATFORM=nvidia (CUDA 13.0 wheels, sm_90 unless KQ_CUDA_ARCHS says
# otherwise, cudart linked statically: they need the driver's libcuda.so.1 and
# glibc >= 2.34 there). Stripped, to keep the folder small enough to carry.
# Then stages what the run reads from the shared data (the golden fixtures, under
# bin/shared/) and writes bin/MANIFEST.txt (every staged file with its size, checked
# by run.sh there). The device carries the repository plus the named paths, 64 MiB
# in all: this script fails if the folder would not fit, and prints the carry list.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$(git -C "$here" rev-parse --show-toplevel)"
. "$here/toolchains.sh"
ensure_cuda
export HIP_PLATFORM=nvidia CARGO_PROFILE_RELEASE_DEBUG=0
target=target-nv
bin="$here/bin"
rm -rf "$bin" && mkdir -p "$bin"

echo "== test executables" >&2
cargo test --release --target-dir "$target" -p mamba-kernels -p mamba-runtime --features mamba-runtime/gpu \
    --no-run --message-format=json >"$bin/.cargo-tests.json"
python3 - "$bin" <<'PY'
import json, shutil, sys
out = sys.argv[1]
found = set()
for line in open(f"{out}/.cargo-tests.json"):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    name = m["target"]["name"]
    if "test" in m["target"]["kind"] and name.startswith("gpu_"):
        shutil.copy(m["executable"], f"{out}/{name}")
        found.add(name)
need = {"gpu_kernels", "gpu_model", "gpu_golden", "gpu_bench"}
missing = need - found
if missing:
    sys.exit(f"missing test executables: {sorted(missing)}")
print("tests:", " ".join(sorted(found)), file=sys.stderr)
PY
rm -f "$bin/.cargo-tests.json"

echo "== tools" >&2
# Only what run.sh runs: the 64 MiB carry limit leaves no room for the other tools.
cargo build --release --target-dir "$target" -p mamba-convert --bin mamba-convert
cp "$target/release/mamba-convert" "$bin/mamba-convert"
strip "$bin"/* 2>/dev/null || true

echo "== shared data" >&2
shared=${MAMBA_SHARED:-$(pwd)/../shared}
[ -d "$shared/fixtures" ] || { echo "shared data not found at $shared (set MAMBA_SHARED)" >&2; exit 1; }
# The golden step's fixtures (runtime/tests/gpu_golden.rs). models/mamba-shakespeare
# (68 MB) does not fit the carry limit beside the binaries; its test reports SKIPPED.
mkdir -p "$bin/shared/fixtures"
for f in mamba-tiny-hf mamba-tiny-ssm mamba-tiny-sharded-bf16; do
    cp -r "$shared/fixtures/$f" "$bin/shared/fixtures/"
done
cp "$shared/fixtures/README.md" "$bin/shared/fixtures/" 2>/dev/null || true
chmod -R u+w "$bin/shared"

{
    echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
    echo "HIP_PLATFORM=nvidia KQ_CUDA_ARCHS=${KQ_CUDA_ARCHS:-90} nvcc: $("$CUDA_PATH/bin/nvcc" --version | tail -1)"
    for f in "$bin"/*; do
        [ -f "$f" ] && [ -x "$f" ] || continue
        glibc=$(objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)
        echo "$(basename "$f") needs ${glibc:-?}"
    done
    (cd "$bin" && find . -type f ! -name MANIFEST.txt ! -name .manifest -printf '%P: %s bytes\n' | sort)
} >"$bin/.manifest"
mv "$bin/.manifest" "$bin/MANIFEST.txt"
cat "$bin/MANIFEST.txt"

# What travels: tracked and untracked-not-ignored files, plus the carried folder.
tree=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
staged=$(find "$bin" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
total=$((tree + staged))
echo "working tree $((tree / 1024)) KiB + staged $((staged / 1024)) KiB = $((total / 1024)) KiB of 65536 KiB" >&2
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
    echo "too large to carry: over the device's 64 MiB limit" >&2
    exit 1
fi
echo "carry: [\"scripts/gpu-check/bin\"]"
echo "command: bash scripts/gpu-check/run.sh"
