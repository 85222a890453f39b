//! What notification-service does with each delivered reminder.

use std::sync::Arc;

use todo_core::db::Database;
use todo_core::{
    dapr::{
        app::{DeliveredEvent, EventHandler},
        callback::{Outcome, subscription},
        runtime::TopicSubscription,
    },
    events::{self, ContentType, event_types, topics},
    proto::v1::{ReminderEvent, ReminderKind},
    timestamps,
};
use uuid::Uuid;

use crate::{
    channel::{Channel, Outgoing},
    store::{self, NotificationRow},
};

const REMINDER_ROUTE: &str = "/reminders/due-soon";
const IGNORE_ROUTE: &str = "/ignore";
const MAX_TITLE_CHARS: usize = 200;

pub struct Notifier {
    pub pool: Database,
    pub channel: Arc<dyn Channel>,
    pub pubsub_name: String,
}

/// Why a reminder cannot become a notification: poison.
#[derive(Debug, thiserror::Error)]
#[error("invalid reminder: {0}")]
pub struct InvalidReminder(&'static str);

/// The notification a reminder becomes (not yet recorded).
pub fn notification_for(reminder: &ReminderEvent, channel: &'static str) -> Result<NotificationRow, InvalidReminder> {
    let event_id = Uuid::parse_str(&reminder.event_id).map_err(|_| InvalidReminder("event_id must be a UUID"))?;
    if reminder.user_id.trim().is_empty() || reminder.user_id.len() > 255 {
        return Err(InvalidReminder("user_id must be set"));
    }
    if reminder.task_id.is_empty() || reminder.task_id.len() > 64 {
        return Err(InvalidReminder("task_id must be set"));
    }
    let (kind, lead) = match ReminderKind::try_from(reminder.kind) {
        Ok(ReminderKind::ReminderKind24hBefore) => (ReminderKind::ReminderKind24hBefore, "24 hours"),
        Ok(ReminderKind::ReminderKind1hBefore) => (ReminderKind::ReminderKind1hBefore, "1 hour"),
        _ => return Err(InvalidReminder("kind must be a known reminder kind")),
    };
    let due_at = reminder
        .due_at
        .as_ref()
        .map(timestamps::from_proto)
        .transpose()
        .map_err(|_| InvalidReminder("due_at out of range"))?;
    let title: String = reminder.title.chars().take(MAX_TITLE_CHARS).collect();
    Ok(NotificationRow {
        id: Uuid::now_v7(),
        event_id,
        user_id: reminder.user_id.clone(),
        task_id: reminder.task_id.clone(),
        message: format!("Due in {lead}: {title}"),
        title,
        due_at,
        kind: kind as i16,
        channel: channel.to_owned(),
        created_at: timestamps::now(),
    })
}

impl Notifier {
    async fn record_and_deliver(&self, row: &NotificationRow) -> Result<bool, Outcome> {
        let transient = |err: sqlx::Error| {
            tracing::warn!(error = %err, "database unavailable; will retry");
            Outcome::Retry
        };
        let mut tx = self.pool.begin().await.map_err(transient)?;
        if !store::insert(&mut tx, row).await.map_err(transient)? {
            return Ok(false);
        }
        let outgoing = Outgoing {
            id: row.id.to_string(),
            event_id: row.event_id.to_string(),
            user_id: row.user_id.clone(),
            task_id: row.task_id.clone(),
            title: row.title.clone(),
            message: row.message.clone(),
            due_at: row.due_at.map(|due| due.to_rfc3339()),
            kind: ReminderKind::try_from(i32::from(row.kind)).map_or("unknown", |kind| kind.as_str_name()),
        };
        if let Err(err) = self.channel.deliver(&outgoing).await {
            // Nothing is recorded either way (the transaction rolls back).
            if err.permanent {
                // Retrying would hold a connection and a transaction for
                // minutes to be refused again: dead-letter it at once, for
                // `just replay` once the receiver accepts it.
                tracing::warn!(error = %err, "delivery refused; nothing recorded, dead-lettered");
                return Err(Outcome::Drop);
            }
            tracing::warn!(error = %err, "delivery failed; nothing recorded, will retry");
            return Err(Outcome::Retry);
        }
        tx.commit().await.map_err(transient)?;
        Ok(true)
    }
}

#[tonic::async_trait]
impl EventHandler for Notifier {
    fn subscriptions(&self) -> Vec<TopicSubscription> {
        vec![subscription(
            &self.pubsub_name,
            topics::REMINDERS,
            &[(event_types::REMINDER_DUE_SOON, REMINDER_ROUTE)],
            IGNORE_ROUTE,
        )]
    }

    async fn on_event(&self, event: DeliveredEvent) -> Outcome {
        if event.event_type != event_types::REMINDER_DUE_SOON {
            return Outcome::Success;
        }
        let decoded = ContentType::detect(&event.content_type, &event.data)
            .and_then(|content_type| events::decode::<ReminderEvent>(content_type, &event.data));
        let row = match decoded
            .map_err(|err| err.to_string())
            .and_then(|reminder| notification_for(&reminder, self.channel.name()).map_err(|err| err.to_string()))
        {
            Ok(row) => row,
            Err(err) => {
                tracing::warn!(event_id = %event.id, error = %err, "reminder dropped");
                return Outcome::Drop;
            }
        };
        match self.record_and_deliver(&row).await {
            Ok(true) => {
                tracing::debug!(event_id = %row.event_id, "notification recorded");
                Outcome::Success
            }
            Ok(false) => {
                tracing::debug!(event_id = %row.event_id, "duplicate reminder ignored");
                Outcome::Success
            }
            Err(outcome) => outcome,
        }
    }
}
