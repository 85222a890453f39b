//! The Dapr multi-app run file (`dapr run -f`), read for the app ids,
//! ports, commands and environment of the local stack.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

/// A run file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("cannot read run file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("run file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRunFile {
    #[serde(default)]
    common: RawCommon,
    #[serde(default)]
    apps: Vec<RawApp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCommon {
    #[serde(default)]
    env: BTreeMap<String, serde_yaml_ng::Value>,
    app_protocol: Option<String>,
    enable_app_health_check: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawApp {
    #[serde(rename = "appID")]
    app_id: String,
    app_dir_path: Option<String>,
    app_port: Option<u16>,
    app_protocol: Option<String>,
    #[serde(rename = "daprGRPCPort")]
    dapr_grpc_port: Option<u16>,
    #[serde(rename = "daprHTTPPort")]
    dapr_http_port: Option<u16>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, serde_yaml_ng::Value>,
    enable_app_health_check: Option<bool>,
}

/// One app of the stack and its sidecar endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub app_id: String,
    /// Where the app's command runs (resolved against the run file's directory).
    pub dir: PathBuf,
    /// The app's gRPC port (AppCallback).
    pub app_port: u16,
    /// This sidecar's Dapr gRPC API for the app.
    pub grpc_port: u16,
    /// This sidecar's Dapr HTTP port for the app (health endpoints).
    pub http_port: u16,
    pub command: Vec<String>,
    /// Common env, then the app's own.
    pub env: BTreeMap<String, String>,
    /// `enableAppHealthCheck`: daprd probes the app and holds deliveries
    /// while it is down (dev-sidecar does not probe).
    pub app_health_check: bool,
}

pub fn load(path: &Path) -> Result<Vec<App>, RunFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(|reason| RunFileError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

fn env_value(value: &serde_yaml_ng::Value) -> String {
    match value {
        serde_yaml_ng::Value::String(text) => text.clone(),
        serde_yaml_ng::Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_owned(),
    }
}

/// Parses a run file whose relative paths are relative to `base`.
pub fn parse(text: &str, base: &Path) -> Result<Vec<App>, String> {
    let raw: RawRunFile = serde_yaml_ng::from_str(text).map_err(|err| err.to_string())?;
    if raw.apps.is_empty() {
        return Err("no apps".into());
    }
    let mut apps = Vec::new();
    let mut ports = std::collections::HashSet::new();
    for (index, app) in raw.apps.into_iter().enumerate() {
        let name = if app.app_id.is_empty() {
            format!("apps[{index}]")
        } else {
            app.app_id.clone()
        };
        let protocol = app
            .app_protocol
            .or(raw.common.app_protocol.clone())
            .unwrap_or_else(|| "grpc".into());
        if protocol != "grpc" {
            return Err(format!(
                "{name}: appProtocol {protocol:?}: dev-sidecar speaks gRPC to apps only"
            ));
        }
        let app_port = app.app_port.ok_or_else(|| format!("{name}: appPort is required"))?;
        let grpc_port = app
            .dapr_grpc_port
            .ok_or_else(|| format!("{name}: daprGRPCPort is required (dev-sidecar serves the Dapr API there)"))?;
        let http_port = app.dapr_http_port.unwrap_or(0);
        for port in [app_port, grpc_port, http_port].into_iter().filter(|p| *p != 0) {
            if !ports.insert(port) {
                return Err(format!("{name}: port {port} is used twice in the run file"));
            }
        }
        let mut env: BTreeMap<String, String> = raw.common.env.iter().map(|(k, v)| (k.clone(), env_value(v))).collect();
        env.extend(app.env.iter().map(|(k, v)| (k.clone(), env_value(v))));
        apps.push(App {
            app_id: app.app_id,
            dir: base.join(app.app_dir_path.unwrap_or_else(|| ".".into())),
            app_port,
            grpc_port,
            http_port,
            command: app.command,
            env,
            app_health_check: app
                .enable_app_health_check
                .or(raw.common.enable_app_health_check)
                .unwrap_or(false),
        });
    }
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_standard_fields_and_merges_env() {
        let apps = parse(
            r#"
version: 1
common:
  appProtocol: grpc
  env: { LOG_FORMAT: pretty, RETRIES: 3 }
apps:
  - appID: task-api
    appDirPath: ../
    command: ["target/debug/task-api"]
    appPort: 50051
    daprGRPCPort: 50001
    daprHTTPPort: 3500
    env: { LOG_FORMAT: json }
"#,
            Path::new("/repo/dapr"),
        )
        .unwrap();
        assert_eq!(apps.len(), 1);
        let app = &apps[0];
        assert_eq!(app.app_id, "task-api");
        assert_eq!(app.dir, Path::new("/repo/dapr/../"));
        assert_eq!((app.app_port, app.grpc_port, app.http_port), (50051, 50001, 3500));
        assert_eq!(app.env["LOG_FORMAT"], "json");
        assert_eq!(app.env["RETRIES"], "3");
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let base = Path::new(".");
        assert!(parse("apps: []", base).is_err());
        assert!(
            parse("apps: [{appID: a, appPort: 1}]", base)
                .unwrap_err()
                .contains("daprGRPCPort")
        );
        assert!(
            parse(
                "apps: [{appID: a, appPort: 1, daprGRPCPort: 2, appProtocol: http}]",
                base
            )
            .unwrap_err()
            .contains("gRPC")
        );
        assert!(
            parse(
                "apps: [{appID: a, appPort: 1, daprGRPCPort: 2}, {appID: b, appPort: 3, daprGRPCPort: 2}]",
                base
            )
            .unwrap_err()
            .contains("twice")
        );
    }
}
