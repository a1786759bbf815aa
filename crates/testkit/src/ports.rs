//! Free loopback ports.
//!
//! Ports are drawn at random from 20000..32000 — below Linux's ephemeral range
//! (32768..) so outgoing connections never hold them — and checked by binding
//! 127.0.0.1. Between the check and the server's own bind another process may
//! take the port; callers handle that by retrying on a fresh port, which is
//! why this returns a candidate rather than a reservation.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const LOW: u16 = 20000;
const HIGH: u16 = 32000;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// splitmix64: a tiny well-mixed generator; ports need spread, not secrecy.
fn next_random() -> u64 {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A loopback port that was free a moment ago and that this process has not
/// handed out before.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = guard.get_or_insert_with(HashSet::new);
    loop {
        let port = LOW + (next_random() % u64::from(HIGH - LOW)) as u16;
        if handed.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.insert(port);
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port is never handed out twice by one process and stays in the
    /// range below the ephemeral ports. (Whether it is *still* free a moment
    /// later is a race by nature: servers retry on a clash.)
    #[test]
    fn ports_are_distinct_and_in_range() {
        let ports: HashSet<u16> = (0..200).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 200);
        assert!(ports.iter().all(|p| (LOW..HIGH).contains(p)));
    }
}
