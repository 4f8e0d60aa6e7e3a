# Sourced by .ci/gpu-build.sh and scripts/gpu-check/build.sh: puts the two GPU
# toolchains in place (versions as verified in kernels/GPU.md) and exports CUDA_PATH.
#   ensure_hipcc: Debian's hipcc + libamdhip64-dev (ROCm 5.2.3) through apt (~30 s).
#   ensure_cuda:  the CUDA 13.0 pip wheels in <repo>/.venv-cuda (gitignored, ~5 s);
#                 13.0 matches the H200 machine's nvcc 13.0 and driver 580.

ensure_hipcc() {
    if command -v hipcc >/dev/null 2>&1; then return 0; fi
    echo "installing hipcc and libamdhip64-dev (apt)" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q hipcc libamdhip64-dev >/dev/null
}

ensure_cuda() {
    local venv cu
    venv="$(git rev-parse --show-toplevel)/.venv-cuda"
    if [ -n "${CUDA_PATH:-}" ] && [ -x "$CUDA_PATH/bin/nvcc" ]; then return 0; fi
    if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
    cu=$("$venv/bin/python" -c 'import sys; print(f"'"$venv"'/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/nvidia/cu13")')
    if [ ! -x "$cu/bin/nvcc" ] || [ ! -d "$cu/include/nv" ]; then
        echo "installing the CUDA 13.0 wheels into $venv (pip)" >&2
        "$venv/bin/pip" install -q nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 \
            nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-profiler-api==13.0.85 \
            nvidia-cuda-cccl==13.0.85
    fi
    export CUDA_PATH="$cu"
}
