//! Tokens at rest in a shared store are sealed with an AEAD (XChaCha20-Poly1305, random 192-bit
//! nonces, so nonce reuse is not a concern however many saves there are). The key comes from
//! `BITRIX24_STATE_KEY`; the record's own key name is the associated data, so a sealed pair
//! cannot be moved under another app's or portal's name and still open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The format tag every sealed value starts with.
const VERSION: &str = "v1:";
const NONCE_LEN: usize = 24;

/// The 32-byte key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct StateKey([u8; 32]);

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

/// Why a value could not be opened. Says nothing of the key or the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("it is not a value this server wrote (no {VERSION} tag or bad encoding)")]
    Malformed,
    #[error(
        "it does not open with BITRIX24_STATE_KEY: it was written with another key, or altered"
    )]
    WrongKey,
    #[error("no random bytes for a nonce: {0}")]
    Random(String),
}

impl StateKey {
    /// 64 hexadecimal digits, or base64 (standard or URL-safe, padded or not) of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "it is not hexadecimal".to_owned())?
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| {
                    "it is neither 64 hexadecimal digits nor base64; make one with \
                     `openssl rand -hex 32`"
                        .to_owned()
                })?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "it holds {} bytes, not 32; make one with `openssl rand -hex 32`",
                bytes.len()
            )
        })?;
        Ok(Self(key))
    }

    /// Seals `plaintext`, bound to `context` (the record's key name).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // Encryption fails only for messages beyond 256 GiB.
            .map_err(|_| SealError::Malformed)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{VERSION}{}", STANDARD.encode(bytes)))
    }

    /// A key for one `purpose`, derived from this one (HMAC-SHA256 of the purpose under it): the
    /// same on every instance with the same `BITRIX24_STATE_KEY`, and not the key that seals the
    /// tokens, so a value made with one can never pass for the other.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, KeyInit, Mac};
        // HMAC pads a key shorter than the hash's block (64 bytes) with zeros; doing it here
        // gives the block-sized key its infallible constructor takes, with the same result.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new(&block.into());
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Opens a value [`StateKey::seal`] made with the same key and context.
    pub fn open(&self, value: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let encoded = value
            .strip_prefix(VERSION.as_bytes())
            .ok_or(SealError::Malformed)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map_err(|_| SealError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED_HMAC_ABC: &str =
        "f0133729c4163dede81e21cd47839256da58171238c8a0d874397c73b14e1e47";
    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn hex_and_base64_keys_are_the_same_key() {
        let hex = StateKey::parse(HEX).unwrap();
        let bytes: Vec<u8> = (0..32).collect();
        assert_eq!(StateKey::parse(&STANDARD.encode(&bytes)).unwrap(), hex);
        assert_eq!(
            StateKey::parse(&URL_SAFE_NO_PAD.encode(&bytes)).unwrap(),
            hex
        );
        assert_eq!(format!("{hex:?}"), "StateKey(<redacted>)");
    }

    #[test]
    fn short_long_and_garbled_keys_are_refused_with_a_reason() {
        assert!(StateKey::parse("abcd").unwrap_err().contains("not 32"));
        assert!(
            StateKey::parse(&STANDARD.encode([0u8; 33]))
                .unwrap_err()
                .contains("33 bytes")
        );
        assert!(
            StateKey::parse("not a key!")
                .unwrap_err()
                .contains("openssl")
        );
        assert!(StateKey::parse("").is_err());
    }

    #[test]
    fn derived_keys_are_fixed_per_purpose_and_are_not_the_key() {
        let key = StateKey::parse(HEX).unwrap();
        let confirmations = key.derive("bitrix24-mcp confirmation v1");
        assert_eq!(
            confirmations,
            StateKey::parse(HEX)
                .unwrap()
                .derive("bitrix24-mcp confirmation v1")
        );
        assert_ne!(confirmations, key.derive("another purpose"));
        assert_ne!(confirmations, key.0);
        assert_ne!(
            confirmations,
            StateKey::parse(&"ab".repeat(32))
                .unwrap()
                .derive("bitrix24-mcp confirmation v1")
        );
        // Plain HMAC-SHA256 (key 0x00..0x1f, message "abc"), as
        // `printf abc | openssl dgst -sha256 -mac HMAC -macopt hexkey:0001…1f` computes it.
        let hex: String = key
            .derive("abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, EXPECTED_HMAC_ABC);
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = StateKey::parse(HEX).unwrap();
        let sealed = key.seal(b"refresh-me", b"ns:tokens").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("refresh-me"));
        assert_eq!(
            key.open(sealed.as_bytes(), b"ns:tokens").unwrap(),
            b"refresh-me"
        );
        assert_eq!(
            key.open(sealed.as_bytes(), b"other:tokens"),
            Err(SealError::WrongKey)
        );
        let other = StateKey::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(
            other.open(sealed.as_bytes(), b"ns:tokens"),
            Err(SealError::WrongKey)
        );
        assert_eq!(
            key.open(b"v1:AAAA", b"ns:tokens"),
            Err(SealError::Malformed)
        );
        assert_eq!(key.open(b"plain", b"ns:tokens"), Err(SealError::Malformed));
        // Two seals of the same text differ (fresh nonces).
        assert_ne!(sealed, key.seal(b"refresh-me", b"ns:tokens").unwrap());
    }
}
