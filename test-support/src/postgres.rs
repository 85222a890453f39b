//! A fresh database for each test.
//!
//! With `DATABASE_URL` set, each test gets a new database on that server,
//! dropped when the test ends. Without it, the first test of a process starts
//! a throw-away PostgreSQL cluster (initdb into a temporary directory, fsync
//! off, loopback only) that the last test stops. initdb refuses to run as
//! root, so as root the cluster runs as the `postgres` user via `runuser`.
//! A watchdog process stops the cluster and removes its directory if the
//! test process dies without cleaning up, so no server outlives its tests.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex, Weak},
};

use sqlx::{Connection, Executor, PgConnection};

/// Whether the throw-away cluster flushes commits to disk (off by default:
/// tests need no crash safety of the machine, and fsync is slow).
static DURABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the throw-away cluster started after this call durable (fsync and
/// full-page writes on), as a production server is: what the benchmark
/// measures against. Call before the first [`TestDatabase::create`].
pub fn use_durable_commits() {
    DURABLE.store(true, std::sync::atomic::Ordering::Release);
}

/// The port the throw-away server of this process listens on (0: a free one).
static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

/// A throw-away server of this process's own on `port`, and its `postgres`
/// database: PostgreSQL for a local stack (`just dev`), gone with the
/// returned value or with this process, whichever ends first.
pub async fn local_server(port: u16) -> TestDatabase {
    PORT.store(port, std::sync::atomic::Ordering::Release);
    let cluster = tokio::task::spawn_blocking(Cluster::shared)
        .await
        .expect("starting PostgreSQL does not panic");
    TestDatabase {
        url: cluster.admin_url.clone(),
        name: String::new(),
        admin_url: cluster.admin_url.clone(),
        _cluster: Some(cluster),
    }
}

/// A database that exists for as long as this value.
pub struct TestDatabase {
    /// Connection URL of the database (no TLS, loopback or `DATABASE_URL`'s host).
    pub url: String,
    pub name: String,
    admin_url: String,
    _cluster: Option<Arc<Cluster>>,
}

impl TestDatabase {
    /// Creates a new, empty database.
    pub async fn create() -> Self {
        let (admin_url, cluster) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let cluster = Cluster::shared();
                (cluster.admin_url.clone(), Some(cluster))
            }
        };
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to the test server {}: {err}", redact(&admin_url)));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Self {
            url,
            name,
            admin_url,
            _cluster: cluster,
        }
    }
}

impl TestDatabase {
    /// A second handle on a database another `TestDatabase` owns (for a
    /// replica or a restarted process); dropping it drops nothing.
    pub fn existing(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: String::new(),
            admin_url: String::new(),
            _cluster: None,
        }
    }

    /// An empty handle that owns nothing.
    pub fn placeholder() -> Self {
        Self::existing("")
    }

    /// Runs a query that answers one number (a count, say).
    pub async fn scalar(&self, sql: &str) -> i64 {
        let mut conn = PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database");
        let value: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .expect("run the query");
        conn.close().await.ok();
        value
    }

    /// True when this test started the server itself (no `DATABASE_URL`),
    /// so it may stop and start it.
    pub fn owns_server(&self) -> bool {
        self._cluster.is_some()
    }

    /// Stops the server at once, as a crash would (`pg_ctl -m immediate`):
    /// open connections break, new ones are refused.
    pub fn crash_server(&self) {
        let stopped = self._cluster.as_ref().expect("a server this test owns").stop_server();
        assert!(stopped, "pg_ctl stop failed");
    }

    /// Starts the server again on the same port and data.
    pub fn restart_server(&self) {
        self._cluster.as_ref().expect("a server this test owns").start_server();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // A throw-away cluster takes its databases with it; a handle from
        // `existing` owns nothing.
        if self._cluster.is_some() || self.name.is_empty() {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime that is shutting down: use a thread
        // with its own small runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await.map_err(std::io::Error::other)?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Replaces the database name (path) of a PostgreSQL URL, keeping the query.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map(|i| authority_start + i);
    let server = path_start.map_or(base, |i| &base[..i]);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// A throw-away PostgreSQL cluster, shared by the tests of one process.
struct Cluster {
    admin_url: String,
    data_dir: PathBuf,
    bin_dir: PathBuf,
    as_postgres_user: bool,
    server_options: String,
    _root: tempfile::TempDir,
    watchdog: Mutex<Option<std::process::Child>>,
}

impl Cluster {
    fn shared() -> Arc<Self> {
        static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Self::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    fn start() -> Self {
        let bin_dir = bin_dir();
        let as_postgres_user = rustix::process::geteuid().is_root();
        let root = tempfile::Builder::new()
            .prefix("todo-test-pg-")
            .tempdir()
            .expect("create temp dir for PostgreSQL");
        let data_dir = root.path().join("data");
        let socket_dir = root.path().join("socket");
        std::fs::create_dir(&socket_dir).expect("create socket dir");
        if as_postgres_user {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(root.path())
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown of the test cluster directory to postgres failed"
            );
        }
        let port = match PORT.load(std::sync::atomic::Ordering::Acquire) {
            0 => crate::free_port(),
            port => port,
        };

        let run = |program: &str, args: &[&str]| run_as(as_postgres_user, &bin_dir.join(program), args);
        let data = data_dir.to_str().expect("utf-8 temp path");
        run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        // TLS on, with a throw-away certificate, so `sslmode=require` (what
        // managed PostgreSQL needs) is exercised too.
        let tls = make_certificate(&data_dir, as_postgres_user);
        // fsync off unless asked (nothing here must survive the machine
        // crashing), but commits synchronous: a test that crashes the server
        // (`pg_ctl -m immediate`) must not lose what was acknowledged, as it
        // would with `synchronous_commit=off`.
        let durable = if DURABLE.load(std::sync::atomic::Ordering::Acquire) {
            "on"
        } else {
            "off"
        };
        let server_options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync={durable} \
             -c full_page_writes={durable} -c max_connections=300 -c ssl={}",
            socket_dir.display(),
            if tls { "on" } else { "off" }
        );
        let cluster = Self {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            data_dir,
            bin_dir,
            as_postgres_user,
            server_options,
            watchdog: Mutex::new(None),
            _root: root,
        };
        cluster.start_server();
        cluster.start_watchdog();
        cluster
    }

    fn start_server(&self) {
        let log = self._root.path().join("server.log");
        run_as(
            self.as_postgres_user,
            &self.bin_dir.join("pg_ctl"),
            &[
                "-D",
                self.data_dir.to_str().expect("utf-8 temp path"),
                "-o",
                &self.server_options,
                "-l",
                log.to_str().expect("utf-8 path"),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the cluster and removes its files once this process is gone,
    /// whichever way it ends (a panic that aborts, SIGKILL).
    fn start_watchdog(&self) {
        let stop = self.stop_command();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            root = self._root.path().display(),
        );
        // Its own process group: a test runner that kills the test's group
        // (nextest on timeout or Ctrl-C) must not take the watchdog with it.
        let child = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        *self.watchdog.lock().unwrap_or_else(|p| p.into_inner()) = child;
    }

    /// Stops the server at once (`-m immediate`); true when pg_ctl says so.
    fn stop_server(&self) -> bool {
        Command::new("sh")
            .args(["-c", &self.stop_command()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn stop_command(&self) -> String {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let base = format!(
            "'{}' -D '{}' -m immediate -w stop",
            pg_ctl.display(),
            self.data_dir.display()
        );
        if self.as_postgres_user {
            format!("runuser -u postgres -- {base}")
        } else {
            base
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_server();
        if let Some(mut watchdog) = self.watchdog.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// Runs a PostgreSQL program (as `postgres` when we are root) and panics
/// with its output when it fails.
fn run_as(as_postgres_user: bool, program: &Path, args: &[&str]) {
    let mut command = if as_postgres_user {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
    assert!(
        output.status.success(),
        "{} failed: {}\n{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes `server.crt` and `server.key` into the data directory; false (TLS
/// off) when openssl is not installed.
fn make_certificate(data_dir: &Path, as_postgres_user: bool) -> bool {
    let key = data_dir.join("server.key");
    let cert = data_dir.join("server.crt");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !made {
        return false;
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
    if as_postgres_user {
        let _ = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&key)
            .arg(&cert)
            .status();
    }
    true
}

/// The directory holding `initdb` and `pg_ctl`: `PG_BIN_DIR`, else `PATH`,
/// else the newest `/usr/lib/postgresql/<version>/bin` (Debian, Ubuntu).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return dir;
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            Path::new(&bin).join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL, set PG_BIN_DIR, \
         or set DATABASE_URL to a server tests may create databases on",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaces_path_and_keeps_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=require", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=require"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://***@h/db");
    }
}
