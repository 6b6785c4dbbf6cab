//! The real binary over real stdio: an MCP client session against the demo portal, stdout
//! carrying nothing but protocol, and prompt exits on stdin EOF, SIGTERM and SIGINT.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::BIN;
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Generous bound for "the process exited at all"; how fast it exits is printed, not asserted.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

fn server_command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("BITRIX24_WEBHOOK_URL")
        .env("RUST_LOG", "debug");
    command
}

#[tokio::test]
async fn an_mcp_client_lists_and_calls_the_tool_over_stdio() {
    let (transport, _stderr) = TokioChildProcess::builder(server_command(&["--demo"]))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = ().serve(transport).await.unwrap();
    let server = client.peer_info().unwrap().server_info.clone().unwrap();
    assert_eq!(
        (server.name.as_str(), server.version.as_str()),
        ("bitrix24-mcp", env!("CARGO_PKG_VERSION"))
    );
    common::assert_lists_and_calls(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tools_and_exclude_tools_change_the_list_over_stdio() {
    for (args, expected) in [
        (
            &[
                "--demo",
                "--tools",
                "im_search_chat_list,im_dialog_users_list",
            ][..],
            &["im_search_chat_list", "im_dialog_users_list"][..],
        ),
        (
            &[
                "--demo",
                "--exclude-tools",
                "im_recent_list,im_chat_user_list",
            ][..],
            &[
                "im_search_chat_list",
                "im_chat_get",
                "im_dialog_get",
                "im_dialog_users_list",
                "im_user_list_get",
                "im_dialog_messages_get",
                "im_dialog_messages_search",
                "bitrix24_call",
            ][..],
        ),
    ] {
        let (transport, _stderr) = TokioChildProcess::builder(server_command(args))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = ().serve(transport).await.unwrap();
        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, expected, "{args:?}");
        // A tool left out is unknown, as for any other name.
        let left_out = client
            .call_tool(rmcp::model::CallToolRequestParams::new("im_recent_list"))
            .await;
        assert!(left_out.is_err(), "{args:?}");
        client.cancel().await.unwrap();
    }
    let status = server_command(&["--demo", "--tools", "im_chat_gett"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert_eq!(status.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("unknown tool \"im_chat_gett\" in BITRIX24_TOOLS / --tools; the tools are: im_search_chat_list"), "{stderr}");
}

/// A server started by hand with raw pipes, initialized with raw JSON-RPC lines.
struct RawSession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl RawSession {
    async fn start(args: &[&str]) -> Self {
        let mut child = server_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut session = Self {
            child,
            stdin,
            stdout,
        };
        session.send(common::initialize()).await;
        let answer = session.receive().await;
        assert_eq!(answer["id"], 1);
        assert_eq!(answer["result"]["serverInfo"]["name"], "bitrix24-mcp");
        session
            .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        session
    }

    async fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next line of stdout, which must be one JSON-RPC message.
    async fn receive(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).await.unwrap();
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout carried a non-protocol line {line:?}: {e}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
        message
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.id().unwrap() as i32;
        // SAFETY: kill(2) with a valid signal number on our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the exit and returns its code and how long it took.
    async fn exit(mut self) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let status = tokio::time::timeout(EXIT_DEADLINE, self.child.wait())
            .await
            .expect("the server exits")
            .unwrap();
        drop(self.stdin.take());
        (status.code(), started.elapsed())
    }
}

#[tokio::test]
async fn stdout_carries_only_protocol_messages_with_debug_logging_on() {
    let mut session = RawSession::start(&["--demo"]).await;
    session
        .send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                     "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 1}}}))
        .await;
    let answer = session.receive().await;
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["result"]["isError"], true);
    drop(session.stdin.take());
    // After EOF nothing but the end of the stream may follow.
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut session.stdout, &mut rest)
        .await
        .unwrap();
    assert_eq!(rest, "");
    assert_eq!(session.exit().await.0, Some(0));
}

#[tokio::test]
async fn exits_on_stdin_eof() {
    let mut session = RawSession::start(&["--demo"]).await;
    drop(session.stdin.take());
    let (code, took) = session.exit().await;
    eprintln!("exit after stdin EOF took {took:?}");
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn exits_on_sigterm_with_stdin_still_open() {
    let session = RawSession::start(&["--demo"]).await;
    session.signal(libc::SIGTERM);
    let (code, took) = session.exit().await;
    eprintln!("exit after SIGTERM took {took:?}");
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn exits_on_sigint_with_stdin_still_open() {
    let session = RawSession::start(&[]).await;
    session.signal(libc::SIGINT);
    let (code, took) = session.exit().await;
    eprintln!("exit after SIGINT took {took:?}");
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn exits_on_sigterm_during_a_slow_upstream_call() {
    // A portal that accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rest/1/abc/", listener.local_addr().unwrap());
    let mut session = RawSession::start(&["--webhook-url", &url]).await;
    session
        .send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                     "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 5}}}))
        .await;
    // The request has reached the portal once the connection is accepted.
    let (_connection, _) = listener.accept().await.unwrap();
    session.signal(libc::SIGTERM);
    let (code, took) = session.exit().await;
    eprintln!("exit after SIGTERM mid-call took {took:?}");
    assert_eq!(code, Some(0));
}

// ---- hostile lines: every one that carries a readable id gets an answer ---------------------

impl RawSession {
    /// Starts without the handshake, for tests of what comes before it.
    async fn spawn(args: &[&str]) -> Self {
        let mut child = server_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn receive_within(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.receive())
            .await
            .expect("an answer arrives")
    }
}

#[tokio::test]
async fn a_notification_before_initialize_is_ignored_and_the_session_starts() {
    let mut session = RawSession::spawn(&["--demo"]).await;
    session
        .send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}))
        .await;
    session
        .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    session.send(common::initialize()).await;
    let answer = session.receive_within().await;
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["serverInfo"]["name"], "bitrix24-mcp");
    session
        .send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    assert_eq!(session.receive_within().await["id"], 2);
}

#[tokio::test]
async fn malformed_lines_with_an_id_get_a_json_rpc_error_and_the_session_goes_on() {
    let mut session = RawSession::start(&["--demo"]).await;
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{{"name":"x","arguments":{{"a":{}{}}}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{{"name":"im_chat_user_list","arguments":{{"CHAT_ID":{}}}}}}}"#,
        "9".repeat(5000)
    );
    let mut oversized = br#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"im_chat_user_list","arguments":{"pad":""#.to_vec();
    oversized.extend(std::iter::repeat_n(b'x', 17 * 1024 * 1024));
    oversized.extend_from_slice(br#""}}}"#);
    let cases: Vec<(Vec<u8>, i64, i64)> = vec![
        (
            [
                br#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":""#.as_slice(),
                &[0xff, 0xfe],
                br#""}}"#,
            ]
            .concat(),
            10,
            -32700,
        ),
        (
            br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"im_chat_user_list","arguments":{"CHAT_ID":1e999999}}}"#.to_vec(),
            11,
            -32700,
        ),
        (huge.into_bytes(), 12, -32700),
        (deep.into_bytes(), 13, -32700),
        (oversized, 14, -32600),
    ];
    for (line, id, code) in cases {
        session.send_raw(&line).await;
        let answer = session.receive_within().await;
        assert_eq!(
            (answer["id"].as_i64(), answer["error"]["code"].as_i64()),
            (Some(id), Some(code)),
            "{answer}"
        );
    }
    // A line with no readable id is logged, not answered; the session goes on.
    session.send_raw(b"{ not json at all").await;
    session
        .send(json!({"jsonrpc": "2.0", "id": 20, "method": "ping"}))
        .await;
    assert_eq!(session.receive_within().await["id"], 20);
}

#[tokio::test]
async fn arguments_that_are_not_an_object_are_invalid_params() {
    let mut session = RawSession::start(&["--demo"]).await;
    session
        .send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "im_chat_user_list", "arguments": []}}))
        .await;
    let answer = session.receive_within().await;
    assert_eq!(answer["id"], 3);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
}

#[tokio::test]
async fn a_request_reusing_an_id_in_flight_is_refused_and_the_first_still_answers() {
    // A portal that never answers keeps the first call in flight.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = hang.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hang.accept().await {
            held.push(stream);
        }
    });
    let webhook = format!("http://{address}/rest/1/{}/", common::CODE);
    let mut child = server_command(&["--request-timeout", "2s", "--max-retries", "0"])
        .env("BITRIX24_WEBHOOK_URL", &webhook)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut session = RawSession {
        stdin: child.stdin.take(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
    };
    session.send(common::initialize()).await;
    assert_eq!(session.receive_within().await["id"], 1);
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935}}});
    session.send(call.clone()).await;
    session.send(call).await;
    let refused = session.receive_within().await;
    assert_eq!(
        (refused["id"].as_i64(), refused["error"]["code"].as_i64()),
        (Some(7), Some(-32600))
    );
    let first = session.receive_within().await;
    assert_eq!(first["id"], 7);
    assert_eq!(first["result"]["isError"], true, "{first}");
}
