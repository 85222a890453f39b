//! Prints, as JSON, the facts the deployment must agree with, read from the
//! code itself: each service's default port and database schema, the
//! topics and how dead-letter topics are named. `scripts/check-k8s.sh`
//! compares `k8s/`, `dapr/` and the Dockerfile with this, so renaming a
//! constant cannot silently break the check.

fn main() {
    use todo_core::events::topics;
    let service = |port: u16, schema: Option<&str>| serde_json::json!({ "port": port, "schema": schema });
    let facts = serde_json::json!({
        "services": {
            "task-api": service(task_api::config::DEFAULT_PORT, Some(task_api::startup::SCHEMA)),
            "recurring-service": service(recurring_service::config::DEFAULT_PORT, None),
            "reminder-service": service(reminder_service::config::DEFAULT_PORT, None),
            "notification-service": service(
                notification_service::config::DEFAULT_PORT,
                Some(notification_service::startup::SCHEMA),
            ),
            "audit-service": service(audit_service::config::DEFAULT_PORT, Some(audit_service::startup::SCHEMA)),
        },
        "topics": topics::ALL,
        "dead_letter_topics": topics::ALL.map(topics::dead_letter),
    });
    println!("{facts:#}");
}
