"""Sequential keep-alive `tools/call` latency against an MCP backend (bench/sdk_latency.sh).

One HTTP/1.1 connection: initialize, notifications/initialized, then N `tools/call whoami`
calls one after another, each timed from the request's first byte to the end of its answer
(the official Python SDK answers with `text/event-stream`, chunked). Prints one line:
RESULT calls=N p50_ms=… p90_ms=… p99_ms=… max_ms=…
"""

import http.client
import json
import socket
import statistics
import sys
import time
import urllib.parse

url, token, n = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection(url.hostname, url.port)
base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25"}
if token:
    base["Authorization"] = "Bearer " + token


def post(body: dict, session: str | None) -> http.client.HTTPResponse:
    headers = dict(base)
    if session:
        headers["Mcp-Session-Id"] = session
    conn.request("POST", url.path, json.dumps(body).encode(), headers)
    # ACK at once: with delayed ACKs a backend writing its answer in small pieces without
    # TCP_NODELAY (uvicorn) waits ~40 ms per call for our ACK, direct or not, which would hide
    # what the gateway adds.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    res = conn.getresponse()
    res.read()
    if res.status >= 300:
        sys.exit(f"status {res.status} for {body.get('method')}")
    return res


init = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "bench", "version": "1"}}}, None)
session = init.getheader("mcp-session-id")
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
times = []
for i in range(n):
    started = time.perf_counter()
    post({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
          "params": {"name": "whoami", "arguments": {}}}, session)
    times.append((time.perf_counter() - started) * 1000)
times.sort()
q = statistics.quantiles(times, n=100)
print(f"RESULT calls={n} p50_ms={q[49]:.3f} p90_ms={q[89]:.3f} p99_ms={q[98]:.3f} max_ms={times[-1]:.3f}")
