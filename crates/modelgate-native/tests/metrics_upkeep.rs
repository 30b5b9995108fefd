//! Histogram samples do not pile up when nobody scrapes `/metrics`. A file
//! of its own: the recorder is global to the test process, and the test
//! reads the process's resident memory.

use std::time::{Duration, Instant};

use modelgate_core::observe;
use modelgate_native::metrics::{UPKEEP_EVERY, install, upkeeps};

/// Samples per round: ~16 MB of them waiting, unfolded.
const SAMPLES: usize = 1 << 20;
const ROUNDS: usize = 3;

fn resident_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb / 1024
}

/// Far longer than two upkeeps take on any machine: only a thread that
/// never runs reaches it, and then the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// Wait until an upkeep has begun and ended after now: every sample
/// recorded before is folded.
fn folded() {
    let seen = upkeeps();
    let deadline = Instant::now() + PATIENCE;
    while upkeeps() < seen + 2 {
        assert!(Instant::now() < deadline, "no upkeep ran");
        std::thread::sleep(UPKEEP_EVERY / 10);
    }
}

#[test]
fn unscraped_histograms_stay_bounded() {
    install().unwrap();
    let h = metrics::histogram!(observe::DURATION, "gen_ai.operation.name" => "chat");
    let round = |h: &metrics::Histogram| (0..SAMPLES).for_each(|i| h.record(i as f64));
    // A first round, folded, so the steady state is what is measured.
    round(&h);
    folded();
    let before = resident_mb();
    for _ in 0..ROUNDS {
        round(&h);
        folded();
    }
    let grown = resident_mb().saturating_sub(before);
    // Kept, the rounds add ~50 MB (measured without the upkeep); folded,
    // each round's samples are freed before the next and the memory reused
    // (measured: no growth).
    assert!(grown < 24, "resident memory grew {grown} MB");
}
