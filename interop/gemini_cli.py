"""Interoperability with Gemini CLI (npm @google/gemini-cli) over streamable HTTP.

Installs a pinned Gemini CLI into a cache directory, starts the bitrix24-mcp binary (path in
BITRIX24_MCP_BIN) with its demo portal on a loopback port, and runs `gemini -p` against
mockllm.py, a scripted stand-in for the Gemini API (path in MOCKLLM, by default
../shared/clients/mockllm.py beside the repository). From mockllm's JSON log it checks that
Gemini CLI offered the model every tool and that the tool result reached the model: a real
answer for chat 2935, and in a second run an error's code and hint (chat 1: ACCESS_ERROR). Gemini runs with a
throwaway HOME. Every step is bounded in time. Prints one line per check and a closing
"N passed, N failed" line; exits non-zero on any failure.

Environment: BITRIX24_MCP_BIN (required), MOCKLLM, GEMINI_CLI_VERSION (default the pinned one),
GEMINI_CLI_CACHE (default target/interop/gemini-cli under the repository).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from support import check, finish, free_port, npm_install

REPO = Path(__file__).resolve().parent.parent
BIN = os.environ["BITRIX24_MCP_BIN"]
MOCKLLM = Path(os.environ.get("MOCKLLM", REPO.parent / "shared" / "clients" / "mockllm.py"))
VERSION = os.environ.get("GEMINI_CLI_VERSION", "0.61.0")
CACHE = Path(os.environ.get("GEMINI_CLI_CACHE", REPO / "target" / "interop" / "gemini-cli")) / VERSION
TOKEN = "gemini-interop-t0ken"
SERVER = "bitrix24"
EXPECTED_TOOLS = [
    "im_search_chat_list",
    "im_chat_get",
    "im_dialog_get",
    "im_dialog_users_list",
    "im_chat_user_list",
    "im_user_list_get",
    "im_recent_list",
    "im_dialog_messages_get",
    "im_dialog_messages_search",
    "bitrix24_call",
]
INSTALL_TIMEOUT = 600
GEMINI_TIMEOUT = 240

def install() -> Path:
    """The gemini launcher of the pinned version, installed once into the cache. Install scripts
    only build optional native modules (keychain, terminal) that -p does not use."""
    return npm_install("@google/gemini-cli", VERSION, CACHE, "gemini", INSTALL_TIMEOUT, ignore_scripts=True)


def wait_until(ready, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def run_gemini(gemini: Path, mcp_url: str, prompt: str, arguments: dict, work: Path) -> tuple[list[dict], str]:
    """One `gemini -p` run against a fresh mockllm; returns mockllm's log entries and Gemini's output."""
    home = work / "home"
    project = work / "project"
    (home / ".gemini").mkdir(parents=True)
    project.mkdir()
    settings = {
        "mcpServers": {SERVER: {"httpUrl": mcp_url, "headers": {"Authorization": f"Bearer {TOKEN}"}, "timeout": 60000}},
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    log = work / "mockllm.jsonl"
    port = free_port()
    model = subprocess.Popen(
        [sys.executable, str(MOCKLLM), str(port), str(log), "im_chat_user_list", json.dumps(arguments)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: listens(port), model, "mockllm")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "GEMINI_API_KEY": "mock-key",
            "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{port}",
            "NO_COLOR": "1",
            "CI": "1",
        }
        try:
            done = subprocess.run(
                [str(gemini), "-p", prompt, "--yolo", "--allowed-mcp-server-names", SERVER],
                cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=GEMINI_TIMEOUT,
            )
            output = f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
        except subprocess.TimeoutExpired as timeout:
            output = f"timed out after {GEMINI_TIMEOUT} s\nstdout: {timeout.stdout}\nstderr: {timeout.stderr}"
    finally:
        stop(model)
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return entries, output


def offered_every_tool(entries: list[dict]) -> tuple[bool, str]:
    offered = {name for entry in entries for name in entry.get("tools") or []}
    missing = [t for t in EXPECTED_TOOLS if not any(name == t or name.endswith("_" + t) for name in offered)]
    return not missing, f"missing {missing}; offered {sorted(offered)}"


def tool_results(entries: list[dict]) -> list[str]:
    return [entry["tool_result"] for entry in entries if entry.get("action") == "final" and "tool_result" in entry]


def main() -> int:
    if not MOCKLLM.exists():
        check("mockllm.py is where MOCKLLM points", False, str(MOCKLLM))
        return finish()
    try:
        gemini = install()
    except (RuntimeError, subprocess.SubprocessError, OSError) as error:
        check(f"Gemini CLI {VERSION} installs from npm", False, str(error))
        return finish()
    port = free_port()
    server = subprocess.Popen(
        [BIN, "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}", "--demo"],
        env={**os.environ, "RUST_LOG": "warn", "MCP_HTTP_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/healthz"), server, "bitrix24-mcp")
        with tempfile.TemporaryDirectory(prefix="gemini-interop-") as scratch:
            work = Path(scratch) / "answer"
            entries, output = run_gemini(gemini, f"{base}/mcp", "Who is in chat 2935?", {"CHAT_ID": 2935}, work)
            ok, detail = offered_every_tool(entries)
            check("Gemini CLI offers the model every tool", ok, f"{detail}\n{output}")
            got = tool_results(entries)
            answer = got[-1] if got else ""
            check(
                "the members of chat 2935 reach the model",
                all(part in answer for part in ['"chat_id"', "2935", "99", "1269", "1271"]) and "error" not in answer,
                f"tool results {got}\n{output}",
            )
            check("Gemini CLI prints the model's final answer", "MOCK_FINAL" in output, output)

            work = Path(scratch) / "error"
            # Chat 1, the portal's general chat, refuses the webhook's user: ACCESS_ERROR.
            entries, output = run_gemini(gemini, f"{base}/mcp", "Who is in chat 1?", {"CHAT_ID": 1}, work)
            ok, detail = offered_every_tool(entries)
            check("Gemini CLI offers the model every tool (second run)", ok, f"{detail}\n{output}")
            got = tool_results(entries)
            answer = got[-1] if got else ""
            check(
                "an error's code and hint reach the model",
                "Error ACCESS_ERROR: " in answer and "Hint: " in answer and "output schema" not in answer,
                f"tool results {got}\n{output}",
            )
    except (RuntimeError, OSError) as error:
        check("the servers start", False, str(error))
    finally:
        stop(server)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
