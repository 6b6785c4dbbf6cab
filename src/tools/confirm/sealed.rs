//! The sealed state of a stateless confirmation (MCP 2026-07-28): the call as asked (tool,
//! arguments, the value to type), where it was asked (portal, session) and a one-time ID, under
//! an HMAC. The key is random per process, or — with a state store and `BITRIX24_STATE_KEY` —
//! derived from that key, so every instance opens what any instance sealed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rmcp::model::JsonObject;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What the confirmation key is derived for (domain separation from the token sealing key).
pub const PURPOSE: &str = "bitrix24-mcp confirmation v1";

/// Seals and opens states.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

/// What a state holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sealed {
    /// Spent once, when the state is answered.
    pub id: String,
    pub tool: String,
    pub arguments: JsonObject,
    pub expected: String,
    pub expires_at: i64,
    /// The portal the write goes to: a state never carries a write to another portal.
    pub portal: String,
    /// The MCP session (or connection) it was asked in; empty where there is none.
    pub session: String,
}

impl Sealer {
    /// A sealer with a fresh random key: its states do not outlive the process.
    pub fn random() -> Self {
        Self {
            key: random_bytes(),
        }
    }

    /// A sealer whose states open on every instance with the same key.
    pub fn with_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC pads a key shorter than SHA-256's 64-byte block with zeros; padding here gives
        // the block-sized key the infallible constructor takes, with the same result.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.key);
        <Hmac<Sha256> as KeyInit>::new(&block.into())
    }

    pub fn seal(&self, sealed: &Sealed) -> String {
        let payload = serde_json::to_vec(sealed).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The sealed call, if `state` is untampered, sealed with this key and unexpired at `now`.
    pub fn open(&self, state: &str, now: i64) -> Result<Sealed, &'static str> {
        let (payload, tag) = state.split_once('.').ok_or("malformed")?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "malformed")?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| "malformed")?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| {
            "not sealed by this server (nor by an instance sharing its state store and \
             BITRIX24_STATE_KEY)"
        })?;
        let sealed: Sealed = serde_json::from_slice(&payload).map_err(|_| "malformed")?;
        if sealed.expires_at < now {
            return Err("expired");
        }
        Ok(sealed)
    }
}

/// A fresh one-time ID: 128 random bits in hex.
pub fn fresh_id() -> String {
    random_bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Random bytes from the OS; without OS randomness (a broken machine) from the process's hasher
/// keys, which are randomly seeded too.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(i);
            chunk.copy_from_slice(&hasher.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealed() -> Sealed {
        Sealed {
            id: fresh_id(),
            tool: "im_chat_leave".into(),
            arguments: json!({"CHAT_ID": 7}).as_object().unwrap().clone(),
            expected: "7".into(),
            expires_at: 1000,
            portal: "x.bitrix24.com".into(),
            session: "s1".into(),
        }
    }

    #[test]
    fn a_sealed_state_opens_only_untampered_unexpired_and_with_its_key() {
        let sealer = Sealer::random();
        let original = sealed();
        let state = sealer.seal(&original);
        assert_eq!(sealer.open(&state, 999), Ok(original.clone()));
        assert_eq!(sealer.open(&state, 1001), Err("expired"));
        assert!(
            Sealer::random()
                .open(&state, 999)
                .unwrap_err()
                .starts_with("not sealed")
        );
        let (payload, tag) = state.split_once('.').unwrap();
        for change in [
            |s: &mut Sealed| s.arguments = json!({"CHAT_ID": 8}).as_object().unwrap().clone(),
            |s: &mut Sealed| s.session = String::new(),
            |s: &mut Sealed| s.id = "0".repeat(32),
            |s: &mut Sealed| s.expires_at = i64::MAX,
        ] {
            let mut forged: Sealed =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            change(&mut forged);
            let forged = format!(
                "{}.{tag}",
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap())
            );
            assert!(
                sealer
                    .open(&forged, 999)
                    .unwrap_err()
                    .starts_with("not sealed")
            );
        }
        assert_eq!(sealer.open("garbage", 999), Err("malformed"));
    }

    #[test]
    fn instances_with_one_key_open_each_others_states() {
        let key = [7u8; 32];
        let state = Sealer::with_key(key).seal(&sealed());
        assert_eq!(
            Sealer::with_key(key).open(&state, 999).unwrap().tool,
            "im_chat_leave"
        );
        assert!(Sealer::with_key([8u8; 32]).open(&state, 999).is_err());
    }

    #[test]
    fn ids_are_fresh() {
        let id = fresh_id();
        assert_eq!(id.len(), 32);
        assert_ne!(id, fresh_id());
    }
}
