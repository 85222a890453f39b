//! Jaeger (v2 all-in-one, memory storage) on loopback, with the configuration
//! the cluster's Jaeger runs too (k8s/base/jaeger/config.yaml), and its query
//! API for tests that read traces back.

use std::time::Duration;

use crate::{
    RuntimeError, http,
    install::{Installed, repo_dir},
};
use supervisor::{Output, Proc, Spec};

#[derive(Debug, Clone, Copy)]
pub struct JaegerPorts {
    /// OTLP gRPC: where daprd and the services export spans.
    pub otlp_grpc: u16,
    /// The query API (and the UI, which the Go module ships as a placeholder).
    pub query_http: u16,
    pub query_grpc: u16,
    pub health: u16,
}

impl JaegerPorts {
    /// Jaeger's usual ports, for `just dev-dapr`.
    pub const DEFAULT: Self = Self {
        otlp_grpc: 4317,
        query_http: 16686,
        query_grpc: 16685,
        health: 13133,
    };
}

pub struct Jaeger {
    pub proc: Proc,
    pub ports: JaegerPorts,
}

impl Jaeger {
    pub async fn start(installed: &Installed, ports: JaegerPorts, output: Output) -> Result<Self, RuntimeError> {
        let config = repo_dir().join("k8s/base/jaeger/config.yaml");
        let spec = Spec::new("jaeger", &installed.jaeger, output)
            .args(["--config".to_owned(), config.display().to_string()])
            .env("JAEGER_OTLP_GRPC", format!("127.0.0.1:{}", ports.otlp_grpc))
            .env("JAEGER_QUERY_HTTP", format!("127.0.0.1:{}", ports.query_http))
            .env("JAEGER_QUERY_GRPC", format!("127.0.0.1:{}", ports.query_grpc))
            .env("JAEGER_HEALTH", format!("127.0.0.1:{}", ports.health));
        let proc = Proc::start(spec)?;
        let jaeger = Self { proc, ports };
        http::wait_until_ok(
            "Jaeger",
            &format!("http://127.0.0.1:{}/status", ports.health),
            Duration::from_secs(30),
            || jaeger.proc.log_tail(30),
        )
        .await?;
        Ok(jaeger)
    }

    /// Where to export spans (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn otlp_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_grpc)
    }

    /// GET on the query API, e.g. `/api/services` or `/api/traces/<id>`.
    pub async fn query(&self, path_and_query: &str) -> Result<serde_json::Value, RuntimeError> {
        query(self.ports.query_http, path_and_query).await
    }
}

/// GET on the query API of a Jaeger whose query port is `query_http` on
/// loopback (this one, or a forwarded one).
pub async fn query(query_http: u16, path_and_query: &str) -> Result<serde_json::Value, RuntimeError> {
    let url = format!("http://127.0.0.1:{query_http}{path_and_query}");
    let (status, body) = http::get(&url).await?;
    if status != 200 {
        return Err(RuntimeError::Http {
            url,
            detail: format!("status {status}: {body}"),
        });
    }
    serde_json::from_str(&body).map_err(|err| RuntimeError::Http {
        url,
        detail: err.to_string(),
    })
}
