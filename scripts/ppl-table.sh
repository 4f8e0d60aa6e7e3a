#!/usr/bin/env bash
# Perplexity and file size of a trained shared model at every type, as a markdown
# table (the README's tables). Protocol: the whole val.txt, windows of 256 tokens
# from a fresh state, first token of each window not scored (the model README's
# protocol; transformers gives 141.86 at F32 for mamba-shakespeare, 125.97 for
# mamba2-shakespeare).
#
#   scripts/ppl-table.sh [mamba-shakespeare | mamba2-shakespeare]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${MAMBA_SHARED:-../shared}"
MODEL="${1:-mamba-shakespeare}"
M="$SHARED/models/$MODEL"
# Parameters (for bits per weight), from each model's README.
case "$MODEL" in
    mamba-shakespeare) PARAMS=14624000 ;;
    mamba2-shakespeare) PARAMS=14602080 ;;
    *) echo "unknown model $MODEL" >&2; exit 2 ;;
esac
OUT="${OUT:-target/ppl}"
mkdir -p "$OUT"
cargo build --release --quiet --bin mamba-convert --bin mamba-perplexity
echo "| type | file size | bits/weight (whole file) | perplexity (val.txt, ctx 256) | vs F32 |"
echo "|---|---|---|---|---|"
base=""
for t in ${TYPES:-f32 f16 bf16 q8_0 q6_k q5_k q5_1 q5_0 q4_k_m q4_k q4_1 q4_0 iq4_nl iq4_xs q3_k_m q3_k q2_k_m q2_k}; do
    f="$OUT/$MODEL-$t.mbin"
    target/release/mamba-convert "$M" -o "$f" --type "$t" --force --quiet 2>/dev/null
    ppl=$(target/release/mamba-perplexity "$f" -f "$M/val.txt" --ctx 256 2>/dev/null | tail -n 1 | awk '{print $2}')
    size=$(stat -c %s "$f")
    [ -n "$base" ] || base=$ppl
    bpw=$(awk -v s="$size" 'BEGIN{printf "%.2f", s*8/'"$PARAMS"'}')
    echo "| $t | $(awk -v s="$size" 'BEGIN{printf "%.1f MiB", s/1048576}') | $bpw | $ppl | $(awk -v a="$ppl" -v b="$base" 'BEGIN{printf "%+.2f%%", (a/b-1)*100}') |"
done
