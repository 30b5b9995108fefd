//! The stateless era's requests for input through the gateway: a result
//! that asks the client for input (`input_required`) reaches the client as
//! the server sent it but for its `requestState`, which the gateway seals
//! for the key, server and request ([`crate::mcp::state`]); the client's
//! retry has it opened back into the server's own, or is refused.

use serde_json::{Map, Value};

use super::Gateway;
use crate::mcp::jsonrpc;
use crate::mcp::session::NONCE;
use crate::mcp::state::{self, Binding};
use crate::ports::Ports;

/// The member a result that asks for input, and the retry, carry it in.
const STATE: &str = "requestState";

impl<P: Ports> Gateway<P> {
    /// A retry's `requestState` (in `params`) opened in place; the
    /// JSON-RPC error to answer `id` with when it was not sealed for this
    /// key and request, or too long ago.
    pub(super) fn open_request_state(
        &self,
        params: &mut Map<String, Value>,
        binding: &Binding,
        id: &Value,
    ) -> Result<(), Value> {
        let Some(sealed) = params.get(STATE) else {
            return Ok(());
        };
        let opened = sealed
            .as_str()
            .and_then(|s| state::open(s, binding, self.now_ms(), &self.inner.mcp_key));
        let Some(own) = opened else {
            let message = "requestState was not given for this request, or has expired: \
                           make the request again without it.";
            return Err(jsonrpc::error(id, jsonrpc::INVALID_PARAMS, message));
        };
        params.insert(STATE.into(), Value::String(own));
        Ok(())
    }

    /// A result's `requestState`, sealed for the client.
    pub(super) fn seal_request_state(&self, result: &mut Value, binding: &Binding) {
        let Some(result) = result.as_object_mut() else {
            return;
        };
        match result.get(STATE).map(Value::as_str) {
            None => {}
            Some(Some(own)) => {
                let mut nonce = [0u8; NONCE];
                self.ports().fill_random(&mut nonce);
                let sealed = state::seal(own, binding, self.now_ms(), &self.inner.mcp_key, nonce);
                result.insert(STATE.into(), Value::String(sealed));
            }
            // Not a state the spec knows: none of it reaches the client.
            Some(None) => {
                result.remove(STATE);
            }
        }
    }
}
