//! A stack on [`Runtime::Cluster`](crate::Runtime::Cluster): the system as
//! deployed on a Kubernetes cluster (`just deploy local`, or whatever
//! cluster kubectl points at), reached from where a user stands. One
//! `kubectl port-forward` per app carries its AppCallback port and its
//! daprd's gRPC API, one carries Jaeger's query API; tokens come from the
//! deployment's own Secrets; dead letters are read inside the Kafka pod.
//! Nothing of the system is started or stopped here.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use real_runtime::jaeger::JaegerPorts;
use supervisor::{Output, Proc, Spec};

use crate::{
    clients::AppPorts,
    error::StackError,
    plan::{Plan, Tokens, repo_dir},
    stack::DeadLetter,
};

/// daprd's gRPC API port in a pod: Dapr's default, which the injector
/// gives every sidecar our manifests annotate.
const SIDECAR_GRPC_PORT: u16 = 50001;
/// The Kafka broker's pod and the client port its own tools reach it on.
const KAFKA_POD: &str = "kafka-0";
const KAFKA_INSIDE: &str = "localhost:9092";
/// The app whose Deployment the stack reads its secrets from.
const TOKENS_FROM: &str = "task-api";
/// How long a port-forward may take to listen.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The deployed system's endpoints, forwarded to loopback.
pub(crate) struct Deployment {
    kubectl: Kubectl,
    /// The port-forwards, one per app plus Jaeger's; they end with the stack.
    forwards: Vec<Proc>,
    /// Per app instance: loopback ports forwarded to its app port and to
    /// its daprd's gRPC API.
    pub(crate) ports: Vec<(String, AppPorts)>,
    /// Loopback port forwarded to Jaeger's query API.
    pub(crate) jaeger_query: u16,
    pub(crate) tokens: Tokens,
    pub(crate) jwt_secret: String,
}

impl Deployment {
    /// Reads the deployment's Secrets and forwards every app named in
    /// `plan` (ports in the plan are the ports inside the pods).
    pub(crate) async fn connect(plan: &Plan) -> Result<Self, StackError> {
        let kubectl = Kubectl::new()?;
        // What task-api itself is given (the overlay names its Secrets).
        let tokens = Tokens {
            app: Some(kubectl.env_secret(TOKENS_FROM, "APP_API_TOKEN").await?),
            api: Some(kubectl.env_secret(TOKENS_FROM, "DAPR_API_TOKEN").await?),
        };
        let jwt_secret = kubectl.env_secret(TOKENS_FROM, "JWT_SECRET").await?;
        let mut forwards = Vec::new();
        let mut ports = Vec::new();
        for app in &plan.apps {
            let target = format!("deploy/{}", app.app_id);
            let (proc, local) = kubectl
                .port_forward(plan.dir(), &target, &[app.ports.app, SIDECAR_GRPC_PORT])
                .await?;
            forwards.push(proc);
            ports.push((
                app.instance.clone(),
                AppPorts {
                    app: local[0],
                    dapr_grpc: local[1],
                    dapr_http: 0,
                },
            ));
        }
        let (proc, local) = kubectl
            .port_forward(plan.dir(), "svc/jaeger-query", &[JaegerPorts::DEFAULT.query_http])
            .await?;
        forwards.push(proc);
        Ok(Self {
            kubectl,
            forwards,
            ports,
            jaeger_query: local[0],
            tokens,
            jwt_secret,
        })
    }

    /// Ready pods of Deployment `app_id`.
    pub(crate) async fn ready_replicas(&self, app_id: &str) -> Result<usize, StackError> {
        let ready = self
            .kubectl
            .run(&[
                "get",
                &format!("deploy/{app_id}"),
                "-o",
                "jsonpath={.status.readyReplicas}",
            ])
            .await?;
        ready.trim().parse().map_err(|_| StackError::Inspect {
            what: format!("ready replicas of {app_id}"),
            detail: format!("kubectl said {ready:?}"),
        })
    }

    /// Every event on `topic`, read from the beginning with Kafka's console
    /// consumer in the broker's pod (the broker advertises an address only
    /// the cluster resolves), with a heap that fits beside the broker.
    pub(crate) async fn dead_letters(&self, topic: &str) -> Result<Vec<DeadLetter>, StackError> {
        let out = self
            .kubectl
            .run(&[
                "exec",
                KAFKA_POD,
                "--",
                "env",
                "KAFKA_HEAP_OPTS=-Xmx64m",
                "/opt/kafka/bin/kafka-run-class.sh",
                "org.apache.kafka.tools.consumer.ConsoleConsumer",
                "--bootstrap-server",
                KAFKA_INSIDE,
                "--topic",
                topic,
                "--from-beginning",
                "--timeout-ms",
                "4000",
            ])
            .await?;
        Ok(out
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|cloud_event| DeadLetter {
                id: cloud_event["id"].as_str().unwrap_or_default().to_owned(),
                // daprd does not record which app gave up.
                failed_app: None,
            })
            .collect())
    }

    /// Ends the port-forwards.
    pub(crate) async fn stop(&mut self) {
        let mut forwards: Vec<&mut Proc> = self.forwards.iter_mut().collect();
        supervisor::stop_all(&mut forwards, Duration::from_secs(5)).await;
    }
}

/// kubectl in the system's namespace.
struct Kubectl {
    namespace: String,
}

impl Kubectl {
    /// In `NAMESPACE` when set (as scripts/deploy.sh reads it), otherwise
    /// the namespace the manifests deploy into.
    fn new() -> Result<Self, StackError> {
        let namespace = match std::env::var("NAMESPACE") {
            Ok(namespace) if !namespace.is_empty() => namespace,
            _ => manifests_namespace()?,
        };
        Ok(Self { namespace })
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["-n", self.namespace.as_str()];
        all.extend_from_slice(args);
        all
    }

    /// Runs kubectl with `args`; its standard output, or an error with
    /// what it said.
    async fn run(&self, args: &[&str]) -> Result<String, StackError> {
        let args = self.args(args);
        let output = tokio::process::Command::new("kubectl")
            .args(&args)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|err| StackError::Inspect {
                what: format!("kubectl {}", args.join(" ")),
                detail: format!("{err} (is kubectl installed?)"),
            })?;
        if !output.status.success() {
            return Err(StackError::Inspect {
                what: format!("kubectl {}", args.join(" ")),
                detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The Secret value that Deployment `app`'s container `app` takes as
    /// environment variable `var`.
    async fn env_secret(&self, app: &str, var: &str) -> Result<String, StackError> {
        let path = format!(
            "jsonpath={{.spec.template.spec.containers[?(@.name==\"{app}\")].env[?(@.name==\"{var}\")].valueFrom.secretKeyRef}}"
        );
        let reference = self.run(&["get", &format!("deploy/{app}"), "-o", &path]).await?;
        let reference: serde_json::Value = serde_json::from_str(&reference).map_err(|_| StackError::Inspect {
            what: format!("the Secret behind {var} of deploy/{app}"),
            detail: format!("kubectl said {reference:?}"),
        })?;
        match (reference["name"].as_str(), reference["key"].as_str()) {
            (Some(name), Some(key)) => self.secret(name, key).await,
            _ => Err(StackError::Inspect {
                what: format!("the Secret behind {var} of deploy/{app}"),
                detail: format!("no secretKeyRef: {reference}"),
            }),
        }
    }

    /// The value under `key` of Secret `name`, decoded.
    async fn secret(&self, name: &str, key: &str) -> Result<String, StackError> {
        let template = format!("go-template={{{{index .data \"{key}\" | base64decode}}}}");
        let value = self.run(&["get", "secret", name, "-o", &template]).await?;
        if value.is_empty() || value == "<no value>" {
            return Err(StackError::Inspect {
                what: format!("Secret {}/{name}", self.namespace),
                detail: format!("it has no {key:?}"),
            });
        }
        Ok(value)
    }

    /// `kubectl port-forward` to `remote` ports of `target`, on loopback
    /// ports kubectl picks; returns the process and the local ports, in
    /// the order asked. Its log goes to `dir`.
    async fn port_forward(&self, dir: &Path, target: &str, remote: &[u16]) -> Result<(Proc, Vec<u16>), StackError> {
        let log = dir.join(format!("port-forward-{}.log", target.replace('/', "-")));
        let mut args: Vec<String> = self
            .args(&["port-forward", target])
            .into_iter()
            .map(str::to_owned)
            .collect();
        args.extend(remote.iter().map(|port| format!(":{port}")));
        let mut proc =
            Proc::start(Spec::new(&format!("port-forward {target}"), "kubectl", Output::File(log)).args(args))?;
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        loop {
            let said = proc.log_tail(usize::MAX);
            let forwarded = forwarded_ports(&said);
            let local: Option<Vec<u16>> = remote
                .iter()
                .map(|port| forwarded.iter().find(|(_, to)| to == port).map(|(from, _)| *from))
                .collect();
            if let Some(local) = local {
                return Ok((proc, local));
            }
            if proc.exited().is_some() || Instant::now() > deadline {
                return Err(StackError::Inspect {
                    what: format!("kubectl port-forward {target} {remote:?}"),
                    detail: said,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `(local, remote)` pairs of kubectl port-forward's
/// `Forwarding from 127.0.0.1:41234 -> 50051` lines.
fn forwarded_ports(said: &str) -> Vec<(u16, u16)> {
    said.lines()
        .filter_map(|line| {
            let (local, remote) = line.strip_prefix("Forwarding from 127.0.0.1:")?.split_once(" -> ")?;
            Some((local.trim().parse().ok()?, remote.trim().parse().ok()?))
        })
        .collect()
}

/// The `namespace:` of k8s/base/kustomization.yaml.
fn manifests_namespace() -> Result<String, StackError> {
    let path = repo_dir().join("k8s/base/kustomization.yaml");
    let text = std::fs::read_to_string(&path).map_err(StackError::file(&path))?;
    text.lines()
        .find_map(|line| line.strip_prefix("namespace:"))
        .map(|namespace| namespace.trim().to_owned())
        .ok_or_else(|| StackError::Inspect {
            what: path.display().to_string(),
            detail: "no namespace".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubectl_port_forward_lines() {
        let said = "Forwarding from 127.0.0.1:41234 -> 50051\n\
                    Forwarding from [::1]:41234 -> 50051\n\
                    Forwarding from 127.0.0.1:41235 -> 50001\n\
                    Handling connection for 41234\n";
        assert_eq!(forwarded_ports(said), [(41234, 50051), (41235, 50001)]);
    }

    #[test]
    fn the_manifests_name_their_namespace() {
        assert_eq!(manifests_namespace().unwrap(), "todo");
    }
}
