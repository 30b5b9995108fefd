//! Store conformance for usage records read back one by one: newest
//! first, filtered by range, key, model and API, at most a limit, a tool
//! call's argument shape kept as written.

use std::sync::Arc;

use modelgate_core::domain::{NewKey, RecordQuery, UsageQuery};
use modelgate_core::ports::{Accounting, Store};

use crate::records::{key, settlement};
use crate::subject::Subject;

/// Records newest first, filtered and limited, written fields intact.
pub async fn usage_records_newest_first<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    const DAY: i64 = 86_400_000;
    for k in ["key_r", "key_s"] {
        s.insert_key(NewKey { key: key(k, None) }).await.unwrap();
    }
    let mut call = settlement("r3", "key_r", 0, 0, 0, 2 * DAY + 5);
    call.usage.endpoint = Some("mcp".into());
    call.usage.model = "docs_search".into();
    call.usage.deployment = Some("docs".into());
    call.usage.error = Some("tool_error".into());
    call.usage.cost_nanos = None;
    call.usage.arguments = Some(r#"{"query":"string","limit":"integer"}"#.into());
    for settled in [
        settlement("r1", "key_r", 0, 1, 2, DAY),
        settlement("r2", "key_s", 0, 3, 4, DAY + 1),
        call.clone(),
        settlement("r4", "key_r", 0, 5, 6, 2 * DAY + 5),
        settlement("r5", "key_r", 0, 7, 8, 3 * DAY),
    ] {
        s.settle(&settled).await.unwrap();
    }
    let query = |key_id: Option<&str>, endpoint: Option<&str>, limit| RecordQuery {
        usage: UsageQuery {
            from_ms: 0,
            to_ms: 3 * DAY,
            key_id: key_id.map(str::to_owned),
            model: None,
        },
        endpoint: endpoint.map(str::to_owned),
        limit,
    };
    let ids = |q: RecordQuery| {
        let s = Arc::clone(&s);
        async move {
            let found = s.usage_records(&q).await.unwrap();
            found.into_iter().map(|r| r.request_id).collect::<Vec<_>>()
        }
    };
    // Newest first; at one instant by request id, descending; `to` is
    // exclusive (r5 is at it).
    assert_eq!(ids(query(None, None, 10)).await, ["r4", "r3", "r2", "r1"]);
    assert_eq!(ids(query(None, None, 2)).await, ["r4", "r3"]);
    assert_eq!(
        ids(query(Some("key_r"), None, 10)).await,
        ["r4", "r3", "r1"]
    );
    assert_eq!(ids(query(None, Some("mcp"), 10)).await, ["r3"]);
    assert!(ids(query(None, None, 0)).await.is_empty());
    let read = s.usage_records(&query(None, Some("mcp"), 1)).await.unwrap();
    assert_eq!(read, [call.usage]);
}
