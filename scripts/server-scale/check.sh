#!/usr/bin/env bash
# Scaling out: two mamba-server replicas behind nginx (nginx.conf here, affinity by a
# hash of the body's first 256 bytes). Eight conversations of two turns each, the
# second turn extending the first prompt with its answer: checks that every second
# turn is a state-cache hit (it reached the replica that served the first) and that
# both replicas served conversations.
#
#   scripts/server-scale/check.sh      # OUT=target/server-scale PORT=18200 (and +1, +2)
#
# Needs nginx (apt-get install nginx-light), python3, cargo, ../shared (or MAMBA_SHARED).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-target/server-scale}"
PORT="${PORT:-18200}"
SHARED="${MAMBA_SHARED:-../shared}"
M="$SHARED/models/mamba-shakespeare"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
[ -x "$NGINX" ] || { echo "error: no nginx (apt-get install nginx-light)" >&2; exit 2; }
[ -d "$M" ] || { echo "error: $M not found (set MAMBA_SHARED)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cargo build --release --quiet --bin mamba-convert --bin mamba-server
T="${CARGO_TARGET_DIR:-target}/release"
"$T/mamba-convert" "$M" -o "$OUT/shakespeare.mbin" --type q8_0 --force --quiet
pids=()
cleanup() {
    "$NGINX" -p "$OUT" -c "$OUT/nginx.conf" -s stop >/dev/null 2>&1 || true
    kill "${pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
for i in 1 2; do
    "$T/mamba-server" "$OUT/shakespeare.mbin" --port $((PORT + i)) -t 1 >"$OUT/server$i.log" 2>&1 &
    pids+=($!)
done
sed -e "s|@DIR@|$OUT|g" -e "s|@PORT0@|$PORT|" -e "s|@PORT1@|$((PORT + 1))|" \
    -e "s|@PORT2@|$((PORT + 2))|" scripts/server-scale/nginx.conf >"$OUT/nginx.conf"
for i in 1 2; do
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$((PORT + i))/health" >/dev/null && break
        sleep 0.1
    done
done
"$NGINX" -p "$OUT" -c "$OUT/nginx.conf"
PORT=$PORT python3 - <<'PY'
import json, os, urllib.request
port = int(os.environ["PORT"])
def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=120))
def metrics(p):
    text = urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=10).read().decode()
    return {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
            if l.startswith("mamba_cache_") and " " in l}
conversations = 8
for i in range(conversations):
    first = f"Conversation {i}. ROMEO: " + "Wherefore art thou? " * 20
    body = {"model": "shakespeare", "max_tokens": 8, "temperature": 0}
    answer = post(f"http://127.0.0.1:{port}/v1/completions", dict(body, prompt=first))
    second = first + answer["choices"][0]["text"] + "\nJULIET: And then?"
    post(f"http://127.0.0.1:{port}/v1/completions", dict(body, prompt=second))
m = [metrics(port + 1), metrics(port + 2)]
hits = [x["mamba_cache_hits_total"] for x in m]
misses = [x["mamba_cache_misses_total"] for x in m]
print(f"replica 1: {hits[0]:.0f} hits, {misses[0]:.0f} misses; "
      f"replica 2: {hits[1]:.0f} hits, {misses[1]:.0f} misses")
assert sum(hits) == conversations, "a second turn reached the other replica"
assert sum(misses) == conversations
assert all(h > 0 for h in hits), "one replica served every conversation"
PY
echo "scale-out check: OK"
