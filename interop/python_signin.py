"""Sign-in interoperability: the official MCP Python SDK's OAuth client against `--auth oauth`.

Runs a fake Bitrix24 in this process (the portal's /oauth/authorize/ for a browser already logged
in, the OAuth server's code exchange and refresh with rotation, and REST methods that answer as
the token's user), serves a client ID metadata document over https with a certificate made here,
and starts the bitrix24-mcp binary (BITRIX24_MCP_BIN) in sign-in mode at trace level. Then the
SDK's `OAuthClientProvider`, driven headless (its redirect handler fetches the consent page,
posts the approval and follows the redirects through the portal and back), signs in:

- Anna (user 99) with dynamic registration; Maria (user 1271) with a client ID metadata document;
- each lists the tools and calls im_chat_user_list and gets their own answer, and the portal saw
  each call with that user's own Bitrix24 token;
- Anna's Bitrix24 access token expires: her next call refreshes it once and goes on;
- the app is uninstalled for Maria: her call fails as a tool error, her next request gets 401,
  and the SDK signs her in again by itself;
- the server's trace log holds none of the tokens and codes that passed.

Prints one line per check and a closing "N passed, N failed" line; exits non-zero on a failure.
"""

import asyncio
import html
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from support import check, finish, free_port, wait_healthy

BIN = os.environ["BITRIX24_MCP_BIN"]
APP_ID = "local.interop0000000000.00000001"
APP_SECRET = secrets.token_hex(16)
MEMBER_ID = "0123456789abcdef0123456789abcdef"
REDIRECT = "http://localhost:3030/callback"
CHATS = {2935: [99, 1269, 1271], 2937: [99, 1269, 1300]}
PEOPLE = {99: ("Anna", "Petrova"), 1271: ("Maria", "Garcia")}

class Portal:
    """A fake Bitrix24: one portal, its OAuth server and the REST methods the test calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.redirect_uri = ""
        self.browser_user = 99
        self.codes: dict[str, tuple[int, float]] = {}
        self.access: dict[str, tuple[int, float]] = {}
        self.refresh: dict[str, int] = {}
        self.uninstalled: set[int] = set()
        self.calls: list[tuple[str, int | None]] = []
        self.exchanges: list[tuple[str, int]] = []
        self.issued: list[str] = []
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                portal.handle(self, "GET")

            def do_POST(self) -> None:
                portal.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, request: BaseHTTPRequestHandler, verb: str) -> None:
        url = urllib.parse.urlsplit(request.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length).decode() if length else ""
        if body:
            if (request.headers.get("Content-Type") or "").startswith("application/json"):
                params.update({k.lower(): v for k, v in json.loads(body).items()})
            else:
                params.update(dict(urllib.parse.parse_qsl(body)))
        if url.path.rstrip("/") == "/oauth/authorize":
            return self.authorize(request, params)
        if url.path.rstrip("/") == "/oauth/token":
            return self.token(request, params)
        if url.path.startswith("/rest/"):
            return self.rest(request, url.path[len("/rest/"):], params)
        reply(request, 404, {"error": "NOT_FOUND"})

    def authorize(self, request: BaseHTTPRequestHandler, params: dict) -> None:
        # Bitrix24 approves a logged-in user silently and takes the redirect URI from the app.
        if params.get("client_id") != APP_ID:
            page = b"<html><body>The application was not found.</body></html>"
            request.send_response(400)
            request.send_header("Content-Type", "text/html")
            request.end_headers()
            request.wfile.write(page)
            return
        code = secrets.token_hex(16)
        with self.lock:
            self.codes[code] = (self.browser_user, time.time() + 30)
            self.issued.append(code)
        query = urllib.parse.urlencode({
            "code": code,
            "state": params.get("state", ""),
            "domain": self.host,
            "member_id": MEMBER_ID,
            "scope": "im,user_basic",
            "server_domain": "oauth.bitrix.info",
        })
        request.send_response(302)
        request.send_header("Location", f"{self.redirect_uri}?{query}")
        request.end_headers()

    def token(self, request: BaseHTTPRequestHandler, params: dict) -> None:
        if params.get("client_id") != APP_ID or params.get("client_secret") != APP_SECRET:
            return reply(request, 401, {"error": "invalid_client", "error_description": "Invalid client"})
        grant = params.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                user, expires = self.codes.pop(params.get("code", ""), (None, 0))
                if user is None or expires < time.time():
                    return reply(request, 400, {"error": "invalid_grant", "error_description": "Invalid code"})
            elif grant == "refresh_token":
                user = self.refresh.pop(params.get("refresh_token", ""), None)
                if user is None or user in self.uninstalled:
                    return reply(request, 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
            else:
                return reply(request, 400, {"error": "invalid_request"})
            self.exchanges.append((grant, user))
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            self.access[access] = (user, time.time() + 3600)
            self.refresh[refresh] = user
            self.issued += [access, refresh]
        answer = {
            "access_token": access,
            "expires_in": 3600,
            "expires": int(time.time()) + 3600,
            "scope": "im,user_basic",
            "domain": "oauth.bitrix.info",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "client_endpoint": f"http://{self.host}/rest/",
            "member_id": MEMBER_ID,
            "refresh_token": refresh,
        }
        if grant == "refresh_token":
            answer["user_id"] = user
        reply(request, 200, answer)

    def rest(self, request: BaseHTTPRequestHandler, method: str, params: dict) -> None:
        with self.lock:
            user, expires = self.access.get(params.get("auth", ""), (None, 0))
            self.calls.append((method, user))
            if user is not None and user in self.uninstalled:
                return reply(request, 401, {"error": "invalid_token", "error_description": "The access token provided is invalid."})
        if user is None:
            return reply(request, 401, {"error": "invalid_token", "error_description": "The access token provided is invalid."})
        if expires < time.time():
            return reply(request, 401, {"error": "expired_token", "error_description": "The access token provided has expired."})
        now = time.time()
        timing = {"start": now, "finish": now, "duration": 0.001, "processing": 0.0005,
                  "date_start": "2026-12-05T08:00:00+00:00", "date_finish": "2026-12-05T08:00:00+00:00"}
        if method in ("profile", "user.current"):
            first, last = PEOPLE[user]
            return reply(request, 200, {"result": {"ID": str(user), "ADMIN": False, "NAME": first, "LAST_NAME": last}, "time": timing})
        if method == "im.chat.user.list":
            chat = int(params.get("chat_id") or params.get("CHAT_ID") or 0)
            members = CHATS.get(chat, [])
            return reply(request, 200, {"result": members if user in members else [], "time": timing})
        reply(request, 404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"})

    def expire(self, user: int) -> None:
        with self.lock:
            for token, (owner, _) in list(self.access.items()):
                if owner == user:
                    self.access[token] = (owner, 0)

    def uninstall_for(self, user: int) -> None:
        with self.lock:
            self.uninstalled.add(user)

    def reinstall_for(self, user: int) -> None:
        with self.lock:
            self.uninstalled.discard(user)


def reply(request: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


def metadata_document_server(directory: str) -> tuple[ThreadingHTTPServer, str, str]:
    """An https server on loopback serving one client ID metadata document; the certificate it
    uses is returned so the MCP server can be told to trust it (SSL_CERT_FILE). The certificate is
    a leaf (CA:FALSE): rustls refuses a CA certificate presented as the server's own."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
         "-addext", "extendedKeyUsage=serverAuth", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    port = free_port()
    url = f"https://localhost:{port}/oauth/interop-client.json"
    document = json.dumps({
        "client_id": url,
        "client_name": "Interop (metadata document)",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }).encode()

    class Handler(BaseHTTPRequestHandler):
        fetched = 0

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            Handler.fetched += 1
            self.send_response(200 if self.path == urllib.parse.urlsplit(url).path else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "max-age=600")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, url, cert


class Memory:
    """The SDK's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """The user's browser, headless: shows the consent page, approves, follows redirects until
    the client's redirect URI. A separate cookie-keeping client, as the SDK's examples advise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.result: AuthorizationCodeResult | None = None
        self.consent_pages: list[str] = []
        self.sign_ins = 0

    async def redirect(self, url: str) -> None:
        self.sign_ins += 1
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as web:
            page = await web.get(url)
            if page.status_code != 200:
                text = " ".join(re.findall(r"<p[^>]*>(.*?)</p>", page.text, re.S))[:600]
                raise RuntimeError(f"/authorize answered {page.status_code}: {text}")
            self.consent_pages.append(page.text)
            fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
            form = {k: html.unescape(v) for k, v in fields.items() if k != "decision"}
            form["decision"] = "approve"
            action = urllib.parse.urljoin(url, "/authorize")
            step = await web.post(action, data=form)
            for _ in range(5):
                location = step.headers.get("location", "")
                if step.status_code not in (302, 303) or not location:
                    raise RuntimeError(f"sign-in stopped at HTTP {step.status_code}: {step.text[:300]}")
                if location.startswith(REDIRECT):
                    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
                    if "code" not in query:
                        raise RuntimeError(f"the sign-in ended with {query.get('error')}: {query.get('error_description')}")
                    self.result = AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))
                    return
                step = await web.get(urllib.parse.urljoin(str(step.url), location))
            raise RuntimeError("too many redirects")

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        result, self.result = self.result, None
        return result


def provider(base: str, browser: Browser, storage: Memory, metadata_url: str | None = None) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=f"{base}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name=f"Interop ({browser.name})",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
        client_metadata_url=metadata_url,
    )


async def call(base: str, auth: OAuthClientProvider, chat: int) -> tuple[bool, object, list[str]]:
    async with create_mcp_http_client(auth=auth) as http:
        async with streamable_http_client(f"{base}/mcp", http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = [t.name for t in (await session.list_tools()).tools]
                result = await session.call_tool("im_chat_user_list", {"CHAT_ID": chat})
                body = result.structured_content if not result.is_error else json.loads(result.content[-1].text)
                return bool(result.is_error), body, tools


def start_server(portal: Portal, cert: str, log_path: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    portal.redirect_uri = f"{base}/oauth/callback"
    env = {**os.environ, "RUST_LOG": "trace", "SSL_CERT_FILE": cert, "BITRIX24_CLIENT_SECRET": APP_SECRET}
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [BIN, "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}", "--auth", "oauth",
         "--public-url", base, "--client-id", APP_ID,
         "--portal-url", f"http://{portal.host}/rest/", "--oauth-token-url", f"http://{portal.host}/oauth/token/",
         "--signin-allow-private-metadata"],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    wait_healthy(base, process, f"the server (log: {log_path})")
    return process, base


async def main() -> None:
    portal = Portal()
    workdir = tempfile.mkdtemp(prefix="bitrix24-mcp-signin-")
    cimd_server, metadata_url, cert = metadata_document_server(workdir)
    log_path = os.path.join(workdir, "server.log")
    process, base = start_server(portal, cert, log_path)
    try:
        # 1. Anna, by dynamic registration.
        anna_browser, anna_store = Browser("Anna"), Memory()
        anna = provider(base, anna_browser, anna_store)
        portal.browser_user = 99
        is_error, body, tools = await call(base, anna, 2937)
        check("Anna signs in by dynamic registration and lists the tools", "im_chat_user_list" in tools, str(tools))
        check("Anna's im_chat_user_list 2937 is her answer", not is_error and body == {"chat_id": 2937, "user_ids": [99, 1269, 1300], "count": 3}, str(body))
        consent = anna_browser.consent_pages[0] if anna_browser.consent_pages else ""
        check("the consent page names the client as unverified, where it goes back to, and the portal",
              "unverified" in consent.lower() and "localhost" in consent and portal.host.split(":")[0] in consent, consent[:500])
        check("the SDK was given tokens it stores", anna_store.tokens is not None and anna_store.client is not None)

        # 2. Maria, by a client ID metadata document.
        maria_browser, maria_store = Browser("Maria"), Memory()
        maria = provider(base, maria_browser, maria_store, metadata_url)
        portal.browser_user = 1271
        is_error, body, _ = await call(base, maria, 2937)
        check("Maria signs in with a client ID metadata document", maria_store.client is not None and maria_store.client.client_id == metadata_url, str(maria_store.client))
        check("Maria's im_chat_user_list 2937 is empty: she is not in that chat", not is_error and body.get("user_ids") == [] and body.get("count") == 0, str(body))
        is_error, body, _ = await call(base, maria, 2935)
        check("Maria sees chat 2935, which she is in", not is_error and body == {"chat_id": 2935, "user_ids": [99, 1269, 1271], "count": 3}, str(body))
        consent = maria_browser.consent_pages[0] if maria_browser.consent_pages else ""
        check("the consent page names the metadata document's host", "localhost" in consent and "unverified" not in consent.lower(), consent[:500])

        seen = [(m, u) for m, u in portal.calls if m == "im.chat.user.list"]
        check("the portal saw each call with its own user's token", seen == [("im.chat.user.list", 99), ("im.chat.user.list", 1271), ("im.chat.user.list", 1271)], str(seen))
        check("each user was identified with profile", [m for m, _ in portal.calls if m in ("profile", "user.current")].__len__() == 2, str(portal.calls))

        # 3. Anna's Bitrix24 access token expires: one refresh, and the call goes on.
        portal.browser_user = 99
        portal.expire(99)
        before = len(portal.exchanges)
        is_error, body, _ = await call(base, anna, 2935)
        refreshes = portal.exchanges[before:]
        check("after the Bitrix24 token expired, Anna's call refreshed it once and answered", not is_error and refreshes == [("refresh_token", 99)], f"{body} {refreshes}")
        check("Anna was not asked to sign in again", anna_browser.sign_ins == 1, str(anna_browser.sign_ins))

        # 4. The app is uninstalled for Maria: tool error, then 401, then the SDK signs in again.
        portal.browser_user = 1271
        portal.uninstall_for(1271)
        portal.expire(1271)
        old_token = maria_store.tokens.access_token
        sign_ins = maria_browser.sign_ins
        is_error, body, _ = await call(base, maria, 2935)
        check("a dead Bitrix24 grant fails the call as a tool error", is_error, str(body))
        portal.reinstall_for(1271)
        async with httpx2.AsyncClient() as raw:
            answer = await raw.post(f"{base}/mcp", headers={"Authorization": f"Bearer {old_token}", "Accept": "application/json, text/event-stream", "Content-Type": "application/json"},
                                    content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        check("the next request with Maria's old token gets 401", answer.status_code == 401 and "resource_metadata=" in answer.headers.get("www-authenticate", ""), f"{answer.status_code} {answer.headers}")
        is_error, body, _ = await call(base, maria, 2935)
        last = [u for m, u in portal.calls if m == "im.chat.user.list"][-1]
        check("the SDK signs Maria in again by itself (on the 401), and her call works as her",
              not is_error and maria_browser.sign_ins > sign_ins and last == 1271 and maria_store.tokens.access_token != old_token,
              f"{body} {maria_browser.sign_ins} {last}")
    finally:
        process.terminate()
        code = process.wait(timeout=10)
        check("the server exits 0 on SIGTERM", code == 0, str(code))
        cimd_server.shutdown()

    log = open(log_path, encoding="utf-8", errors="replace").read()
    secrets_seen = list(portal.issued) + [APP_SECRET]
    for store in (anna_store, maria_store):
        if store.tokens:
            secrets_seen += [store.tokens.access_token, store.tokens.refresh_token or ""]
    leaked = [s[:6] + "…" for s in secrets_seen if s and s in log]
    check("the trace log holds no Bitrix24 token, code, MCP token or client secret", not leaked and len(log) > 0, str(leaked))


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(finish())
