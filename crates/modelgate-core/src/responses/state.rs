//! Conversation state, as pure functions over stored responses: the items
//! a chain holds, item ids, and the pages of `input_items`.
//!
//! Every item ModelGate writes (output items, and input items stored
//! without an id) has an id that carries its response's: `{prefix}_{tag}...`
//! where `resp_{tag}` is the response. So an `item_reference` finds its
//! response without an index of items.

use serde_json::{Map, Value, json};

use crate::domain::StoredResponse;
use crate::error::RequestError;

/// Hex digits of a response tag (the request id's hex).
const TAG_LEN: usize = 36;

/// The id of the response that item `item_id` belongs to, if ModelGate
/// named it.
pub fn response_of_item(item_id: &str) -> Option<String> {
    let (_, rest) = item_id.split_once('_')?;
    let tag = rest.get(..TAG_LEN)?;
    tag.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| format!("resp_{tag}"))
}

/// The id the upstream gave a stored Response (kept as it answered), which
/// an upstream that keeps state knows it by.
pub fn upstream_id(r: &StoredResponse) -> Option<String> {
    let v: Value = serde_json::from_str(&r.response).ok()?;
    Some(v.get("id")?.as_str()?.to_owned())
}

/// A stored Response as the client sees it: named as the gateway names it
/// (`None` if what was stored is not JSON).
pub fn as_client_sees(r: &StoredResponse) -> Option<Value> {
    let mut v = serde_json::from_str::<Value>(&r.response).ok()?;
    crate::backend::name_response(&mut v, &r.id, r.previous_response_id.as_deref());
    Some(v)
}

/// The request's input as items: a string is one user message.
pub fn input_items(input: Option<&Value>) -> Vec<Value> {
    match input {
        Some(Value::String(s)) => vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": s}],
        })],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// `items` with an id on each that has none: `{prefix}_{tag}i{n}`, its
/// prefix after its type (`msg`, `fc`, `fco`, `item`).
pub fn with_ids(items: Vec<Value>, response_id: &str) -> Vec<Value> {
    let tag = response_id.trim_start_matches("resp_");
    items
        .into_iter()
        .enumerate()
        .map(|(n, mut item)| {
            if let Value::Object(m) = &mut item
                && !m.get("id").is_some_and(Value::is_string)
            {
                let prefix = match m.get("type").and_then(Value::as_str) {
                    None | Some("message") => "msg",
                    Some("function_call") => "fc",
                    Some("function_call_output") => "fco",
                    Some(_) => "item",
                };
                m.insert("id".into(), json!(format!("{prefix}_{tag}i{n:02x}")));
                if !m.contains_key("type") {
                    m.insert("type".into(), json!("message"));
                }
            }
            item
        })
        .collect()
}

/// The stored input items of `r`.
pub fn stored_input(r: &StoredResponse) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(&r.input).unwrap_or_default()
}

/// The output items of `r`.
pub fn stored_output(r: &StoredResponse) -> Vec<Value> {
    serde_json::from_str::<Value>(&r.response)
        .ok()
        .and_then(|v| v.get("output").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// A chain's items, oldest response first: each one's input, then its
/// output, as the next request's input.
pub fn chain_items(chain: &[StoredResponse]) -> Vec<Value> {
    chain
        .iter()
        .flat_map(|r| {
            let mut items = stored_input(r);
            items.extend(stored_output(r));
            items
        })
        .collect()
}

/// The item `id` among `r`'s input and output.
pub fn find_item(r: &StoredResponse, id: &str) -> Option<Value> {
    stored_input(r)
        .into_iter()
        .chain(stored_output(r))
        .find(|i| i.get("id").and_then(Value::as_str) == Some(id))
}

/// One page of `GET /v1/responses/{id}/input_items`: `limit` (1..=100,
/// default 20), `order` (`desc` default), `after` an item id.
pub fn input_page(items: &[Value], query: &str) -> Result<Value, RequestError> {
    let mut limit = 20usize;
    let mut asc = false;
    let mut after = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        RequestError::invalid(
                            "'limit' must be an integer from 1 to 100.",
                            Some("limit"),
                        )
                    })?;
            }
            "order" => {
                asc = match &*v {
                    "asc" => true,
                    "desc" => false,
                    _ => {
                        return Err(RequestError::invalid(
                            "'order' must be 'asc' or 'desc'.",
                            Some("order"),
                        ));
                    }
                };
            }
            "after" => after = Some(v.into_owned()),
            _ => {}
        }
    }
    let mut ordered: Vec<&Value> = items.iter().collect();
    if !asc {
        ordered.reverse();
    }
    let start = match &after {
        None => 0,
        Some(a) => {
            ordered
                .iter()
                .position(|i| i.get("id").and_then(Value::as_str) == Some(a))
                .ok_or_else(|| {
                    RequestError::invalid("'after' is not an item of this response.", Some("after"))
                })?
                + 1
        }
    };
    let page: Vec<Value> = ordered
        .iter()
        .skip(start)
        .take(limit)
        .map(|v| (*v).clone())
        .collect();
    let id = |v: Option<&Value>| v.and_then(|i| i.get("id")).cloned().unwrap_or(Value::Null);
    let mut list = Map::new();
    list.insert("object".into(), json!("list"));
    list.insert("first_id".into(), id(page.first()));
    list.insert("last_id".into(), id(page.last()));
    list.insert("has_more".into(), json!(start + page.len() < ordered.len()));
    list.insert("data".into(), Value::Array(page));
    Ok(Value::Object(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "0123456789abcdef0123456789abcdef0123";

    #[test]
    fn item_ids_lead_to_their_response() {
        let resp = format!("resp_{TAG}");
        assert_eq!(
            response_of_item(&format!("msg_{TAG}00")),
            Some(resp.clone())
        );
        assert_eq!(response_of_item(&format!("fc_{TAG}i03")), Some(resp));
        assert_eq!(response_of_item("msg_short"), None);
        assert_eq!(response_of_item("no-underscore"), None);
        assert_eq!(response_of_item(&format!("msg_{}", "z".repeat(40))), None);
    }

    #[test]
    fn inputs_become_items_with_ids() {
        let items = with_ids(input_items(Some(&json!("hi"))), &format!("resp_{TAG}"));
        assert_eq!(items[0]["id"], format!("msg_{TAG}i00"));
        assert_eq!(items[0]["content"][0]["text"], "hi");
        let given = json!([{"role": "user", "content": "a"}, {"type": "function_call_output", "call_id": "c", "output": "x"}, {"id": "keep", "type": "message"}]);
        let items = with_ids(input_items(Some(&given)), &format!("resp_{TAG}"));
        assert_eq!(items[0]["type"], "message");
        assert_eq!(items[1]["id"], format!("fco_{TAG}i01"));
        assert_eq!(items[2]["id"], "keep");
    }

    fn stored(id: &str, input: Value, output: Value) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            key_id: "k".into(),
            model: "m".into(),
            previous_response_id: None,
            input: input.to_string(),
            response: json!({"id": id, "output": output}).to_string(),
            created_at: 0,
            expires_at: 1,
        }
    }

    #[test]
    fn a_chain_is_each_turns_input_then_output() {
        let a = stored("resp_a", json!([{"id": "in1"}]), json!([{"id": "out1"}]));
        let b = stored("resp_b", json!([{"id": "in2"}]), json!([{"id": "out2"}]));
        let ids: Vec<Value> = chain_items(&[a.clone(), b])
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!(
            ids,
            [json!("in1"), json!("out1"), json!("in2"), json!("out2")]
        );
        assert_eq!(find_item(&a, "out1"), Some(json!({"id": "out1"})));
        assert_eq!(find_item(&a, "nope"), None);
    }

    #[test]
    fn page_queries_decode_as_forms_do() {
        let items: Vec<Value> = ["a+b", "a b", "z"]
            .iter()
            .map(|id| json!({"id": id}))
            .collect();
        let first = |q: &str| input_page(&items, q).unwrap()["first_id"].clone();
        // '+' is a space and '%2B' a plus, as in any form.
        assert_eq!(first("order=asc&after=a%2Bb"), json!("a b"));
        assert_eq!(first("order=asc&after=a+b"), json!("z"));
        assert_eq!(first("order=%61sc"), json!("a+b"));
    }

    #[test]
    fn input_items_page_both_ways() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("i{i}")})).collect();
        let p = input_page(&items, "").unwrap();
        assert_eq!(
            (p["first_id"].clone(), p["last_id"].clone()),
            (json!("i4"), json!("i0"))
        );
        assert_eq!(p["has_more"], false);
        let p = input_page(&items, "order=asc&limit=2").unwrap();
        assert_eq!(
            (p["first_id"].clone(), p["has_more"].clone()),
            (json!("i0"), json!(true))
        );
        let p = input_page(&items, "order=asc&limit=2&after=i1").unwrap();
        assert_eq!(
            (p["first_id"].clone(), p["last_id"].clone()),
            (json!("i2"), json!("i3"))
        );
        let p = input_page(&items, "order=asc&limit=2&after=i3").unwrap();
        assert_eq!(
            (p["data"].as_array().unwrap().len(), p["has_more"].clone()),
            (1, json!(false))
        );
        for bad in ["limit=0", "limit=101", "order=up", "after=zz"] {
            assert!(input_page(&items, bad).is_err(), "{bad}");
        }
    }
}
