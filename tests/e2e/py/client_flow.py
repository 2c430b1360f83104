"""Logs in to an MCP service behind the gateway with the official Python SDK and calls its tools.

The SDK does the OAuth work with its own code: `OAuthClientProvider` (mcp.client.auth) on the
httpx2 client of its streamable HTTP transport gets the 401, discovers the protected-resource
metadata and the authorization-server metadata, registers dynamically, builds the
authorization URL with PKCE, exchanges the code and retries. This script only plays the
person: `redirect_handler` gets the authorization URL and a scripted browser (stdlib urllib, a
host-scoped cookie jar, HTML forms submitted the way a person would) goes through the
gateway's consent page and the upstream IdP's login and consent until the redirect back to
the loopback redirect URI; `callback_handler` hands the SDK the code, state and iss from it.

Then: connect (the SDK negotiates the protocol itself), list tools, call `whoami`, optionally
the `progress` tool, and optionally wait for the access token to expire and call `whoami` again,
which the SDK precedes with a refresh_token grant. The report goes to stdout as one JSON object on the last line:
every HTTP exchange the SDK made (with token-request form fields, secrets masked), the browser
trail, the registered client, the tool results. Any failure exits non-zero with a traceback on
stderr, after the report.
"""

import argparse
import hashlib
import json
import socket
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from typing import Any

import anyio
import httpx2
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

SECRET_FIELDS = {"client_secret", "code", "code_verifier", "refresh_token", "password"}


class MemoryStorage(TokenStorage):
    """Tokens and client registration kept in memory (one run of the script)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


# ---------------------------------------------------------------------------------------------
# The person's browser


class FormParser(HTMLParser):
    """The forms of a page: action, method, named fields, submit buttons (name, value, label)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None
        self._button: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self._form = {"action": a.get("action", ""), "method": (a.get("method") or "get").upper(),
                          "fields": [], "submits": []}
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        kind = (a.get("type") or ("submit" if tag == "button" else "text")).lower()
        if tag == "button" or (tag == "input" and kind == "submit"):
            if kind == "submit":
                self._button = {"name": a.get("name"), "value": a.get("value", ""), "label": a.get("value", "")}
                self._form["submits"].append(self._button)
                if tag == "input":
                    self._button = None
        elif tag in ("input", "select", "textarea") and a.get("name") and "disabled" not in a:
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form["fields"].append({"name": a["name"], "value": a.get("value", ""), "type": kind})

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["label"] = (self._button["label"] + " " + data).strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None
        elif tag == "form":
            self._form = None


APPROVE = ("approve", "allow", "authorize", "authorise", "accept", "consent", "continue", "sign in", "sign-in",
           "signin", "log in", "login", "yes", "grant")
DENY = ("deny", "cancel", "reject", "decline", "abort")


def approve_button(form: dict[str, Any]) -> dict[str, Any] | None:
    """The submit button a person wanting to approve would click, or None."""

    def text(b: dict[str, Any]) -> str:
        return f"{b.get('name') or ''} {b.get('value') or ''} {b.get('label') or ''}".lower()

    for b in form["submits"]:
        t = text(b)
        if any(w in t for w in APPROVE) and not any(w in t for w in DENY):
            return b
    if len(form["submits"]) == 1 and not any(w in text(form["submits"][0]) for w in DENY):
        return form["submits"][0]
    return None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by the browser loop itself, one hop at a time."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


class Browser:
    """Follows redirects by hand, keeps cookies by host (as browsers do: not by port), submits forms."""

    def __init__(self, fill: dict[str, str]) -> None:
        self.fill = fill
        self.cookies: list[dict[str, str]] = []
        self.trail: list[dict[str, Any]] = []
        self.opener = urllib.request.build_opener(NoRedirect)

    def _store(self, url: str, headers: Any) -> None:
        host = urllib.parse.urlsplit(url).hostname or ""
        for line in headers.get_all("Set-Cookie") or []:
            pair, *attrs = line.split(";")
            name, sep, value = pair.partition("=")
            if not sep or not name.strip():
                continue
            path, expired = "/", False
            for attr in attrs:
                k, _, v = attr.strip().partition("=")
                if k.lower() == "path" and v.startswith("/"):
                    path = v
                if k.lower() == "max-age" and v.strip().lstrip("-").isdigit() and int(v) <= 0:
                    expired = True
            name = name.strip()
            self.cookies = [c for c in self.cookies if not (c["host"] == host and c["name"] == name and c["path"] == path)]
            if not expired:
                self.cookies.append({"host": host, "name": name, "value": value.strip(), "path": path})

    def _cookie_header(self, url: str) -> str:
        u = urllib.parse.urlsplit(url)
        path = u.path or "/"

        def matches(c: dict[str, str]) -> bool:
            prefix = c["path"] if c["path"].endswith("/") else c["path"] + "/"
            return c["host"] == u.hostname and (path == c["path"] or path.startswith(prefix))

        return "; ".join(f"{c['name']}={c['value']}" for c in self.cookies if matches(c))

    def browse_until(self, start_url: str, stop_prefix: str, max_steps: int = 25) -> str:
        """From `start_url` until the browser is sent to `stop_prefix`; returns that URL."""
        method, url, body, referer = "GET", start_url, None, None
        for _ in range(max_steps):
            if url.startswith(stop_prefix):
                return url
            headers = {"User-Agent": "mcp-gateway-e2e-python-browser", "Accept": "text/html,*/*;q=0.8"}
            cookie = self._cookie_header(url)
            if cookie:
                headers["Cookie"] = cookie
            if referer:
                headers["Referer"] = referer
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                ref = urllib.parse.urlsplit(referer or url)
                headers["Origin"] = f"{ref.scheme}://{ref.netloc}"
            req = urllib.request.Request(url, data=body, headers=headers, method=method)
            try:
                res = self.opener.open(req, timeout=15)
            except urllib.error.HTTPError as err:
                res = err
            status = res.status if hasattr(res, "status") else res.code
            self._store(url, res.headers)
            hop: dict[str, Any] = {"method": method, "url": url, "status": status}
            self.trail.append(hop)
            text = res.read().decode("utf-8", "replace")
            if 300 <= status < 400:
                location = res.headers.get("Location")
                if not location:
                    raise BrowseError(f"{status} without Location", self.trail)
                hop["location"] = location
                method, body, referer, url = "GET", None, url, urllib.parse.urljoin(url, location)
                continue
            if status != 200:
                hop["body"] = text[:600]
                raise BrowseError(f"unexpected {status}", self.trail)
            parser = FormParser()
            parser.feed(text)
            choice = None
            for form in parser.forms:
                button = approve_button(form)
                if button or not form["submits"]:
                    choice = (form, button)
                    break
            if choice is None:
                hop["body"] = text[:600]
                raise BrowseError("page has no form to submit", self.trail)
            form, button = choice
            params = [(f["name"], self.fill.get(f["name"], f["value"])) for f in form["fields"]]
            if button and button.get("name"):
                params.append((button["name"], button["value"]))
            hop["submitted"] = {k: ("…" if k in SECRET_FIELDS or "csrf" in k else v) for k, v in params}
            action = urllib.parse.urljoin(url, form["action"] or url)
            encoded = urllib.parse.urlencode(params)
            referer = url
            if form["method"] == "POST":
                method, url, body = "POST", action, encoded.encode()
            else:
                sep = "&" if urllib.parse.urlsplit(action).query else "?"
                method, url, body = "GET", f"{action}{sep}{encoded}", None
        raise BrowseError(f"no redirect to {stop_prefix} after {max_steps} steps", self.trail)


class BrowseError(Exception):
    """A failed login, with every hop the browser made."""

    def __init__(self, message: str, trail: list[dict[str, Any]]) -> None:
        super().__init__(f"{message}; browser trail: {json.dumps(trail)}")


# ---------------------------------------------------------------------------------------------
# The SDK client


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fingerprint(tokens: OAuthToken | None) -> dict[str, str | None] | None:
    """Short hashes of the access and refresh tokens: enough to tell them apart, nothing to reuse."""
    if tokens is None:
        return None

    def h(v: str | None) -> str | None:
        return None if v is None else hashlib.sha256(v.encode()).hexdigest()[:12]

    return {"access": h(tokens.access_token), "refresh": h(tokens.refresh_token)}


def masked_form(content: bytes) -> dict[str, str]:
    form = dict(urllib.parse.parse_qsl(content.decode("utf-8", "replace")))
    return {k: ("…" if k in SECRET_FIELDS else v) for k, v in form.items()}


class Recorder:
    """httpx2 event hooks: every request the SDK sends through its client, auth requests included."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []

    async def on_request(self, request: httpx2.Request) -> None:
        entry: dict[str, Any] = {"method": request.method, "url": str(request.url),
                                 "authorization": (request.headers.get("authorization") or "").split(" ")[0] or None}
        ctype = request.headers.get("content-type", "")
        if "x-www-form-urlencoded" in ctype:
            entry["form"] = masked_form(request.content)
        elif "json" in ctype and request.method == "POST" and "/register" in request.url.path:
            entry["json"] = json.loads(request.content or b"null")
        elif "json" in ctype:
            try:
                msg = json.loads(request.content or b"null")
                entry["rpc"] = msg.get("method") if isinstance(msg, dict) else None
            except ValueError:
                pass
        self.log.append(entry)
        request.extensions["e2e_entry"] = entry

    async def on_response(self, response: httpx2.Response) -> None:
        entry = response.request.extensions.get("e2e_entry")
        if entry is None:
            return
        entry["status"] = response.status_code
        www = response.headers.get("www-authenticate")
        if www:
            entry["www_authenticate"] = www
        if "/register" in response.request.url.path and response.request.method == "POST":
            await response.aread()
            body = json.loads(response.content or b"null")
            entry["response"] = {k: ("…" if k == "client_secret" else v) for k, v in body.items()}


async def run(args: argparse.Namespace, report: dict[str, Any]) -> None:
    redirect_uri = f"http://127.0.0.1:{free_loopback_port()}/callback"
    browser = Browser({"login": args.login, "password": "any-password"})
    report["browser_trail"] = browser.trail
    report["authorization_urls"] = []
    landed: dict[str, str] = {}

    async def redirect_handler(authorization_url: str) -> None:
        report["authorization_urls"].append(authorization_url)
        back = await anyio.to_thread.run_sync(browser.browse_until, authorization_url, redirect_uri)
        landed["url"] = back

    async def callback_handler() -> AuthorizationCodeResult:
        url = landed.pop("url", None)
        if url is None:
            raise RuntimeError("callback_handler called before the browser came back")
        report["redirect_back"] = url
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        if "error" in q:
            raise RuntimeError(f"authorization failed: {q['error']} {q.get('error_description', '')}")
        return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=args.server_url,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-gateway e2e (Python SDK)",
            redirect_uris=[AnyUrl(redirect_uri)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    recorder = Recorder()
    report["http"] = recorder.log
    # Identity headers a malicious client might send; the gateway must replace them.
    spoofed = {"x-user-id": "spoofed-admin", "x-user-email": "spoofed@evil.test"}
    http_client = httpx2.AsyncClient(
        auth=auth,
        headers=spoofed,
        timeout=httpx2.Timeout(30, read=60),
        event_hooks={"request": [recorder.on_request], "response": [recorder.on_response]},
    )
    async with http_client:
        transport = streamable_http_client(args.server_url, http_client=http_client)
        async with Client(transport, mode=args.mode) as client:
            report["protocol_version"] = client.session.protocol_version
            tools = await client.list_tools()
            report["tools"] = sorted(t.name for t in tools.tools)
            who = await client.call_tool("whoami", {})
            if who.is_error:
                raise RuntimeError(f"whoami returned an error: {who.model_dump_json()}")
            report["whoami"] = who.structured_content
            if args.progress:
                arrivals: list[dict[str, Any]] = []

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    arrivals.append({"at": int(time.time() * 1000), "progress": progress})

                res = await client.call_tool("progress", {"steps": 5, "delay_ms": 200}, progress_callback=on_progress)
                report["progress"] = {"arrivals": arrivals, "result": res.structured_content,
                                      "done_at": int(time.time() * 1000)}
            if args.refresh:
                # Past the access token's expiry by the SDK's own clock, the next request makes
                # the SDK refresh first (refresh_token grant), then carry the new token.
                before = fingerprint(storage.tokens)
                expiry = auth.context.token_expiry_time
                if expiry is None:
                    raise RuntimeError("the token response had no expires_in: nothing tells the SDK to refresh")
                await anyio.sleep(max(0.0, expiry - time.time()) + 0.3)
                again = await client.call_tool("whoami", {})
                report["after_refresh"] = {"whoami": again.structured_content, "token_before": before,
                                           "token_after": fingerprint(storage.tokens)}
    tokens = storage.tokens
    report["tokens"] = None if tokens is None else {
        "token_type": tokens.token_type, "expires_in": tokens.expires_in, "scope": tokens.scope,
        "has_refresh_token": tokens.refresh_token is not None,
    }
    info = storage.client_info
    report["client_info"] = None if info is None else {
        "client_id": info.client_id, "has_client_secret": info.client_secret is not None,
        "token_endpoint_auth_method": info.token_endpoint_auth_method, "issuer": info.issuer,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("server_url", help="the MCP service URL at the gateway, e.g. http://127.0.0.1:PORT/NAME/mcp")
    parser.add_argument("--login", required=True, help="login name to type into the IdP's login form")
    parser.add_argument("--mode", default="auto", help="the SDK Client's protocol mode (auto, legacy or a version)")
    parser.add_argument("--progress", action="store_true", help="also call the progress tool")
    parser.add_argument("--refresh", action="store_true",
                        help="then wait for the access token to expire and call whoami again (the SDK refreshes)")
    args = parser.parse_args()
    report: dict[str, Any] = {"ok": False}
    code = 0
    try:
        anyio.run(run, args, report)
        report["ok"] = True
    except BaseException as err:  # noqa: BLE001 - everything is reported, then the exit code says it failed
        report["error"] = "".join(traceback.format_exception(err))
        traceback.print_exception(err, file=sys.stderr)
        code = 1
    print(json.dumps(report, default=str), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
