//! Waiting out transient trouble while a term starts.

use std::time::Duration;

use sluice_core::retry::{retry, RetryPolicy};
use sluice_core::Classify as _;
use tokio_util::sync::CancellationToken;

use crate::error::PipelineError;

/// How the runtime waits out transient trouble while starting a term
/// (etcd, the target): 250 ms doubling to 5 s, until shutdown.
const STARTUP_RETRY: RetryPolicy =
    RetryPolicy::unbounded(Duration::from_millis(250), Duration::from_secs(5));

/// Runs `op` under [`STARTUP_RETRY`] until it succeeds or fails definitely;
/// `None` once `stop` fires.
pub(super) async fn retry_transient<T, F, Fut>(
    what: &str,
    stop: &CancellationToken,
    op: F,
) -> Result<Option<T>, PipelineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PipelineError>>,
{
    retry(
        &STARTUP_RETRY,
        stop.cancelled(),
        |e: &PipelineError, a| {
            debug_assert!(e.class().is_transient());
            metrics::counter!("sluice_errors_total", "class" => "transient", "stage" => "runtime")
                .increment(1);
            tracing::warn!(error = %e, retry_in_ms = a.wait.as_millis() as u64, "{what} failed; retrying");
        },
        op,
    )
    .await
    .into_result()
}
