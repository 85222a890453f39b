//! PostgreSQL access shared by the services that own a schema (`tasks`,
//! `notifications`, `audit`).
//!
//! Every service lives in its own schema of one database and keeps its own
//! sqlx migration history there: the connection's `search_path` is the
//! service's schema, so `_sqlx_migrations` of one service never sees another's
//! versions, and no service can read another's tables by accident.

use std::{
    future::Future,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use secrecy::ExposeSecret;
use sqlx::{
    Connection, Executor, PgPool, Postgres, Transaction,
    migrate::Migrator,
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgConnection, PgPoolOptions},
};

use crate::config::DatabaseConfig;

/// Failure to reach or prepare the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    InvalidUrl(sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    #[error("cannot create schema {schema}: {source}")]
    CreateSchema { schema: &'static str, source: sqlx::Error },
    #[error("migrating schema {schema} failed: {source}")]
    Migrate {
        schema: &'static str,
        source: sqlx::migrate::MigrateError,
    },
}

/// Connects a pool whose sessions work in `schema`, creating the schema and
/// applying `migrations` first.
pub async fn connect_and_migrate(
    config: &DatabaseConfig,
    schema: &'static str,
    migrations: &Migrator,
) -> Result<Database, DbError> {
    let options = PgConnectOptions::from_str(config.url.expose_secret()).map_err(DbError::InvalidUrl)?;

    // The schema must exist before a session can use it as search_path.
    // Deployments pre-create it, owned by the service's role, and that role
    // may lack CREATE on the database (PostgreSQL checks that privilege even
    // for CREATE SCHEMA IF NOT EXISTS), so create it only when it is missing.
    let mut setup = PgConnection::connect_with(&options).await.map_err(DbError::Connect)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut setup)
        .await
        .map_err(|source| DbError::CreateSchema { schema, source })?;
    if !exists {
        setup
            .execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
            .await
            .map_err(|source| DbError::CreateSchema { schema, source })?;
    }
    // Migrations run on a session of their own, without the statement
    // timeout: building an index on a large table may take minutes.
    setup
        .execute(format!("SET search_path = {schema}").as_str())
        .await
        .map_err(|source| DbError::CreateSchema { schema, source })?;
    migrations
        .run_direct(&mut setup)
        .await
        .map_err(|source| DbError::Migrate { schema, source })?;
    setup.close().await.ok();

    let statement_timeout = config.statement_timeout.as_millis().to_string();
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // sqlx pings every connection it hands out, one more round trip
        // per statement; under load connections come straight back, so
        // only one that sat idle a while (through an outage, say) is
        // checked. A server restart faster than that can cost the next
        // caller on each connection one transient error, which callers
        // retry anyway.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options.options([
            ("search_path", schema),
            ("statement_timeout", statement_timeout.as_str()),
        ]))
        .await
        .map_err(DbError::Connect)?;
    Ok(Database::new(pool))
}

/// A pooled connection idle at least this long is pinged before use.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// After PostgreSQL was found unreachable, how long callers fail at once
/// before one of them tries again.
const OUTAGE_COOLDOWN: Duration = Duration::from_millis(500);
/// How long that one caller waits for a connection while probing.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A connection pool that fails fast while PostgreSQL is unreachable.
///
/// sqlx keeps retrying a refused connection until the acquire timeout runs
/// out, so during an outage every RPC would hang for that long and every
/// consumer delivery would hold its partition just as long before answering
/// RETRY. Once a connection attempt has failed, callers get a transient
/// error at once; every [`OUTAGE_COOLDOWN`] a single caller probes the server
/// with a short timeout, and the first success closes the gate for all.
#[derive(Debug, Clone)]
pub struct Database {
    pool: PgPool,
    outage: Arc<Outage>,
}

impl Database {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            outage: Arc::new(Outage::default()),
        }
    }

    /// Starts a transaction (fails fast during an outage).
    pub async fn begin(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.guarded(self.pool.begin()).await
    }

    /// Takes a connection from the pool (fails fast during an outage).
    pub async fn acquire(&self) -> sqlx::Result<PoolConnection<Postgres>> {
        self.guarded(self.pool.acquire()).await
    }

    /// The pool itself, for work that has its own retry loop (the outbox relay).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn is_saturated(&self) -> bool {
        self.pool.size() >= self.pool.options().get_max_connections() && self.pool.num_idle() == 0
    }

    /// False while the last connection attempt failed.
    pub fn is_reachable(&self) -> bool {
        self.outage.retry_at.load(Ordering::Acquire) == HEALTHY
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn guarded<T>(&self, connect: impl Future<Output = sqlx::Result<T>>) -> sqlx::Result<T> {
        let result = match self.outage.admit() {
            Admission::Go => connect.await,
            Admission::Probe => tokio::time::timeout(PROBE_TIMEOUT, connect)
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut)),
            Admission::FailFast => return Err(unreachable()),
        };
        match &result {
            Ok(_) => self.outage.end(),
            // Every connection open and in use: the pool is saturated, the
            // server is fine. Only this caller waited too long; failing
            // everyone fast would turn one user's load into an outage.
            Err(sqlx::Error::PoolTimedOut) if self.is_saturated() => {
                tracing::debug!("every database connection is busy");
            }
            Err(err) if is_connection_failure(err) => self.outage.begin(),
            Err(_) => {}
        }
        result
    }
}

const HEALTHY: u64 = 0;

/// When the next probe may run, in milliseconds since `epoch` (`HEALTHY`
/// when no outage is known).
#[derive(Debug)]
struct Outage {
    epoch: Instant,
    retry_at: AtomicU64,
}

enum Admission {
    Go,
    Probe,
    FailFast,
}

impl Default for Outage {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            retry_at: AtomicU64::new(HEALTHY),
        }
    }
}

impl Outage {
    fn now(&self) -> u64 {
        // +1 so that no real instant is `HEALTHY`.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn admit(&self) -> Admission {
        let retry_at = self.retry_at.load(Ordering::Acquire);
        if retry_at == HEALTHY {
            return Admission::Go;
        }
        let now = self.now();
        if now < retry_at {
            return Admission::FailFast;
        }
        // Exactly one caller wins the probe for this period.
        let next = now + OUTAGE_COOLDOWN.as_millis() as u64;
        match self
            .retry_at
            .compare_exchange(retry_at, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admission::Probe,
            Err(_) => Admission::FailFast,
        }
    }

    fn begin(&self) {
        let next = self.now() + OUTAGE_COOLDOWN.as_millis() as u64;
        if self.retry_at.swap(next, Ordering::AcqRel) == HEALTHY {
            tracing::warn!("PostgreSQL unreachable; failing fast and probing every {OUTAGE_COOLDOWN:?}");
        }
    }

    fn end(&self) {
        if self.retry_at.swap(HEALTHY, Ordering::AcqRel) != HEALTHY {
            tracing::info!("PostgreSQL reachable again");
        }
    }
}

fn unreachable() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "PostgreSQL was unreachable moments ago; not trying again yet",
    ))
}

/// Failures to get a working connection at all (as opposed to a query that
/// failed on a working one).
fn is_connection_failure(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    ) || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| {
        code.starts_with("08") || code.starts_with("57P")
    }))
}

/// A statement cancelled by `statement_timeout` (see
/// [`crate::config::DatabaseConfig::statement_timeout`]).
pub fn is_statement_timeout(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}

/// Errors that go away when the database comes back: connection trouble,
/// resource exhaustion, shutdown, and retryable conflicts.
pub fn is_transient(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    ) || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| {
        // Class 08 (connection), 53 (resources), 57P (shutdown), 40001/40P01 (retryable conflicts).
        code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") || code == "40001" || code == "40P01"
    }))
}

/// The one status policy for database errors in an RPC: transient trouble
/// is UNAVAILABLE (the client may retry), anything else INTERNAL; the cause
/// is logged here, never sent to the client.
pub fn status(err: &sqlx::Error) -> tonic::Status {
    if is_statement_timeout(err) {
        tracing::warn!(error = %err, "statement timed out");
        return tonic::Status::resource_exhausted(
            "the request needs more time than one call gets; narrow it (a shorter query, a smaller page)",
        );
    }
    if is_transient(err) {
        tracing::warn!(error = %err, "database unavailable");
        tonic::Status::unavailable("database unavailable, try again")
    } else {
        tracing::error!(error = %err, "database error");
        tonic::Status::internal("internal error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_failure_callers_fail_fast_and_one_probes_per_period() {
        let outage = Outage::default();
        assert!(matches!(outage.admit(), Admission::Go));
        outage.begin();
        assert!(matches!(outage.admit(), Admission::FailFast));
        // Pretend the cooldown has passed.
        outage.retry_at.store(1, Ordering::Release);
        assert!(matches!(outage.admit(), Admission::Probe));
        assert!(matches!(outage.admit(), Admission::FailFast), "one probe at a time");
        outage.end();
        assert!(matches!(outage.admit(), Admission::Go));
    }

    #[test]
    fn only_connection_failures_open_the_gate() {
        assert!(is_connection_failure(&sqlx::Error::PoolTimedOut));
        assert!(is_connection_failure(&unreachable()));
        assert!(!is_connection_failure(&sqlx::Error::RowNotFound));
        assert!(!is_connection_failure(&sqlx::Error::PoolClosed));
    }
}
