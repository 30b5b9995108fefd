//! The process's metrics recorder: the core's figures (see
//! `modelgate_core::observe`) kept for `GET /metrics` in the Prometheus text
//! format, with real histograms (explicit buckets), not summaries.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use modelgate_core::observe;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the recorder for this process (once; later calls do nothing).
pub fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let buckets: [(&str, &[f64]); 4] = [
        (observe::DURATION, &observe::DURATION_BUCKETS[..]),
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
    let _ = HANDLE.set(handle);
    observe::describe();
    Ok(())
}

/// The metrics now, if the recorder is installed.
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}
