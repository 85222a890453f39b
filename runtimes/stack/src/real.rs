//! The real runtime: Kafka with the topics, the Dapr Scheduler, daprd's
//! resources, and one daprd per app instance.

use std::time::Duration;

use real_runtime::{
    Installed,
    daprd::{Daprd, DaprdOptions, DaprdPorts},
    kafka::{Kafka, KafkaOptions, project_topics},
    resources::{self, LocalAddresses, Resources},
    scheduler::Scheduler,
};

use crate::{
    error::StackError,
    plan::{Apps, Plan, Tokens},
};

pub(crate) struct RealRuntime {
    pub installed: Installed,
    pub kafka: Kafka,
    pub scheduler: Scheduler,
    resources: Resources,
    /// One per app instance, in the plan's order (None until started).
    pub daprds: Vec<Option<Daprd>>,
}

impl RealRuntime {
    /// Kafka with its topics, the Scheduler and daprd's resources; the
    /// daprds come with their apps ([`Self::start_daprd`]).
    pub(crate) async fn start(plan: &Plan, otlp: Option<String>) -> Result<Self, StackError> {
        let installed = Installed::locate().map_err(real_runtime::RuntimeError::from)?;
        let external = matches!(plan.options.apps, Apps::External(_));
        let kafka = Kafka::start(
            &installed,
            &plan.dir().join("kafka"),
            KafkaOptions {
                port: plan.infra.kafka,
                controller_port: plan.infra.kafka_controller,
                auto_create_topics: external,
                heap_mb: if plan.options.terminal { 512 } else { 384 },
            },
            plan.output("kafka", 0),
        )
        .await?;
        let topics = if external {
            plan.options.topics.clone()
        } else {
            project_topics()
        };
        kafka.create_topics(&topics)?;
        let scheduler = Scheduler::start(
            &installed,
            &plan.dir().join("scheduler"),
            plan.infra.scheduler,
            plan.output("scheduler", 1),
        )
        .await?;
        let resources = match plan.options.retries {
            Some(retries) if external => {
                resources::render_for_tests(plan.dir(), &kafka.bootstrap(), retries.max_retries, retries.interval_ms)?
            }
            _ => resources::render(
                plan.dir(),
                &LocalAddresses {
                    kafka: kafka.bootstrap(),
                    otlp: otlp.map(|endpoint| endpoint.trim_start_matches("http://").to_owned()),
                },
            )?,
        };
        Ok(Self {
            installed,
            kafka,
            scheduler,
            resources,
            daprds: plan.apps.iter().map(|_| None).collect(),
        })
    }

    /// Starts the daprd of app instance `index` (its app is started first,
    /// by the caller).
    pub(crate) async fn start_daprd(&mut self, plan: &Plan, index: usize, tokens: &Tokens) -> Result<(), StackError> {
        let app = &plan.apps[index];
        let daprd = Daprd::start(
            &self.installed,
            DaprdOptions {
                app_id: app.app_id.clone(),
                app_port: Some(app.ports.app),
                ports: DaprdPorts {
                    grpc: app.ports.dapr_grpc,
                    http: app.ports.dapr_http,
                    internal_grpc: app.internal_grpc,
                },
                resources: self.resources.dir.clone(),
                config: self.resources.config.clone(),
                scheduler: self.scheduler.address(),
                app_api_token: tokens.app.clone(),
                dapr_api_token: tokens.api.clone(),
                app_health_check: app.app_health_check,
                log_level: std::env::var("REAL_RUNTIME_DAPRD_LOG").unwrap_or_else(|_| "warn".into()),
                pod_name: app.pod_name.clone(),
            },
            plan.output(&format!("daprd {}", app.instance), index + 3),
            false,
        )
        .await?;
        self.daprds[index] = Some(daprd);
        Ok(())
    }

    pub(crate) fn daprd(&self, index: usize) -> Option<&Daprd> {
        self.daprds.get(index).and_then(Option::as_ref)
    }

    pub(crate) fn daprd_mut(&mut self, index: usize) -> Option<&mut Daprd> {
        self.daprds.get_mut(index).and_then(Option::as_mut)
    }

    /// Waits until every daprd reports healthy (with an app health check,
    /// that includes its app).
    pub(crate) async fn wait_until_healthy(&self, timeout: Duration) -> Result<(), StackError> {
        for daprd in self.daprds.iter().flatten() {
            daprd.wait_until_healthy(timeout).await?;
        }
        Ok(())
    }
}
