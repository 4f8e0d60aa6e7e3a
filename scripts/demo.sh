#!/usr/bin/env bash
# The main job, on a fresh machine: build, convert a small checkpoint, generate text.
#
# Uses ../shared/models/mamba-shakespeare (or $MAMBA_SHARED/models/...) when present;
# otherwise a synthetic 130m-shaped model with random weights, whose text is random.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${MAMBA_SHARED:-../shared}"
TYPE="${TYPE:-q8_0}"
OUT="${OUT:-target/demo}"
mkdir -p "$OUT"

echo "==> building (release)"
cargo build --release --quiet --bin mamba-convert --bin mamba-run --bin mamba-inspect

BIN=target/release
if [ -d "$SHARED/models/mamba-shakespeare" ]; then
    MODEL="$OUT/shakespeare-$TYPE.mbin"
    echo "==> converting $SHARED/models/mamba-shakespeare to $MODEL ($TYPE)"
    "$BIN/mamba-convert" "$SHARED/models/mamba-shakespeare" -o "$MODEL" --type "$TYPE" --force
    PROMPT="ROMEO:"
else
    MODEL="$OUT/synthetic-130m-$TYPE.mbin"
    TOK=()
    if [ -f "$SHARED/tokenizers/gpt-neox-20b/tokenizer.json" ]; then
        TOK=(--tokenizer "$SHARED/tokenizers/gpt-neox-20b/tokenizer.json")
    fi
    echo "==> no trained model found at $SHARED/models/mamba-shakespeare:"
    echo "    using a SYNTHETIC 130m-shaped model with random weights; its text is random."
    "$BIN/mamba-convert" --synthetic 130m -o "$MODEL" --type "$TYPE" --force "${TOK[@]}"
    PROMPT="Hello"
fi

echo "==> inspecting"
"$BIN/mamba-inspect" "$MODEL" --verify | tail -n 5

echo "==> generating"
if "$BIN/mamba-inspect" "$MODEL" --json | grep -q '"tokenizer.huggingface.json"'; then
    "$BIN/mamba-run" "$MODEL" -p "$PROMPT" -n 96 --seed 1
else
    "$BIN/mamba-run" "$MODEL" --prompt-ids 1,2,3 -n 32 --seed 1 --output-ids
fi
