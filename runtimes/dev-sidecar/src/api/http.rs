//! HTTP: Dapr's health endpoints on each app's `daprHTTPPort` (official SDKs
//! wait on them before their first gRPC call), and the read-only
//! inspection surface on the admin port.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    routing::get,
};
use serde::{Deserialize, Serialize};

use crate::{delivery::Subscriptions, log::Log};

/// `GET /v1.0/healthz` and `/v1.0/healthz/outbound`: 204 while running.
pub fn health_routes() -> Router {
    Router::new()
        .route("/v1.0/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .route("/v1.0/healthz/outbound", get(|| async { StatusCode::NO_CONTENT }))
}

#[derive(Clone)]
pub struct Inspect {
    pub log: Log,
    pub subscriptions: Subscriptions,
}

/// The inspection surface: topics, lag, dead letters, jobs, subscriptions.
pub fn inspection_routes(state: Inspect) -> Router {
    Router::new()
        .route("/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .route("/topics", get(topics))
        .route("/lag", get(lag))
        .route("/dead-letters", get(dead_letters))
        .route("/jobs", get(jobs))
        .route("/subscriptions", get(subscriptions))
        .with_state(state)
}

type HttpError = (StatusCode, String);

fn internal(err: impl std::fmt::Display) -> HttpError {
    (StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
}

#[derive(Serialize)]
struct TopicInfo {
    topic: String,
    /// Next offset to be written, per partition.
    partitions: Vec<u64>,
    events: u64,
}

async fn topics(State(state): State<Inspect>) -> Json<Vec<TopicInfo>> {
    let mut by_topic: BTreeMap<String, BTreeMap<u32, u64>> = BTreeMap::new();
    for ((topic, partition), head) in state.log.heads() {
        by_topic.entry(topic).or_default().insert(partition, head);
    }
    Json(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| TopicInfo {
                events: partitions.values().sum(),
                partitions: partitions.into_values().collect(),
                topic,
            })
            .collect(),
    )
}

#[derive(Serialize)]
struct Lag {
    app: String,
    pubsub: String,
    topic: String,
    partition: u32,
    committed: u64,
    end: u64,
    lag: u64,
}

#[derive(Serialize)]
struct LagReport {
    total: u64,
    partitions: Vec<Lag>,
}

async fn lag(State(state): State<Inspect>) -> Result<Json<LagReport>, HttpError> {
    let heads = state.log.heads();
    let committed: BTreeMap<(String, String, u32), u64> =
        state.log.all_offsets().map_err(internal)?.into_iter().collect();
    let subscriptions = state.subscriptions.read().expect("lock").clone();
    let mut partitions = Vec::new();
    for (app, subs) in subscriptions {
        for sub in subs {
            let group = format!("{app}|{}", sub.pubsub_name);
            for partition in 0..state.log.partitions_of(&sub.topic) {
                let end = heads.get(&(sub.topic.clone(), partition)).copied().unwrap_or(0);
                let done = committed
                    .get(&(group.clone(), sub.topic.clone(), partition))
                    .copied()
                    .unwrap_or(0);
                partitions.push(Lag {
                    app: app.clone(),
                    pubsub: sub.pubsub_name.clone(),
                    topic: sub.topic.clone(),
                    partition,
                    committed: done,
                    end,
                    lag: end.saturating_sub(done),
                });
            }
        }
    }
    Ok(Json(LagReport {
        total: partitions.iter().map(|p| p.lag).sum(),
        partitions,
    }))
}

#[derive(Deserialize)]
struct DeadLetterQuery {
    /// A dead-letter topic; all `*-dlq` topics when absent.
    topic: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct DeadLetter {
    topic: String,
    partition: u32,
    offset: u64,
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    original_topic: String,
    failed_app: String,
    reason: String,
    partition_key: String,
    content_type: String,
    /// The data as text when it is UTF-8 (JSON), else base64.
    data: String,
    published_at_ms: i64,
}

async fn dead_letters(
    State(state): State<Inspect>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Vec<DeadLetter>>, HttpError> {
    use base64::Engine;
    let limit = query.limit.unwrap_or(100).min(10_000);
    let heads = state.log.heads();
    let mut topics: Vec<String> = heads
        .keys()
        .map(|(topic, _)| topic.clone())
        .filter(|topic| {
            query
                .topic
                .as_ref()
                .map_or(topic.ends_with("-dlq"), |wanted| wanted == topic)
        })
        .collect();
    topics.sort();
    topics.dedup();
    let mut out = Vec::new();
    for topic in topics {
        for partition in 0..state.log.partitions_of(&topic) {
            for (offset, event) in state.log.read(&topic, partition, 0, limit).map_err(internal)? {
                let data = match String::from_utf8(event.data.clone()) {
                    Ok(text) => text,
                    Err(_) => base64::engine::general_purpose::STANDARD.encode(&event.data),
                };
                out.push(DeadLetter {
                    topic: topic.clone(),
                    partition,
                    offset,
                    id: event.id,
                    event_type: event.event_type,
                    original_topic: event.original_topic,
                    failed_app: event.failed_app,
                    reason: event.dead_letter_reason,
                    partition_key: event.partition_key,
                    content_type: event.data_content_type,
                    data,
                    published_at_ms: event.published_at_ms,
                });
            }
        }
    }
    out.sort_by_key(|letter| letter.published_at_ms);
    out.truncate(limit);
    Ok(Json(out))
}

#[derive(Serialize)]
struct JobInfo {
    app: String,
    name: String,
    due_time: String,
    due_ms: i64,
}

async fn jobs(State(state): State<Inspect>) -> Result<Json<Vec<JobInfo>>, HttpError> {
    let mut jobs: Vec<JobInfo> = state
        .log
        .jobs()
        .map_err(internal)?
        .into_iter()
        .map(|job| JobInfo {
            app: job.app_id,
            name: job.name,
            due_time: job.due_time,
            due_ms: job.due_ms,
        })
        .collect();
    jobs.sort_by_key(|job| job.due_ms);
    Ok(Json(jobs))
}

#[derive(Serialize)]
struct SubscriptionInfo {
    app: String,
    pubsub: String,
    topic: String,
    dead_letter_topic: String,
    rules: Vec<(String, String)>,
    default_route: String,
    bulk: bool,
}

async fn subscriptions(State(state): State<Inspect>) -> Json<Vec<SubscriptionInfo>> {
    let registry = state.subscriptions.read().expect("lock").clone();
    Json(
        registry
            .into_iter()
            .flat_map(|(app, subs)| {
                subs.into_iter().map(move |sub| SubscriptionInfo {
                    app: app.clone(),
                    pubsub: sub.pubsub_name,
                    topic: sub.topic,
                    dead_letter_topic: sub.dead_letter_topic,
                    rules: sub
                        .routes
                        .as_ref()
                        .map(|routes| {
                            routes
                                .rules
                                .iter()
                                .map(|r| (r.r#match.clone(), r.path.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    default_route: sub.routes.map(|routes| routes.default).unwrap_or_default(),
                    bulk: sub.bulk_subscribe.is_some_and(|bulk| bulk.enabled),
                })
            })
            .collect(),
    )
}
