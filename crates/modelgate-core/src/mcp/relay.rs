//! Requests a server makes of its client during a call (sampling,
//! elicitation, roots), relayed to a handshake-era client in the call's
//! event stream and its answer back: the gateway offers servers what the
//! client offered it, and names each relayed request so that the client's
//! answer finds its server and id with nothing kept in between.

use serde_json::{Map, Value};

/// The client capabilities whose requests are relayed.
const RELAYED: [&str; 3] = ["sampling", "elicitation", "roots"];
/// What a relayed request's id starts with.
const PREFIX: &str = "mg-relay:";

/// Of a client's `initialize` params, the capabilities to offer servers.
pub fn offered(params: &Map<String, Value>) -> Map<String, Value> {
    match params.get("capabilities") {
        Some(Value::Object(capabilities)) => relayable(capabilities),
        _ => Map::new(),
    }
}

/// Of a client's capabilities, those whose requests reach it through the
/// gateway.
pub fn relayable(capabilities: &Map<String, Value>) -> Map<String, Value> {
    capabilities
        .iter()
        .filter(|(name, _)| RELAYED.contains(&name.as_str()))
        .map(|(name, v)| (name.clone(), v.clone()))
        .collect()
}

/// The id the client sees for `server`'s request `id`.
pub fn relayed_id(server: &str, id: &Value) -> Value {
    Value::String(format!("{PREFIX}{server}:{id}"))
}

/// The server and its own id a client's answer is for, if it answers a
/// relayed request.
pub fn origin(id: &Value) -> Option<(&str, Value)> {
    let (server, own) = id.as_str()?.strip_prefix(PREFIX)?.split_once(':')?;
    let own: Value = serde_json::from_str(own).ok()?;
    (own.is_string() || own.is_number()).then_some((server, own))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_what_is_relayed_is_offered() {
        let params = json!({"capabilities": {"sampling": {}, "elicitation": {"form": {}},
            "roots": {"listChanged": true}, "experimental": {"x": 1}}});
        let offered = offered(params.as_object().unwrap());
        assert_eq!(
            Value::Object(offered),
            json!({"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": true}})
        );
        assert!(super::offered(&Map::new()).is_empty());
    }

    #[test]
    fn a_relayed_id_names_its_server_and_own_id() {
        for own in [json!(7), json!("abc:def"), json!("")] {
            let id = relayed_id("docs-2", &own);
            assert_eq!(origin(&id), Some(("docs-2", own)));
        }
        for foreign in [
            json!(1),
            json!("mg-relay:nocolon"),
            json!("mg-relay:s:{\"a\":1}"),
            json!("x"),
        ] {
            assert_eq!(origin(&foreign), None, "{foreign}");
        }
    }
}
