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
