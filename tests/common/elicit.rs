//! A test user behind an MCP client with form elicitation: it types a given answer to every
//! confirmation (or declines when it has none) and keeps the questions it was asked; and a
//! server connected to it in memory over the stdio framing.

use std::sync::{Arc, Mutex};

use bitrix24_mcp::tools::Bitrix24Tools;
use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction,
    Implementation,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::json;

/// Types `answer` into every confirmation form, or declines when it is `None`.
#[derive(Clone, Default)]
pub struct User {
    answer: Option<String>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl User {
    pub fn typing(answer: Option<&str>) -> Self {
        Self {
            answer: answer.map(str::to_owned),
            asked: Arc::default(),
        }
    }

    /// Every question asked so far, in order.
    pub fn questions(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl ClientHandler for User {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = request {
            self.asked.lock().unwrap().push(message);
        }
        Ok(match &self.answer {
            Some(value) => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"confirm": value}))
            }
            None => ElicitResult::new(ElicitationAction::Decline),
        })
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("bitrix24-mcp-test-user", "0"),
        )
    }
}

/// `tools` served over the stdio framing on an in-memory pipe, with `user` as its client.
pub async fn connect(tools: Bitrix24Tools, user: User) -> RunningService<RoleClient, User> {
    let (server_io, client_io) = tokio::io::duplex(1024 * 1024);
    let (reader, writer) = tokio::io::split(server_io);
    tokio::spawn(bitrix24_mcp::transport::stdio::serve_io(
        tools,
        reader,
        writer,
        std::future::pending(),
    ));
    user.serve(client_io).await.unwrap()
}
