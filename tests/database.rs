//! The test-database harness and the per-schema migration runner.

use secrecy::SecretString;
use sqlx::{Connection, PgConnection};
use todo_core::{config::DatabaseConfig, db};
use todo_testing::TestDatabase;

static PROBE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("tests/migrations");

fn config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: SecretString::from(url.to_owned()),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(10),
    }
}

#[tokio::test]
async fn each_test_database_is_fresh_and_separate() {
    let first = TestDatabase::create().await;
    let second = TestDatabase::create().await;
    assert_ne!(first.name, second.name);

    let mut conn = PgConnection::connect(&first.url).await.unwrap();
    sqlx::query("CREATE TABLE only_in_first (x int)")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut other = PgConnection::connect(&second.url).await.unwrap();
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass('public.only_in_first')::text")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(found, None, "a table of one test database leaked into another");
}

#[tokio::test]
async fn services_migrate_their_own_schemas_independently() {
    let database = TestDatabase::create().await;
    let tasks = db::connect_and_migrate(&config(&database.url), "tasks", &PROBE_MIGRATIONS)
        .await
        .unwrap();
    // The same version numbers in another schema must not clash with the first.
    let audit = db::connect_and_migrate(&config(&database.url), "audit", &PROBE_MIGRATIONS)
        .await
        .unwrap();
    // Running again is a no-op.
    db::connect_and_migrate(&config(&database.url), "audit", &PROBE_MIGRATIONS)
        .await
        .unwrap();

    for (pool, schema) in [(&tasks, "tasks"), (&audit, "audit")] {
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(pool.pool())
            .await
            .unwrap();
        assert_eq!(applied, 1);
        let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('probe')::text")
            .fetch_one(pool.pool())
            .await
            .unwrap();
        assert_eq!(table.as_deref(), Some("probe"), "probe table lives in {schema}");
        let search_path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(pool.pool())
            .await
            .unwrap();
        assert_eq!(search_path, schema);
    }
}

#[tokio::test]
async fn unreachable_database_fails_with_a_clear_error() {
    let port = todo_testing::free_port();
    let mut config = config(&format!("postgres://nobody@127.0.0.1:{port}/none"));
    config.acquire_timeout = std::time::Duration::from_millis(500);
    let err = db::connect_and_migrate(&config, "tasks", &PROBE_MIGRATIONS)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect to PostgreSQL"), "{err}");
}

#[tokio::test]
async fn sslmode_require_connects_over_tls() {
    if std::env::var_os("DATABASE_URL").is_some() {
        eprintln!("skipped: DATABASE_URL points at a server whose TLS set-up this test does not control");
        return;
    }
    let database = TestDatabase::create().await;
    let url = format!("{}?sslmode=require", database.url);
    let pool = db::connect_and_migrate(&config(&url), "tasks", &PROBE_MIGRATIONS)
        .await
        .unwrap();
    let encrypted: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    assert!(encrypted, "the session runs over TLS");
}

#[tokio::test]
async fn a_least_privilege_role_with_a_precreated_schema_can_migrate() {
    let database = TestDatabase::create().await;
    let mut admin = PgConnection::connect(&database.url).await.unwrap();
    let role = format!("svc_{}", uuid::Uuid::new_v4().simple());
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'pw'"),
        format!("REVOKE CREATE ON DATABASE {} FROM PUBLIC", database.name),
        format!("GRANT CONNECT ON DATABASE {} TO {role}", database.name),
        format!("CREATE SCHEMA tasks AUTHORIZATION {role}"),
    ] {
        sqlx::query(&sql).execute(&mut admin).await.unwrap();
    }
    let (scheme_and_host, rest) = database.url.split_once('@').unwrap();
    let scheme = scheme_and_host.split("://").next().unwrap();
    let url = format!("{scheme}://{role}:pw@{rest}");
    let pool = db::connect_and_migrate(&config(&url), "tasks", &PROBE_MIGRATIONS)
        .await
        .expect("the role owns its schema and needs nothing more");
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('probe')::text")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    assert_eq!(table.as_deref(), Some("probe"));
    pool.close().await;
    sqlx::query("DROP SCHEMA tasks CASCADE")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP OWNED BY {role}"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn while_the_server_is_down_callers_fail_at_once_and_recover_when_it_is_back() {
    let database = TestDatabase::create().await;
    if !database.owns_server() {
        eprintln!("skipped: the DATABASE_URL server is not this test's to stop");
        return;
    }
    let mut config = config(&database.url);
    config.acquire_timeout = std::time::Duration::from_secs(2);
    let db = db::connect_and_migrate(&config, "tasks", &PROBE_MIGRATIONS)
        .await
        .unwrap();
    db.begin().await.unwrap().commit().await.unwrap();

    database.crash_server();
    let first = db.begin().await.unwrap_err();
    assert!(db::is_transient(&first), "{first}");
    assert!(!db.is_reachable());
    // The next caller is not made to wait for the connection timeout again.
    let second = db.acquire().await.unwrap_err();
    assert!(second.to_string().contains("unreachable moments ago"), "{second}");
    assert_eq!(db::status(&second).code(), tonic::Code::Unavailable);

    database.restart_server();
    let back = std::time::Instant::now();
    loop {
        match db.begin().await {
            Ok(tx) => {
                tx.commit().await.unwrap();
                break;
            }
            Err(err) => {
                assert!(db::is_transient(&err), "{err}");
                assert!(
                    back.elapsed() < std::time::Duration::from_secs(30),
                    "never recovered: {err}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    assert!(db.is_reachable());
}

/// A pool whose connections are all busy (one user's slow reads, say) is
/// back-pressure on the callers that wait, not an outage: the others are
/// not failed fast, and the server is not marked unreachable.
#[tokio::test]
async fn a_saturated_pool_is_not_taken_for_an_outage() {
    let database = TestDatabase::create().await;
    let mut config = config(&database.url);
    config.max_connections = 1;
    config.acquire_timeout = std::time::Duration::from_millis(300);
    let db = db::connect_and_migrate(&config, "tasks", &PROBE_MIGRATIONS)
        .await
        .unwrap();
    let busy = db.acquire().await.unwrap();
    let waited = db.acquire().await.unwrap_err();
    assert!(matches!(waited, sqlx::Error::PoolTimedOut), "{waited}");
    assert!(db.is_reachable(), "a busy pool is not an unreachable server");
    drop(busy);
    db.acquire().await.expect("the next caller gets the freed connection");
}

/// One statement cannot hold a connection for longer than the statement
/// timeout; a client learns its request was too large, not that the
/// server broke.
#[tokio::test]
async fn a_statement_past_the_timeout_is_cancelled() {
    let database = TestDatabase::create().await;
    let mut config = config(&database.url);
    config.statement_timeout = std::time::Duration::from_millis(200);
    let db = db::connect_and_migrate(&config, "tasks", &PROBE_MIGRATIONS)
        .await
        .unwrap();
    let mut conn = db.acquire().await.unwrap();
    let err = sqlx::query("SELECT pg_sleep(5)").execute(&mut *conn).await.unwrap_err();
    assert!(db::is_statement_timeout(&err), "{err}");
    assert_eq!(db::status(&err).code(), tonic::Code::ResourceExhausted);
    assert!(db.is_reachable());
}
