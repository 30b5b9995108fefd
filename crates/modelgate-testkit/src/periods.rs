//! Store conformance for periods and budgets: counters that start again
//! in a later window (with explicit windows, as a clock would give them),
//! charges that stay in the window that reserved them, and money that is
//! never overspent under concurrency.

use std::sync::Arc;

use modelgate_core::domain::{Ask, Grant, NewKey};
use modelgate_core::period::Period;
use modelgate_core::ports::{Accounting, Store};

use crate::records::{key, lease, settlement};
use crate::subject::Subject;

const DAY: i64 = 86_400_000;

fn ask(tokens: i64, money: i64, quota_window: i64, budget_window: i64) -> Ask {
    Ask {
        tokens: (tokens, tokens),
        money: (money, money),
        quota_window,
        budget_window,
    }
}

/// A monthly quota of 100 tokens and a daily budget of 1,000 nano-dollars:
/// each counter refuses past its limit within its window, starts from
/// zero in the next (the other keeps counting), and a request reserved in
/// a window that has ended is charged nowhere.
pub async fn windows_roll_at_the_boundary<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    let mut k = key("key_p", Some(100));
    (k.quota_period, k.quota_window) = (Period::Monthly, 30 * DAY);
    (k.budget_nanos, k.budget_period, k.budget_window) = (Some(1_000), Period::Daily, 30 * DAY);
    s.insert_key(NewKey { key: k }).await.unwrap();
    let (month, day1, day2) = (30 * DAY, 30 * DAY, 31 * DAY);
    let first = lease("key_p");
    let got = s.reserve(&first, &ask(60, 400, month, day1)).await.unwrap();
    assert_eq!(
        got,
        Some(Grant {
            tokens: 60,
            money: 400
        })
    );
    // 40 tokens left: 50 do not fit; 600 nano-dollars left: 700 do not.
    for short in [ask(50, 1, month, day1), ask(1, 700, month, day1)] {
        assert_eq!(s.reserve(&lease("key_p"), &short).await.unwrap(), None);
    }
    let mut done = settlement(&first.request_id, "key_p", 60, 20, 30, day1 + 5);
    (done.reserved_money, done.quota_window, done.budget_window) = (400, month, day1);
    done.usage.cost_nanos = Some(300);
    s.settle(&done).await.unwrap();
    let k = s.get_key("key_p").await.unwrap().unwrap();
    assert_eq!((k.quota_used, k.quota_reserved), (50, 0));
    assert_eq!((k.budget_used_nanos, k.budget_reserved_nanos), (300, 0));
    // Reserved on day 1, settled after day 2 began: charged nowhere.
    let late = lease("key_p");
    let got = s.reserve(&late, &ask(10, 100, month, day1)).await.unwrap();
    assert_eq!(
        got,
        Some(Grant {
            tokens: 10,
            money: 100
        })
    );
    // Day 2: the whole budget again, the quota still counting the month.
    let next = lease("key_p");
    let got = s.reserve(&next, &ask(10, 900, month, day2)).await.unwrap();
    assert_eq!(
        got,
        Some(Grant {
            tokens: 10,
            money: 900
        })
    );
    let mut settled_late = settlement(&late.request_id, "key_p", 10, 5, 5, day2 + 1);
    (settled_late.reserved_money, settled_late.quota_window) = (100, month);
    settled_late.budget_window = day1;
    settled_late.usage.cost_nanos = Some(80);
    s.settle(&settled_late).await.unwrap();
    let k = s.get_key("key_p").await.unwrap().unwrap();
    assert_eq!((k.quota_used, k.quota_reserved), (60, 10));
    assert_eq!(k.budget_window, day2);
    assert_eq!((k.budget_used_nanos, k.budget_reserved_nanos), (0, 900));
    // A new month: the quota counts from zero.
    let got = s
        .reserve(&lease("key_p"), &ask(90, 0, 61 * DAY, day2))
        .await;
    assert_eq!(
        got.unwrap(),
        Some(Grant {
            tokens: 90,
            money: 0
        })
    );
    let k = s.get_key("key_p").await.unwrap().unwrap();
    assert_eq!(
        (k.quota_used, k.quota_reserved, k.quota_window),
        (0, 100, 61 * DAY)
    );
}

/// Fifty concurrent reservations on a budget of a few requests' cost:
/// exactly as many as fit are granted; settled at their cost, the budget
/// is spent to the nano-dollar, past the reservations only by what the
/// requests cost beyond them.
pub async fn concurrent_budget_never_overspent<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    let mut k = key("key_cb", None);
    (k.budget_nanos, k.budget_period, k.budget_window) = (Some(1_000), Period::Daily, DAY);
    s.insert_key(NewKey { key: k }).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let l = lease("key_cb");
                let got = s.reserve(&l, &ask(1, 300, 0, DAY)).await.unwrap();
                if let Some(g) = got {
                    let mut done = settlement(&l.request_id, "key_cb", g.tokens, 1, 0, DAY + 1);
                    (done.reserved_money, done.budget_window) = (g.money, DAY);
                    // Costlier than reserved: charged in full.
                    done.usage.cost_nanos = Some(g.money + 50);
                    s.settle(&done).await.unwrap();
                }
                got.is_some()
            })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.unwrap());
    }
    assert_eq!(granted, 3, "3 reservations of 300 fit in 1,000");
    let k = s.get_key("key_cb").await.unwrap().unwrap();
    assert_eq!((k.budget_used_nanos, k.budget_reserved_nanos), (1_050, 0));
}
