//! Loopback ports: choosing free ones, and waiting until one accepts.

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use crate::ProcessError;

/// `count` distinct ports that were free a moment ago: all listeners stay
/// open until every port is chosen, so the OS cannot hand one out twice.
pub fn free_ports(count: usize) -> Result<Vec<u16>, ProcessError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ProcessError::NoFreePort)?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect::<Result<_, _>>()
        .map_err(ProcessError::NoFreePort)
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, ProcessError> {
    Ok(free_ports(1)?[0])
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` now.
pub fn in_use(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub async fn wait_for_port(what: &str, port: u16, timeout: Duration) -> Result<(), ProcessError> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ProcessError::NotListening {
                what: what.to_owned(),
                port,
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
