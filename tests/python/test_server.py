"""ctest driver: `shadowkv serve` (OpenAI-compatible HTTP server) on the real default model.

The test starts the server itself on 127.0.0.1 with --port 0 (it prints the port it got) and stops it with SIGTERM.
Checks
  - /health, /v1/models; the official `openai` client on /v1/completions and /v1/chat/completions, streamed and not
    (streamed text == non-streamed text at temperature 0; finish_reason, usage, object types, include_usage chunk).
  - 8 concurrent clients with prompts of different lengths at temperature 0 each get exactly the text of a solo
    `shadowkv run --raw --temp 0 -n N` (its --json text), and the step log (--log-steps) shows them batched.
  - malformed and hostile requests (bad JSON, huge/negative/mistyped values, a 10 MB body, a prompt over the context,
    unknown KV policy or setting, unknown route, wrong method, garbage HTTP) get the right status and an error in
    OpenAI's shape, and the server keeps serving; a per-request KV policy override works.
  - a client that disconnects mid-stream frees its sequence: /metrics shows no live sequence shortly after.
  - a load run (64 requests from 16 threads, max_tokens 8; no new request after 120 s) loses no request and /metrics
    agrees with what the clients saw (requests, prompt and completion tokens).
  - --max-queue: a full queue answers 503; SIGINT / SIGTERM (also with a stream in flight) stop the server cleanly.
Env: SHADOWKV_BIN, SHADOWKV_MODEL (fails if missing); the `openai` package (scripts/lib.sh PY_PACKAGES).
Prints one line per check and "N passed, M failed".
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

BIN = os.environ.get("SHADOWKV_BIN", "")
MODEL = os.environ.get("SHADOWKV_MODEL", "")
CTX = 1024
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}".rstrip(), flush=True)


class Server:
    """A `shadowkv serve` process; its stderr lines are collected in self.lines."""

    def __init__(self, *args, model=None):
        self.proc = subprocess.Popen([BIN, "serve", "-m", model or MODEL, "--host", "127.0.0.1", "--port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines, self.port = [], None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        ready.wait(120)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        self.reader.join(5)
        return rc


def request(port, method, path, body=None, headers=None, timeout=300):
    """(status, parsed JSON or text, headers); status None if the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        conn.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read().decode("utf-8", "replace")
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return r.status, parsed, dict(r.getheaders())
    except (OSError, http.client.HTTPException) as e:
        return None, str(e), {}
    finally:
        conn.close()


def is_error_shape(body):
    e = body.get("error") if isinstance(body, dict) else None
    return (isinstance(e, dict) and isinstance(e.get("message"), str) and e["message"] and isinstance(e.get("type"), str)
            and "param" in e and "code" in e)


def metrics(port):
    status, text, _ = request(port, "GET", "/metrics")
    out = {}
    for line in (text if isinstance(text, str) else "").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def solo_text(prompt, n):
    p = subprocess.run([BIN, "run", "-m", MODEL, "--raw", "--temp", "0", "-n", str(n), "-c", str(CTX), "-p", prompt,
                        "--json"], capture_output=True, text=True, timeout=300)
    return json.loads(p.stdout)["text"] if p.returncode == 0 else f"<run failed: {p.stderr[-200:]}>"


def openai_client_checks(port):
    try:
        import openai
    except ImportError as e:
        check("import openai", False, str(e))
        return
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=300)
    prompt = "The capital of France is"
    c = client.completions.create(model="gemma3-270m", prompt=prompt, max_tokens=8, temperature=0)
    ok = (c.object == "text_completion" and c.choices[0].finish_reason in ("stop", "length") and c.id.startswith("cmpl-")
          and c.usage.prompt_tokens == 6 and c.usage.completion_tokens <= 8 and
          c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens and c.model == "gemma3-270m")
    check("openai completions", ok and len(c.choices[0].text) > 0, repr(c.choices[0].text) + f" {c.usage}")
    chunks = list(client.completions.create(model="x", prompt=prompt, max_tokens=8, temperature=0, stream=True))
    streamed = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    check("openai completions stream == non-stream", streamed == c.choices[0].text and len(chunks) >= 2 and
          chunks[-1].choices[0].finish_reason == c.choices[0].finish_reason, f"{streamed!r} ({len(chunks)} chunks)")

    msgs = [{"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "What is the capital of France?"}]
    r = client.chat.completions.create(model="x", messages=msgs, max_tokens=12, temperature=0)
    m = r.choices[0].message
    check("openai chat", r.object == "chat.completion" and m.role == "assistant" and isinstance(m.content, str) and
          m.content and r.usage.completion_tokens <= 12 and r.choices[0].finish_reason in ("stop", "length"),
          f"{m.content!r} {r.usage}")
    stream = client.chat.completions.create(model="x", messages=msgs, max_tokens=12, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    parts = list(stream)
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    roles = [p.choices[0].delta.role for p in parts if p.choices and p.choices[0].delta.role]
    usage = [p.usage for p in parts if p.usage]
    check("openai chat stream == non-stream", text == m.content and roles == ["assistant"] and
          all(p.object == "chat.completion.chunk" for p in parts) and len(usage) == 1 and
          usage[0].completion_tokens == r.usage.completion_tokens, f"{text!r} usage={usage}")
    conv = msgs + [{"role": "assistant", "content": "Paris"}, {"role": "user", "content": "And of Italy?"}]
    r2 = client.chat.completions.create(model="x", messages=conv, max_tokens=8, temperature=0)
    check("openai chat multi-turn", r2.usage.prompt_tokens > r.usage.prompt_tokens and r2.choices[0].message.content,
          repr(r2.choices[0].message.content))
    try:
        client.completions.create(model="x", prompt="hi", max_tokens=4, extra_body={"kv": {"policy": "nope"}})
        check("openai: unknown KV policy is a 400", False)
    except openai.BadRequestError as e:
        check("openai: unknown KV policy is a 400", "unknown KV policy 'nope'" in str(e), str(e)[:160])
    r3 = client.completions.create(model="x", prompt=prompt, max_tokens=8, temperature=0,
                                   extra_body={"kv": {"policy": "shadowkv", "budget": "1024", "rank": 64}})
    check("openai: per-request KV override (shadowkv)", r3.choices[0].text == c.choices[0].text,
          repr(r3.choices[0].text))


PARAGRAPH = ("The old lighthouse stood at the edge of the cliff, its white paint peeling in the salty wind. "
             "Every evening the keeper climbed the spiral stairs to light the great lamp. "
             "Ships passing in the night would see its beam sweep across the dark water. "
             "In the village below, children told stories about the keeper and his cat. ").split(". ")


def batched_exactness(srv):
    n = 12
    prompts = []
    for i, k in enumerate([1, 2, 3, 5, 8, 13, 21, 34]):
        prompts.append(". ".join(PARAGRAPH[j % len(PARAGRAPH)] for j in range(i, i + k)) + ". Then")
    got, start = [None] * len(prompts), len(srv.lines)
    barrier = threading.Barrier(len(prompts))

    def client(i):
        barrier.wait()
        got[i] = request(srv.port, "POST", "/v1/completions",
                         {"prompt": prompts[i], "max_tokens": n, "temperature": 0})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batches = [int(m.group(1)) for l in srv.lines[start:] for m in [re.search(r"step: batch (\d+)", l)] if m]
    check("8 concurrent clients all answered", all(g and g[0] == 200 for g in got), str([g and g[0] for g in got]))
    check("step log shows batching (a step with > 1 sequence)", batches and max(batches) > 1,
          f"max batch {max(batches) if batches else None} over {len(batches)} steps")
    for i, p in enumerate(prompts):
        server_text = got[i][1]["choices"][0]["text"] if got[i] and got[i][0] == 200 else None
        solo = solo_text(p, n)
        check(f"concurrent client {i} ({got[i][1]['usage']['prompt_tokens'] if server_text is not None else '?'} "
              f"prompt tokens) == solo run", server_text == solo, f"{server_text!r} vs {solo!r}")


def hostile(port):
    big_prompt = "word " * (CTX + 100)
    cases = [
        ("bad JSON", "POST", "/v1/completions", '{"prompt": ', 400, None),
        ("empty body", "POST", "/v1/completions", "", 400, None),
        ("JSON array body", "POST", "/v1/completions", "[1, 2]", 400, None),
        ("huge max_tokens", "POST", "/v1/completions", {"prompt": "hi", "max_tokens": 10 ** 12}, 400, "max_tokens"),
        ("max_tokens over the context", "POST", "/v1/completions", {"prompt": "hi", "max_tokens": CTX}, 400,
         "max_tokens"),
        ("negative max_tokens", "POST", "/v1/completions", {"prompt": "hi", "max_tokens": -5}, 400, "max_tokens"),
        ("negative temperature", "POST", "/v1/completions", {"prompt": "hi", "temperature": -1}, 400, "temperature"),
        ("top_p > 1", "POST", "/v1/completions", {"prompt": "hi", "top_p": 7}, 400, "top_p"),
        ("wrong-typed prompt", "POST", "/v1/completions", {"prompt": 123}, 400, "prompt"),
        ("wrong-typed max_tokens", "POST", "/v1/completions", {"prompt": "hi", "max_tokens": "8"}, 400, "max_tokens"),
        ("wrong-typed stream", "POST", "/v1/completions", {"prompt": "hi", "stream": "yes"}, 400, "stream"),
        ("missing prompt", "POST", "/v1/completions", {"max_tokens": 3}, 400, "prompt"),
        ("n = 2", "POST", "/v1/completions", {"prompt": "hi", "n": 2}, 400, "n"),
        ("token id out of range", "POST", "/v1/completions", {"prompt": [2, 10 ** 9]}, 400, "prompt"),
        ("prompt over the context", "POST", "/v1/completions", {"prompt": big_prompt}, 400, "prompt"),
        ("messages not an array", "POST", "/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
        ("unknown role", "POST", "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 400,
         "messages[0].role"),
        ("roles not alternating (Gemma)", "POST", "/v1/chat/completions",
         {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, 400, "messages"),
        ("unknown KV policy", "POST", "/v1/completions", {"prompt": "hi", "kv": {"policy": "magic"}}, 400, "kv.policy"),
        ("bad KV setting", "POST", "/v1/completions", {"prompt": "hi", "kv": {"policy": "shadowkv", "rank": "x"}}, 400,
         "kv"),
        ("unknown KV setting", "POST", "/v1/completions", {"prompt": "hi", "kv": {"bogus": 1}}, 400, "kv"),
        ("unknown route", "GET", "/v1/nope", None, 404, None),
        ("unknown POST route", "POST", "/v1/engines", {"prompt": "hi"}, 404, None),
        ("GET on a POST route", "GET", "/v1/completions", None, 405, None),
        ("DELETE on /health", "DELETE", "/health", None, 405, None),
        ("10 MB body", "POST", "/v1/completions", '{"prompt": "' + "a" * (10 << 20) + '"}', 413, None),
    ]
    for name, method, path, body, status, param in cases:
        t0 = time.time()
        got, j, _ = request(port, method, path, body, timeout=60)
        ok = got == status and is_error_shape(j) and (param is None or j["error"]["param"] == param)
        check(f"hostile: {name} -> {status}", ok, f"got {got} in {time.time() - t0:.1f}s: {str(j)[:150]}")
    if isinstance(j, dict) and "error" in j:
        pass
    got, j, _ = request(port, "POST", "/v1/completions", {"prompt": "hi", "max_tokens": CTX})
    check("context error is context_length_exceeded", got == 400 and j["error"]["code"] == "context_length_exceeded",
          str(j)[:200])
    # Raw-socket abuse: garbage request line, a connection closed at once, a chunked body past the limit.
    for name, payload in [("garbage HTTP", b"GARBAGE\r\n\r\n"), ("closed at once", b""),
                          ("half a request", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pro")]:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(payload)
            if name == "garbage HTTP":
                reply = s.recv(4096)
                check("hostile: garbage HTTP -> 400", reply.startswith(b"HTTP/1.1 400"), repr(reply[:60]))
    chunked_ok = chunked_flood(port)
    check("hostile: chunked 10 MB body -> 413 or closed", chunked_ok, str(chunked_ok))
    got, j, _ = request(port, "POST", "/v1/completions", {"prompt": "The capital of France is", "max_tokens": 4,
                                                          "temperature": 0})
    check("server still serves after hostile requests", got == 200 and j["choices"][0]["text"], str(j)[:120])


def chunked_flood(port):
    """Sends 10 MB in chunks; returns the status line if one came back, True if the server closed the connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            block = b"a" * 65536
            for _ in range(160):
                s.sendall(b"%x\r\n%s\r\n" % (len(block), block))
            s.sendall(b"0\r\n\r\n")
            reply = s.recv(4096)
            return reply.split(b"\r\n")[0].decode() if reply.startswith(b"HTTP/1.1 413") else not reply
    except OSError:
        return True


def disconnect_mid_stream(port):
    before = metrics(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 500, "temperature": 0.8, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % len(body) + body)
    got = b""
    while got.count(b"data: ") < 3:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    live_during = metrics(port).get("shadowkv_live_sequences")
    s.close()
    t0, live = time.time(), None
    while time.time() - t0 < 10:
        live = metrics(port).get("shadowkv_live_sequences")
        if live == 0:
            break
        time.sleep(0.1)
    after = metrics(port)
    generated = after.get("shadowkv_completion_tokens_total", 0) - before.get("shadowkv_completion_tokens_total", 0)
    check("disconnect mid-stream: sequence freed", live_during == 1 and live == 0,
          f"live {live_during} -> {live} after {time.time() - t0:.2f}s")
    check("disconnect mid-stream: cancelled early (<< max_tokens)", 0 < generated < 100, f"{generated:.0f} tokens")


def load_run(port):
    before = metrics(port)
    n_req, n_threads, out, lock = 64, 16, [], threading.Lock()
    deadline = time.time() + 120

    def worker(w):
        for i in range(w, n_req, n_threads):
            if time.time() > deadline:
                return
            r = request(port, "POST", "/v1/completions",
                        {"prompt": f"Item {i}: the weather today is", "max_tokens": 8, "temperature": 0.7, "seed": i})
            with lock:
                out.append(r)

    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    ok = [r for r in out if r[0] == 200]
    # The deadline only stops starting requests (a slow build, e.g. sanitizers); every request started must succeed.
    check("load: up to 64 requests from 16 threads, none lost", len(out) >= n_threads and len(ok) == len(out),
          f"{len(ok)}/{len(out)} ok in {dt:.1f}s, statuses {sorted(set(r[0] for r in out), key=str)}; "
          f"failures: {[r[1] for r in out if r[0] != 200][:3]}")
    prompt = sum(r[1]["usage"]["prompt_tokens"] for r in ok)
    completion = sum(r[1]["usage"]["completion_tokens"] for r in ok)
    after = metrics(port)
    key = 'shadowkv_requests_total{endpoint="/v1/completions",status="200"}'
    d = {k: after.get(k, 0) - before.get(k, 0) for k in
         (key, "shadowkv_prompt_tokens_total", "shadowkv_completion_tokens_total", "shadowkv_sequences_total")}
    check("load: /metrics agrees with the clients", d[key] == len(ok) and d["shadowkv_prompt_tokens_total"] == prompt
          and d["shadowkv_completion_tokens_total"] == completion and d["shadowkv_sequences_total"] == len(ok),
          f"metrics {d} vs clients {len(ok)} req, {prompt} prompt, {completion} completion tokens")
    check("load: queue and batch empty afterwards, tokens/s reported",
          after.get("shadowkv_queue_length") == 0 and after.get("shadowkv_live_sequences") == 0 and
          after.get("shadowkv_decode_tokens_per_second", 0) > 0, str({k: v for k, v in after.items() if "second" in k}))


def metrics_shape(port):
    m = metrics(port)
    need = ['shadowkv_requests_total{endpoint="/health",status="200"}', "shadowkv_prompt_tokens_total",
            "shadowkv_completion_tokens_total", "shadowkv_decode_tokens_per_second", "shadowkv_queue_length",
            "shadowkv_live_sequences", 'shadowkv_kv_bytes{tier="hot"}', 'shadowkv_kv_bytes{tier="cold"}',
            "shadowkv_value_hit_rate", 'shadowkv_requests_total{endpoint="other",status="404"}',
            'shadowkv_requests_total{endpoint="/v1/completions",status="400"}']
    missing = [k for k in need if k not in m]
    check("/metrics has the documented series", not missing, f"missing {missing}")


def queue_full_and_sigint():
    srv = Server("--max-batch", "1", "--max-queue", "1", "-c", str(CTX))
    if not srv.port:
        check("second server starts", False, "\n".join(srv.lines[-5:]))
        return
    out = [None] * 4
    barrier = threading.Barrier(4)

    def client(i):
        barrier.wait()
        out[i] = request(srv.port, "POST", "/v1/completions", {"prompt": "Count: one, two,", "max_tokens": 48})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r[0] for r in out)
    busy = [r for r in out if r[0] == 503]
    check("--max-batch 1 --max-queue 1: 4 at once -> 2 served, 2 get 503", statuses == [200, 200, 503, 503] and
          all(is_error_shape(r[1]) and r[1]["error"]["code"] == "queue_full" for r in busy), str(statuses))
    rc = srv.stop(signal.SIGINT)
    check("SIGINT stops the server cleanly", rc == 0 and any("stopped" in l for l in srv.lines), f"rc={rc}")


def sigterm_mid_stream(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 600, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    got = b""
    while b"data: " not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    t0 = time.time()
    rc = srv.stop(signal.SIGTERM)
    dt = time.time() - t0
    rest = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
    except OSError:
        pass
    s.close()
    check("SIGTERM with a stream in flight: clean exit, the stream ends with an error event and [DONE]",
          rc == 0 and dt < 15 and b"data:" in got and b"shutting down" in rest and rest.endswith(b"[DONE]\n\n\r\n0\r\n\r\n"),
          f"rc={rc} in {dt:.1f}s, stream ended with {rest[-100:]!r}")


def main():
    if not BIN or not os.path.exists(BIN):
        check("SHADOWKV_BIN set", False, BIN)
    if not MODEL or not os.path.exists(MODEL):
        check("SHADOWKV_MODEL set", False, MODEL)
    if results:
        return finish()
    t_start = time.time()
    srv = Server("-c", str(CTX), "--max-batch", "8", "--max-queue", "64", "--log-steps")
    check("server starts and prints its address", srv.port is not None, "\n".join(srv.lines[-5:]))
    if not srv.port:
        srv.stop()
        return finish()
    try:
        status, j, _ = request(srv.port, "GET", "/health")
        check("/health", status == 200 and j == {"status": "ok"}, str(j))
        status, j, _ = request(srv.port, "GET", "/v1/models")
        check("/v1/models", status == 200 and j["object"] == "list" and j["data"][0]["id"] == "gemma3-270m"
              if os.path.basename(MODEL) == "gemma-3-270m-q4_k_m.gguf" else status == 200, str(j))
        for name, fn in [("openai", lambda: openai_client_checks(srv.port)), ("batched", lambda: batched_exactness(srv)),
                         ("hostile", lambda: hostile(srv.port)), ("disconnect", lambda: disconnect_mid_stream(srv.port)),
                         ("load", lambda: load_run(srv.port)), ("metrics", lambda: metrics_shape(srv.port))]:
            t0 = time.time()
            try:
                fn()
            except Exception as e:  # a crash of one group is a failure, the others still run
                check(f"{name} checks ran", False, f"{type(e).__name__}: {e}")
            print(f"  ({name}: {time.time() - t0:.1f}s)", flush=True)
            check(f"server alive after {name}", srv.proc.poll() is None, f"rc={srv.proc.poll()}")
        sigterm_mid_stream(srv)
    finally:
        srv.stop()
    t0 = time.time()
    queue_full_and_sigint()
    print(f"  (queue/SIGINT: {time.time() - t0:.1f}s; total {time.time() - t_start:.1f}s)", flush=True)
    return finish()


def finish():
    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
