//! PostgreSQL access shared by the services that own a schema (`tasks`,
//! `notifications`, `audit`).
//!
//! Every service lives in its own schema of one database and keeps its own
//! sqlx migration history there: the connection's `search_path` is the
//! service's schema, so `_sqlx_migrations` of one service never sees another's
//! versions, and no service can read another's tables by accident.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::{
    Connection, Executor, PgPool,
    migrate::Migrator,
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
) -> Result<PgPool, DbError> {
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
    setup.close().await.ok();

    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .map_err(DbError::Connect)?;
    migrations
        .run(&pool)
        .await
        .map_err(|source| DbError::Migrate { schema, source })?;
    Ok(pool)
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
    if is_transient(err) {
        tracing::warn!(error = %err, "database unavailable");
        tonic::Status::unavailable("database unavailable, try again")
    } else {
        tracing::error!(error = %err, "database error");
        tonic::Status::internal("internal error")
    }
}
