//! The Dapr resources daprd loads locally, rendered from the ones the
//! cluster uses (dapr/components/): the same Kafka components, Resiliency
//! and tracing Configuration, with local addresses. One source, so the
//! local real runtime cannot drift from the deployment.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::install::repo_dir;

/// What changes between the cluster and this machine.
#[derive(Debug, Clone)]
pub struct LocalAddresses {
    /// Kafka bootstrap, host:port.
    pub kafka: String,
    /// OTLP gRPC collector, host:port (None: spans are not exported).
    pub otlp: Option<String>,
}

/// Writes the resources into `dir/resources` and the Configuration into
/// `dir/config.yaml`; returns both paths.
pub fn render(dir: &Path, local: &LocalAddresses) -> Result<(PathBuf, PathBuf), String> {
    let source = repo_dir().join("dapr/components");
    let resources = dir.join("resources");
    std::fs::create_dir_all(&resources).map_err(|err| err.to_string())?;
    for name in ["pubsub.yaml", "pubsub-broadcast.yaml", "resiliency.yaml"] {
        let mut doc = read(&source.join(name))?;
        if kind(&doc) == "Component" {
            localize_component(&mut doc, local);
        }
        write(&resources.join(name), &doc)?;
    }
    let mut config = read(&source.join("tracing.yaml"))?;
    localize_tracing(&mut config, local);
    let config_path = dir.join("config.yaml");
    write(&config_path, &config)?;
    Ok((resources, config_path))
}

fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))
}

fn write(path: &Path, doc: &Value) -> Result<(), String> {
    let text = serde_yaml_ng::to_string(doc).map_err(|err| err.to_string())?;
    let header = "# Rendered from dapr/components/ for the local real runtime; edit those, not this.\n";
    std::fs::write(path, format!("{header}{text}")).map_err(|err| format!("{}: {err}", path.display()))
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn localize_component(doc: &mut Value, local: &LocalAddresses) {
    // `{podName}` (pubsub-broadcast's per-instance group) stays: daprd
    // fills it from POD_NAME, which the launcher sets per instance.
    let Some(items) = doc
        .get_mut("spec")
        .and_then(|spec| spec.get_mut("metadata"))
        .and_then(Value::as_sequence_mut)
    else {
        return;
    };
    for item in items.iter_mut() {
        let name = item.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let Some(Value::String(value)) = item.get_mut("value") else {
            continue;
        };
        if name == "brokers" {
            *value = local.kafka.clone();
        }
    }
}

fn localize_tracing(doc: &mut Value, local: &LocalAddresses) {
    let Some(tracing) = doc.get_mut("spec").and_then(|spec| spec.get_mut("tracing")) else {
        return;
    };
    match &local.otlp {
        Some(endpoint) => {
            if let Some(otel) = tracing.get_mut("otel").and_then(Value::as_mapping_mut) {
                otel.insert("endpointAddress".into(), Value::String(endpoint.clone()));
            }
        }
        None => {
            if let Some(map) = tracing.as_mapping_mut() {
                map.remove("otel");
                map.insert("samplingRate".into(), "0".into());
            }
        }
    }
}

/// A minimal pub/sub component named `name` for tests with their own
/// topics: the cluster's Kafka metadata, topics created on first use.
pub fn test_pubsub(name: &str, kafka: &str) -> Result<String, String> {
    let mut doc = read(&repo_dir().join("dapr/components/pubsub.yaml"))?;
    if let Some(metadata) = doc.get_mut("metadata").and_then(Value::as_mapping_mut) {
        metadata.insert("name".into(), name.into());
    }
    if let Some(map) = doc.as_mapping_mut() {
        map.remove("scopes");
    }
    localize_component(
        &mut doc,
        &LocalAddresses {
            kafka: kafka.to_owned(),
            otlp: None,
        },
    );
    serde_yaml_ng::to_string(&doc).map_err(|err| err.to_string())
}

/// A Resiliency for tests: `max_retries` redeliveries `interval_ms` apart
/// on `pubsub`'s inbound side, so exhausted retries happen in seconds.
pub fn test_resiliency(max_retries: u32, interval_ms: u64) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: test-resiliency
spec:
  policies:
    retries:
      delivery:
        policy: constant
        duration: {interval_ms}ms
        maxRetries: {max_retries}
  targets:
    components:
      pubsub:
        inbound:
          retry: delivery
"
    )
}
