"""Drives mamba-server's playground page in headless Chromium over the DevTools
protocol: loads the page, types a prompt, sets temperature 0, clicks Generate, waits
(bounded) until the stream has finished, checks the output against the API's greedy
text, and saves a screenshot.

usage: drive.py CHROMIUM BASE_URL MAX_TOKENS EXPECTED_TEXT SCREENSHOT.png PROFILE_DIR
"""
import base64, json, subprocess, sys, time, urllib.request

import websocket  # websocket-client

chrome, base, max_tokens, expected, shot, profile = sys.argv[1:7]
port = 9333
proc = subprocess.Popen(
    [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
     "--no-first-run", f"--user-data-dir={profile}", "--window-size=1000,760",
     f"--remote-debugging-port={port}", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.time() + 30
    while True:
        try:
            tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2))
            page = next(t for t in tabs if t.get("type") == "page")
            break
        except Exception:
            if time.time() > deadline:
                sys.exit("error: chromium's DevTools endpoint did not come up in 30 s")
            time.sleep(0.2)
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
    ids = iter(range(1, 1 << 30))

    def call(method, **params):
        i = next(ids)
        ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    sys.exit(f"error: {method}: {msg['error']}")
                return msg.get("result", {})

    def js(expr):
        r = call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    call("Page.enable")
    call("Page.navigate", url=base + "/")
    deadline = time.time() + 30
    while js('document.readyState') != "complete" or js('!!document.getElementById("go")') is not True:
        if time.time() > deadline:
            sys.exit("error: the page did not load in 30 s")
        time.sleep(0.1)
    # Fill the form as a user would, then press Generate.
    js(f'''(() => {{
        const set = (id, v) => {{ const e = document.getElementById(id); e.value = v;
                                  e.dispatchEvent(new Event("input")); }};
        set("prompt", "ROMEO:"); set("temperature", "0"); set("max_tokens", "{int(max_tokens)}");
        document.getElementById("go").click();
    }})()''')
    deadline = time.time() + 120
    while True:
        running = js('document.getElementById("go").disabled')
        stats = js('document.getElementById("stats").textContent')
        if not running and stats and "tokens/s" in stats:
            break
        if not running and stats and stats.startswith("error"):
            sys.exit(f"error: the page says {stats!r}")
        if time.time() > deadline:
            sys.exit(f"error: generation did not finish in 120 s (stats {stats!r})")
        time.sleep(0.1)
    out = js('document.getElementById("out").textContent')
    print(f"output: {out!r}\nstats:  {stats!r}")
    if out != "ROMEO:" + expected:
        sys.exit(f"error: the page shows {out!r}, the API answers {'ROMEO:' + expected!r}")
    png = call("Page.captureScreenshot", format="png")["data"]
    with open(shot, "wb") as f:
        f.write(base64.b64decode(png))
    ws.close()
finally:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
