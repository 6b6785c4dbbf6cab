//! Client ID metadata documents: a `client_id` that is an https URL names a JSON document the
//! client's publisher hosts. Which `client_id`s can name one, what a document must say, how long
//! it is cached (per `Cache-Control`, 5 minutes to a day), and the pinned copies of Claude Code's
//! and VS Code's, used when their fetch fails (bot protection answers cloud addresses with 403).
//! The fetch itself, and its fences, are [`super::fetch`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::fetch::{Fetcher, MIN_CACHE};
use super::{ClientInfo, KnownBy, Lookup, redirect};
use crate::bitrix::CallError;
use crate::signin::digest;
use crate::signin::page::clean_name;
use crate::signin::store::SigninStore;

/// A document, checked, as cached (`cimd:<sha256 of the URL>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Document {
    client_id: String,
    client_name: String,
    redirect_uris: Vec<String>,
}

/// The client a metadata-document `client_id` names: from the cache, a fresh fetch, or a pinned
/// copy when the fetch fails.
pub(super) async fn lookup(
    store: &SigninStore,
    fetcher: &Fetcher,
    client_id: &str,
) -> Result<Lookup, CallError> {
    let url = match document_url(client_id) {
        Ok(url) => url,
        Err(why) => return Ok(Lookup::Unusable(why)),
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let key = store.key(&["cimd", &digest(client_id)]);
    if let Some(bytes) = store.get(&key).await?
        && let Ok(document) = serde_json::from_slice::<Document>(&bytes)
    {
        return Ok(Lookup::Known(document.info(host)));
    }
    let fetched = fetcher
        .fetch(&url)
        .await
        .and_then(|(body, max_age)| Ok((checked(&body, client_id, &url)?, max_age)));
    let (document, max_age) = match fetched {
        Ok(fetched) => fetched,
        Err(why) => match pinned(client_id) {
            Some(document) => {
                tracing::warn!(client_id, reason = %why, "client metadata fetch failed; using the pinned copy");
                (document, MIN_CACHE)
            }
            None => {
                tracing::info!(client_id, reason = %why, "client metadata document unusable");
                return Ok(Lookup::Unusable(why));
            }
        },
    };
    if let Ok(bytes) = serde_json::to_vec(&document) {
        store
            .put(&key, &bytes, Duration::from_secs(max_age))
            .await?;
    }
    Ok(Lookup::Known(document.info(host)))
}

impl Document {
    fn info(self, host: String) -> ClientInfo {
        ClientInfo {
            client_id: self.client_id,
            client_name: self.client_name,
            redirect_uris: self.redirect_uris,
            known_by: KnownBy::MetadataDocument { host },
        }
    }
}

/// A `client_id` that can name a document: https, a host, a path, no fragment, user or dot
/// segments.
fn document_url(client_id: &str) -> Result<Url, String> {
    let refuse =
        |why: &str| format!("client_id {client_id:?} cannot name a metadata document: {why}");
    if client_id.len() > 2_000 {
        return Err(refuse("longer than 2000 characters"));
    }
    // URL parsing drops tabs and line breaks, so such an ID would fetch a cleaned URL while the
    // raw one, break and all, went on into records and logs.
    if client_id
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(refuse("it contains spaces or control characters"));
    }
    let url = Url::parse(client_id).map_err(|e| refuse(&e.to_string()))?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err(refuse("it must be an https URL"));
    }
    if url.path() == "/" || url.fragment().is_some() || !url.username().is_empty() {
        return Err(refuse("it needs a path, and no fragment or user name"));
    }
    if client_id.contains("/./") || client_id.contains("/../") {
        return Err(refuse("it has dot segments"));
    }
    Ok(url)
}

/// Copies of well-known clients' documents, for when their host refuses us.
fn pinned(client_id: &str) -> Option<Document> {
    let (name, uris): (&str, &[&str]) = match client_id {
        // anthropics/claude-code #42301, #37767: the document lists port-less loopback URIs.
        "https://claude.ai/oauth/claude-code-client-metadata" => (
            "Claude Code",
            &["http://localhost/callback", "http://127.0.0.1/callback"],
        ),
        // microsoft/vscode #270811, #278512, #282472: VS Code's loopback listener (port 33418,
        // another when busy) and its web redirect.
        "https://vscode.dev/oauth/client-metadata.json" => (
            "Visual Studio Code",
            &[
                "http://127.0.0.1:33418/",
                "http://127.0.0.1/",
                "https://vscode.dev/redirect",
            ],
        ),
        _ => return None,
    };
    Some(Document {
        client_id: client_id.to_owned(),
        client_name: name.to_owned(),
        redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
    })
}

/// A document's fields, checked: it names itself, and has at least one usable redirect URI
/// (unusable ones, such as `javascript:`, are dropped and never matched).
fn checked(body: &[u8], client_id: &str, url: &Url) -> Result<Document, String> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err("it is not a JSON object".to_owned());
    };
    if fields.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err("its client_id is not the URL it was fetched from".to_owned());
    }
    let Some(Value::Array(uris)) = fields.get("redirect_uris") else {
        return Err("it has no redirect_uris".to_owned());
    };
    let redirect_uris: Vec<String> = uris
        .iter()
        .filter_map(Value::as_str)
        .filter(|uri| redirect::check(uri).is_ok())
        .take(super::register::MAX_REDIRECT_URIS * 2)
        .map(str::to_owned)
        .collect();
    if redirect_uris.is_empty() {
        return Err("it has no usable redirect URI".to_owned());
    }
    let name = fields
        .get("client_name")
        .and_then(Value::as_str)
        .map(clean_name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned());
    Ok(Document {
        client_id: client_id.to_owned(),
        client_name: name,
        redirect_uris,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_urls_are_https_with_a_path() {
        assert!(document_url("https://claude.ai/oauth/claude-code-client-metadata").is_ok());
        for bad in [
            "https://example.com",
            "https://example.com/",
            "http://example.com/client.json",
            "https://user@example.com/c.json",
            "https://example.com/c.json#x",
            "https://example.com/a/../c.json",
            "https://example.com/c\n.json",
            "https://example.com/c\t.json",
            "https://example.com/c .json",
        ] {
            assert!(document_url(bad).is_err(), "{bad}");
        }
    }
}
