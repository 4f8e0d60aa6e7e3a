#!/usr/bin/env bash
# Perplexity and file size of mamba-shakespeare at every type, as a markdown table
# (the README's table). Protocol: the whole val.txt, windows of 256 tokens from a
# fresh state, first token of each window not scored (the model README's protocol;
# transformers gives 141.86 at F32).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${MAMBA_SHARED:-../shared}"
M="$SHARED/models/mamba-shakespeare"
OUT="${OUT:-target/ppl}"
mkdir -p "$OUT"
cargo build --release --quiet --bin mamba-convert --bin mamba-perplexity
echo "| type | file size | bits/weight (whole file) | perplexity (val.txt, ctx 256) | vs F32 |"
echo "|---|---|---|---|---|"
base=""
for t in ${TYPES:-f32 f16 bf16 q8_0 q6_k q5_k q5_1 q5_0 q4_k_m q4_k q4_1 q4_0}; do
    f="$OUT/shakespeare-$t.mbin"
    target/release/mamba-convert "$M" -o "$f" --type "$t" --force --quiet 2>/dev/null
    ppl=$(target/release/mamba-perplexity "$f" -f "$M/val.txt" --ctx 256 2>/dev/null | tail -n 1 | awk '{print $2}')
    size=$(stat -c %s "$f")
    [ -n "$base" ] || base=$ppl
    bpw=$(awk -v s="$size" 'BEGIN{printf "%.2f", s*8/14624000}')
    echo "| $t | $(awk -v s="$size" 'BEGIN{printf "%.1f MiB", s/1048576}') | $bpw | $ppl | $(awk -v a="$ppl" -v b="$base" 'BEGIN{printf "%+.2f%%", (a/b-1)*100}') |"
done
