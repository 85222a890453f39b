//! Delivering the log to the apps, daprd's way.
//!
//! - [`routing`]: which route of a subscription an event takes (rules on
//!   `event.type`).
//! - [`consumer`]: one loop per app, subscription and partition: one message
//!   at a time (or one bulk batch), commit after SUCCESS, redeliver after
//!   RETRY with exponential backoff up to a maximum number of retries, dead
//!   letter after DROP or when retries run out; an app that cannot be
//!   reached is waited for, never skipped.
//!
//! [`start`] asks each app for its subscriptions (until it answers) and
//! starts its consumers.

pub mod consumer;
pub mod routing;

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use todo_core::{dapr::runtime::TopicSubscription, shutdown::CancellationToken};

use crate::{apps::AppClients, log::Log};
pub use consumer::RetryPolicy;

/// Subscriptions each app declared, for metadata and inspection.
pub type Subscriptions = Arc<RwLock<BTreeMap<String, Vec<TopicSubscription>>>>;

/// Discovers `app_id`'s subscriptions and runs its consumers until shutdown.
pub fn start(
    app_id: String,
    log: Log,
    apps: AppClients,
    policy: RetryPolicy,
    subscriptions: Subscriptions,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(100);
        let declared = loop {
            match apps.list_topic_subscriptions(&app_id).await {
                Ok(declared) => break declared,
                Err(status) => {
                    tracing::debug!(app = %app_id, error = %status, "app not ready for ListTopicSubscriptions");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return,
                    }
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        };
        // One turn per pub/sub component for the app's bulk deliveries.
        let mut bulk_turns: BTreeMap<String, Arc<tokio::sync::Mutex<()>>> = BTreeMap::new();
        for subscription in &declared {
            let bulk_turn = bulk_turns.entry(subscription.pubsub_name.clone()).or_default().clone();
            tracing::info!(
                app = %app_id,
                topic = %subscription.topic,
                dead_letter = %subscription.dead_letter_topic,
                bulk = subscription.bulk_subscribe.as_ref().is_some_and(|bulk| bulk.enabled),
                "subscribed"
            );
            for partition in 0..log.partitions_of(&subscription.topic) {
                let consumer = consumer::Consumer {
                    log: log.clone(),
                    apps: apps.clone(),
                    app_id: app_id.clone(),
                    subscription: subscription.clone(),
                    partition,
                    policy: policy.clone(),
                    bulk_turn: bulk_turn.clone(),
                };
                tokio::spawn(consumer.run(shutdown.clone()));
            }
        }
        subscriptions.write().expect("lock").insert(app_id, declared);
    });
}
