use clap::Parser;
use dev_sidecar::{config::Config, startup::Application};
use todo_core::{
    config::{ProcessEnv, TelemetryConfig},
    shutdown, telemetry,
};

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// glibc gives each thread that allocates under contention an arena of its
/// own and rarely returns their freed memory; under a full bench that left
/// dev-sidecar at 72 MB RSS, 53 MB with two arenas (docs/benchmarks.md).
/// Set before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; no thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = telemetry::init(&TelemetryConfig::from_env(&ProcessEnv, "dev-sidecar")?)?;
    let app = Application::build(config).await?;
    if let Some(admin) = app.admin_addr() {
        tracing::info!(%admin, "inspection surface (HTTP): /topics /lag /dead-letters /jobs /subscriptions");
    }
    let result = app.run_until_stopped(shutdown::cancel_on_signal()).await;
    tracing::info!("dev-sidecar stopped");
    telemetry.shutdown();
    Ok(result?)
}
