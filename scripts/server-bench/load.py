#!/usr/bin/env python3
"""Load generator for OpenAI-compatible completion servers (mamba-server, llama-server).
Python 3 standard library only (threads + http.client); talks to 127.0.0.1 only.

usage:
  load.py prompts --random N --len L [--vocab V] [--seed S] --out P.json
      N prompts of L random token ids in [100, V) (default V 50000: clear of the
      gpt-neox special tokens)
  load.py prompts --text FILE --port PORT --len L --n N [--start T] --out P.json
      N windows of L tokens from FILE, tokenized by the server's POST /tokenize
      (both servers answer {"content": S} with {"tokens": [...]}); sending ids makes
      both engines see exactly the same prompts
  load.py probe --port PORT --prompts P.json [--label NAME]
      two plain completions and a streamed one, all with the set's last prompt: checks
      that a token-id prompt, the `ignore_eos` field and the SSE framing are accepted;
      prints a JSON line of findings
  load.py load --port PORT --prompts P.json --concurrency C [--requests R]
               [--time-budget S] [--max-tokens M] [--extra JSON] [--label NAME]
      C client threads, each sending up to R streamed completions one after the
      other (new requests stop after S seconds); prints a JSON line: aggregate
      generated tokens/s, TTFT and inter-token latency percentiles, errors, and
      SSE framing problems seen
  load.py cache --port PORT --prompts P.json --prefix-len L [--extra-tokens K]
               [--reps R] [--extra JSON] [--label NAME]
      R times: an L-token prefix (prompt r's first L tokens when it has L + K, else
      random ids) sent with max_tokens 1, then the same prefix + K new tokens (the
      prompt's next K); prints a JSON line with both TTFTs (median over reps)
  load.py report RESULTS.jsonl
      markdown tables from the JSON lines of load and cache runs, each with the
      fields model, type, engine, round (load) or cache (on/off) added

Times: TTFT = request sent -> first SSE event carrying non-empty text; ITL = gaps
between successive text-carrying events (a chunk that carries several tokens' text,
e.g. a held-back UTF-8 sequence, counts once); TPOT = (last - first text event) /
(completion tokens - 1) per request. Generated tokens come from the stream's
`usage.completion_tokens` (counted text events when the server sends no usage).
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time

HOST = "127.0.0.1"


def die(msg):
    print(f"load.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def request_json(port, method, path, body=None, timeout=60.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


def pct(xs, p):
    """Percentile p (0-100) by linear interpolation; None for no data."""
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def stream_completion(port, body, timeout):
    """Sends one streamed completion; returns a dict of timings, counts and issues."""
    r = {"ok": False, "ttft": None, "text_times": [], "completion_tokens": None,
         "prompt_tokens": None, "text_events": 0, "finish": None, "issues": [], "error": None}
    body = dict(body, stream=True, stream_options={"include_usage": True})
    # Each event is at most a few hundred bytes: bound the read loop by lines.
    max_lines = 16 * int(body.get("max_tokens", 16)) + 256
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    t0 = time.perf_counter()
    r["t0"] = t0
    try:
        conn.request("POST", "/v1/completions", body=json.dumps(body),
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            r["error"] = f"HTTP {resp.status}: {resp.read(2000).decode('utf-8', 'replace').strip()}"
            return r
        ctype = resp.getheader("Content-Type", "")
        if not ctype.startswith("text/event-stream"):
            r["issues"].append(f"Content-Type is {ctype!r}, not text/event-stream")
        data_lines = []
        data_time = None
        done = False
        finished = False
        lines = 0
        while lines < max_lines:
            line = resp.readline()
            lines += 1
            now = time.perf_counter()
            if not line:
                break
            if not line.endswith(b"\n"):
                r["issues"].append("stream ended inside a line")
            line = line.rstrip(b"\r\n")
            if line == b"":
                if not data_lines:
                    continue
                data = b"\n".join(data_lines).decode("utf-8", "replace")
                data_lines = []
                if done:
                    r["issues"].append("data after [DONE]")
                    continue
                if data == "[DONE]":
                    done = True
                    continue
                try:
                    obj = json.loads(data)
                except ValueError:
                    r["issues"].append(f"event data is not JSON: {data[:80]!r}")
                    continue
                if not isinstance(obj, dict):
                    r["issues"].append("event data is not a JSON object")
                    continue
                if "error" in obj:
                    r["error"] = f"error event: {json.dumps(obj['error'])[:300]}"
                    continue
                usage = obj.get("usage")
                if isinstance(usage, dict):
                    r["completion_tokens"] = usage.get("completion_tokens")
                    r["prompt_tokens"] = usage.get("prompt_tokens")
                choices = obj.get("choices")
                if not isinstance(choices, list):
                    r["issues"].append("event without a `choices` array")
                    continue
                for c in choices:
                    text = c.get("text")
                    if text is None:
                        r["issues"].append("choice without `text`")
                        text = ""
                    if text:
                        if finished:
                            r["issues"].append("text after finish_reason")
                        if r["ttft"] is None:
                            r["ttft"] = data_time - t0
                        r["text_times"].append(data_time)
                        r["text_events"] += 1
                    if c.get("finish_reason") is not None:
                        if finished:
                            r["issues"].append("two finish_reasons")
                        finished = True
                        r["finish"] = c["finish_reason"]
                continue
            if line.startswith(b":"):
                continue  # comment / keep-alive
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"data":
                if not data_lines:
                    data_time = now
                data_lines.append(value)
            elif field not in (b"event", b"id", b"retry"):
                r["issues"].append(f"unknown SSE field {field[:20]!r}")
        else:
            r["issues"].append(f"stopped reading after {max_lines} lines")
        if data_lines:
            r["issues"].append("last event not terminated by a blank line")
        if not done:
            r["issues"].append("no `data: [DONE]`")
        if not finished:
            r["issues"].append("no finish_reason")
        if r["completion_tokens"] is None:
            r["issues"].append("no usage in the stream")
        elif r["completion_tokens"] < r["text_events"]:
            r["issues"].append("usage.completion_tokens < text events")
        r["t_end"] = time.perf_counter()
        r["ok"] = r["error"] is None and finished
        if not r["ok"] and r["error"] is None:
            r["error"] = "stream ended without a finish_reason"
    except (OSError, http.client.HTTPException) as e:
        r["error"] = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    return r


def load_prompts(path):
    try:
        with open(path) as f:
            p = json.load(f)
    except (OSError, ValueError) as e:
        die(f"reading prompts {path}: {e}")
    if not isinstance(p, list) or not p:
        die(f"{path}: expected a non-empty JSON array of prompts")
    return p


def base_body(a):
    body = {"max_tokens": a.max_tokens, "temperature": 0, "seed": 0}
    if a.extra:
        try:
            body.update(json.loads(a.extra))
        except ValueError as e:
            die(f"--extra is not JSON: {e}")
    return body


def cmd_prompts(a):
    if a.random:
        rng = random.Random(a.seed)
        out = [[rng.randrange(100, a.vocab) for _ in range(a.len)] for _ in range(a.random)]
    elif a.text:
        if not a.port:
            die("--text needs --port of a running server (for /tokenize)")
        try:
            with open(a.text, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            die(f"reading {a.text}: {e}")
        st, res = request_json(a.port, "POST", "/tokenize", {"content": text}, timeout=300)
        if st != 200 or not isinstance(res, dict) or "tokens" not in res:
            die(f"/tokenize answered {st}: {str(res)[:300]}")
        toks = [t if isinstance(t, int) else t["id"] for t in res["tokens"]][a.start:]
        if len(toks) < a.len:
            die(f"{a.text} has {len(toks)} tokens, fewer than --len {a.len}")
        span = len(toks) - a.len
        out = [toks[(i * span) // max(a.n - 1, 1):][:a.len] for i in range(a.n)]
    else:
        die("prompts: give --random N or --text FILE")
    with open(a.out, "w") as f:
        json.dump(out, f)
    print(f"{len(out)} prompts of {a.len} tokens -> {a.out}", file=sys.stderr)


def cmd_probe(a):
    prompts = load_prompts(a.prompts)
    p = prompts[-1]  # run.sh makes one more prompt than the load runs use
    found = {"kind": "probe", "label": a.label}
    body = {"prompt": p, "max_tokens": 8, "temperature": 0, "seed": 0}
    st, res = request_json(a.port, "POST", "/v1/completions", body, timeout=a.timeout)
    found["token_id_prompt"] = st == 200
    if st != 200:
        found["token_id_prompt_error"] = f"{st}: {str(res)[:300]}"
    elif isinstance(res, dict):
        found["plain_usage"] = res.get("usage")
    st, res = request_json(a.port, "POST", "/v1/completions", dict(body, ignore_eos=True),
                           timeout=a.timeout)
    found["ignore_eos_accepted"] = st == 200
    if st != 200:
        found["ignore_eos_error"] = f"{st}: {str(res)[:300]}"
    r = stream_completion(a.port, dict(body, max_tokens=16), a.timeout)
    found["stream_ok"] = r["ok"]
    found["stream_error"] = r["error"]
    found["stream_issues"] = sorted(set(r["issues"]))
    found["stream_completion_tokens"] = r["completion_tokens"]
    found["stream_text_events"] = r["text_events"]
    found["stream_finish"] = r["finish"]
    emit(a, found)


def cmd_load(a):
    prompts = load_prompts(a.prompts)
    body0 = base_body(a)
    c = a.concurrency
    results = [[] for _ in range(c)]
    barrier = threading.Barrier(c + 1)
    start = [0.0]

    def client(i):
        barrier.wait()
        deadline = start[0] + a.time_budget
        for j in range(a.requests):
            if time.perf_counter() >= deadline:
                break
            p = prompts[(a.offset + i * a.requests + j) % len(prompts)]
            results[i].append(stream_completion(a.port, dict(body0, prompt=p), a.timeout))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(c)]
    for t in threads:
        t.start()
    load1_start = load1()
    start[0] = time.perf_counter()
    barrier.wait()
    # Bounded: each request times out after a.timeout; a client sends at most
    # a.requests of them.
    hard = a.time_budget + a.timeout * (a.requests + 1)
    for t in threads:
        t.join(max(0.0, start[0] + hard - time.perf_counter()))
    hung = sum(t.is_alive() for t in threads)
    rs = [r for rr in results for r in list(rr)]
    ok = [r for r in rs if r["ok"]]
    end = max([r["t_end"] for r in ok] or [time.perf_counter()])
    wall = end - start[0]
    toks = sum((r["completion_tokens"] if r["completion_tokens"] is not None else r["text_events"])
               for r in ok)
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    itl, tpot = [], []
    for r in ok:
        tt = r["text_times"]
        itl.extend(b - a_ for a_, b in zip(tt, tt[1:]))
        n = r["completion_tokens"] or r["text_events"]
        if len(tt) >= 2 and n >= 2:
            tpot.append((tt[-1] - tt[0]) / (n - 1))
    issues = {}
    for r in rs:
        for s in set(r["issues"]):
            issues[s] = issues.get(s, 0) + 1
    errors = {}
    for r in rs:
        if r["error"]:
            errors[r["error"][:200]] = errors.get(r["error"][:200], 0) + 1
    finish = {}
    for r in ok:
        finish[str(r["finish"])] = finish.get(str(r["finish"]), 0) + 1
    ctoks = [r["completion_tokens"] for r in ok if r["completion_tokens"] is not None]
    ms = lambda x: None if x is None else round(x * 1000, 2)  # noqa: E731
    emit(a, {
        "kind": "load", "label": a.label, "concurrency": c, "load1": load1_start, "requests": len(rs), "ok": len(ok),
        "hung_clients": hung, "wall_s": round(wall, 3), "tokens": toks,
        "tok_s": round(toks / wall, 2) if wall > 0 and ok else 0.0,
        "ttft_p50_ms": ms(pct(ttft, 50)), "ttft_p99_ms": ms(pct(ttft, 99)),
        "itl_p50_ms": ms(pct(itl, 50)), "itl_p99_ms": ms(pct(itl, 99)),
        "tpot_mean_ms": ms(statistics.mean(tpot)) if tpot else None,
        "completion_tokens_min": min(ctoks) if ctoks else None,
        "completion_tokens_max": max(ctoks) if ctoks else None,
        "finish": finish, "errors": errors, "issues": issues,
    })


def cmd_cache(a):
    prompts = load_prompts(a.prompts)
    rng = random.Random(a.seed)
    body0 = base_body(a)
    cold, warm = [], []
    errs = []
    need = a.prefix_len + a.extra_tokens
    for rep in range(a.reps):
        p = prompts[rep % len(prompts)]
        if isinstance(p, list) and len(p) >= need:
            prefix, more = p[:a.prefix_len], p[a.prefix_len:need]
        else:
            prefix = [rng.randrange(100, a.vocab) for _ in range(a.prefix_len)]
            more = [rng.randrange(100, a.vocab) for _ in range(a.extra_tokens)]
        r1 = stream_completion(a.port, dict(body0, prompt=prefix, max_tokens=1), a.timeout)
        r2 = stream_completion(a.port, dict(body0, prompt=prefix + more), a.timeout)
        for r in (r1, r2):
            if not r["ok"]:
                errs.append(r["error"])
        if r1["ok"] and r2["ok"]:
            # a stream whose first token has no text: its end stands in for the TTFT
            cold.append(r1["ttft"] if r1["ttft"] is not None else r1["t_end"] - r1["t0"])
            warm.append(r2["ttft"] if r2["ttft"] is not None else r2["t_end"] - r2["t0"])
    ms = lambda x: None if x is None else round(x * 1000, 2)  # noqa: E731
    emit(a, {
        "kind": "cache", "label": a.label, "prefix_len": a.prefix_len,
        "extra_tokens": a.extra_tokens, "reps": a.reps, "ok": len(warm), "load1": load1(),
        "first_ttft_ms": ms(statistics.median(cold)) if cold else None,
        "second_ttft_ms": ms(statistics.median(warm)) if warm else None,
        "second_ttft_all_ms": [ms(x) for x in warm], "errors": errs,
    })


def emit(a, out):
    try:
        tag = json.loads(a.tag)
    except ValueError as e:
        die(f"--tag is not JSON: {e}")
    out.update(tag if isinstance(tag, dict) else {})
    print(json.dumps(out), flush=True)


def load1():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def cmd_report(a):
    """Markdown tables from the JSON lines of `load` and `cache` runs (fields `model`,
    `type`, `engine`, `round` added by run.sh)."""
    rows = []
    try:
        with open(a.results) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    except (OSError, ValueError) as e:
        die(f"reading {a.results}: {e}")
    loads = [r for r in rows if r.get("kind") == "load"]
    if loads:
        print("| model | type | round | conc | engine | agg t/s | TTFT p50 ms | TTFT p99 ms "
              "| ITL p50 ms | ITL p99 ms | TPOT ms | ok/req | tokens/req | load1 | mamba/llama t/s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        key = lambda r: (r["model"], r["type"], r["round"], r["concurrency"])  # noqa: E731
        by = {}
        for r in loads:
            by.setdefault(key(r), {})[r["engine"]] = r
        ratios = {}
        for k in sorted(by, key=lambda k: (k[0], k[1], k[3], k[2])):
            d = by[k]
            ratio = None
            if "mamba" in d and "llama" in d and d["llama"]["tok_s"]:
                ratio = d["mamba"]["tok_s"] / d["llama"]["tok_s"]
                ratios.setdefault((k[0], k[1], k[3]), []).append(ratio)
            for eng in ("llama", "mamba"):
                if eng not in d:
                    continue
                r = d[eng]
                tr = f"{r['completion_tokens_min']}-{r['completion_tokens_max']}"
                print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {eng} | {fmt(r['tok_s'])} "
                      f"| {fmt(r['ttft_p50_ms'])} | {fmt(r['ttft_p99_ms'])} "
                      f"| {fmt(r['itl_p50_ms'])} | {fmt(r['itl_p99_ms'])} | {fmt(r['tpot_mean_ms'])} "
                      f"| {r['ok']}/{r['requests']} | {tr} | {fmt(r.get('load1'), 2)} "
                      f"| {fmt(ratio, 2) + '×' if eng == 'mamba' and ratio else ''} |")
        print()
        print("| model | type | conc | mamba/llama aggregate t/s (median over rounds) |")
        print("|---|---|---|---|")
        for k in sorted(ratios, key=lambda k: (k[0], k[1], k[2])):
            print(f"| {k[0]} | {k[1]} | {k[2]} | {statistics.median(ratios[k]):.2f}× |")
        probs = [(r["model"], r["type"], r["engine"], r["concurrency"], r["errors"], r["issues"],
                  r["finish"]) for r in loads if r["errors"] or r["issues"] or r["hung_clients"]]
        if probs:
            print()
            print("Errors and SSE framing problems:")
            for p in probs:
                print(f"- {p[0]} {p[1]} {p[2]} c={p[3]}: errors {json.dumps(p[4])}, issues "
                      f"{json.dumps(p[5])}")
    caches = [r for r in rows if r.get("kind") == "cache"]
    if caches:
        print()
        print("| model | type | engine | cache | prefix | +new | 1st TTFT ms (prefix) "
              "| 2nd TTFT ms (prefix+new) | load1 | speedup (off/on) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        by = {}
        for r in caches:
            by.setdefault((r["model"], r["type"], r["engine"]), {})[r["cache"]] = r
        for k in sorted(by):
            d = by[k]
            sp = None
            if "on" in d and "off" in d and d["on"]["second_ttft_ms"] and d["off"]["second_ttft_ms"]:
                sp = d["off"]["second_ttft_ms"] / d["on"]["second_ttft_ms"]
            for c in ("off", "on"):
                if c not in d:
                    continue
                r = d[c]
                print(f"| {k[0]} | {k[1]} | {k[2]} | {r.get('cache_desc', c)} | {r['prefix_len']} "
                      f"| {r['extra_tokens']} | {fmt(r['first_ttft_ms'])} | {fmt(r['second_ttft_ms'])} "
                      f"| {fmt(r.get('load1'), 2)} | {fmt(sp, 1) + '×' if c == 'on' and sp else ''} |")
        errs = [(r["model"], r["engine"], r["cache"], r["errors"]) for r in caches if r["errors"]]
        for e in errs:
            print(f"- cache test {e[0]} {e[1]} cache {e[2]}: errors {json.dumps(e[3])}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prompts")
    p.add_argument("--random", type=int, default=0)
    p.add_argument("--text")
    p.add_argument("--port", type=int)
    p.add_argument("--len", type=int, required=True)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--vocab", type=int, default=50000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="--text: skip this many tokens")
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("results", help="a file of JSON lines from load / cache")
    for name in ("probe", "load", "cache"):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--prompts", required=True)
        p.add_argument("--label", default="")
        p.add_argument("--tag", default="{}", help="JSON object merged into the output line")
        p.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
        p.add_argument("--max-tokens", type=int, default=64)
        p.add_argument("--extra", default="", help="JSON object merged into every request")
        if name == "load":
            p.add_argument("--concurrency", type=int, required=True)
            p.add_argument("--requests", type=int, default=1, help="per client")
            p.add_argument("--time-budget", type=float, default=120.0)
            p.add_argument("--offset", type=int, default=0, help="first prompt index")
        if name == "cache":
            p.add_argument("--prefix-len", type=int, default=2048)
            p.add_argument("--extra-tokens", type=int, default=8)
            p.add_argument("--reps", type=int, default=3)
            p.add_argument("--vocab", type=int, default=50000)
            p.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "load" and not (1 <= a.concurrency <= 1024 and 1 <= a.requests <= 100000):
        die("--concurrency must be in [1, 1024] and --requests in [1, 100000]")
    {"prompts": cmd_prompts, "probe": cmd_probe, "load": cmd_load, "cache": cmd_cache,
     "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
