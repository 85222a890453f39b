//! Loopback ports: choosing free ones, and waiting until one accepts.

use std::{
    fs::File,
    net::TcpListener,
    ops::Range,
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use crate::ProcessError;

/// The reservations this process holds: a locked file per port, released
/// when the process exits (the kernel drops the locks), never before.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// `count` distinct ports, free now and reserved for this process.
///
/// Binding port 0 and releasing it is not enough: another process (a test
/// running beside this one) can be handed the same port before the stack
/// that planned it binds it, and every outgoing connection on this machine
/// takes its source port from the same ephemeral range. So ports come from
/// below that range, and each is claimed by an exclusive lock on a file in
/// the temporary folder, which every process that plans ports this way
/// respects, and which the kernel releases when the holder exits.
pub fn free_ports(count: usize) -> Result<Vec<u16>, ProcessError> {
    let range = reservable_range();
    let span = u32::from(range.end - range.start);
    let dir = std::env::temp_dir().join("todo-ports");
    std::fs::create_dir_all(&dir).map_err(ProcessError::NoFreePort)?;
    // Different processes start at different places, so they rarely
    // contend for the same lock.
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let start = (std::process::id().wrapping_mul(7919) ^ nanos) % span;
    let mut ports = Vec::with_capacity(count);
    for offset in 0..span {
        if ports.len() == count {
            break;
        }
        let port = range.start + ((start + offset) % span) as u16;
        if let Some(lock) = reserve(&dir, port)? {
            // Free now: nothing else listens there (or holds it unreserved).
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                ports.push(port);
                HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(lock);
            }
        }
    }
    if ports.len() < count {
        return Err(ProcessError::NoFreePort(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("fewer than {count} ports free and unreserved in {range:?}"),
        )));
    }
    Ok(ports)
}

/// The lock on `port`'s file in `dir`, if no process holds it.
fn reserve(dir: &std::path::Path, port: u16) -> Result<Option<File>, ProcessError> {
    let path: PathBuf = dir.join(format!("{port}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(ProcessError::NoFreePort)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(err)) => Err(ProcessError::NoFreePort(err)),
    }
}

/// 10,000 ports below the kernel's ephemeral range (32768 by default) and
/// below Kubernetes' NodePorts (30000–32767), above the registered
/// services most machines run.
fn reservable_range() -> Range<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let end = ephemeral_low.clamp(11024, 30000);
    end - 10000..end
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports = free_ports(20).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 20);
        let range = reservable_range();
        assert!(
            ports.iter().all(|port| range.contains(port)),
            "{ports:?} outside {range:?}"
        );
        assert!(ports.iter().all(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok()));
    }

    #[test]
    fn a_reserved_port_is_never_handed_out_again() {
        let first = free_ports(50).unwrap();
        let second = free_ports(50).unwrap();
        assert!(first.iter().all(|port| !second.contains(port)));
        // What another process sees: each of them is locked.
        let dir = std::env::temp_dir().join("todo-ports");
        assert!(first.iter().all(|port| reserve(&dir, *port).unwrap().is_none()));
    }
}
