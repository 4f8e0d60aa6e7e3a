#!/usr/bin/env bash
# CI for the GPU backend (kernels/GPU.md): installs both GPU toolchains, builds the
# `gpu` feature of mamba-kernels + mamba-runtime for AMD (hipcc, gfx90a) and for
# NVIDIA (nvcc, sm_90), test executables included, in their own target dirs
# (target-amd, target-nv), then runs the GPU tests. On a machine without a GPU they
# print "SKIPPED: no usable GPU ..." and pass; any other GPU error fails them.
# Usage: bash .ci/gpu-build.sh [amd|nvidia]   (default: both)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
. scripts/gpu-check/toolchains.sh
platforms=${1:-amd nvidia}

for p in $platforms; do
    case $p in
        amd) ensure_hipcc; target=target-amd ;;
        nvidia) ensure_cuda; target=target-nv ;;
        *) echo "unknown platform $p (amd or nvidia)" >&2; exit 2 ;;
    esac
    echo "== GPU build: $p ($target)"
    export HIP_PLATFORM=$p
    sel=(--target-dir "$target" -p mamba-kernels -p mamba-runtime --features mamba-runtime/gpu)
    cargo build "${sel[@]}"
    cargo test "${sel[@]}" --no-run
    cargo test "${sel[@]}" --lib -- gpu::
    cargo test "${sel[@]}" --test gpu_kernels --test gpu_model --test gpu_golden --test gpu_bench -- --nocapture
    unset HIP_PLATFORM
done
