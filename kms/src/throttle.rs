//! Bounds what callers without a certificate can make the centre write: refused and ignored
//! unseal attempts.
//!
//! Unseal needs no client certificate (a share is its own credential), so anyone who reaches
//! the port can send forged shares. Each refusal is a security event, but one durable audit
//! write per forged share would let an anonymous peer make the server fsync without bound. So
//! within each 60-second window the first [`IMMEDIATE`] such attempts are written at once, each
//! as its own record; later ones are counted, and the next record written says how many were
//! left out before it (`suppressed`). Accepted shares and completed attempts are never
//! throttled.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Length of a window.
const WINDOW: Duration = Duration::from_secs(60);
/// Attempts written at once per window.
const IMMEDIATE: u32 = 20;

/// The windowed count of throttled attempts.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    started: Option<SystemTime>,
    written: u32,
    /// Attempts not written since the last record.
    suppressed: u64,
}

impl Throttle {
    /// `Some(n)` when the attempt at `now` is to be written, `n` being how many were left out
    /// since the last written one; `None` when it is only counted.
    pub(crate) fn admit(&self, now: SystemTime) -> Option<u64> {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = window
            .started
            .is_none_or(|started| now.duration_since(started).map_or(true, |d| d >= WINDOW));
        if expired {
            window.started = Some(now);
            window.written = 0;
        }
        if window.written >= IMMEDIATE {
            window.suppressed = window.suppressed.saturating_add(1);
            return None;
        }
        window.written += 1;
        Some(std::mem::take(&mut window.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_bounded_number_per_window_and_counts_the_rest() {
        let throttle = Throttle::default();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let written = (0..1000)
            .filter(|_| throttle.admit(start).is_some())
            .count();
        assert_eq!(written, 20);
        let next = start + WINDOW;
        assert_eq!(
            throttle.admit(next),
            Some(980),
            "the next record counts the rest"
        );
        assert_eq!(throttle.admit(next), Some(0));
    }
}
