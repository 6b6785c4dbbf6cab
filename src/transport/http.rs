//! MCP over HTTP: streamable HTTP at `/mcp` (rmcp's service, with sessions or stateless) and legacy
//! HTTP+SSE at `/sse` + `/message`, behind one guard (Host, Origin, bearer token) and one session
//! limit, with `/healthz` for deployments. When each person signs in, the sign-in's endpoints sit
//! behind the same Host and Origin guard, and the MCP endpoints behind the [`gate`] that finds
//! each request's user. Shutdown stops accepting, closes streams and gives
//! in-flight calls a bounded time to finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Sessions;
use super::connections::{self, ConnectionLimits};
use super::gate::{self, Callers, Gate};
use super::priming;
use super::security::{self, Guard};
use super::sse::{self, SseState};
use crate::tools::Bitrix24Tools;

/// How the HTTP transports are served.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Streamable HTTP without sessions: JSON answers, any instance can serve any request.
    pub stateless: bool,
    pub guard: Guard,
    /// Streamable HTTP sessions plus SSE sessions; past it new sessions get 503.
    pub max_sessions: usize,
    /// Streamable HTTP sessions idle this long are closed.
    pub session_idle_timeout: Duration,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// After a shutdown signal, in-flight calls get this long to finish.
    pub drain_timeout: Duration,
    /// Keep-alive comments on event streams, so proxies and clients notice dead connections.
    pub keep_alive: Duration,
    /// Open connections and how long a request's headers may take.
    pub connections: ConnectionLimits,
    /// Each person signs in (`--auth oauth`): who each MCP request acts as, and the sign-in's
    /// endpoints. `None`: the guard's shared token (or none, on loopback), as before.
    pub callers: Option<Arc<dyn Callers>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            stateless: false,
            guard: Guard {
                token: None,
                origins: Vec::new(),
                hosts: Vec::new(),
            },
            max_sessions: 64,
            session_idle_timeout: Duration::from_secs(300),
            max_body_bytes: 1024 * 1024,
            drain_timeout: Duration::from_millis(1500),
            keep_alive: Duration::from_secs(15),
            connections: ConnectionLimits::default(),
            callers: None,
        }
    }
}

/// Serves until `shutdown` resolves, then drains within the options' bound.
pub async fn serve(
    tools: Bitrix24Tools,
    listener: TcpListener,
    options: HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let stop = CancellationToken::new();
    let app = router(tools, &options, stop.clone());
    info!(transport = "http", %address, stateless = options.stateless, "listening: streamable HTTP at /mcp, legacy SSE at /sse");
    let server = connections::serve(listener, app, options.connections, stop.clone());
    tokio::pin!(server);
    tokio::select! {
        () = &mut server => return Ok(()),
        // Ends the sessions and event streams too, so the drain is not held up by them.
        () = shutdown => stop.cancel(),
    }
    if tokio::time::timeout(options.drain_timeout, server)
        .await
        .is_err()
    {
        warn!(
            drain_ms = options.drain_timeout.as_millis() as u64,
            "in-flight requests did not finish in time; stopping anyway"
        );
    }
    Ok(())
}

/// The whole HTTP surface.
pub fn router(tools: Bitrix24Tools, options: &HttpOptions, stop: CancellationToken) -> Router {
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(options.session_idle_timeout);
    let manager = Arc::new(manager);
    let limits = Arc::new(Sessions::new(options.max_sessions, manager.clone()));

    let config = StreamableHttpServerConfig::default()
        // The guard checks Host and Origin for every endpoint, SSE included.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(options.max_body_bytes)
        .with_sse_keep_alive(Some(options.keep_alive))
        .with_cancellation_token(stop.child_token());
    let config = if options.stateless {
        config
            .with_legacy_session_mode(false)
            .with_json_response(true)
    } else {
        config
    };
    let factory_tools = tools.clone();
    let health_state = Health {
        tools: tools.clone(),
        callers: options.callers.clone(),
    };
    let streamable = StreamableHttpService::new(
        move || Ok(factory_tools.clone().in_session("streamable-http", "")),
        manager.clone(),
        config,
    );
    let sse_state = Arc::new(SseState::new(
        tools,
        limits.clone(),
        stop,
        options.keep_alive,
        options.session_idle_timeout,
    ));

    let mcp = Router::new()
        // Both spellings answered directly: a redirect would lose the POST body in some clients.
        .route_service("/mcp", streamable.clone())
        .route_service("/mcp/", streamable)
        .layer(middleware::from_fn_with_state(
            options.max_body_bytes,
            priming::only_where_defined,
        ))
        .layer(middleware::from_fn_with_state(
            (limits, options.stateless),
            session_rules,
        ));
    let sse = Router::new()
        .route("/sse", get(sse::open))
        .route("/message", post(sse::post))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(sse_state);
    let mut endpoints = mcp.merge(sse);
    if let Some(callers) = &options.callers {
        endpoints = endpoints
            .layer(middleware::from_fn_with_state(
                Arc::new(Gate::new(callers.clone(), manager)),
                gate::gate,
            ))
            .merge(callers.routes());
    }
    let guarded = endpoints.layer(middleware::from_fn_with_state(
        Arc::new(options.guard.clone()),
        security::guard,
    ));
    Router::new()
        .route("/healthz", get(health))
        .with_state(health_state)
        .merge(guarded)
}

/// Refuses a new streamable HTTP session (a POST without `Mcp-Session-Id`) when full, answers
/// the termination of an unknown session with 404, and of a known one with 204: rmcp says 202,
/// which the official Python SDK reports as a failed termination (it expects 200 or 204).
async fn session_rules(
    State((limits, stateless)): State<(Arc<Sessions>, bool)>,
    request: Request,
    next: Next,
) -> Response {
    let opens_session = !stateless
        && request.method() == Method::POST
        && !request.headers().contains_key("mcp-session-id");
    if opens_session && !limits.has_room().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many sessions; try again later",
        )
            .into_response();
    }
    let terminates = request.method() == Method::DELETE;
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|id| id.to_str().ok());
    if let (true, Some(id)) = (terminates && !stateless, session)
        && !limits.has_streamable(id).await
    {
        return (StatusCode::NOT_FOUND, "unknown or closed session").into_response();
    }
    let mut response = next.run(request).await;
    if terminates && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// What `/healthz` asks: the portal client's state store, or the sign-in's.
#[derive(Debug, Clone)]
struct Health {
    tools: Bitrix24Tools,
    callers: Option<Arc<dyn Callers>>,
}

/// Liveness and readiness in one: 200 while the server can serve, 503 with the reason while the
/// shared state store it depends on is unreachable (a load balancer then sends calls elsewhere).
async fn health(State(health): State<Health>) -> Response {
    let store = health
        .tools
        .client()
        .and_then(|client| client.state_store());
    let problem = match (store, &health.callers) {
        (Some(store), _) => store.ping().await.err().map(|err| err.to_string()),
        (None, Some(callers)) => callers.ping().await.err(),
        (None, None) => None,
    };
    let mut body = json!({
        "status": if problem.is_some() { "unavailable" } else { "ok" },
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
    });
    match problem {
        None => axum::Json(body).into_response(),
        Some(err) => {
            // The endpoint is open to anyone who reaches the port: the reason names no address;
            // the log has the whole story.
            warn!(error = %err, "health check: the shared state store is unavailable");
            body["reason"] = json!(
                "the shared state store is unreachable; calls answer STATE_UNAVAILABLE until it is back"
            );
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}
