use reminder_service::{config::Config, startup::Application};
use todo_core::{
    config::{ProcessEnv, TelemetryConfig},
    shutdown, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init(&TelemetryConfig::from_env(&ProcessEnv, "reminder-service")?)?;
    let config = Config::from_env(&ProcessEnv)?;
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "reminder-service listening");
    let result = app.run_until_stopped(shutdown::cancel_on_signal()).await;
    tracing::info!("reminder-service stopped");
    telemetry.shutdown();
    Ok(result?)
}
