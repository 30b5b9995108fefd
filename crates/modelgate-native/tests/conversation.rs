//! Stored responses through the router: chains rebuilt for any backend,
//! item references, the read routes, key isolation, expiry, the settings,
//! and a chain continued on a second gateway over the same store.

mod common;

use common::{Answer, Harness};
use modelgate_core::ports::{Ports, ResponseStore};
use modelgate_sqlite::{Options, SqliteStore};
use serde_json::{Value, json};

async fn respond(h: &Harness, key: &str, body: Value) -> Answer {
    h.request("POST", "/v1/responses", Some(key), Some(body))
        .await
}

/// The roles and texts of the chat messages the mock last received.
fn upstream_turns(h: &Harness) -> Vec<(String, String)> {
    let body = h.mock.last_request()["body"].clone();
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
                _ => String::new(),
            };
            (m["role"].as_str().unwrap().to_owned(), text)
        })
        .collect()
}

#[tokio::test]
async fn a_three_turn_chain_reaches_a_stateless_backend_whole() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "c", "quota": 100_000})).await;
    h.model("m", "vllm", "mock?tokens=2").await;
    let first = respond(&h, &key, json!({"model": "m", "input": "one"}))
        .await
        .json();
    assert_eq!(
        (
            first["store"].clone(),
            first["previous_response_id"].clone()
        ),
        (json!(true), Value::Null)
    );
    let second = respond(
        &h,
        &key,
        json!({"model": "m", "input": "two", "previous_response_id": first["id"]}),
    )
    .await
    .json();
    assert_eq!(second["previous_response_id"], first["id"]);
    let used_before = h.stored_key(&id).await.quota_used;
    let third = respond(
        &h,
        &key,
        json!({"model": "m", "input": [{"role": "user", "content": "three"}],
            "previous_response_id": second["id"], "stream": true}),
    )
    .await;
    assert_eq!(third.status, 200, "{}", third.text());
    let turns = upstream_turns(&h);
    let expect = [
        ("user", "one"),
        ("assistant", " w0 w1"),
        ("user", "two"),
        ("assistant", " w0 w1"),
        ("user", "three"),
    ];
    assert_eq!(
        turns
            .iter()
            .map(|(r, t)| (r.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        expect
    );
    // The stored conversation is input too: the mock counted 7 prompt words
    // (three user turns, two answers of two), then answered two.
    let k = h.wait_key(&id, |k| k.quota_used > used_before).await;
    assert_eq!(k.quota_used - used_before, 7 + 2);

    // The streamed third turn was kept before the stream ended.
    let third_id = third
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["response"]["id"].clone())
        .unwrap();
    let got = h
        .request(
            "GET",
            &format!("/v1/responses/{}", third_id.as_str().unwrap()),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["status"], "completed");
    assert_eq!(got.json()["previous_response_id"], second["id"]);
    let items = h
        .request(
            "GET",
            &format!("/v1/responses/{}/input_items", third_id.as_str().unwrap()),
            Some(&key),
            None,
        )
        .await
        .json();
    assert_eq!(
        items["data"].as_array().unwrap().len(),
        1,
        "its own input only"
    );
    assert_eq!(items["data"][0]["content"], "three");
    assert!(items["first_id"].as_str().unwrap().starts_with("msg_"));
}

#[tokio::test]
async fn item_references_resolve_to_stored_items() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "c"})).await;
    h.model("m", "ollama", "mock?tokens=3").await;
    let first = respond(&h, &key, json!({"model": "m", "input": "hello"}))
        .await
        .json();
    let out_id = first["output"][0]["id"].as_str().unwrap().to_owned();
    let a = respond(
        &h,
        &key,
        json!({"model": "m", "input": [
            {"role": "user", "content": "hello"},
            {"type": "item_reference", "id": out_id},
            {"role": "user", "content": "more"},
        ]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let turns = upstream_turns(&h);
    assert_eq!(turns[1], ("assistant".to_owned(), " w0 w1 w2".to_owned()));
    for bad in [format!("{out_id}ff"), "msg_unknown".to_owned()] {
        let a = respond(
            &h,
            &key,
            json!({"model": "m", "input": [{"type": "item_reference", "id": bad}]}),
        )
        .await;
        assert_eq!(a.status, 404, "{}", a.text());
        assert_eq!(a.json()["error"]["param"], "input[0].id");
    }
}

#[tokio::test]
async fn a_key_sees_only_its_own_responses() {
    let h = Harness::new().await;
    let (mine, _) = h.key(json!({"name": "mine"})).await;
    let (other, _) = h.key(json!({"name": "other"})).await;
    let (admin, _) = h.key(json!({"name": "root", "admin": true})).await;
    h.model("m", "vllm", "mock?tokens=1").await;
    let r = respond(&h, &mine, json!({"model": "m", "input": "secret"}))
        .await
        .json();
    let path = format!("/v1/responses/{}", r["id"].as_str().unwrap());
    for method in ["GET", "DELETE"] {
        let a = h.request(method, &path, Some(&other), None).await;
        assert_eq!(a.status, 404, "{method}: {}", a.text());
    }
    let a = h
        .request("GET", &format!("{path}/input_items"), Some(&other), None)
        .await;
    assert_eq!(a.status, 404);
    let a = respond(
        &h,
        &other,
        json!({"model": "m", "input": "x", "previous_response_id": r["id"]}),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["param"], "previous_response_id");
    // The owner and an admin read it; a delete is final.
    assert_eq!(h.request("GET", &path, Some(&mine), None).await.status, 200);
    assert_eq!(
        h.request("GET", &path, Some(&admin), None).await.status,
        200
    );
    let a = h.request("DELETE", &path, Some(&mine), None).await;
    assert_eq!(
        a.json(),
        json!({"id": r["id"], "object": "response", "deleted": true})
    );
    assert_eq!(h.request("GET", &path, Some(&mine), None).await.status, 404);
    let a = h
        .request("GET", "/v1/responses/..%2Fkeys", Some(&mine), None)
        .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn store_false_the_size_limit_and_the_switch() {
    let h = Harness::with(|c| c.responses.max_bytes = 2_000).await;
    let (key, _) = h.key(json!({"name": "c"})).await;
    h.model("m", "vllm", "mock?tokens=2").await;
    let r = respond(
        &h,
        &key,
        json!({"model": "m", "input": "x", "store": false}),
    )
    .await
    .json();
    assert_eq!(r["store"], false);
    let path = format!("/v1/responses/{}", r["id"].as_str().unwrap());
    assert_eq!(h.request("GET", &path, Some(&key), None).await.status, 404);
    let big = "word ".repeat(500);
    let r = respond(&h, &key, json!({"model": "m", "input": big}))
        .await
        .json();
    assert_eq!(
        r["store"], false,
        "over MG_RESPONSES_MAX_BYTES: answered, not kept"
    );

    let off = Harness::with(|c| c.responses.store = false).await;
    let (key, _) = off.key(json!({"name": "c"})).await;
    off.model("m", "vllm", "mock?tokens=2").await;
    let r = respond(&off, &key, json!({"model": "m", "input": "x"}))
        .await
        .json();
    assert_eq!(r["store"], false);
    let a = respond(
        &off,
        &key,
        json!({"model": "m", "input": "x", "previous_response_id": r["id"]}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MG_RESPONSES_STORE")
    );
}

#[tokio::test]
async fn expired_responses_are_gone_for_every_read() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "c"})).await;
    h.model("m", "vllm", "mock?tokens=1").await;
    let r = respond(&h, &key, json!({"model": "m", "input": "x"}))
        .await
        .json();
    let id = r["id"].as_str().unwrap();
    let store = h.gateway.ports().store();
    let mut stored = store.get_response(id, 0).await.unwrap().unwrap();
    let day = 86_400_000;
    assert!(
        stored.expires_at - stored.created_at >= 30 * day - 1,
        "30 days by default"
    );
    // Its time passes: a millisecond ago, it expired.
    stored.expires_at = i64::try_from(modelgate_testkit::mock::unix_micros() / 1000).unwrap() - 1;
    store.put_response(&stored).await.unwrap();
    let path = format!("/v1/responses/{id}");
    assert_eq!(h.request("GET", &path, Some(&key), None).await.status, 404);
    let a = h
        .request("GET", &format!("{path}/input_items"), Some(&key), None)
        .await;
    assert_eq!(a.status, 404);
    let a = respond(
        &h,
        &key,
        json!({"model": "m", "input": "x", "previous_response_id": id}),
    )
    .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn a_chain_started_on_one_gateway_continues_on_another() {
    let dir = std::env::temp_dir().join(format!("mg-conv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("shared.db");
    let a = Harness::build(|_| {}, SqliteStore::open(&db, Options::default()).unwrap()).await;
    let b = Harness::build(|_| {}, SqliteStore::open(&db, Options::default()).unwrap()).await;
    let (key, _) = a.key(json!({"name": "c"})).await;
    let url = a.mock.url();
    a.model_at("m", "vllm", &url, "mock?tokens=1", json!({}))
        .await;
    let first = respond(&a, &key, json!({"model": "m", "input": "on a"}))
        .await
        .json();
    let second = respond(
        &b,
        &key,
        json!({"model": "m", "input": "on b", "previous_response_id": first["id"]}),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.text());
    let turns = upstream_turns(&a);
    assert_eq!(turns[0], ("user".to_owned(), "on a".to_owned()));
    assert_eq!(turns[2], ("user".to_owned(), "on b".to_owned()));
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn admins_list_read_delete_and_purge() {
    let h = Harness::new().await;
    let (key, key_id) = h.key(json!({"name": "c"})).await;
    h.model("m", "vllm", "mock?tokens=1").await;
    let mut ids = Vec::new();
    for turn in ["a", "b", "c"] {
        let r = respond(&h, &key, json!({"model": "m", "input": turn}))
            .await
            .json();
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let list = h
        .admin(
            "GET",
            &format!("/admin/api/responses?key_id={key_id}&limit=2"),
            None,
        )
        .await
        .json();
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(ids.contains(&listed[0].to_owned()));
    let a = h.admin("GET", "/admin/api/responses", None).await;
    assert_eq!(
        (a.status, a.json()["error"]["param"].clone()),
        (400, json!("key_id"))
    );
    let one = h
        .admin("GET", &format!("/admin/api/responses/{}", ids[0]), None)
        .await
        .json();
    assert_eq!(one["summary"]["key_id"], key_id);
    assert_eq!(one["response"]["id"], ids[0]);
    let a = h
        .admin("DELETE", &format!("/admin/api/responses/{}", ids[0]), None)
        .await;
    assert_eq!(a.json()["deleted"], true);
    let path = format!("/v1/responses/{}", ids[0]);
    assert_eq!(h.request("GET", &path, Some(&key), None).await.status, 404);
    // Expire one in the store; the purge deletes exactly it.
    let store = h.gateway.ports().store();
    let mut r = store.get_response(&ids[1], 0).await.unwrap().unwrap();
    r.expires_at = 1;
    store.put_response(&r).await.unwrap();
    let purged = h
        .admin("POST", "/admin/api/responses/purge", None)
        .await
        .json();
    assert_eq!(purged["deleted"], 1);
    assert!(store.get_response(&ids[1], 0).await.unwrap().is_none());
    assert!(store.get_response(&ids[2], 0).await.unwrap().is_some());
    // Responses are an admin route: a normal key is refused.
    let a = h
        .request(
            "GET",
            &format!("/admin/api/responses?key_id={key_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(a.status, 403);
}

/// Walking a chain reads the store up to a thousand times: a key at its
/// RPM limit is refused before it (a 429, not the walk's 404), and a chain
/// is loaded only up to four body limits of stored bytes.
#[tokio::test]
async fn a_chain_is_walked_after_the_rate_limit_and_within_a_byte_bound() {
    let h = Harness::with(|c| c.max_body_bytes = 4096).await;
    h.model("m", "vllm", "mock?tokens=2").await;
    let (one, _) = h.key(json!({"name": "one", "rpm": 1})).await;
    assert_eq!(
        respond(&h, &one, json!({"model": "m", "input": "hi"}))
            .await
            .status,
        200
    );
    let walk = json!({"model": "m", "input": "again", "previous_response_id": "resp_nowhere"});
    let refused = respond(&h, &one, walk).await;
    assert_eq!(refused.status, 429, "{}", refused.text());

    let (key, _) = h.key(json!({"name": "many"})).await;
    let text = "x".repeat(3000);
    let mut previous = Value::Null;
    let mut last = None;
    for _ in 0..8 {
        let a = respond(
            &h,
            &key,
            json!({"model": "m", "input": text, "previous_response_id": previous}),
        )
        .await;
        if a.status != 200 {
            last = Some(a);
            break;
        }
        previous = a.json()["id"].clone();
    }
    let last = last.expect("a chain past 16 KiB of stored bytes was refused");
    assert_eq!(last.status, 400, "{}", last.text());
    assert_eq!(last.json()["error"]["param"], "previous_response_id");
    assert!(last.text().contains("16384 bytes"), "{}", last.text());
}

/// An upstream that keeps state bills the earlier conversation again on
/// every turn (as OpenAI does). Forwarding `previous_response_id` as it is,
/// the gateway reserves for the stored chain too, so the quota is never
/// passed; and what the upstream reports is charged in full.
#[tokio::test]
async fn a_forwarded_chain_is_reserved_for_what_the_upstream_bills() {
    let h = Harness::new().await;
    let quota = 20_000;
    let (key, id) = h.key(json!({"name": "f", "quota": quota})).await;
    let native = json!({"responses_api": "native"});
    let base = format!("{}/v1", h.mock.url());
    h.model_at("o", "openai", &base, "mock?stateful=1&tokens=20", native)
        .await;
    let turn = "word ".repeat(200);
    let (mut previous, mut billed, mut refused) = (Value::Null, 0, None);
    for i in 0..30 {
        let body = json!({"model": "o", "input": turn, "max_output_tokens": 20,
            "previous_response_id": previous});
        let a = respond(&h, &key, body).await;
        let k = h.stored_key(&id).await;
        if a.status != 200 {
            refused = Some((i, a));
            break;
        }
        let r = a.json();
        // The upstream gets its own id for the previous turn, not ours.
        let forwarded = h.mock.last_request()["body"]["previous_response_id"].clone();
        assert_eq!(forwarded.is_null(), previous.is_null());
        assert!(forwarded.is_null() || forwarded.as_str().unwrap().starts_with("resp_mock"));
        billed += r["usage"]["total_tokens"].as_i64().unwrap();
        previous = r["id"].clone();
        assert_eq!(k.quota_used, billed, "turn {i}: charged what was billed");
        assert!(
            k.quota_used <= quota,
            "turn {i}: {} past the quota",
            k.quota_used
        );
    }
    let (turns, last) = refused.expect("the quota ran out");
    assert!(turns > 3, "{turns}");
    assert_eq!(last.status, 429, "{}", last.text());
    assert_eq!(last.json()["error"]["code"], "insufficient_quota");
}

/// An upstream may repeat a Response id (for two keys, here every time):
/// the gateway names every Response itself, so neither key's stored
/// Response replaces the other's, and the upstream still gets its own id.
#[tokio::test]
async fn an_upstream_repeating_ids_takes_over_no_stored_response() {
    let h = Harness::new().await;
    let native = json!({"responses_api": "native"});
    let base = format!("{}/v1", h.mock.url());
    h.model_at("o", "openai", &base, "mock?tokens=3", native)
        .await;
    let (one, _) = h.key(json!({"name": "one"})).await;
    let (two, _) = h.key(json!({"name": "two"})).await;
    let first = respond(&h, &one, json!({"model": "o", "input": "first"})).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let a = first.json()["id"].as_str().unwrap().to_owned();
    let stream = json!({"model": "o", "input": "second", "stream": true});
    let second = respond(&h, &two, stream).await;
    assert_eq!(second.status, 200, "{}", second.text());
    let named: Vec<String> = second
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|e| e["response"]["id"].as_str().map(str::to_owned))
        .collect();
    assert!(named.len() >= 2, "{}", second.text());
    let b = named[0].clone();
    assert!(named.iter().all(|id| *id == b), "{named:?}");
    assert_ne!(a, b);
    assert!(!a.starts_with("resp_mock") && !b.starts_with("resp_mock"));
    for (key, id, other) in [(&one, &a, &two), (&two, &b, &one)] {
        let got = h
            .request("GET", &format!("/v1/responses/{id}"), Some(key), None)
            .await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.json()["id"], json!(id));
        let items = format!("/v1/responses/{id}/input_items");
        assert_eq!(h.request("GET", &items, Some(key), None).await.status, 200);
        let theirs = h
            .request("GET", &format!("/v1/responses/{id}"), Some(other), None)
            .await;
        assert_eq!(theirs.status, 404);
    }
    // Continued, the upstream is told the id it gave.
    let next = json!({"model": "o", "input": "third", "previous_response_id": a});
    let third = respond(&h, &one, next).await;
    assert_eq!(third.status, 200, "{}", third.text());
    assert_eq!(third.json()["previous_response_id"], json!(a));
    assert_eq!(
        h.mock.last_request()["body"]["previous_response_id"],
        "resp_mock1"
    );
}
