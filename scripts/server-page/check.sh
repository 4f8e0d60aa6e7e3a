#!/usr/bin/env bash
# Checks mamba-server's playground page in headless Chromium: starts the server on
# mamba-shakespeare (f32), then drive.py (DevTools protocol) loads `/`, types the
# prompt "ROMEO:", sets temperature 0, clicks Generate, waits for the stream to end,
# checks that the page shows the prompt plus the API's own greedy text and a tokens/s
# line, and takes a screenshot.
#
#   scripts/server-page/check.sh     # OUT=target/server-page PORT=18190 MAX_TOKENS=48
#
# Needs Debian's `chromium` (apt-get install chromium), python3 with venv, cargo; the
# `websocket-client` package goes into a venv in $OUT. Exit 0 on success.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-target/server-page}"
PORT="${PORT:-18190}"
MAX_TOKENS="${MAX_TOKENS:-48}"
SHARED="${MAMBA_SHARED:-../shared}"
M="$SHARED/models/mamba-shakespeare"
CHROME="${CHROME:-$(command -v chromium || command -v chromium-browser || true)}"
[ -n "$CHROME" ] || { echo "error: no chromium (apt-get install chromium)" >&2; exit 2; }
[ -d "$M" ] || { echo "error: $M not found (set MAMBA_SHARED)" >&2; exit 2; }
mkdir -p "$OUT"
cargo build --release --quiet --bin mamba-convert --bin mamba-server
T="${CARGO_TARGET_DIR:-target}/release"
"$T/mamba-convert" "$M" -o "$OUT/shakespeare.mbin" --type f32 --force --quiet
"$T/mamba-server" "$OUT/shakespeare.mbin" --port "$PORT" -t 2 >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$OUT/server.log" >&2; exit 1; }

# What the page should show: the prompt, then the API's greedy text.
expected=$(curl -sf "http://127.0.0.1:$PORT/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"prompt\": \"ROMEO:\", \"max_tokens\": $MAX_TOKENS, \"temperature\": 0}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["text"], end="")')

[ -x "$OUT/venv/bin/python" ] || python3 -m venv "$OUT/venv"
"$OUT/venv/bin/pip" install -q --disable-pip-version-check websocket-client
rm -rf "$OUT/profile"
"$OUT/venv/bin/python" scripts/server-page/drive.py "$CHROME" "http://127.0.0.1:$PORT" \
    "$MAX_TOKENS" "$expected" "$OUT/page.png" "$OUT/profile"
[ -s "$OUT/page.png" ] || { echo "error: no screenshot" >&2; exit 1; }
echo "page check: OK (screenshot $OUT/page.png)"
