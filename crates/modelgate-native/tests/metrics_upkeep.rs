//! Histogram samples do not pile up when nobody scrapes `/metrics`. A file
//! of its own: the recorder is global to the test process, and the test
//! reads the process's resident memory.

use modelgate_core::observe;
use modelgate_native::metrics::{UPKEEP_EVERY, install};

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

#[test]
fn unscraped_histograms_stay_bounded() {
    install().unwrap();
    let h = metrics::histogram!(observe::DURATION, "gen_ai.operation.name" => "chat");
    let round = |h: &metrics::Histogram| (0..SAMPLES).for_each(|i| h.record(i as f64));
    // A first round, folded, so the steady state is what is measured.
    round(&h);
    std::thread::sleep(UPKEEP_EVERY * 3);
    let before = resident_mb();
    for _ in 0..ROUNDS {
        round(&h);
        // Three upkeep periods: one of them runs, even on a busy machine.
        std::thread::sleep(UPKEEP_EVERY * 3);
    }
    let grown = resident_mb().saturating_sub(before);
    // Kept, the rounds add ~50 MB (measured without the upkeep); folded,
    // each round's samples are freed before the next and the memory reused
    // (measured: no growth).
    assert!(grown < 24, "resident memory grew {grown} MB");
}
