//! The one shutdown mechanism every service uses.
//!
//! A [`CancellationToken`] is the shutdown value: every long-running task
//! holds a clone and selects on `cancelled()`. [`cancel_on_signal`] cancels it
//! on SIGTERM (what Kubernetes and `dapr run` send) or Ctrl-C, so servers stop
//! accepting, drain in-flight work and return.

pub use tokio_util::sync::CancellationToken;

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = async {
        // An error means no handler could be installed; then only SIGTERM stops us.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// Returns a token that is cancelled on the first SIGTERM or Ctrl-C.
pub fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        signal().await;
        trigger.cancel();
    });
    token
}
