"""The MCP service behind the gateway, written with the official Python SDK (`mcp` 2.x).

`MCPServer` (2.x's name for FastMCP) over its streamable HTTP app, stateful sessions with SSE
responses, served by uvicorn on 127.0.0.1 at a port the OS picks. The same tools as the Node
backend (lib/backend.mjs), so the TypeScript scenario runs against it unchanged:

- `whoami` echoes the x-user-* headers its request arrived with, read through the SDK's own
  request context (`ctx.headers`), and whether an Authorization header arrived;
- `progress` sends N progress notifications, a delay apart, and returns their send times.

DNS-rebinding protection stays at the SDK's default for a loopback server (Host must be
127.0.0.1:*, localhost:* or [::1]:*), so a gateway sending any other Host is refused with 421.

Protocol on stdout, one JSON object a line: first {"ready": url}, then one {"request": {...}}
per HTTP request (method, path, headers) so the test can check every request, not only the
ones that reached a tool.
"""

import argparse
import json
import socket
import sys
import time
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

IDENTITY_HEADERS = ["x-user-id", "x-user-email", "x-user-name", "x-user-provider", "x-user-avatar"]


def emit(obj: dict[str, Any]) -> None:
    """One line of the stdout protocol, flushed at once (the test reads it live)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def build_server() -> MCPServer:
    """The MCPServer with the two e2e tools."""
    server = MCPServer(name="e2e-backend-python", version="1.0.0")

    @server.tool(description="Echoes the identity headers this request reached the backend with")
    async def whoami(ctx: Context) -> dict[str, Any]:
        headers = ctx.headers or {}
        result: dict[str, Any] = {h: headers.get(h) for h in IDENTITY_HEADERS}
        result["authorization_present"] = headers.get("authorization") is not None
        return result

    @server.tool(description="Sends `steps` progress notifications, `delay_ms` apart, then returns their send times")
    async def progress(ctx: Context, steps: int = 5, delay_ms: int = 200) -> dict[str, Any]:
        steps = max(1, min(steps, 50))
        delay_ms = max(0, min(delay_ms, 2000))
        sent_at: list[int] = []
        for i in range(1, steps + 1):
            await anyio.sleep(delay_ms / 1000)
            sent_at.append(int(time.time() * 1000))
            await ctx.report_progress(i, steps, f"step {i}")
        return {"steps": steps, "sentAt": sent_at}

    return server


def recording(app: Any) -> Any:
    """ASGI wrapper that reports every HTTP request (before the SDK's own Host check)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            emit({"request": {"method": scope["method"], "path": scope["path"], "headers": headers,
                              "at": int(time.time() * 1000)}})
        await app(scope, receive, send)

    return wrapped


def chunked(app: Any, piece: int = 64) -> Any:
    """ASGI wrapper for `--answer chunked-json`: the SDK's JSON answer goes out without its
    Content-Length, in `piece`-byte body messages, so uvicorn sends it chunked in small writes,
    as a backend streaming its JSON does (bench/sdk_latency.sh)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def pieces(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                await send(message)
                return
            if message["type"] == "http.response.body":
                body, more = message.get("body", b""), message.get("more_body", False)
                for i in range(0, max(len(body) - piece, 0), piece):
                    await send({"type": "http.response.body", "body": body[i:i + piece], "more_body": True})
                rest = body[(max(len(body) - 1, 0) // piece) * piece:] if body else b""
                await send({"type": "http.response.body", "body": rest, "more_body": more})
                return
            await send(message)

        await app(scope, receive, pieces if scope["type"] == "http" else send)

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--answer", choices=["sse", "chunked-json"], default="sse",
                        help="how tool calls are answered: an SSE stream (the SDK's default) or chunked JSON")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, 0))
    port = sock.getsockname()[1]
    # Listening before "ready" is announced: connections made before uvicorn's loop runs wait
    # in the backlog instead of being refused.
    sock.listen(128)
    app = build_server().streamable_http_app(host=args.host, json_response=args.answer == "chunked-json")
    if args.answer == "chunked-json":
        app = chunked(app)
    config = uvicorn.Config(recording(app), log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    emit({"ready": f"http://{args.host}:{port}/mcp"})
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
