#!/usr/bin/env bash
# CI for aarch64 (the NEON kernel table): cross-compiles mamba-kernels for
# aarch64-unknown-linux-gnu and runs its tests under qemu user-mode emulation, so
# every SIMD-vs-portable comparison test also runs against the NEON kernels, and
# the golden tests (transformers' logits) run end to end on the NEON table.
# There is no ARM machine here; qemu executes the NEON instructions exactly.
# Target dir: target-arm. Usage: bash .ci/arm-test.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1; then
    echo "installing gcc-aarch64-linux-gnu and qemu-user (apt)" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-aarch64-linux-gnu qemu-user >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
sel=(--target-dir target-arm --target aarch64-unknown-linux-gnu -p mamba-kernels)
cargo clippy "${sel[@]}" --all-targets -- -D warnings
cargo test "${sel[@]}" --release
MAMBA_FORCE_SCALAR=1 cargo test "${sel[@]}" --release
# End to end on the NEON table: the golden tests against transformers' logits.
cargo test --target-dir target-arm --target aarch64-unknown-linux-gnu --release -p mamba-tests --test golden
