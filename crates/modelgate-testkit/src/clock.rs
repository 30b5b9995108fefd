//! A clock that moves only when the test says so, for the ports that take
//! one (`NativePorts::with_clock`): a test of something that lasts "until
//! two seconds from now" advances the clock by two seconds instead of
//! sleeping, so its verdict does not depend on how fast the machine is.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as the test sets them.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at the system's time now.
    pub fn new() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::at(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// A clock stopped at `ms`.
    pub fn at(ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(ms)))
    }

    /// The time it shows.
    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Move it `ms` forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// The reading function ports take.
    pub fn reader(&self) -> Arc<dyn Fn() -> i64 + Send + Sync> {
        let ms = Arc::clone(&self.0);
        Arc::new(move || ms.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_moves_only_when_told() {
        let c = ManualClock::at(1_000);
        let read = c.reader();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!((c.now_ms(), read()), (1_000, 1_000));
        c.advance(2_500);
        assert_eq!((c.now_ms(), read()), (3_500, 3_500));
    }
}
