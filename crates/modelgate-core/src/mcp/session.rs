//! A client's MCP session without a database: everything the gateway must
//! remember between requests (the key that opened it, the agreed version,
//! each upstream server's own session) is sealed into the
//! `Mcp-Session-Id` it hands the client, with XChaCha20-Poly1305 under a
//! key every instance derives from the same secret. Any replica or runtime
//! can open it; nobody without the secret can read or forge one; a session
//! opened by one key is refused to every other.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a sealed session starts with (and its format's version).
const PREFIX: &str = "mgs1.";
/// Bound to the format, so a token of another use cannot be replayed here.
const AAD: &[u8] = b"modelgate mcp session v1";
/// Longest token opened (clients echo it on every request).
pub const MAX_TOKEN: usize = 8 * 1024;
/// Nonce length: random, so 24 bytes (XChaCha) to never repeat.
pub const NONCE: usize = 24;

/// The sealing key, derived from the operator's secret.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// The key for `secret` (the same on every instance given the same).
    pub fn derive(secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"modelgate mcp session key\0");
        h.update(secret);
        Self(h.finalize().into())
    }
}

/// One upstream server's side of a client session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// The server's own `Mcp-Session-Id`, if it gave one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The protocol version the server agreed to.
    #[serde(rename = "v")]
    pub version: String,
}

/// What a client's session carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The id of the key that opened it.
    #[serde(rename = "k")]
    pub key_id: String,
    /// The protocol version agreed with the client.
    #[serde(rename = "v")]
    pub version: String,
    /// The one server asked for (`/mcp/{server}`), if any.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    /// Each upstream server's session, by server id.
    #[serde(rename = "u")]
    pub upstreams: BTreeMap<String, Upstream>,
    /// Opened, ms since the epoch.
    #[serde(rename = "t")]
    pub opened_ms: i64,
}

/// How a session is sealed.
const SESSION: Sealed = Sealed {
    prefix: PREFIX,
    aad: AAD,
    max: MAX_TOKEN,
};

impl Session {
    /// The token for the client: `nonce` must be fresh random bytes.
    pub fn seal(&self, key: &SessionKey, nonce: [u8; NONCE]) -> String {
        let plain = serde_json::to_vec(self).unwrap_or_default();
        seal(key, &SESSION, &plain, nonce)
    }

    /// The session a token carries, if it was sealed under `key`.
    pub fn open(token: &str, key: &SessionKey) -> Option<Self> {
        let plain = open(token, key, &SESSION)?;
        serde_json::from_slice(&plain).ok()
    }
}

/// What a kind of sealed token starts with, and the data it is bound to
/// (its format, and for some what it may be used for).
pub(crate) struct Sealed<'a> {
    pub prefix: &'a str,
    pub aad: &'a [u8],
    /// Longest token opened.
    pub max: usize,
}

/// `plain` sealed under `key`, bound to `how.aad`, as visible ASCII.
pub(crate) fn seal(key: &SessionKey, how: &Sealed, plain: &[u8], nonce: [u8; NONCE]) -> String {
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let nonce = XNonce::from(nonce);
    let payload = Payload {
        msg: plain,
        aad: how.aad,
    };
    let sealed = cipher.encrypt(&nonce, payload).unwrap_or_default();
    let mut raw = nonce.to_vec();
    raw.extend_from_slice(&sealed);
    format!("{}{}", how.prefix, URL_SAFE_NO_PAD.encode(raw))
}

/// What `token` carries, if it was sealed under `key` bound to `how.aad`.
pub(crate) fn open(token: &str, key: &SessionKey, how: &Sealed) -> Option<Vec<u8>> {
    if token.len() > how.max {
        return None;
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token.strip_prefix(how.prefix)?)
        .ok()?;
    if raw.len() < NONCE {
        return None;
    }
    let (nonce, sealed) = raw.split_at(NONCE);
    let nonce = XNonce::try_from(nonce).ok()?;
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let payload = Payload {
        msg: sealed,
        aad: how.aad,
    };
    cipher.decrypt(&nonce, payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            key_id: "key_1".into(),
            version: "2025-11-25".into(),
            only: None,
            upstreams: BTreeMap::from([(
                "mcp_a".into(),
                Upstream {
                    session: Some("upstream-session-7".into()),
                    version: "2025-06-18".into(),
                },
            )]),
            opened_ms: 1_000,
        }
    }

    #[test]
    fn a_sealed_session_opens_under_its_key_only() {
        let key = SessionKey::derive(b"one secret");
        let token = session().seal(&key, [7; NONCE]);
        assert!(token.starts_with(PREFIX));
        assert!(
            token.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "visible ASCII"
        );
        assert_eq!(Session::open(&token, &key), Some(session()));
        assert_eq!(Session::open(&token, &SessionKey::derive(b"another")), None);
    }

    #[test]
    fn the_token_hides_what_it_carries() {
        let token = session().seal(&SessionKey::derive(b"s"), [1; NONCE]);
        assert!(!token.contains("upstream-session-7") && !token.contains("key_1"));
        let raw = URL_SAFE_NO_PAD.decode(&token[PREFIX.len()..]).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("upstream-session"));
    }

    #[test]
    fn a_changed_truncated_or_foreign_token_does_not_open() {
        let key = SessionKey::derive(b"s");
        let token = session().seal(&key, [3; NONCE]);
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 5;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        for bad in [
            String::from_utf8(flipped).unwrap(),
            token[..token.len() - 4].to_owned(),
            token.replace(PREFIX, "mgs2."),
            "mgs1.".into(),
            "mgs1.!!!".into(),
            format!("{PREFIX}{}", "A".repeat(MAX_TOKEN)),
            "a-session-id-of-someone-else".into(),
        ] {
            assert_eq!(Session::open(&bad, &key), None, "{bad}");
        }
    }

    #[test]
    fn fresh_nonces_give_different_tokens() {
        let key = SessionKey::derive(b"s");
        assert_ne!(
            session().seal(&key, [1; NONCE]),
            session().seal(&key, [2; NONCE])
        );
        assert!(!format!("{key:?}").contains('['));
    }
}
