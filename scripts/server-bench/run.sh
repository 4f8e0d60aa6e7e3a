#!/usr/bin/env bash
# Serving load benchmark: mamba-server against llama.cpp's llama-server, same weights.
#
#   scripts/server-bench/run.sh    # MODELS="syn130m:q8_0 shakespeare:q8_0" THREADS=2
#                                  # NP=64 CONCURRENCY="1 4 16 64" MAX_TOKENS=64
#                                  # PROMPT_LEN=128 REQS=8 ROUNDS=1 TIME_BUDGET=60
#                                  # CACHE_PREFIX=2048 CACHE_NEW=8 CACHE_REPS=3 PORT=18180
#                                  # ENGINES="llama mamba" MAMBA_FLAGS="--prefill-step 512"
#
# 1. Builds llama-server (and llama-quantize) from the llama.cpp source that
#    scripts/llama-baseline/run.sh uses (llama-src.sh: the llama-cpp-python sdist's
#    vendored llama.cpp, LLAMA_PY=0.3.36, or LLAMA_SRC=DIR) in its build-server dir,
#    and mamba-server + mamba-convert with cargo (CARGO_TARGET_DIR is honoured).
# 2. Models, one GGUF per model served by both engines (the .mbin is imported from the
#    same GGUF with `mamba-convert FILE.gguf -o FILE.mbin`, blocks kept as stored):
#      syn130m:TYPE      random-weight mamba-130m (scripts/llama-baseline/mamba_gguf.py,
#                        llama-quantize TYPE), in target/llama-baseline as run.sh makes it
#      shakespeare:TYPE  $MAMBA_SHARED (else ../shared)/fixtures/gguf-shakespeare/
#                        mamba-shakespeare-TYPE.gguf
# 3. Per model: starts llama-server (-np NP, -c NP*SLOT_CTX, -t THREADS, continuous
#    batching) and mamba-server (-np NP -t THREADS) on 127.0.0.1, probes both, then
#    for each round and concurrency C runs load.py against one engine at a time,
#    alternating which goes first (A B B A ...): C clients, REQS/C (at least 1)
#    streamed completions each, MAX_TOKENS tokens at temperature 0 with ignore_eos,
#    every request a different PROMPT_LEN-token prompt (random ids for syn130m,
#    windows of val.txt for shakespeare, tokenized once and sent as ids to both).
# 4. Cache test: a CACHE_PREFIX-token prompt, then it + CACHE_NEW tokens; TTFT of the
#    second with mamba-server's state cache on vs --cache-mb 0 (a restarted server),
#    and with llama-server's cache_prompt true vs false, for reference.
# Prints a header (load average, CPU and SIMD flags, llama.cpp commit) and markdown
# tables; the raw JSON lines and server logs go to OUT=target/server-bench.
#
# Needs python3 (standard library; pip for cmake/ninja/numpy when missing, as the
# llama-baseline script), a C/C++ compiler, cargo. Servers are killed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK="${WORK:-target/llama-baseline}"
OUT="${OUT:-target/server-bench}"
LLAMA_PY="${LLAMA_PY:-0.3.36}"
THREADS="${THREADS:-2}"
NP="${NP:-64}"
CONCURRENCY="${CONCURRENCY:-1 4 16 64}"
MAX_TOKENS="${MAX_TOKENS:-64}"
PROMPT_LEN="${PROMPT_LEN:-128}"
REQS="${REQS:-8}"
ROUNDS="${ROUNDS:-1}"
TIME_BUDGET="${TIME_BUDGET:-60}"
MODELS="${MODELS:-syn130m:q8_0 shakespeare:q8_0}"
CACHE_PREFIX="${CACHE_PREFIX:-2048}"
CACHE_NEW="${CACHE_NEW:-8}"
CACHE_REPS="${CACHE_REPS:-3}"
PORT="${PORT:-18180}"
SLOT_CTX="${SLOT_CTX:-$((CACHE_PREFIX + CACHE_NEW + MAX_TOKENS + PROMPT_LEN + 64))}"
SHARED="${MAMBA_SHARED:-$ROOT/../shared}"
ENGINES="${ENGINES:-llama mamba}"
MAMBA_FLAGS="${MAMBA_FLAGS:-}"   # extra mamba-server flags, e.g. "--prefill-step 512"
load_py() { python3 "$ROOT/scripts/server-bench/load.py" "$@"; }
has() { case " $ENGINES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
mkdir -p "$WORK" "$OUT"
for v in THREADS NP MAX_TOKENS PROMPT_LEN REQS ROUNDS TIME_BUDGET CACHE_PREFIX CACHE_NEW CACHE_REPS PORT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || { echo "error: $v=${!v} is not a positive integer" >&2; exit 2; }
done

# --- servers, killed on exit ------------------------------------------------------
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_health PORT PID LOG: up to 300 s for GET /health to answer 200
wait_health() {
    local port=$1 pid=$2 log=$3
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || { echo "error: the server on port $port exited; its log ($log):" >&2
            tail -20 "$log" >&2; exit 1; }
        if python3 -c 'import http.client,sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
try:
    c.request("GET", "/health"); sys.exit(0 if c.getresponse().status == 200 else 1)
except OSError:
    sys.exit(1)' "$port"; then return 0; fi
        sleep 0.5
    done
    echo "error: no 200 from http://127.0.0.1:$port/health in 300 s; log $log" >&2
    exit 1
}

stop_server() {
    local pid=$1 p keep=()
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# start_llama GGUF PORT LOG -> $SPID
start_llama() {
    "$LB/llama-server" -m "$1" --host 127.0.0.1 --port "$2" -np "$NP" -c $((NP * SLOT_CTX)) \
        -t "$THREADS" -tb "$THREADS" -cb --no-webui >"$3" 2>&1 &
    SPID=$!; PIDS+=("$SPID")
}
# start_mamba MBIN PORT LOG [FLAGS...] -> $SPID
start_mamba() {
    local m=$1 port=$2 log=$3; shift 3
    "$T/mamba-server" "$m" --host 127.0.0.1 --port "$port" -np "$NP" -t "$THREADS" \
        --queue "$((NP > 64 ? NP : 64))" $MAMBA_FLAGS "$@" >"$log" 2>&1 &
    SPID=$!; PIDS+=("$SPID")
}

# --- builds ---------------------------------------------------------------------
. scripts/llama-baseline/llama-src.sh
llama_tools
llama_src
LLAMA_LOG_SUFFIX=server llama_build "$LLAMA_SRC/build-server" ON llama-server llama-quantize
LB="$LLAMA_SRC/build-server/bin"
export LD_LIBRARY_PATH="$LB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if has mamba; then
    cargo build --release --quiet --bin mamba-server --bin mamba-convert ||
        { echo "error: cargo build of mamba-server / mamba-convert failed" >&2; exit 1; }
fi
T="${CARGO_TARGET_DIR:-target}/release"

# --- models -----------------------------------------------------------------------
# model_gguf NAME TYPE -> path of the GGUF, made when missing
model_gguf() {
    case "$1" in
        syn130m)
            local f="$WORK/mamba-130m"
            [ -f "$f-f32.gguf" ] ||
                python3 scripts/llama-baseline/mamba_gguf.py "$LLAMA_SRC" "$f-f32.gguf" >/dev/null
            [ -f "$f-$2.gguf" ] ||
                "$LB/llama-quantize" "$f-f32.gguf" "$f-$2.gguf" "$2" >"$OUT/quantize-$2.log" 2>&1
            echo "$f-$2.gguf" ;;
        shakespeare)
            local g="$SHARED/fixtures/gguf-shakespeare/mamba-shakespeare-$2.gguf"
            [ -f "$g" ] || { echo "error: $g not found (set MAMBA_SHARED)" >&2; return 1; }
            echo "$g" ;;
        *) echo "error: unknown model $1 (syn130m or shakespeare)" >&2; return 1 ;;
    esac
}
VAL="$SHARED/models/mamba-shakespeare/val.txt"

# --- header -----------------------------------------------------------------------
RES="$OUT/results.jsonl"
: >"$RES"
rm -f "$OUT/notes.txt"
tag() { printf '{"model": "%s", "type": "%s", "engine": "%s"%s}' "$name" "$type" "$1" "${2:+, $2}"; }
echo "- host: $(uptime | sed 's/^ *//') (start)"
echo "- cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) logical CPUs;$(cpu_simd)"
echo "- llama.cpp: ${LLAMA_COMMIT:0:9} (llama-cpp-python ${LLAMA_PY}'s vendored source unless LLAMA_SRC), llama-server -np $NP -c $((NP * SLOT_CTX)) -t $THREADS -cb"
has mamba && echo "- mamba: $("$T/mamba-server" --version 2>/dev/null || echo unknown), mamba-server -np $NP -t $THREADS $MAMBA_FLAGS"
echo "- load: concurrency $CONCURRENCY; $REQS requests per level (at least 1 per client); prompts $PROMPT_LEN tokens; max_tokens $MAX_TOKENS, temperature 0, ignore_eos; $ROUNDS round(s)"
echo

port_l=$PORT
port_m=$((PORT + 1))
for spec in $MODELS; do
    name=${spec%%:*}; type=${spec#*:}
    gguf=$(model_gguf "$name" "$type")
    mbin="$OUT/$(basename "${gguf%.gguf}").mbin"
    if has mamba && { [ ! -f "$mbin" ] || [ "$gguf" -nt "$mbin" ]; }; then
        "$T/mamba-convert" "$gguf" -o "$mbin" --force --quiet ||
            { echo "error: mamba-convert $gguf failed" >&2; exit 1; }
    fi
    # llama-server is also the tokenizer for the shakespeare prompts
    start_llama "$gguf" "$port_l" "$OUT/llama-server-$name-$type.log"; lpid=$SPID
    if has mamba; then
        start_mamba "$mbin" "$port_m" "$OUT/mamba-server-$name-$type.log"; mpid=$SPID
        wait_health "$port_m" "$mpid" "$OUT/mamba-server-$name-$type.log"
    fi
    wait_health "$port_l" "$lpid" "$OUT/llama-server-$name-$type.log"

    # prompts: every request of the run a different one, the same set for both engines
    nconc=0; for c in $CONCURRENCY; do nconc=$((nconc + (REQS > c ? REQS : c))); done
    np=$((nconc * ROUNDS + 1))  # + 1: the probes' prompt
    P="$OUT/prompts-$name.json"; PC="$OUT/prompts-$name-cache.json"
    if [ "$name" = shakespeare ]; then
        load_py prompts --text "$VAL" --port "$port_l" --len "$PROMPT_LEN" --n "$np" --out "$P"
        load_py prompts --text "$VAL" --port "$port_l" --len $((CACHE_PREFIX + CACHE_NEW)) \
            --n "$CACHE_REPS" --start 61 --out "$PC"
    else
        load_py prompts --random "$np" --len "$PROMPT_LEN" --seed 1 --out "$P"
        load_py prompts --random "$CACHE_REPS" --len $((CACHE_PREFIX + CACHE_NEW)) --seed 2 --out "$PC"
    fi
    for eng in $ENGINES; do
        port=$port_l; [ $eng = mamba ] && port=$port_m
        load_py probe --port "$port" --prompts "$P" --tag "$(tag $eng)" --timeout 120 |
            tee -a "$RES" >"$OUT/probe-$eng-$name-$type.json"
    done

    i=0; off=0
    for r in $(seq 1 "$ROUNDS"); do
        for c in $CONCURRENCY; do
            per=$(( (REQS + c - 1) / c ))
            order=$ENGINES; [ $((i % 2)) -eq 1 ] && order=$(echo "$ENGINES" | awk '{for (k = NF; k > 0; k--) printf "%s ", $k}')
            for eng in $order; do
                port=$port_l; [ $eng = mamba ] && port=$port_m
                load_py load --port "$port" --prompts "$P" --concurrency "$c" --requests "$per" \
                    --offset "$off" --max-tokens "$MAX_TOKENS" --time-budget "$TIME_BUDGET" \
                    --timeout 300 --extra '{"ignore_eos": true}' \
                    --tag "$(tag $eng "\"round\": $r")" >>"$RES"
                echo "  $name $type round $r c=$c $eng: $(tail -1 "$RES" | cut -c1-200)" >&2
            done
            i=$((i + 1)); off=$((off + c * per))
        done
    done

    # cache test: mamba-server cache on (this server), llama cache_prompt on / off,
    # mamba-server restarted with --cache-mb 0
    ck() { load_py cache --port "$1" --prompts "$PC" --prefix-len "$CACHE_PREFIX" \
        --extra-tokens "$CACHE_NEW" --reps "$CACHE_REPS" --max-tokens 4 --timeout 300 "${@:2}"; }
    if has mamba; then
        ck "$port_m" --tag "$(tag mamba '"cache": "on", "cache_desc": "--cache-mb 256 (default)"')" >>"$RES"
    fi
    if has llama; then
        ck "$port_l" --extra '{"cache_prompt": true}' \
            --tag "$(tag llama '"cache": "on", "cache_desc": "cache_prompt true"')" >>"$RES"
    fi
    if has mamba; then
        m=$(python3 -c 'import http.client,sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10); c.request("GET", "/metrics")
print(" ".join(l for l in c.getresponse().read().decode().splitlines() if l.startswith("mamba_cache_")))' "$port_m" || true)
        echo "- $name $type mamba-server /metrics after the cache-on test: $m" >>"$OUT/notes.txt"
        stop_server "$mpid"
        start_mamba "$mbin" "$port_m" "$OUT/mamba-server-$name-$type-nocache.log" --cache-mb 0; mpid=$SPID
        wait_health "$port_m" "$mpid" "$OUT/mamba-server-$name-$type-nocache.log"
        ck "$port_m" --tag "$(tag mamba '"cache": "off", "cache_desc": "--cache-mb 0"')" >>"$RES"
        stop_server "$mpid"
    fi
    if has llama; then
        ck "$port_l" --extra '{"cache_prompt": false}' \
            --tag "$(tag llama '"cache": "off", "cache_desc": "cache_prompt false"')" >>"$RES"
    fi
    stop_server "$lpid"
done

echo "- host: $(uptime | sed 's/^ *//') (end)"
[ -f "$OUT/notes.txt" ] && sed 's/^/  /' "$OUT/notes.txt" && rm -f "$OUT/notes.txt"
echo
load_py report "$RES"
grep '"kind": "probe"' "$RES" | python3 -c 'import json, sys
for l in sys.stdin:
    p = json.loads(l)
    bad = [k for k in ("token_id_prompt", "ignore_eos_accepted", "stream_ok") if not p.get(k)]
    if bad or p.get("stream_issues"):
        print("- probe %s %s %s: failed %s, issues %s, error %s" % (p["model"], p["type"],
              p["engine"], bad, p.get("stream_issues"), p.get("stream_error")))' || true
