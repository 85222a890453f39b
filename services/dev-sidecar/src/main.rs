use clap::Parser;
use dev_sidecar::{config::Config, startup::Application};
use todo_core::{
    config::{ProcessEnv, TelemetryConfig},
    shutdown, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
