#!/usr/bin/env bash
# Builds, on this machine (Rust + network), everything scripts/gpu-check/run.sh
# needs on the NVIDIA H200 machine (no Rust, no network), into scripts/gpu-check/bin/:
#   gpu_kernels gpu_model gpu_golden gpu_bench   GPU test executables (NVIDIA build)
#   mamba-convert mamba-bench mamba-run mamba-perplexity   release tools
# All with HIP_PLATFORM=nvidia (CUDA 13.0 wheels, sm_90 unless KQ_CUDA_ARCHS says
# otherwise, cudart linked statically: they need the driver's libcuda.so.1 and
# glibc >= 2.34 there). Stripped, to keep the folder small enough to carry.
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
cargo build --release --target-dir "$target" -p mamba-convert -p mamba-tools --features mamba-tools/gpu --bins
for t in mamba-convert mamba-bench mamba-run mamba-perplexity; do
    cp "$target/release/$t" "$bin/$t"
done
strip "$bin"/* 2>/dev/null || true

{
    echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
    echo "HIP_PLATFORM=nvidia KQ_CUDA_ARCHS=${KQ_CUDA_ARCHS:-90} nvcc: $("$CUDA_PATH/bin/nvcc" --version | tail -1)"
    for f in "$bin"/*; do
        [ -x "$f" ] || continue
        glibc=$(objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)
        echo "$(basename "$f"): $(du -k "$f" | cut -f1) KiB, needs ${glibc:-?}"
    done
} >"$bin/.manifest"
mv "$bin/.manifest" "$bin/MANIFEST.txt"
cat "$bin/MANIFEST.txt"
du -sh "$bin"
