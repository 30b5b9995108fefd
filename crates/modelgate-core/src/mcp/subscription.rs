//! A stateless client's `subscriptions/listen` (2026-07-28): what it asked
//! to hear of (list changes by kind, resources by URI), the acknowledgment
//! that opens its stream, every later notification tagged with its
//! subscription, and the result that closes it. Nothing of a kind it did
//! not ask for reaches it.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// `_meta` key naming the subscription a notification belongs to.
pub const SUBSCRIPTION_ID_KEY: &str = "io.modelcontextprotocol/subscriptionId";
/// The notification that opens the stream.
pub const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
/// Most resources one subscription names.
const MAX_URIS: usize = 100;

/// The list changes a client may ask to hear of: the filter's member and
/// the notification.
const LISTS: [(&str, &str); 3] = [
    ("toolsListChanged", "notifications/tools/list_changed"),
    ("promptsListChanged", "notifications/prompts/list_changed"),
    (
        "resourcesListChanged",
        "notifications/resources/list_changed",
    ),
];
/// A subscribed resource changed.
pub const UPDATED: &str = "notifications/resources/updated";

/// What a client asked to hear of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The members of [`LISTS`] asked for.
    lists: BTreeSet<&'static str>,
    /// Resources, by the client's names for them.
    pub uris: BTreeSet<String>,
}

impl Filter {
    /// The filter of a `subscriptions/listen` request's params.
    pub fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        let Some(Value::Object(asked)) = params.get("notifications") else {
            return Err("subscriptions/listen needs params.notifications, an object.".into());
        };
        let mut filter = Self::default();
        for (member, _) in LISTS {
            match asked.get(member) {
                None | Some(Value::Null | Value::Bool(false)) => {}
                Some(Value::Bool(true)) => {
                    filter.lists.insert(member);
                }
                Some(_) => return Err(format!("notifications.{member} must be a boolean.")),
            }
        }
        match asked.get("resourceSubscriptions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(uris)) if uris.len() <= MAX_URIS => {
                for uri in uris {
                    let Some(uri) = uri.as_str() else {
                        return Err("notifications.resourceSubscriptions must list URIs.".into());
                    };
                    filter.uris.insert(uri.to_owned());
                }
            }
            Some(_) => {
                return Err(format!(
                    "notifications.resourceSubscriptions must list at most {MAX_URIS} URIs."
                ));
            }
        }
        Ok(filter)
    }

    /// The filter as the wire spells it.
    pub fn wire(&self) -> Value {
        let mut out = Map::new();
        for member in &self.lists {
            out.insert((*member).into(), Value::Bool(true));
        }
        if !self.uris.is_empty() {
            out.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(out)
    }

    /// What of it one server is asked for: its resources `uris` (by its
    /// own names), and its lists of prompts and resources only if the
    /// client may use it `whole` (else its tools alone).
    pub fn narrowed(&self, whole: bool, uris: BTreeSet<String>) -> Self {
        let tools = LISTS[0].0;
        let lists = self.lists.iter().copied();
        Self {
            lists: lists.filter(|m| whole || *m == tools).collect(),
            uris: if whole { uris } else { BTreeSet::new() },
        }
    }

    /// The same lists, with `uris` for its resources.
    pub fn with_uris(&self, uris: BTreeSet<String>) -> Self {
        Self {
            lists: self.lists.clone(),
            uris,
        }
    }

    /// Whether a notification `method` is one asked for (a resource's
    /// change, by subscribing to one of the server's resources).
    pub fn admits(&self, method: &str) -> bool {
        if method == UPDATED {
            return !self.uris.is_empty();
        }
        LISTS
            .iter()
            .any(|(member, m)| *m == method && self.lists.contains(member))
    }
}

/// `message` (a notification) as one of subscription `id`'s: tagged with
/// it, and with no other subscription's tag.
pub fn tag(message: &mut Value, id: &Value) {
    let Some(m) = message.as_object_mut() else {
        return;
    };
    let params = m
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(params) = params {
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        match meta {
            Value::Object(meta) => {
                meta.insert(SUBSCRIPTION_ID_KEY.into(), id.clone());
            }
            other => *other = json!({SUBSCRIPTION_ID_KEY: id}),
        }
    }
}

/// The first message of subscription `id`'s stream: what it will hear.
pub fn acknowledged(id: &Value, honored: Value) -> Value {
    let mut ack =
        json!({"jsonrpc": "2.0", "method": ACKNOWLEDGED, "params": {"notifications": honored}});
    tag(&mut ack, id);
    ack
}

/// The last message: the stream closes on purpose (the client listens
/// again if it still wants to hear).
pub fn closed(id: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"_meta": {SUBSCRIPTION_ID_KEY: id}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(notifications: Value) -> Result<Filter, String> {
        let params = json!({"notifications": notifications});
        Filter::parse(params.as_object().unwrap())
    }

    #[test]
    fn a_filter_admits_what_was_asked_for_only() {
        let f = filter(
            json!({"toolsListChanged": true, "resourcesListChanged": true,
            "promptsListChanged": false, "resourceSubscriptions": ["docs+file:///a"]}),
        )
        .unwrap();
        assert!(f.admits("notifications/tools/list_changed"));
        assert!(f.admits("notifications/resources/list_changed"));
        assert!(!f.admits("notifications/prompts/list_changed"));
        assert!(f.admits(UPDATED));
        assert!(!f.admits("notifications/message") && !f.admits("notifications/progress"));
        let own = BTreeSet::from(["file:///a".to_owned()]);
        let whole = f.narrowed(true, own.clone());
        assert_eq!(
            whole.wire(),
            json!({"toolsListChanged": true, "resourcesListChanged": true,
                   "resourceSubscriptions": ["file:///a"]})
        );
        // A server the client may use some tools of: its tools alone.
        let part = f.narrowed(false, own);
        assert_eq!(part.wire(), json!({"toolsListChanged": true}));
        assert!(!part.admits(UPDATED) && !part.admits("notifications/resources/list_changed"));
        assert!(!f.narrowed(true, BTreeSet::new()).admits(UPDATED));
        assert_eq!(
            f.with_uris(BTreeSet::new()).wire()["resourceSubscriptions"],
            Value::Null
        );
        assert_eq!(filter(json!({})).unwrap(), Filter::default());
    }

    #[test]
    fn a_filter_that_is_not_one_is_refused() {
        let many: Vec<String> = (0..=MAX_URIS).map(|i| format!("x://{i}")).collect();
        for bad in [
            json!(null),
            json!([]),
            json!({"toolsListChanged": "yes"}),
            json!({"resourceSubscriptions": "file:///a"}),
            json!({"resourceSubscriptions": [1]}),
            json!({"resourceSubscriptions": many}),
        ] {
            assert!(filter(bad.clone()).is_err(), "{bad}");
        }
        assert!(Filter::parse(&Map::new()).is_err());
    }

    #[test]
    fn every_message_of_the_stream_names_its_subscription() {
        let id = json!("listen-1");
        let mut changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
            "params": {"_meta": {SUBSCRIPTION_ID_KEY: 7, "other": 1}}});
        tag(&mut changed, &id);
        assert_eq!(
            changed["params"]["_meta"],
            json!({SUBSCRIPTION_ID_KEY: "listen-1", "other": 1})
        );
        let mut bare = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        tag(&mut bare, &id);
        assert_eq!(bare["params"]["_meta"][SUBSCRIPTION_ID_KEY], "listen-1");
        let ack = acknowledged(&id, json!({"toolsListChanged": true}));
        assert_eq!(ack["method"], ACKNOWLEDGED);
        assert_eq!(
            ack["params"]["notifications"],
            json!({"toolsListChanged": true})
        );
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID_KEY], "listen-1");
        assert_eq!(
            closed(&id)["result"]["_meta"][SUBSCRIPTION_ID_KEY],
            "listen-1"
        );
        assert_eq!(closed(&id)["id"], "listen-1");
    }
}
