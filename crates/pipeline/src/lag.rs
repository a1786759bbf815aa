//! Replication lag: the one definition behind every place that shows it —
//! `/status`, `/metrics` (`sluice_lag_seconds`), the lag alarm, the progress
//! log line, the node record in etcd, `sluice status` and `sluice positions`.
//!
//! **Lag is now minus the time up to which the target is known to hold every
//! change of the source** (its *applied-as-of* time), in whole seconds. Two
//! facts establish that time, and the later one wins:
//!
//! 1. the source timestamp of the last change Load applied (its binlog
//!    event's time, in the source's clock, whole seconds); and
//! 2. the last heartbeat Select received while every change received before
//!    it was applied (nothing in flight). A source sends a heartbeat only
//!    when its binlog had nothing new for one heartbeat period (1 s), so a
//!    heartbeat says "you have everything up to now", and it vouches for
//!    one more period (the next heartbeat or change is due by then) — so
//!    that an idle pipeline reads 0, not a 0/1 s flicker with the phase of
//!    the heartbeats.
//!
//! So an idle, healthy pipeline shows 0, while a stuck one — the source silent (no heartbeats: connection gone,
//! server hung) or Load not getting through — shows lag growing from the
//! moment it stopped. A busy pipeline shows the age of the last change it
//! applied. Without a running active node only fact 1 is known (it is
//! stored with the acknowledged position), so lag grows: nothing is watching
//! the source. Unknown (`None`) before either fact exists (no change
//! applied and no heartbeat yet).
//!
//! Fact 1 compares the source's clock with ours: clock skew between the
//! hosts shows up as lag (or hides some), as in every binlog-based tool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The applied-as-of time (Unix ms): the later of the last applied event's
/// source time (Unix seconds) and a time at which the target was known to be
/// complete (Unix ms, from a heartbeat while nothing was in flight).
pub fn applied_as_of_ms(
    last_applied_event_s: Option<u64>,
    complete_at_ms: Option<u64>,
) -> Option<u64> {
    let by_event = last_applied_event_s.filter(|&s| s > 0).map(|s| s * 1000);
    by_event.max(complete_at_ms.filter(|&ms| ms > 0))
}

/// Lag in whole seconds at `now_ms` (Unix ms) for an applied-as-of time from
/// [`applied_as_of_ms`]; `None` when that is unknown.
pub fn lag_seconds(now_ms: u64, applied_as_of_ms: Option<u64>) -> Option<u64> {
    applied_as_of_ms.map(|as_of| now_ms.saturating_sub(as_of) / 1000)
}

/// Heartbeats Select received from the source. Cheap to clone; every clone
/// shares the value.
#[derive(Debug, Clone)]
pub struct Heartbeats {
    /// Unix ms of the last heartbeat, 0 for never.
    last: Arc<AtomicU64>,
    period_ms: u64,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats::new(std::time::Duration::from_secs(1))
    }
}

impl Heartbeats {
    /// For a dump that asked the source for a heartbeat every `period`.
    pub fn new(period: std::time::Duration) -> Self {
        Heartbeats {
            last: Arc::new(AtomicU64::new(0)),
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Select received a heartbeat now.
    pub fn beat(&self) {
        self.last
            .store(sluice_core::time::unix_ms(), Ordering::Relaxed);
    }

    /// Until when (Unix ms) the last heartbeat vouches that nothing new was
    /// written: its arrival plus one period. `None` before the first.
    pub fn vouched_until_ms(&self) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        (last > 0).then(|| last.saturating_add(self.period_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_later_fact_wins() {
        // Busy: the last applied change is 5 s old, no heartbeat since.
        let as_of = applied_as_of_ms(Some(1_000), None);
        assert_eq!(lag_seconds(1_005_400, as_of), Some(5));
        // Idle and caught up: a heartbeat 300 ms ago, the last change an
        // hour old — lag 0, not an hour.
        let as_of = applied_as_of_ms(Some(1_000), Some(4_600_100));
        assert_eq!(lag_seconds(4_600_400, as_of), Some(0));
        // Stuck: the last heartbeat while caught up was 42 s ago.
        assert_eq!(lag_seconds(4_642_100, as_of), Some(42));
        // Nothing known yet.
        assert_eq!(applied_as_of_ms(None, None), None);
        assert_eq!(applied_as_of_ms(Some(0), Some(0)), None);
        assert_eq!(lag_seconds(1, None), None);
        // A source clock ahead of ours is no negative lag.
        assert_eq!(
            lag_seconds(999_000, applied_as_of_ms(Some(1_000), None)),
            Some(0)
        );
    }

    #[test]
    fn heartbeats_are_shared_and_vouch_for_one_period() {
        let a = Heartbeats::new(std::time::Duration::from_millis(1500));
        assert_eq!(a.vouched_until_ms(), None);
        let b = a.clone();
        let before = sluice_core::time::unix_ms();
        b.beat();
        let until = a.vouched_until_ms().expect("a heartbeat");
        assert!(until >= before + 1500 && until <= sluice_core::time::unix_ms() + 1500);
        // An as-of time in the future is lag 0.
        assert_eq!(lag_seconds(before, Some(until)), Some(0));
    }
}
