"""Claude Code (npm @anthropic-ai/claude-code) meets the sign-in, and a browser shows its page.

Installs a pinned Claude Code into a cache directory, starts the bitrix24-mcp binary (path in
BITRIX24_MCP_BIN) as `--demo serve --transport http --auth oauth` on a loopback port, registers
it with `claude mcp add --transport http` (only its URL) under a throwaway HOME, and checks that
`claude mcp list` reports that the server needs authentication, not that it failed: Claude Code
found the challenge, the protected-resource metadata and the authorization server.

Then, when a Chromium is installed (`chromium`, `chromium-browser` or CHROMIUM), it registers a
client, opens the consent page in headless Chromium and checks what the browser rendered: the
client, where it sends the user back, the portal, and the approve and deny buttons.

Prints one line per check and a closing "N passed, N failed" line; exits non-zero on a failure.
Environment: BITRIX24_MCP_BIN (required), CLAUDE_CODE_VERSION, CLAUDE_CODE_CACHE, CHROMIUM.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = os.environ["BITRIX24_MCP_BIN"]
VERSION = os.environ.get("CLAUDE_CODE_VERSION", "2.1.332")
CACHE = Path(os.environ.get("CLAUDE_CODE_CACHE", REPO / "target" / "interop" / "claude-code")) / VERSION
INSTALL_TIMEOUT = 600
CLAUDE_TIMEOUT = 120

results: list[tuple[str, bool, str]] = []


def check(name: str, passed: bool, detail: str) -> None:
    results.append((name, passed, detail))
    print(f"{'ok  ' if passed else 'FAIL'} {name}" + ("" if passed else f": {detail[:2000]}"), flush=True)


def install() -> Path:
    claude = CACHE / "node_modules" / ".bin" / "claude"
    if claude.exists():
        return claude
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: Claude Code needs Node.js 18 or later with npm")
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--loglevel=error",
         f"@anthropic-ai/claude-code@{VERSION}"],
        check=True, timeout=INSTALL_TIMEOUT, stdout=subprocess.DEVNULL,
    )
    if not claude.exists():
        raise RuntimeError(f"npm installed no claude launcher at {claude}")
    return claude


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [BIN, "--demo", "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}", "--auth", "oauth"],
        env={**os.environ, "RUST_LOG": "info"}, stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def claude_code(base: str, work: Path) -> None:
    claude = install()
    home, project = work / "home", work / "project"
    home.mkdir()
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env.update({"HOME": str(home), "DISABLE_AUTOUPDATER": "1", "CI": "true"})
    run = lambda *args: subprocess.run(  # noqa: E731
        [str(claude), *args], cwd=project, env=env, capture_output=True, text=True, timeout=CLAUDE_TIMEOUT,
    )
    added = run("mcp", "add", "--transport", "http", "bitrix24", f"{base}/mcp")
    check("claude mcp add takes the server with only its URL", added.returncode == 0, added.stdout + added.stderr)
    listed = run("mcp", "list")
    line = next((l for l in listed.stdout.splitlines() if l.startswith("bitrix24:")), "")
    check("claude mcp list: the server needs authentication", "Needs authentication" in line, listed.stdout + listed.stderr)
    check("claude mcp list: it did not fail to connect", "Failed" not in line and line != "", line)


def chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def consent_in_browser(base: str, work: Path) -> None:
    browser = chromium()
    if browser is None:
        print("skip the consent page in a browser: no Chromium is installed", flush=True)
        return
    redirect = "http://127.0.0.1:3030/callback"
    request = urllib.request.Request(
        f"{base}/register", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"client_name": "Browser check", "redirect_uris": [redirect],
                         "token_endpoint_auth_method": "none"}).encode(),
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        client_id = json.load(response)["client_id"]
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect, "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
        "resource": f"{base}/mcp",
    })
    profile = work / "chromium-profile"
    shown = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=3000", "--dump-dom", f"{base}/authorize?{query}"],
        capture_output=True, text=True, timeout=120,
    )
    dom = shown.stdout
    check("Chromium renders the consent page", "<form" in dom and 'value="approve"' in dom and 'value="deny"' in dom, dom[:1500] + shown.stderr[-500:])
    check("the rendered page names the client, where it returns and the portal",
          "Browser check" in dom and "127.0.0.1" in dom and "unverified" in dom.lower(), dom[:1500])
    screenshot = work / "consent.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         "--window-size=900,700", f"--screenshot={screenshot}", f"{base}/authorize?{query}"],
        capture_output=True, timeout=120,
    )
    keep = os.environ.get("CONSENT_SCREENSHOT")
    if keep and screenshot.exists():
        shutil.copy(screenshot, keep)
    check("Chromium takes a screenshot of it", screenshot.exists() and screenshot.stat().st_size > 1000, str(screenshot))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bitrix24-mcp-claude-"))
    process, base = start_server(work / "server.log")
    try:
        claude_code(base, work)
        consent_in_browser(base, work)
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # noqa: BLE001 - reported as a failed check
        check("the run completed", False, repr(err))
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
