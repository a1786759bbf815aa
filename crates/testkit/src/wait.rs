//! Polling with a deadline: the only way tests wait for something.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{KitError, Result};

/// Polls `check` every `every` until it returns `Some`, or fails with
/// [`KitError::Timeout`] naming `what` once `timeout` has passed.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(KitError::Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(every);
    }
}

/// Async form of [`wait_until`]: polls the future-producing `check`.
pub async fn wait_until_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(KitError::Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_once_condition_holds() {
        let mut n = 0;
        let v = wait_until(
            "n reaches 3",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                (n >= 3).then_some(n)
            },
        )
        .expect("condition holds");
        assert_eq!(v, 3);
    }

    #[test]
    fn times_out_with_the_condition_named() {
        let err = wait_until::<()>(
            "never",
            Duration::from_millis(20),
            Duration::from_millis(5),
            || None,
        )
        .expect_err("must time out");
        assert!(err.to_string().contains("waiting for never"), "{err}");
    }
}
