//! Running a service binary the way a deployment would, for tests.

use std::{
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// `count` distinct ports that were free a moment ago: all listeners stay
/// open until every port is chosen, so the OS cannot hand one out twice.
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("bound").port())
        .collect()
}

/// A port that was free a moment ago (the OS picked it for a listener we
/// closed at once). Good enough for tests on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral port")
}

/// A running service binary; killed if still running when dropped.
pub struct ServiceProcess {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
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
        let mut command = Command::new(binary);
        command
            .env("APP_HOST", "127.0.0.1")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        if std::env::var_os("TEST_LOG").is_none() {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
        let mut process = Self {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
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
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!("{} exited during start-up with {status}", self.name);
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

    /// SIGKILL, as a crash would.
    /// Sends `signal` (SIGSTOP and SIGCONT freeze and thaw the process).
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).expect("signal the process");
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub async fn terminate(mut self, timeout: Duration) -> Option<i32> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("send SIGTERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?} of SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
