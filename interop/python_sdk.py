"""Interoperability with the official MCP Python SDK.

Starts the bitrix24-mcp binary (path in BITRIX24_MCP_BIN) against its built-in demo portal and
talks to it with the SDK's own clients over stdio, streamable HTTP and legacy SSE: initialize,
list the tools, call them, and check a success and an error result; then, with --allow-writes, a
destructive write confirmed through the SDK's elicitation handling, over stdio and streamable
HTTP, in both protocol eras (the 2025-11-25 initialize handshake with elicitation/create, and
2026-07-28 with its input-required round trip); and every message tool over stdio: reading,
searching, posting, editing and deleting (typed message ID) in the demo's chats. Prints one line per check and a closing
"N passed, N failed" line; exits non-zero on any failure.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

from mcp import ClientSession, types
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from support import check, finish, free_port

BIN = os.environ["BITRIX24_MCP_BIN"]
TOKEN = "interop-t0ken"
EXPECTED = {"chat_id": 2935, "user_ids": [99, 1269, 1271], "count": 3}
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


async def exercise(name: str, session: ClientSession) -> None:
    """The same checks over every transport."""
    init = await session.initialize()
    check(f"{name}: serverInfo names bitrix24-mcp", init.server_info.name == "bitrix24-mcp", init.server_info.name)

    tools = (await session.list_tools()).tools
    names = [t.name for t in tools]
    check(f"{name}: lists the chat tools and bitrix24_call", names == EXPECTED_TOOLS, str(names))
    check(
        f"{name}: every tool is annotated read-only with an output schema",
        all(t.annotations and t.annotations.read_only_hint is True and t.output_schema for t in tools),
        str([(t.name, t.annotations) for t in tools]),
    )
    chat_user_list = next((t for t in tools if t.name == "im_chat_user_list"), None)
    schema = chat_user_list.input_schema if chat_user_list else {}
    check(
        f"{name}: CHAT_ID is a required integer >= 1",
        schema.get("required") == ["CHAT_ID"]
        and schema["properties"]["CHAT_ID"]["type"] == "integer"
        and schema["properties"]["CHAT_ID"]["minimum"] == 1,
        json.dumps(schema),
    )

    ok = await session.call_tool("im_chat_user_list", {"CHAT_ID": 2935})
    check(f"{name}: success is not an error", not ok.is_error, str(ok.is_error))
    check(f"{name}: structuredContent holds the IDs", ok.structured_content == EXPECTED, str(ok.structured_content))
    text = json.loads(ok.content[0].text) if ok.content else None
    check(f"{name}: the same object as JSON text", text == EXPECTED, str(text))

    bad = await session.call_tool("im_chat_user_list", {"CHAT_ID": 1})
    error = json.loads(bad.content[-1].text) if bad.content else {}
    check(f"{name}: an error result is isError", bad.is_error is True, str(bad.is_error))
    sentence = bad.content[0].text if len(bad.content) == 2 else ""
    check(
        f"{name}: an error result opens with a sentence naming its code and hint",
        sentence.startswith("Error ACCESS_ERROR: ") and sentence.endswith("Hint: " + error.get("hint", "?")),
        sentence,
    )
    check(
        f"{name}: the error object says ACCESS_ERROR / permission",
        error.get("error") == "ACCESS_ERROR" and error.get("category") == "permission" and error.get("retryable") is False,
        json.dumps(error),
    )
    check(f"{name}: an error carries no structuredContent", bad.structured_content is None, str(bad.structured_content))

    # The README walkthrough: a chat by name, then its members with names.
    found = await session.call_tool("im_search_chat_list", {"FIND": "Market"})
    chats = (found.structured_content or {}).get("chats", [])
    check(f"{name}: FIND Market finds the Marketing team chat", [c["name"] for c in chats] == ["Marketing team"], str(chats))
    members = await session.call_tool("im_dialog_users_list", {"CHAT_ID": chats[0]["chat_id"] if chats else 0})
    people = [u["name"] for u in (members.structured_content or {}).get("users", [])]
    check(f"{name}: its members come with names", people == ["Anna Petrova", "Alexander Smith", "Maria Garcia"], str(people))


async def over_stdio() -> None:
    params = StdioServerParameters(command=BIN, args=["--demo"], env={"RUST_LOG": "warn", "PATH": os.environ.get("PATH", "")})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await exercise("stdio", session)


def start_http_server(extra: list[str], token: bool = True) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "RUST_LOG": "warn"}
    if token:
        env["MCP_HTTP_TOKEN"] = TOKEN
    process = subprocess.Popen(
        [BIN, "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}", "--demo", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not come up")
            time.sleep(0.05)


def stop(process: subprocess.Popen, name: str) -> None:
    process.terminate()
    code = process.wait(timeout=10)
    check(f"{name}: exits 0 on SIGTERM", code == 0, str(code))


async def over_streamable_http(stateless: bool) -> None:
    name = "streamable-http" + (" (stateless)" if stateless else "")
    process, base = start_http_server(["--stateless"] if stateless else [])
    try:
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        async with client:
            async with streamable_http_client(f"{base}/mcp", http_client=client) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await exercise(name, session)
    finally:
        stop(process, name)


async def over_sse() -> None:
    process, base = start_http_server([])
    try:
        async with sse_client(f"{base}/sse", headers={"Authorization": f"Bearer {TOKEN}"}) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await exercise("legacy-sse", session)
    finally:
        stop(process, "legacy-sse")


def answering(answer: str | None, asked: list[str]):
    """An elicitation callback that types `answer`, or declines when it is None."""

    async def callback(context, params):
        asked.append(params.message)
        if answer is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"confirm": answer})

    return callback


async def confirmed_writes(name: str, server, mode: str) -> None:
    """A destructive write through the SDK's own elicitation handling: a wrong value and a decline
    are refused with nothing sent; the typed chat ID lets it through once."""
    label = f"{name}, {mode}"
    for answer, expected in [("2936", "NOT_CONFIRMED"), (None, "NOT_CONFIRMED"), ("2935", None)]:
        asked: list[str] = []
        async with Client(server, mode=mode, elicitation_callback=answering(answer, asked)) as client:
            result = await client.call_tool("im_chat_user_delete", {"CHAT_ID": 2935, "USER_ID": 1269})
            text = json.loads(result.content[-1].text) if result.content else {}
            what = "types the chat ID" if answer == "2935" else ("declines" if answer is None else "types another value")
            if expected is None:
                check(f"{label}: the user {what}: the user is removed", not result.is_error and text == {"ok": True, "chat_id": 2935, "user_id": 1269}, json.dumps(text))
                members = await client.call_tool("im_chat_user_list", {"CHAT_ID": 2935})
                check(f"{label}: the chat no longer has user 1269", (members.structured_content or {}).get("user_ids") == [99, 1271], str(members.structured_content))
            else:
                check(f"{label}: the user {what}: {expected}, nothing sent", result.is_error is True and text.get("error") == expected, json.dumps(text))
            check(f"{label}: the question says what will happen", len(asked) == 1 and "Remove user 1269 from chat 2935" in asked[0], str(asked))


async def writes_over_stdio(mode: str) -> None:
    params = StdioServerParameters(
        command=BIN,
        args=["--demo", "--allow-writes"],
        env={"RUST_LOG": "warn", "PATH": os.environ.get("PATH", "")},
    )
    await confirmed_writes("stdio", params, mode)


async def writes_over_http(mode: str) -> None:
    # Each answer gets a fresh session; the demo portal (and so the removal) lives as long as
    # the server. A wrong value and a decline come first, so the chat is whole until the last.
    process, base = start_http_server(["--allow-writes"], token=False)
    try:
        await confirmed_writes("streamable-http", f"{base}/mcp", mode)
    finally:
        stop(process, f"streamable-http with writes, {mode}")


async def messages_over_stdio(mode: str) -> None:
    """Each message tool, as a newcomer's assistant would call it, through the SDK over stdio."""
    label = f"messages over stdio, {mode}"
    params = StdioServerParameters(
        command=BIN,
        args=["--demo", "--allow-writes", "--write-chats", "2935"],
        env={"RUST_LOG": "warn", "PATH": os.environ.get("PATH", "")},
    )
    asked: list[str] = []
    typed: list[str] = []

    async def callback(context, params):
        asked.append(params.message)
        # The server's first paragraph ends with the value to type.
        found = re.search(r"To confirm, type the [A-Za-z ]+: (\S+)", params.message.split("\n\n")[0])
        value = found.group(1) if found else ""
        typed.append(value)
        return types.ElicitResult(action="accept", content={"confirm": value})

    async with Client(params, mode=mode, elicitation_callback=callback) as client:
        page = await client.call_tool("im_dialog_messages_get", {"CHAT_ID": 2937, "LIMIT": 5})
        got = page.structured_content or {}
        messages = got.get("messages", [])
        check(f"{label}: deal 1663's chat has messages, oldest first", not page.is_error and len(messages) == 5 and [m["id"] for m in messages] == sorted(m["id"] for m in messages), json.dumps(got)[:400])
        check(f"{label}: authors come with names", all(m.get("author_name") or m.get("system") for m in messages), json.dumps(messages)[:400])
        older = await client.call_tool("im_dialog_messages_get", {"CHAT_ID": 2937, "LIMIT": 5, "LAST_ID": got.get("older_than")})
        older_ids = [m["id"] for m in (older.structured_content or {}).get("messages", [])]
        check(f"{label}: the next page is older, without overlap", older_ids and max(older_ids) < min(m["id"] for m in messages), str(older_ids))

        found = await client.call_tool("im_dialog_messages_search", {"CHAT_ID": 2935, "SEARCH_MESSAGE": "invoice"})
        hits = (found.structured_content or {}).get("messages", [])
        check(f"{label}: search finds 'invoice' in the Marketing chat", not found.is_error and hits and all("invoice" in m["text"].lower() for m in hits), json.dumps(found.structured_content)[:400])
        short = await client.call_tool("im_dialog_messages_search", {"CHAT_ID": 2935, "SEARCH_MESSAGE": "in"})
        check(f"{label}: a 2-character search is refused", short.is_error is True and json.loads(short.content[-1].text).get("error") == "INVALID_ARGUMENT", short.content[-1].text if short.content else "")

        posted = await client.call_tool("im_message_add", {"CHAT_ID": 2935, "MESSAGE": "Summary from the interop check"})
        answer = posted.structured_content or {}
        check(f"{label}: a post answers its message ID", not posted.is_error and answer.get("ok") is True and isinstance(answer.get("message_id"), int) and answer.get("chat_id") == 2935, json.dumps(answer))
        message_id = answer.get("message_id", 0)
        edited = await client.call_tool("im_message_update", {"CHAT_ID": 2935, "MESSAGE_ID": message_id, "MESSAGE": "Summary, edited"})
        check(f"{label}: the post is edited", not edited.is_error and (edited.structured_content or {}).get("ok") is True, edited.content[-1].text if edited.content else "")
        latest = await client.call_tool("im_dialog_messages_get", {"CHAT_ID": 2935, "LIMIT": 1})
        last = ((latest.structured_content or {}).get("messages") or [{}])[-1]
        check(f"{label}: the chat shows the edit", last.get("id") == message_id and last.get("text") == "Summary, edited" and last.get("edited") is True, json.dumps(last))
        elsewhere = await client.call_tool("im_message_add", {"CHAT_ID": 2937, "MESSAGE": "Not here"})
        check(f"{label}: a post outside --write-chats is CHAT_NOT_ALLOWED", elsewhere.is_error is True and json.loads(elsewhere.content[-1].text).get("error") == "CHAT_NOT_ALLOWED", elsewhere.content[-1].text if elsewhere.content else "")
        check(f"{label}: no question was asked so far", asked == [], str(asked))
        removed = await client.call_tool("im_message_delete", {"CHAT_ID": 2935, "MESSAGE_ID": message_id})
        check(f"{label}: the delete is confirmed by typing the message ID", not removed.is_error and typed == [str(message_id)], f"{typed} {removed.content[-1].text if removed.content else ''}")
        check(f"{label}: the question quotes the message as the portal's", len(asked) == 1 and "«Summary, edited»" in asked[0], str(asked))
        gone = await client.call_tool("im_dialog_messages_get", {"CHAT_ID": 2935, "LIMIT": 1})
        last = ((gone.structured_content or {}).get("messages") or [{}])[-1]
        check(f"{label}: the message is shown as deleted", last.get("id") == message_id and last.get("deleted") is True, json.dumps(last))


async def main() -> int:
    for name, run in [
        ("stdio", over_stdio),
        ("streamable-http", lambda: over_streamable_http(False)),
        ("streamable-http (stateless)", lambda: over_streamable_http(True)),
        ("legacy-sse", over_sse),
        ("writes over stdio, 2025-11-25", lambda: writes_over_stdio("legacy")),
        ("writes over stdio, 2026-07-28", lambda: writes_over_stdio("2026-07-28")),
        ("writes over streamable HTTP, 2025-11-25", lambda: writes_over_http("legacy")),
        ("writes over streamable HTTP, 2026-07-28", lambda: writes_over_http("2026-07-28")),
        ("messages over stdio, 2025-11-25", lambda: messages_over_stdio("legacy")),
        ("messages over stdio, 2026-07-28", lambda: messages_over_stdio("2026-07-28")),
    ]:
        try:
            await asyncio.wait_for(run(), timeout=60)
        except Exception as error:  # a transport that fails outright is one failed check
            check(f"{name}: session completes", False, f"{type(error).__name__}: {error}")
    return finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
