//! The write log of a message post made by a signed-in person: one info line naming the tool,
//! the change and the user, never the text. Alone in its binary: a test running beside it without
//! a subscriber could leave tracing's callsites switched off for this one's (seen: the line went
//! missing whenever another test of the binary ran at the same time).

mod common;
mod message_portal;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::response::Response;
use bitrix24_mcp::signin::PublicUrl;
use bitrix24_mcp::tools::registry::{Selection, Writes};
use bitrix24_mcp::tools::{Acting, Bitrix24Tools};
use bitrix24_mcp::transport::gate::{self, Callers, Refusal};
use bitrix24_mcp::transport::http::{self, HttpOptions};
use bitrix24_mcp::transport::security::{DEFAULT_HOSTS, DEFAULT_ORIGINS, Guard, OriginPattern};
use common::*;
use futures::future::BoxFuture;
use message_portal::*;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

/// Everything logged on this test's thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One signed-in person, Maria, whose calls run with a client for the fake portal.
#[derive(Debug)]
struct Maria {
    public: PublicUrl,
    acting: Acting,
}

const MARIA_TOKEN: &str = "mcp-access-maria-0002";

impl Callers for Maria {
    fn routes(&self) -> Router {
        Router::new()
    }

    fn caller<'a>(&'a self, bearer: Option<&'a str>) -> BoxFuture<'a, Result<Acting, Refusal>> {
        Box::pin(async move {
            (bearer == Some(MARIA_TOKEN))
                .then(|| self.acting.clone())
                .ok_or(Refusal::Unauthenticated)
        })
    }

    fn challenge(&self, path: &str) -> Response {
        gate::challenge(&self.public, path)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// (A current-thread runtime: the server's tasks log into this thread's subscriber too.)
#[tokio::test]
async fn the_write_log_names_the_tool_the_change_and_the_signed_in_user() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = start(sample(), "Marketing team").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let maria = Maria {
        public: PublicUrl::parse(&format!("http://{address}")).unwrap(),
        acting: Acting {
            client: Arc::new(webhook_client(&server.uri(), fast_options())),
            user_id: 1271,
            user_name: "Maria Garcia".to_owned(),
        },
    };
    let options = HttpOptions {
        guard: Guard {
            token: None,
            origins: DEFAULT_ORIGINS
                .iter()
                .map(|o| OriginPattern::parse(o).unwrap())
                .collect(),
            hosts: DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
        },
        callers: Some(Arc::new(maria)),
        ..HttpOptions::default()
    };
    let tools = Bitrix24Tools::per_user(None).serving(Selection::all().with_writes(Writes {
        allowed: true,
        ..Writes::default()
    }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(http::serve(tools, listener, options, async {
        let _ = stopped.await;
    }));
    let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{address}/mcp"))
        .auth_header(MARIA_TOKEN);
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    let arguments = json!({"CHAT_ID": 2935, "MESSAGE": "secret plans: do not log me"});
    let posted = client
        .call_tool(
            CallToolRequestParams::new("im_message_add")
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(success_object(&posted)["message_id"], NEW_MESSAGE_ID);
    client.cancel().await.unwrap();
    let _ = stop.send(());
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "write")
        .map(|entry| entry["fields"].clone())
        .collect();
    assert_eq!(entries.len(), 1, "{text}");
    let entry = &entries[0];
    assert_eq!(entry["tool"], "im_message_add");
    assert_eq!(entry["change"], "post a message to chat 2935");
    assert_eq!(entry["outcome"], "done");
    assert_eq!(entry["confirmed"], "not needed (not destructive)");
    assert_eq!(entry["user_id"], 1271);
    assert_eq!(entry["user_name"], "Maria Garcia");
    assert!(
        !text.contains("do not log me"),
        "the text stays out of the log"
    );
    assert_eq!(writes(&server).await.len(), 1);
}
