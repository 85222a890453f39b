//! Running a service binary the way a deployment would, for tests, on the
//! one process supervisor.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use supervisor::{Output, Proc, Signal, Spec};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// `count` distinct loopback ports that were free a moment ago.
pub fn free_ports(count: usize) -> Vec<u16> {
    supervisor::free_ports(count).expect("free loopback ports")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// A running service binary; killed if still running when dropped.
pub struct ServiceProcess {
    pub name: String,
    pub addr: SocketAddr,
    proc: Proc,
}

impl ServiceProcess {
    /// Starts `binary` listening on a free loopback port (passed in the
    /// environment variable `port_var`, e.g. `APP_PORT`) plus `env`, and
    /// waits until its health service reports SERVING.
    pub async fn start(name: &str, binary: &str, port_var: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let port_text = port.to_string();
        let mut all_env = vec![(port_var, port_text.as_str())];
        all_env.extend_from_slice(env);
        Self::start_on(name, binary, port, &all_env).await
    }

    /// Starts `binary` with `env`, expecting its gRPC health service on
    /// `port`, and waits until it reports SERVING.
    pub async fn start_on(name: &str, binary: &str, port: u16, env: &[(&str, &str)]) -> Self {
        let output = if std::env::var_os("TEST_LOG").is_some() {
            Output::Prefixed(format!("{name} | "))
        } else {
            Output::Null
        };
        let mut spec = Spec::new(name, binary, output).env("APP_HOST", "127.0.0.1");
        for (key, value) in env {
            spec = spec.env(key, *value);
        }
        let proc = Proc::start(spec).unwrap_or_else(|err| panic!("{err}"));
        let mut process = Self {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            proc,
        };
        process.wait_until_serving(Duration::from_secs(30)).await;
        process
    }

    /// A channel to the service's gRPC port.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("valid uri")
            .connect()
            .await
            .unwrap_or_else(|err| panic!("connect to {}: {err}", self.name))
    }

    async fn wait_until_serving(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.proc.exited() {
                panic!("{} exited during start-up with code {code:?}", self.name);
            }
            if let Ok(ServingStatus::Serving) = self.health("").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not become healthy within {timeout:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The health status the service reports for `service` ("" = overall).
    pub async fn health(&self, service: &str) -> Result<ServingStatus, tonic::Status> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("valid uri")
            .connect_timeout(Duration::from_millis(500))
            .connect()
            .await
            .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?;
        Ok(response.into_inner().status())
    }

    /// Service names listed by server reflection, asked through `v1` and
    /// through `v1alpha` (what grpcurl 1.8.6 speaks); both lists must agree.
    pub async fn reflected_services(&self) -> Vec<String> {
        use tonic_reflection::pb::{v1, v1alpha};
        let channel = self.channel().await;

        let request = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut stream = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection v1 call")
            .into_inner();
        let response = stream
            .message()
            .await
            .expect("reflection v1 response")
            .expect("one message");
        let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            response.message_response
        else {
            panic!("unexpected reflection v1 response");
        };
        let mut from_v1: Vec<String> = list.service.into_iter().map(|service| service.name).collect();

        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut stream = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection v1alpha call")
            .into_inner();
        let response = stream
            .message()
            .await
            .expect("reflection v1alpha response")
            .expect("one message");
        let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            response.message_response
        else {
            panic!("unexpected reflection v1alpha response");
        };
        let mut from_v1alpha: Vec<String> = list.service.into_iter().map(|service| service.name).collect();

        from_v1.sort();
        from_v1alpha.sort();
        assert_eq!(from_v1, from_v1alpha, "reflection v1 and v1alpha disagree");
        from_v1
    }

    /// Sends `signal` (SIGSTOP and SIGCONT freeze and thaw the process).
    pub fn signal(&self, signal: Signal) {
        self.proc.signal(signal);
    }

    /// SIGKILL, as a crash would.
    pub async fn kill(mut self) {
        self.proc.kill();
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub async fn terminate(mut self, timeout: Duration) -> Option<i32> {
        let started = Instant::now();
        let code = self.proc.stop(timeout).await;
        assert!(
            started.elapsed() < timeout,
            "{} did not exit within {timeout:?} of SIGTERM",
            self.name
        );
        code
    }
}
