//! The Dapr resources daprd loads locally, rendered from the ones the
//! cluster uses (dapr/components/): the same Kafka components, Resiliency
//! and tracing Configuration, with local addresses. One source, so the
//! local real runtime cannot drift from the deployment.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::{RuntimeError, install::repo_dir};

/// What changes between the cluster and this machine.
#[derive(Debug, Clone)]
pub struct LocalAddresses {
    /// Kafka bootstrap, host:port.
    pub kafka: String,
    /// OTLP gRPC collector, host:port (None: spans are not exported).
    pub otlp: Option<String>,
}

/// Where daprd finds its resources and its Configuration.
#[derive(Debug, Clone)]
pub struct Resources {
    /// `--resources-path`.
    pub dir: PathBuf,
    /// `--config`.
    pub config: PathBuf,
}

/// Writes the project's resources into `dir/resources` and the
/// Configuration into `dir/config.yaml`.
pub fn render(dir: &Path, local: &LocalAddresses) -> Result<Resources, RuntimeError> {
    let source = repo_dir().join("dapr/components");
    let resources = dir.join("resources");
    std::fs::create_dir_all(&resources).map_err(RuntimeError::file(&resources))?;
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
    Ok(Resources {
        dir: resources,
        config: config_path,
    })
}

/// Resources for apps under test with topics of their own: the cluster's
/// Kafka component as `pubsub` (topics created on first use, no scopes),
/// `max_retries` redeliveries `interval_ms` apart, every span sampled.
pub fn render_for_tests(
    dir: &Path,
    kafka: &str,
    max_retries: u32,
    interval_ms: u64,
) -> Result<Resources, RuntimeError> {
    let resources = dir.join("resources");
    std::fs::create_dir_all(&resources).map_err(RuntimeError::file(&resources))?;
    let mut pubsub = read(&repo_dir().join("dapr/components/pubsub.yaml"))?;
    if let Some(metadata) = pubsub.get_mut("metadata").and_then(Value::as_mapping_mut) {
        metadata.insert("name".into(), "pubsub".into());
    }
    if let Some(map) = pubsub.as_mapping_mut() {
        map.remove("scopes");
    }
    localize_component(
        &mut pubsub,
        &LocalAddresses {
            kafka: kafka.to_owned(),
            otlp: None,
        },
    );
    write(&resources.join("pubsub.yaml"), &pubsub)?;
    let resiliency = resources.join("resiliency.yaml");
    std::fs::write(&resiliency, test_resiliency(max_retries, interval_ms)).map_err(RuntimeError::file(&resiliency))?;
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: test\nspec:\n  tracing:\n    samplingRate: \"1\"\n",
    )
    .map_err(RuntimeError::file(&config))?;
    Ok(Resources { dir: resources, config })
}

fn read(path: &Path) -> Result<Value, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(RuntimeError::file(path))?;
    serde_yaml_ng::from_str(&text).map_err(|source| RuntimeError::Yaml {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, doc: &Value) -> Result<(), RuntimeError> {
    let text = serde_yaml_ng::to_string(doc).map_err(|source| RuntimeError::Yaml {
        path: path.to_owned(),
        source,
    })?;
    let header = "# Rendered from dapr/components/ for the local real runtime; edit those, not this.\n";
    std::fs::write(path, format!("{header}{text}")).map_err(RuntimeError::file(path))
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

/// A Resiliency for tests: `max_retries` redeliveries `interval_ms` apart
/// on `pubsub`'s inbound side, so exhausted retries happen in seconds.
fn test_resiliency(max_retries: u32, interval_ms: u64) -> String {
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
