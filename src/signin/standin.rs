//! STAND-INS, to be deleted when the parts they stand for land: the names other parts of the
//! sign-in export per ISSUE16.md (H1: `NewGrant`, `Grants::{create, issue_code, revoke}`; H2:
//! `consent::{binding_cookie, client_redirect}` and the local error page), written just well
//! enough for the callback and its tests to run. On merge: delete this file and its `mod` line,
//! and import the real names instead (`upstream.rs` and `mod.rs` name what they use from here).

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::grants::Grants;
use super::records::{Grant, PendingAuthorization};
use super::settings::PublicUrl;
use super::users::pair_keys;
use super::{digest, now, random_token};
use crate::bitrix::CallError;

/// H1's `NewGrant`.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub user_id: u64,
    pub user_name: String,
    pub member_id: String,
    pub client_id: String,
    pub client_name: String,
    pub resource: String,
    pub scope: Option<String>,
}

#[derive(Serialize)]
struct CodeRecord<'a> {
    grant_id: &'a str,
    client_id: &'a str,
    redirect_uri: &'a str,
    code_challenge: &'a str,
    resource: &'a str,
}

fn no_randomness() -> CallError {
    CallError::StateUnavailable {
        detail: "no randomness".into(),
    }
}

/// H1's grant operations, as far as the callback and `caller` use them.
#[allow(async_fn_in_trait)]
pub trait GrantsStandIn {
    async fn create(&self, grant: NewGrant) -> Result<String, CallError>;
    async fn issue_code(
        &self,
        grant_id: &str,
        request: &PendingAuthorization,
    ) -> Result<String, CallError>;
    async fn revoke(&self, grant_id: &str) -> Result<(), CallError>;
}

impl GrantsStandIn for Grants {
    async fn create(&self, new: NewGrant) -> Result<String, CallError> {
        let grant_id = random_token().ok_or_else(no_randomness)?;
        let grant = Grant {
            grant_id: grant_id.clone(),
            user_id: new.user_id,
            user_name: new.user_name,
            member_id: new.member_id,
            client_id: new.client_id,
            client_name: new.client_name,
            resource: new.resource,
            scope: new.scope,
            created_at: now(),
            last_used_at: now(),
        };
        let json = serde_json::to_vec(&grant).unwrap_or_default();
        let key = self.store().key(&["grant", &grant_id]);
        self.store()
            .put(&key, &json, Duration::from_secs(30 * 86_400))
            .await?;
        Ok(grant_id)
    }

    async fn issue_code(
        &self,
        grant_id: &str,
        request: &PendingAuthorization,
    ) -> Result<String, CallError> {
        let code = random_token().ok_or_else(no_randomness)?;
        let record = CodeRecord {
            grant_id,
            client_id: &request.client_id,
            redirect_uri: &request.redirect_uri,
            code_challenge: &request.code_challenge,
            resource: &request.resource,
        };
        let json = serde_json::to_vec(&record).unwrap_or_default();
        let key = self.store().key(&["code", &digest(&code)]);
        self.store()
            .put(&key, &json, Duration::from_secs(300))
            .await?;
        Ok(code)
    }

    async fn revoke(&self, grant_id: &str) -> Result<(), CallError> {
        self.store()
            .delete(&self.store().key(&["grant", grant_id]))
            .await?;
        for key in pair_keys(self.store(), grant_id) {
            self.store().delete(&key).await?;
        }
        Ok(())
    }
}

/// H2's browser-binding cookie name (`__Host-` prefixed over https).
pub const BINDING_COOKIE: &str = "b24mcp-binding";

/// H2's `consent::binding_cookie`: the binding cookie's value in a request, if any.
pub fn binding_cookie(headers: &HeaderMap, public: &PublicUrl) -> Option<String> {
    let name = if public.is_https() {
        format!("__Host-{BINDING_COOKIE}")
    } else {
        BINDING_COOKIE.to_owned()
    };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// H2's `consent::client_redirect`: `uri` with `params` and `iss` added to its query.
pub fn client_redirect(uri: &str, params: &[(&str, &str)], issuer: &str) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_owned();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        query.append_pair("iss", issuer);
    }
    url.to_string()
}

/// H2's local error page: a 400 with an escaped message, never a redirect.
pub fn error_page(message: &str) -> Response {
    let body = format!(
        "<!doctype html><title>Sign-in failed</title><p>{}</p>",
        super::page::escape(message)
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}
