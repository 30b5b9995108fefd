//! A server's `requestState` (the stateless era's requests for input) as
//! the client holds it: sealed by the gateway, bound to the key, the
//! server and the request it was given for, for a short time. A server
//! protects its state against its client, and through the gateway that
//! client is the gateway, the same for every key: unsealed, one key could
//! hand the server a state another key was given.

use serde::{Deserialize, Serialize};

use super::session::{self, NONCE, Sealed, SessionKey};

/// What a sealed state starts with (and its format's version).
const PREFIX: &str = "mgr1.";
/// The format; the binding follows it in the sealed data.
const FORMAT: &[u8] = b"modelgate mcp request state v1";
/// Longest state taken back (a server's state may carry what its client
/// answered so far).
const MAX_STATE: usize = 256 * 1024;
/// How long a client has to answer, ms.
pub const TTL_MS: i64 = 10 * 60 * 1000;

/// Who was asked for input on which request: what a state is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The key the request came with.
    pub key_id: String,
    /// The server, by name.
    pub server: String,
    /// `tools/call`, `prompts/get` or `resources/read`.
    pub method: String,
    /// The tool, prompt or resource, by the server's own name.
    pub target: String,
}

impl Binding {
    /// The sealed data: each part length-prefixed, so none can pass for
    /// another.
    fn aad(&self) -> Vec<u8> {
        let mut aad = FORMAT.to_vec();
        for part in [&self.key_id, &self.server, &self.method, &self.target] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

#[derive(Serialize, Deserialize)]
struct Plain {
    #[serde(rename = "s")]
    state: String,
    /// Issued, ms since the epoch.
    #[serde(rename = "t")]
    issued_ms: i64,
}

/// The server's `state` as its client is given it.
pub fn seal(
    state: &str,
    binding: &Binding,
    now_ms: i64,
    key: &SessionKey,
    nonce: [u8; NONCE],
) -> String {
    let plain = Plain {
        state: state.to_owned(),
        issued_ms: now_ms,
    };
    let plain = serde_json::to_vec(&plain).unwrap_or_default();
    let aad = binding.aad();
    let how = Sealed {
        prefix: PREFIX,
        aad: &aad,
        max: MAX_STATE,
    };
    session::seal(key, &how, &plain, nonce)
}

/// The server's own state, if `token` was sealed for `binding` under
/// `key` less than [`TTL_MS`] ago.
pub fn open(token: &str, binding: &Binding, now_ms: i64, key: &SessionKey) -> Option<String> {
    let aad = binding.aad();
    let how = Sealed {
        prefix: PREFIX,
        aad: &aad,
        max: MAX_STATE,
    };
    let plain: Plain = serde_json::from_slice(&session::open(token, key, &how)?).ok()?;
    let age = now_ms - plain.issued_ms;
    (0..TTL_MS).contains(&age).then_some(plain.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding {
        Binding {
            key_id: "key_1".into(),
            server: "docs".into(),
            method: "tools/call".into(),
            target: "approve".into(),
        }
    }

    #[test]
    fn a_state_opens_for_its_binding_within_its_time_only() {
        let key = SessionKey::derive(b"s");
        let sealed = seal("round-1", &binding(), 1_000, &key, [5; NONCE]);
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("round-1"));
        assert_eq!(
            open(&sealed, &binding(), 1_000, &key).as_deref(),
            Some("round-1")
        );
        assert_eq!(
            open(&sealed, &binding(), 1_000 + TTL_MS - 1, &key).as_deref(),
            Some("round-1")
        );
        assert_eq!(open(&sealed, &binding(), 1_000 + TTL_MS, &key), None);
        assert_eq!(open(&sealed, &binding(), 999, &key), None);
        assert_eq!(
            open(&sealed, &binding(), 1_000, &SessionKey::derive(b"t")),
            None
        );
        let others = [
            Binding {
                key_id: "key_2".into(),
                ..binding()
            },
            Binding {
                server: "mail".into(),
                ..binding()
            },
            Binding {
                method: "prompts/get".into(),
                ..binding()
            },
            Binding {
                target: "delete".into(),
                ..binding()
            },
            // The parts' bounds count: the same bytes split otherwise.
            Binding {
                key_id: "key_1d".into(),
                server: "ocs".into(),
                ..binding()
            },
        ];
        for other in others {
            assert_eq!(open(&sealed, &other, 1_000, &key), None, "{other:?}");
        }
    }

    #[test]
    fn a_session_token_is_no_state() {
        let key = SessionKey::derive(b"s");
        let sealed = seal("x", &binding(), 1, &key, [1; NONCE]);
        assert_eq!(crate::mcp::session::Session::open(&sealed, &key), None);
        assert_eq!(
            open(&sealed.replacen(PREFIX, "mgs1.", 1), &binding(), 1, &key),
            None
        );
        assert_eq!(open("mgr1.", &binding(), 1, &key), None);
    }
}
