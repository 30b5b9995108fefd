//! The conformance suite for PostgreSQL with its counters in Redis (the
//! native server's `MG_DATABASE_URL` with `MG_REDIS_URL`): both real
//! servers, each started by the test on a free port.

use std::sync::Arc;

use modelgate_postgres::{Options, PgStore};
use modelgate_redis::RedisCounters;
use modelgate_testkit::service::Service;
use modelgate_testkit::subject::Subject;

type Counted = Subject<PgStore, RedisCounters<PgStore>>;

async fn fresh() -> Option<(Counted, (Service, Service))> {
    let (pg, redis) = (Service::postgres()?, Service::redis()?);
    let url = format!("{}/postgres?user=modelgate", pg.url("postgres"));
    let store = Arc::new(PgStore::open(&url, Options::default()).await.unwrap());
    let accounts = RedisCounters::new(Arc::clone(&store), &redis.url("redis")).unwrap();
    Some((Subject::new(store, accounts), (pg, redis)))
}

modelgate_testkit::store_conformance!(accounts fresh().await);
