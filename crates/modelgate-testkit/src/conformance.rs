//! The store conformance suite: one body per behaviour, run against every
//! store implementation with [`store_conformance!`](crate::store_conformance).

use std::sync::Arc;

use modelgate_core::auth;
use modelgate_core::backend::{BackendKind, MessagesApi, ResponsesApi};
use modelgate_core::domain::{
    Ask, KeyPatch, KeyStatus, Lease, ModelPatch, NewKey, NewModel, ResponseSummary, UsageQuery,
};
use modelgate_core::error::StoreError;
use modelgate_core::period::Period;
use modelgate_core::ports::{Accounting, StepAndReserve, Store};

use crate::subject::Subject;

pub use crate::mcp::mcp_servers_roundtrip;
pub use crate::periods::{concurrent_budget_never_overspent, windows_roll_at_the_boundary};
pub use crate::records::{deployment, key, lease, model, settlement, stored_response};
pub use crate::usage::usage_records_newest_first;

/// Thirty requests at once on `key_id` (its quota 60 tokens, none held),
/// spread over `instances`, each taking a step of RPM 10 with a
/// reservation of 10 tokens ([`StepAndReserve`]): exactly 10 are allowed,
/// 6 of them granted, and a request the rate refused reserves nothing.
/// What is held after (60 tokens, six leases) is the caller's to check.
pub async fn steps_carry_reservations<T: StepAndReserve>(
    instances: &[Arc<T>],
    key_id: &str,
    now_ms: i64,
) {
    let ask = Ask {
        tokens: (10, 10),
        ..Ask::default()
    };
    let leases: Vec<Lease> = (0..30).map(|_| lease(key_id)).collect();
    let steps = leases
        .iter()
        .enumerate()
        .map(|(i, l)| instances[i % instances.len()].step_and_reserve(key_id, 10, now_ms, l, &ask));
    let outcomes: Vec<_> = futures_util::future::join_all(steps).await;
    let outcomes: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
    let allowed = outcomes.iter().filter(|(d, _)| d.allowed).count();
    let granted: Vec<i64> = outcomes
        .iter()
        .filter_map(|(_, g)| g.map(|g| g.tokens))
        .collect();
    assert_eq!(allowed, 10, "RPM 10 at one instant admits 10");
    assert_eq!(granted, [10; 6], "a quota of 60 covers six of them");
    for (d, g) in &outcomes {
        assert!(d.allowed || (g.is_none() && d.retry_after_ms > 0), "{d:?}");
    }
}

/// Every reservation holds a lease (with the amount reserved) until its
/// settlement ends it; leases are listed oldest first, or only those
/// expired by a time.
pub async fn leases_live_until_settled<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    s.insert_key(NewKey {
        key: key("key_le", Some(1000)),
    })
    .await
    .unwrap();
    let at = |created_at, expires_at| Lease {
        created_at,
        expires_at,
        ..lease("key_le")
    };
    let (early, late) = (at(1, 100), at(2, 10_000));
    assert_eq!(s.reserve_quota(&early, 50, 50).await.unwrap(), Some(50));
    assert_eq!(s.reserve_quota(&late, 10, 30).await.unwrap(), Some(30));
    let all = s.leases(None).await.unwrap();
    let held: Vec<(&str, i64)> = all
        .iter()
        .map(|l| (l.request_id.as_str(), l.amount))
        .collect();
    assert_eq!(
        held,
        [
            (early.request_id.as_str(), 50),
            (late.request_id.as_str(), 30)
        ]
    );
    assert_eq!(all[0].key_id, "key_le");
    assert_eq!((all[0].model.as_str(), all[0].expires_at), ("m", 100));
    let expired = s.leases(Some(500)).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].request_id, early.request_id);
    // Settled twice, the second time days later (an admin released it,
    // then the request itself ended): it counts once.
    for at in [3, 3 * 86_400_000] {
        let done = settlement(&early.request_id, "key_le", 50, 1, 2, at);
        s.settle(&done).await.unwrap();
    }
    let left = s.leases(None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].request_id, late.request_id);
    let k = s.get_key("key_le").await.unwrap().unwrap();
    assert_eq!((k.quota_used, k.quota_reserved), (3, 30), "settled once");
    let q = UsageQuery {
        from_ms: 0,
        to_ms: 10 * 86_400_000,
        key_id: Some("key_le".into()),
        model: None,
    };
    let rows = s.usage_by_day(&q).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.requests).sum::<i64>(),
        1,
        "one record: {rows:?}"
    );
}

/// Keys: insert, find by hash, get, list, patch, missing ids, duplicates.
pub async fn keys_roundtrip<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    let k = s
        .insert_key(NewKey {
            key: key("key_a", Some(100)),
        })
        .await
        .unwrap();
    assert_eq!(k, key("key_a", Some(100)));
    assert_eq!(
        s.find_key_by_hash(&auth::hash_key("key_a")).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        s.find_key_by_hash(&auth::hash_key("nope")).await.unwrap(),
        None
    );
    assert_eq!(s.get_key("key_a").await.unwrap(), Some(k.clone()));
    let mut later = key("key_b", None);
    later.created_at = 2_000;
    s.insert_key(NewKey { key: later }).await.unwrap();
    let ids: Vec<String> = s
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, vec!["key_b", "key_a"], "newest first");
    let patch = KeyPatch {
        status: Some(KeyStatus::Disabled),
        rpm: Some(None),
        quota: Some(Some(5)),
        allowed_ips: Some(vec![]),
        default_model: Some(Some("m1".into())),
        ..KeyPatch::default()
    };
    let p = s.update_key("key_a", patch, 3_000).await.unwrap().unwrap();
    assert_eq!(
        (p.status, p.rpm, p.quota, p.updated_at),
        (KeyStatus::Disabled, None, Some(5), 3_000)
    );
    assert!(p.allowed_ips.is_empty());
    assert_eq!(p.allowed_models, vec!["m1"], "untouched fields stay");
    assert_eq!(p.hash, k.hash);
    assert_eq!(
        s.update_key("key_zz", KeyPatch::default(), 1)
            .await
            .unwrap(),
        None
    );
    let mut dup = key("key_c", None);
    dup.hash = k.hash.clone();
    assert!(matches!(
        s.insert_key(NewKey { key: dup }).await,
        Err(StoreError::Conflict(_))
    ));
}

/// Quota: reserve within bounds, refuse below `min`, unlimited keys.
pub async fn quota_reservation<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    s.insert_key(NewKey {
        key: key("key_q", Some(100)),
    })
    .await
    .unwrap();
    assert_eq!(
        s.reserve_quota(&lease("key_q"), 10, 10).await.unwrap(),
        Some(10)
    );
    assert_eq!(
        s.reserve_quota(&lease("key_q"), 50, 200).await.unwrap(),
        Some(90),
        "as much as is left"
    );
    assert_eq!(s.reserve_quota(&lease("key_q"), 1, 1).await.unwrap(), None);
    let k = s.get_key("key_q").await.unwrap().unwrap();
    assert_eq!((k.quota_used, k.quota_reserved), (0, 100));
    // Settling releases the reservation and charges the real usage.
    s.settle(&settlement("r1", "key_q", 10, 3, 4, 10))
        .await
        .unwrap();
    let k = s.get_key("key_q").await.unwrap().unwrap();
    assert_eq!((k.quota_used, k.quota_reserved), (7, 90));
    assert_eq!(
        s.reserve_quota(&lease("key_q"), 3, 3).await.unwrap(),
        Some(3)
    );
    assert_eq!(s.reserve_quota(&lease("key_q"), 1, 1).await.unwrap(), None);
    s.insert_key(NewKey {
        key: key("key_u", None),
    })
    .await
    .unwrap();
    assert_eq!(
        s.reserve_quota(&lease("key_u"), 1, 1_000_000)
            .await
            .unwrap(),
        Some(1_000_000)
    );
    assert_eq!(
        s.reserve_quota(&lease("key_none"), 1, 1).await.unwrap(),
        None
    );
}

/// Settling twice (a retried write) charges once and records once.
pub async fn settle_is_idempotent<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    s.insert_key(NewKey {
        key: key("key_i", Some(1_000)),
    })
    .await
    .unwrap();
    assert_eq!(
        s.reserve_quota(&lease("key_i"), 50, 50).await.unwrap(),
        Some(50)
    );
    let st = settlement("req_same", "key_i", 50, 10, 20, 86_400_000);
    s.settle(&st).await.unwrap();
    s.settle(&st).await.unwrap();
    let k = s.get_key("key_i").await.unwrap().unwrap();
    assert_eq!(
        (k.quota_used, k.quota_reserved, k.last_used_at),
        (30, 0, Some(86_400_000))
    );
    let rows = s
        .usage_by_day(&UsageQuery {
            from_ms: 0,
            to_ms: i64::MAX,
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].requests, 1);
}

/// Many concurrent reservations never hand out more than the quota.
pub async fn concurrent_reservations_never_overspend<S: Store, A: Accounting>(
    s: Arc<Subject<S, A>>,
) {
    s.insert_key(NewKey {
        key: key("key_c", Some(100)),
    })
    .await
    .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.reserve_quota(&lease("key_c"), 7, 7).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        granted += t.await.unwrap().unwrap_or(0);
    }
    assert_eq!(granted, 98, "14 reservations of 7 fit in 100");
    let k = s.get_key("key_c").await.unwrap().unwrap();
    assert_eq!(k.quota_reserved, 98);
}

/// Models: insert, find by name, list, patch, unique names, delete.
pub async fn models_roundtrip<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    let m = s
        .insert_model(NewModel {
            model: model("mdl_1", "m1"),
        })
        .await
        .unwrap();
    assert_eq!(m, model("mdl_1", "m1"));
    s.insert_model(NewModel {
        model: model("mdl_0", "a-first"),
    })
    .await
    .unwrap();
    assert_eq!(s.find_model("m1").await.unwrap(), Some(m.clone()));
    assert_eq!(s.get_model("mdl_1").await.unwrap(), Some(m.clone()));
    assert_eq!(s.find_model("nope").await.unwrap(), None);
    let names: Vec<String> = s
        .list_models()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, vec!["a-first", "m1"]);
    assert!(matches!(
        s.insert_model(NewModel {
            model: model("mdl_2", "m1")
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    let patch = ModelPatch {
        enabled: Some(false),
        api_key: Some(None),
        backend: Some(BackendKind::Ollama),
        fallback_urls: Some(vec![]),
        responses_api: Some(None),
        prices: Some(None),
        ..ModelPatch::default()
    };
    let p = s.update_model("mdl_1", patch, 9).await.unwrap().unwrap();
    assert_eq!(
        (
            p.enabled,
            p.api_key,
            p.backend,
            p.updated_at,
            p.responses_api,
            p.prices
        ),
        (false, None, BackendKind::Ollama, 9, None, None)
    );
    assert!(p.fallback_urls.is_empty(), "untouched fields stay");
    let rename = ModelPatch {
        name: Some("a-first".into()),
        ..ModelPatch::default()
    };
    assert!(matches!(
        s.update_model("mdl_1", rename, 10).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.update_model("mdl_9", ModelPatch::default(), 1)
            .await
            .unwrap(),
        None
    );
    assert!(s.delete_model("mdl_1").await.unwrap());
    assert!(!s.delete_model("mdl_1").await.unwrap());
    assert_eq!(s.find_model("m1").await.unwrap(), None);
}

/// Deployments round-trip with their keys, and a patch replaces them.
pub async fn model_deployments_roundtrip<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    let mut many = model("mdl_3", "many");
    many.deployments = vec![
        deployment("a", BackendKind::Vllm, 3, 0),
        deployment("b", BackendKind::Openai, 1, 1),
    ];
    let inserted = s
        .insert_model(NewModel {
            model: many.clone(),
        })
        .await
        .unwrap();
    assert_eq!(inserted, many);
    assert_eq!(s.find_model("many").await.unwrap(), Some(many.clone()));
    let one = vec![deployment("c", BackendKind::Ollama, 2, 0)];
    let patch = ModelPatch {
        deployments: Some(one.clone()),
        ..ModelPatch::default()
    };
    let p = s.update_model("mdl_3", patch, 11).await.unwrap().unwrap();
    assert_eq!(p.deployments, one);
    let patch = ModelPatch {
        deployments: Some(vec![]),
        ..ModelPatch::default()
    };
    let p = s.update_model("mdl_3", patch, 12).await.unwrap().unwrap();
    assert!(p.deployments.is_empty());
    assert!(s.delete_model("mdl_3").await.unwrap());
}

/// What a patch does beyond setting a field: a new period restarts its
/// window, a set figure counts in the window named, a base URL loses its
/// trailing slash, an empty upstream key is none.
pub async fn patches_mean_the_same_everywhere<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    let mut k = key("key_p", Some(5));
    k.quota_window = 1_000;
    s.insert_key(NewKey { key: k }).await.unwrap();
    // A new period starts its window afresh; a set figure counts in the
    // window the patch names.
    let patch = KeyPatch {
        quota_period: Some(Period::Daily),
        budget_period: Some(Period::Monthly),
        budget_used_nanos: Some(7),
        budget_window: Some(86_400_000),
        tpm: Some(Some(1_000)),
        allowed_tools: Some(vec!["docs".into()]),
        ..KeyPatch::default()
    };
    let p = s.update_key("key_p", patch, 4_000).await.unwrap().unwrap();
    assert_eq!(p.allowed_tools, ["docs"]);
    assert_eq!(
        (
            p.quota_period,
            p.quota_window,
            p.budget_period,
            p.budget_window
        ),
        (Period::Daily, 0, Period::Monthly, 86_400_000)
    );
    assert_eq!(
        (p.budget_used_nanos, p.tpm, p.quota),
        (7, Some(1_000), Some(5))
    );
    s.insert_model(NewModel {
        model: model("mdl_p", "patched"),
    })
    .await
    .unwrap();
    let patch = ModelPatch {
        base_url: Some("http://moved:8000/v1/".into()),
        api_key: Some(Some("".into())),
        ..ModelPatch::default()
    };
    let p = s.update_model("mdl_p", patch, 8).await.unwrap().unwrap();
    assert_eq!(p.base_url, "http://moved:8000/v1", "no trailing slash");
    assert_eq!(p.api_key, None, "an empty key is none");
    let priced = ModelPatch {
        prices: Some(model("mdl_p", "m1").prices),
        ..ModelPatch::default()
    };
    let p = s.update_model("mdl_p", priced, 9).await.unwrap().unwrap();
    assert_eq!(p.prices, model("mdl_p", "m1").prices);
    let native = ModelPatch {
        responses_api: Some(Some(ResponsesApi::Native)),
        messages_api: Some(Some(MessagesApi::Native)),
        ..ModelPatch::default()
    };
    let p = s.update_model("mdl_p", native, 9).await.unwrap().unwrap();
    assert_eq!(p.responses_api, Some(ResponsesApi::Native));
    assert_eq!(p.messages_api, Some(MessagesApi::Native));
    let back = ModelPatch {
        messages_api: Some(None),
        backend: Some(BackendKind::Anthropic),
        ..ModelPatch::default()
    };
    let p = s.update_model("mdl_p", back, 9).await.unwrap().unwrap();
    assert_eq!((p.messages_api, p.backend), (None, BackendKind::Anthropic));
}

/// Usage: grouped by UTC day, key, model, endpoint and deployment;
/// filtered by range, key, model.
pub async fn usage_report<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    const DAY: i64 = 86_400_000;
    for k in ["key_x", "key_y"] {
        s.insert_key(NewKey { key: key(k, None) }).await.unwrap();
    }
    let mut embed = settlement("u0", "key_y", 0, 7, 0, DAY + 7);
    embed.usage.endpoint = Some("embeddings".into());
    s.settle(&embed).await.unwrap();
    s.settle(&settlement("u1", "key_x", 0, 1, 2, DAY))
        .await
        .unwrap();
    s.settle(&settlement("u2", "key_x", 0, 10, 20, DAY + 5))
        .await
        .unwrap();
    s.settle(&settlement("u3", "key_y", 0, 100, 200, DAY + 6))
        .await
        .unwrap();
    let mut second = settlement("u5", "key_y", 0, 50, 0, DAY + 8);
    second.usage.deployment = Some("z-second".into());
    s.settle(&second).await.unwrap();
    let mut failed = settlement("u4", "key_x", 0, 0, 0, 2 * DAY);
    failed.usage.cost_nanos = None;
    failed.usage.error = Some("upstream_timeout".into());
    failed.usage.status = 504;
    s.settle(&failed).await.unwrap();
    let all = s
        .usage_by_day(&UsageQuery {
            from_ms: 0,
            to_ms: 3 * DAY,
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(
        (all[0].day.as_str(), all[0].key_id.as_str()),
        ("1970-01-02", "key_x")
    );
    let by_endpoint: Vec<(&str, Option<&str>, Option<&str>, i64)> = all[1..4]
        .iter()
        .map(|r| {
            let (e, d) = (r.endpoint.as_deref(), r.deployment.as_deref());
            (r.key_id.as_str(), e, d, r.prompt_tokens)
        })
        .collect();
    assert_eq!(
        by_endpoint,
        [
            ("key_y", Some("chat"), Some("primary"), 100),
            ("key_y", Some("chat"), Some("z-second"), 50),
            ("key_y", Some("embeddings"), Some("primary"), 7)
        ]
    );
    assert_eq!(
        (
            all[0].requests,
            all[0].prompt_tokens,
            all[0].completion_tokens,
            all[0].errors
        ),
        (2, 11, 22, 0)
    );
    // Cached tokens and cost add up (1/2 + 10/2 cached; 1 + 20 and 10 +
    // 200 nano-dollars); a record without a cost adds nothing.
    assert_eq!((all[0].cached_tokens, all[0].cost_nanos), (5, 231));
    assert_eq!((all[4].day.as_str(), all[4].errors), ("1970-01-03", 1));
    assert_eq!((all[4].cached_tokens, all[4].cost_nanos), (0, 0));
    let q = UsageQuery {
        from_ms: 0,
        to_ms: 3 * DAY,
        key_id: Some("key_y".into()),
        model: None,
    };
    assert_eq!(s.usage_by_day(&q).await.unwrap().len(), 3);
    let q = UsageQuery {
        from_ms: 2 * DAY,
        to_ms: 3 * DAY,
        ..UsageQuery::default()
    };
    assert_eq!(s.usage_by_day(&q).await.unwrap().len(), 1);
    let q = UsageQuery {
        from_ms: 0,
        to_ms: 3 * DAY,
        key_id: None,
        model: Some("other".into()),
    };
    assert!(s.usage_by_day(&q).await.unwrap().is_empty());
}

/// Stored responses: put, get verbatim, replace, expire for reads at
/// once, list a key's newest first, delete, and purge only what expired,
/// in bounded batches.
pub async fn responses_roundtrip<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    let r = stored_response("resp_1", "key_a", 1_000, 10_000);
    s.put_response(&r).await.unwrap();
    assert_eq!(
        s.get_response("resp_1", 5_000).await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(s.get_response("resp_nope", 5_000).await.unwrap(), None);
    assert_eq!(
        s.get_response("resp_1", 10_000).await.unwrap(),
        None,
        "expired"
    );
    let mut changed = r.clone();
    changed.response = r#"{"id":"resp_1","status":"completed"}"#.into();
    changed.previous_response_id = None;
    s.put_response(&changed).await.unwrap();
    assert_eq!(
        s.get_response("resp_1", 5_000).await.unwrap(),
        Some(changed)
    );
    assert!(s.delete_response("resp_1").await.unwrap());
    assert!(!s.delete_response("resp_1").await.unwrap());
    assert_eq!(s.get_response("resp_1", 5_000).await.unwrap(), None);

    for i in 0..5 {
        s.put_response(&stored_response(
            &format!("resp_old{i}"),
            "key_a",
            1,
            100 + i,
        ))
        .await
        .unwrap();
    }
    let live = stored_response("resp_live", "key_b", 1, 1_000_000);
    s.put_response(&live).await.unwrap();
    let mut purged = 0;
    for _ in 0..10 {
        let n = s.purge_responses(10_000, 2).await.unwrap();
        assert!(n <= 2, "a batch is bounded");
        purged += n;
    }
    // Stores whose engine expires items itself purge nothing; either way
    // nothing expired is readable and the live one stays.
    assert!(purged == 5 || purged == 0, "{purged}");
    for i in 0..5 {
        let id = format!("resp_old{i}");
        assert_eq!(s.get_response(&id, 10_000).await.unwrap(), None);
    }
    assert_eq!(
        s.get_response("resp_live", 10_000).await.unwrap(),
        Some(live)
    );

    s.put_response(&stored_response("resp_newer", "key_b", 2, 1_000_000))
        .await
        .unwrap();
    let ids = |l: Vec<ResponseSummary>| l.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let listed = s.list_responses("key_b", 10_000, 10).await.unwrap();
    assert_eq!(ids(listed), ["resp_newer", "resp_live"]);
    let one = s.list_responses("key_b", 10_000, 1).await.unwrap();
    assert_eq!(
        one,
        [stored_response("resp_newer", "key_b", 2, 1_000_000).summary()]
    );
    let expired = s.list_responses("key_a", 10_000, 10).await.unwrap();
    assert!(expired.is_empty(), "{expired:?}");
    assert!(s.delete_response("resp_live").await.unwrap());
    let left = s.list_responses("key_b", 10_000, 10).await.unwrap();
    assert_eq!(ids(left), ["resp_newer"]);
}

/// Generate one `#[tokio::test]` per conformance case for a store.
/// `$make` is an expression giving a fresh, empty store; with `guarded`, it
/// gives `Option<(store, guard)>`, the guard (e.g. the store's server
/// process) living until the case ends (`None`: a service is missing, the
/// case is skipped); with `accounts`, `Option<(Subject, guard)>`: a store
/// with counters in front of it.
#[macro_export]
macro_rules! store_conformance {
    (guarded $make:expr) => {
        $crate::store_conformance!(accounts $make.map(|(store, guard)| ($crate::subject::Subject::own(store), guard)));
    };
    (accounts $make:expr) => {
        $crate::store_conformance!(@cases $make; keys_roundtrip, quota_reservation, settle_is_idempotent,
            concurrent_reservations_never_overspend, models_roundtrip, usage_report, leases_live_until_settled,
            responses_roundtrip, windows_roll_at_the_boundary, concurrent_budget_never_overspent,
            model_deployments_roundtrip, patches_mean_the_same_everywhere, mcp_servers_roundtrip,
            usage_records_newest_first);
    };
    ($make:expr) => {
        $crate::store_conformance!(guarded Some(($make, ())));
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                // `None`: a service the store needs is missing (skipped).
                let Some((subject, _guard)) = $make else { return };
                $crate::conformance::$case(::std::sync::Arc::new(subject)).await;
            }
        )*
    };
}
