//! Load at a fixed rate whatever the answers do (open loop): the n-th
//! operation starts at n / rate s, even while earlier ones are unanswered,
//! as independent users would send them.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// What an open-loop phase measured.
pub struct Phase {
    /// Each answered operation's latency, in ms.
    pub latencies_ms: Vec<f64>,
    pub errors: usize,
    /// From the first operation's start to the last one's answer.
    pub elapsed: Duration,
}

impl Phase {
    /// Operations answered per second over the phase.
    pub fn answered_per_s(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `operation(n)` for n in 0..rate × seconds, each at its time; an
/// operation fails by returning `Err`.
pub async fn open_loop<F, Fut>(rate: f64, seconds: f64, operation: F) -> Phase
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), ()>> + Send + 'static,
{
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    let total = (rate * seconds) as usize;
    let mut handles = Vec::with_capacity(total);
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let operation = operation(n);
        let latencies = latencies.clone();
        let errors = errors.clone();
        handles.push(tokio::spawn(async move {
            let sent = Instant::now();
            match operation.await {
                Ok(()) => latencies.lock().unwrap().push(sent.elapsed().as_secs_f64() * 1e3),
                Err(()) => *errors.lock().unwrap() += 1,
            }
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    let latencies_ms = latencies.lock().unwrap().clone();
    let errors = *errors.lock().unwrap();
    Phase {
        latencies_ms,
        errors,
        elapsed: started.elapsed(),
    }
}
