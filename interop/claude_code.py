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
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from support import check, finish, free_port, npm_install, wait_healthy

REPO = Path(__file__).resolve().parent.parent
BIN = os.environ["BITRIX24_MCP_BIN"]
VERSION = os.environ.get("CLAUDE_CODE_VERSION", "2.1.332")
CACHE = Path(os.environ.get("CLAUDE_CODE_CACHE", REPO / "target" / "interop" / "claude-code")) / VERSION
INSTALL_TIMEOUT = 600
CLAUDE_TIMEOUT = 120

def install() -> Path:
    return npm_install("@anthropic-ai/claude-code", VERSION, CACHE, "claude", INSTALL_TIMEOUT)


def start_server(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [BIN, "--demo", "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}", "--auth", "oauth"],
        env={**os.environ, "RUST_LOG": "info"}, stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
    )
    try:
        wait_healthy(base, process, "the server")
    except RuntimeError as err:
        raise RuntimeError(f"{err}: {log.read_text(errors='replace')[-2000:]}") from err
    return process, base


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
    sys.exit(finish())
