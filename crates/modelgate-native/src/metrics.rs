//! The process's metrics recorder: the core's figures (see
//! `modelgate_core::observe`) kept for `GET /metrics` in the Prometheus text
//! format, with real histograms (explicit buckets), not summaries.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use modelgate_core::observe;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often pending histogram samples are folded into their buckets: at
/// 20,000 requests a second, a few MB wait at most.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

static UPKEEPS: AtomicU64 = AtomicU64::new(0);

/// How many upkeeps have run: a test waits for one instead of guessing
/// how long the thread takes on a busy machine.
pub fn upkeeps() -> u64 {
    UPKEEPS.load(Ordering::Acquire)
}

/// Install the recorder for this process (once; later calls do nothing).
pub fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let buckets: [(&str, &[f64]); 5] = [
        (observe::DURATION, &observe::DURATION_BUCKETS[..]),
        (observe::MCP_DURATION, &observe::DURATION_BUCKETS[..]),
        (observe::FIRST_TOKEN, &observe::DURATION_BUCKETS[..]),
        (observe::TOKENS, &observe::TOKEN_BUCKETS[..]),
        (observe::OVERHEAD, &observe::OVERHEAD_BUCKETS[..]),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, bounds) in buckets {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.into()), bounds)
            .map_err(|e| e.to_string())?;
    }
    let handle = builder.install_recorder().map_err(|e| e.to_string())?;
    // Histogram samples wait in the recorder until a scrape or an upkeep
    // folds them into their buckets; `install_recorder` runs no upkeep, so
    // with nobody scraping every request's samples stayed (~100 bytes a
    // request: 20 MB more RSS per 10 s at saturation, without end).
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
                UPKEEPS.fetch_add(1, Ordering::Release);
            }
        })
        .map_err(|e| format!("metrics upkeep thread: {e}"))?;
    let _ = HANDLE.set(handle);
    observe::describe();
    Ok(())
}

/// The metrics now, if the recorder is installed.
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}
