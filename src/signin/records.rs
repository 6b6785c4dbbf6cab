//! The records that pass between the sign-in's parts, as stored (JSON). None holds a secret:
//! codes and tokens are keys by their hash only, and the Bitrix24 pair is sealed elsewhere.

use serde::{Deserialize, Serialize};

/// What a client asked for at `/authorize`, once checked: the client is known, the redirect URI
/// is one of its own, the PKCE challenge is S256, the resource is this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub client_id: String,
    /// As shown on the consent page (from the client's registration or metadata document).
    pub client_name: String,
    pub redirect_uri: String,
    /// The S256 challenge (base64url of SHA-256 of the verifier).
    pub code_challenge: String,
    /// The canonical resource the tokens will be bound to.
    pub resource: String,
    pub scope: Option<String>,
    /// The client's own `state`, returned to it unchanged.
    pub state: Option<String>,
}

/// A consent page shown and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConsent {
    pub request: PendingAuthorization,
    /// SHA-256 (hex) of the CSRF value in the page and its cookie.
    pub csrf_hash: String,
}

/// Approved by the user, on the way through Bitrix24: what the callback needs to finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamState {
    pub request: PendingAuthorization,
    /// SHA-256 (hex) of the browser-binding cookie set with the approval.
    pub binding_hash: String,
    /// The portal host the user was sent to (`host[:port]`); the callback's `domain` must match.
    pub portal_host: String,
}

/// One user's sign-in through one client: what the server knows about it (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grant_id: String,
    /// The Bitrix24 user, and the portal (`member_id`) they belong to.
    pub user_id: u64,
    pub user_name: String,
    pub member_id: String,
    pub client_id: String,
    pub client_name: String,
    /// The canonical resource its tokens are for.
    pub resource: String,
    pub scope: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub last_used_at: i64,
}
