//! Who a call acts as when each person signs in (`--auth oauth`): the transport puts an
//! [`Acting`] into the request, and the call then runs with that person's own Bitrix24 client,
//! names them in its confirmation question and in the write log. How the person was recognised
//! is the transport's business; nothing here knows.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::RequestContext;

use crate::bitrix::Client;

/// The Bitrix24 user a request acts as, and the client that acts as them (with their own token
/// lineage and their own shared reads).
#[derive(Debug, Clone)]
pub struct Acting {
    pub client: Arc<Client>,
    pub user_id: u64,
    /// As the portal names the user (portal text: quoted wherever it is shown).
    pub user_name: String,
}

/// The [`Acting`] of a request: in the HTTP request's extensions (streamable HTTP, where rmcp
/// passes the request's parts on), or in the message's own (legacy SSE, where the transport puts
/// it on each message).
pub fn of(context: &RequestContext<RoleServer>) -> Option<&Acting> {
    context.extensions.get::<Acting>().or_else(|| {
        context
            .extensions
            .get::<http::request::Parts>()?
            .extensions
            .get::<Acting>()
    })
}
