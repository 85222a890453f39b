//! What every gRPC server in the workspace shares: `grpc.health.v1`, server
//! reflection in both versions, gRPC-Web, binding, and serving until shutdown.
//!
//! Reflection is offered as `v1` and `v1alpha` because grpcurl 1.8.6 and
//! other older tools only speak `v1alpha` and otherwise report that the
//! server has no reflection.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_stream::{StreamExt, wrappers::TcpListenerStream};
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::server::HealthReporter;

use crate::shutdown::CancellationToken;

/// Failure to set up or run a gRPC server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("invalid descriptor set for reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A server's routes before its own services are added: health and
/// reflection. The reporter marks services serving and, at shutdown, not
/// serving.
pub struct BaseRoutes {
    pub routes: RoutesBuilder,
    pub health: HealthReporter,
}

/// Health plus reflection that lists `served` (the server's own services,
/// e.g. `todo.v1.TaskService` or `dapr.proto.runtime.v1.AppCallback`) and
/// health. Our protos and the Dapr protos are in the descriptor pool.
pub fn base_routes(served: &[&str]) -> Result<BaseRoutes, ServerError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let configure = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(HEALTH_SERVICE);
        if !crate::proto::DAPR_FILE_DESCRIPTOR_SET.is_empty() {
            builder = builder.register_encoded_file_descriptor_set(crate::proto::DAPR_FILE_DESCRIPTOR_SET);
        }
        for name in served {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let mut routes = RoutesBuilder::default();
    routes
        .add_service(health_service)
        .add_service(configure().build_v1()?)
        .add_service(configure().build_v1alpha()?);
    Ok(BaseRoutes { routes, health })
}

/// Full name of the standard health service.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Binds the listener first so a port conflict fails start-up with a clear
/// message, and so tests can bind port 0 and read the real port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// How long a stopping server waits for its connections to close (calls
/// in flight, streams, clients that keep a connection open) before it
/// closes them: an idle or stuck client must not hold a shutdown until the
/// orchestrator's SIGKILL, which would cut what runs after the server stops.
pub const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `routes` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets in-flight calls finish (for up to [`DRAIN_LIMIT`]) and
/// returns.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    health: HealthReporter,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    // Without TCP_NODELAY each small response (headers, message, trailers
    // written apart) waits on the peer's delayed ACK: about 40 ms per call
    // from daprd's Go client, which made a partition deliver ~30 events/s.
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    });
    let drain_limit = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(DRAIN_LIMIT).await;
        }
    };
    let stopping = async move {
        shutdown.cancelled().await;
        // Load balancers and probes see NOT_SERVING while we drain.
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };
    // gRPC-Web on the same port, so browsers can call every RPC (streams
    // included) without a proxy; plain gRPC requests pass through untouched.
    let server = tonic::transport::Server::builder()
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .timeout(CALL_TIMEOUT)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .trace_fn(request_span)
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(tower::util::MapResponseLayer::new(oversized_is_resource_exhausted))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stopping);
    tokio::select! {
        served = server => served?,
        () = drain_limit => tracing::warn!(
            limit = ?DRAIN_LIMIT,
            "connections still open when the drain time ran out; closing them"
        ),
    }
    Ok(())
}

/// Streams one connection may have open at once. tonic leaves HTTP/2's
/// limit unset (unbounded), so one client could open any number of calls
/// on one connection; daprd needs one per partition and subscription.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// How long a call may take to produce its response (a stream's messages
/// are not counted: WatchTasks stays open). A client's shorter
/// `grpc-timeout` wins. Every call is far quicker; one that is not is
/// stuck, and holding its resources longer helps nobody.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// HTTP/2 pings on idle connections, so a peer that vanished (a crashed
/// client, a dropped network) is noticed and its streams (WatchTasks
/// watchers above all) are freed instead of held until TCP gives up.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest header list a request may carry. daprd appends a
/// `traceparent` and a `grpc-trace-bin` header for every entry of a bulk
/// delivery (about 180 bytes each), so hyper's default of 16 KiB refuses any
/// traced batch of more than about 90 events, and daprd retries that batch,
/// whole and as large, for ever: a stalled partition.
pub const MAX_HEADER_LIST_BYTES: u32 = 1 << 20;

/// The largest request a read-only query API (audit, notifications)
/// accepts: its requests are a few filters and a page token. The
/// AppCallback services keep tonic's 4 MiB, which matches daprd's default
/// maximum request body.
pub const MAX_QUERY_REQUEST_BYTES: usize = 64 * 1024;

/// tonic refuses a message over the decoding limit with OUT_OF_RANGE; the
/// gRPC status code guide says RESOURCE_EXHAUSTED, which is what clients and
/// retry policies expect, so the status is rewritten on its way out.
fn oversized_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    const OUT_OF_RANGE: &str = "11";
    let headers = response.headers_mut();
    let oversized = headers.get("grpc-status").is_some_and(|status| status == OUT_OF_RANGE)
        && headers.get("grpc-message").is_some_and(|message| {
            contains(message.as_bytes(), b"too%20large") || contains(message.as_bytes(), b"too large")
        });
    if oversized {
        headers.insert("grpc-status", http::HeaderValue::from_static(RESOURCE_EXHAUSTED));
    }
    response
}

const RESOURCE_EXHAUSTED: &str = "8";

/// `grpc-message` is percent-encoded on the wire (spaces as `%20`).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Services that only answer probes: the kubelet's and daprd's health checks
/// (daprd polls the app every few seconds and sends a `traceparent`).
const PROBE_SERVICES: [&str; 2] = [HEALTH_SERVICE, "dapr.proto.runtime.v1.AppCallbackHealthCheck"];

/// The server span of every RPC, continuing the caller's trace context.
/// Probes get none: a trace per health check (hundreds a minute per pod)
/// would bury the traces of what users did in Jaeger's search.
fn request_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    if PROBE_SERVICES.contains(&service) {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok());
    crate::telemetry::set_parent(&span, traceparent);
    span
}

/// A bound gRPC server, ready to run: what each service's `Application`
/// wraps, so `main` and tests start it the same way.
pub struct GrpcApp {
    listener: TcpListener,
    routes: Routes,
    health: HealthReporter,
}

impl GrpcApp {
    /// Binds `addr` (port 0 picks a free port) for `routes` built on `base`.
    pub async fn bind(addr: SocketAddr, base: BaseRoutes) -> Result<Self, ServerError> {
        Ok(Self {
            listener: bind(addr).await?,
            routes: base.routes.routes(),
            health: base.health,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound TCP listener has an address")
    }

    /// Marks the server SERVING and serves until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        self.health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        serve(self.listener, self.routes, self.health, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span_for(path: &str) -> tracing::Span {
        let request = http::Request::builder()
            .uri(path)
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .body(())
            .expect("a valid request");
        request_span(&request)
    }

    #[test]
    fn probes_make_no_span_and_every_other_rpc_does() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            assert!(span_for("/grpc.health.v1.Health/Check").is_disabled());
            assert!(span_for("/grpc.health.v1.Health/Watch").is_disabled());
            assert!(span_for("/dapr.proto.runtime.v1.AppCallbackHealthCheck/HealthCheck").is_disabled());
            assert!(!span_for("/todo.v1.TaskService/CreateTask").is_disabled());
            assert!(!span_for("/dapr.proto.runtime.v1.AppCallback/OnTopicEvent").is_disabled());
        });
    }
}
