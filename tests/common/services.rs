//! The real servers tests run against, never mocks.
//!
//! Each engine's URL comes from its environment variable (`RACEPOOL_POSTGRES_URL`,
//! `RACEPOOL_MYSQL_URL`) or the project's default. When nothing answers there, a throwaway
//! server is started from the installed binaries (PostgreSQL's `initdb` and `postgres` from
//! `pg_config --bindir`; `mariadb-install-db` and `mariadbd`) in a temporary directory, on a free
//! loopback port, once per test process. Its keeper is a shell holding the server as a child
//! and reading its stdin, a pipe only this process writes: when the test process exits, however
//! it exits, the pipe closes, and the keeper stops the server and removes the directory.
//!
//! When no server answers and none can be started, `url` prints one loud line naming the
//! skipped test and returns None; with `RACEPOOL_REQUIRE_SERVICES=1` (CI) it panics instead.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Mysql,
}

impl Service {
    fn var(self) -> &'static str {
        match self {
            Service::Postgres => "RACEPOOL_POSTGRES_URL",
            Service::Mysql => "RACEPOOL_MYSQL_URL",
        }
    }
    fn default_url(self) -> &'static str {
        match self {
            Service::Postgres => "postgres://postgres@127.0.0.1:5432/test",
            Service::Mysql => "mysql://root@127.0.0.1:3306/test",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Service::Postgres => "PostgreSQL",
            Service::Mysql => "MariaDB",
        }
    }
}

/// The URL of a live `service` for `test`, or None after a loud line saying `test` is skipped.
pub fn url(service: Service, test: &str) -> Option<String> {
    let configured = std::env::var(service.var()).unwrap_or_else(|_| service.default_url().into());
    if answers(&configured) {
        return Some(configured);
    }
    let started = throwaway(service);
    if let Ok(url) = started {
        return Some(url.clone());
    }
    let why = started.as_ref().err().cloned().unwrap_or_default();
    let line = format!(
        "SKIPPED {test}: no {} answers at {configured} ({}) and none could be started ({why})",
        service.name(),
        service.var()
    );
    if std::env::var("RACEPOOL_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{line}; RACEPOOL_REQUIRE_SERVICES=1 makes this a failure");
    }
    eprintln!("\n!!!!!!!! {line} !!!!!!!!\n");
    None
}

/// Whether something accepts TCP connections at the URL's host and port.
fn answers(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split(['/', '?']).next().unwrap_or("");
    let default_port = if url.starts_with("postgres") {
        5432
    } else {
        3306
    };
    let addr = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:{default_port}")
    };
    let Ok(mut addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

/// The keepers of started servers: never dropped, so their stdin stays open until exit.
static KEEPERS: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn throwaway(service: Service) -> &'static Result<String, String> {
    static PG: OnceLock<Result<String, String>> = OnceLock::new();
    static MY: OnceLock<Result<String, String>> = OnceLock::new();
    match service {
        Service::Postgres => PG.get_or_init(start_postgres),
        Service::Mysql => MY.get_or_init(start_mariadb),
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A fresh private directory for a server's data, owned by `owner` when given.
fn data_dir(kind: &str, owner: Option<&str>) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("racepool-{kind}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(user) = owner {
        run(Command::new("chown").arg(user).arg(&dir))?;
    }
    Ok(dir)
}

/// Starts `server` (a shell command) under a keeper that stops it and removes `dir` when this
/// process's end of its stdin closes, then waits until `port` answers.
fn keep(server: &str, dir: &Path, port: u16) -> Result<(), String> {
    let script = format!(
        "{server} >'{d}/server.log' 2>&1 & pid=$!; read _; kill $pid; wait $pid; rm -rf '{d}'",
        d = dir.display()
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    KEEPERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "the server on port {port} did not answer within 60 s"
    ))
}

fn start_postgres() -> Result<String, String> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .map_err(|e| format!("pg_config: {e}"))?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // initdb and postgres refuse to run as root.
    let owner = is_root().then_some("postgres");
    let as_owner = |program: PathBuf| {
        let mut c = match owner {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        c.env_remove("PGDATA");
        c
    };
    let dir = data_dir("pg", owner)?;
    let data = dir.join("data");
    run(as_owner(bin.join("initdb"))
        .args(["-U", "postgres", "--auth=trust", "-D"])
        .arg(&data))?;
    let port = free_port()?;
    let server = format!(
        "{}{} -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1",
        owner.map_or(String::new(), |u| format!("runuser -u {u} -- ")),
        bin.join("postgres").display(),
        data.display(),
        dir.display()
    );
    keep(&server, &dir, port)?;
    run(Command::new(bin.join("psql")).args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "postgres",
        "-c",
        "CREATE DATABASE test",
    ]))?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/test"))
}

fn start_mariadb() -> Result<String, String> {
    let dir = data_dir("mariadb", None)?;
    let data = dir.join("data");
    let user = if is_root() { "--user=root" } else { "" };
    run(Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .args((!user.is_empty()).then_some(user)))?;
    let port = free_port()?;
    let server = format!(
        "mariadbd --no-defaults --datadir='{}' --port={port} --bind-address=127.0.0.1 \
         --socket='{}/mariadb.sock' --skip-log-bin {user}",
        data.display(),
        dir.display()
    );
    keep(&server, &dir, port)?;
    run(Command::new("mariadb").args([
        "-h",
        "127.0.0.1",
        "-P",
        &port.to_string(),
        "-u",
        "root",
        "-e",
        "CREATE DATABASE test",
    ]))?;
    Ok(format!("mysql://root@127.0.0.1:{port}/test"))
}

/// A PostgreSQL of the test's own, for loads the shared server's `max_connections` cannot
/// take (3 hosts × 50 workers): started from the installed binaries (`pg_config --bindir`) in a
/// fresh temporary directory on a free loopback port. When dropped (a panic too) it is stopped
/// (fast shutdown) and its directory removed; if the test process dies without unwinding, its
/// keeper does the same when the pipe from this process closes.
pub struct OwnPostgres {
    url: String,
    dir: PathBuf,
    /// A shell holding the server as a child and reading its stdin, a pipe only this end
    /// writes: closed, it stops the server and removes `dir`.
    keeper: Option<Child>,
}

impl OwnPostgres {
    /// A server taking `max_connections`, or None after one loud line saying `test` is
    /// skipped (a failure with `RACEPOOL_REQUIRE_SERVICES=1`).
    pub fn start(test: &str, max_connections: u32) -> Option<OwnPostgres> {
        match OwnPostgres::try_start(max_connections) {
            Ok(pg) => Some(pg),
            Err(why) => {
                let line = format!(
                    "SKIPPED {test}: no PostgreSQL of its own with max_connections {max_connections} could be started ({why})"
                );
                if std::env::var("RACEPOOL_REQUIRE_SERVICES").as_deref() == Ok("1") {
                    panic!("{line}; RACEPOOL_REQUIRE_SERVICES=1 makes this a failure");
                }
                eprintln!("\n!!!!!!!! {line} !!!!!!!!\n");
                None
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn try_start(max_connections: u32) -> Result<OwnPostgres, String> {
        let out = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .map_err(|e| format!("pg_config: {e}"))?;
        if !out.status.success() {
            return Err("pg_config --bindir failed".into());
        }
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        for program in ["initdb", "postgres", "pg_isready"] {
            if !bin.join(program).exists() {
                return Err(format!("{} is missing", bin.join(program).display()));
            }
        }
        // initdb and postgres refuse to run as root: as the postgres user, in a directory it owns.
        let owner = is_root().then_some("postgres");
        let as_owner = |program: &Path| -> String {
            let p = program.display();
            match owner {
                // setpriv execs the program (no supervising parent): the keeper's $! is the server.
                Some(u) => format!("setpriv --reuid={u} --regid={u} --init-groups {p}"),
                None => p.to_string(),
            }
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("racepool-ownpg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // From here on, a failure still removes the directory (and a started server).
        let mut pg = OwnPostgres {
            url: String::new(),
            dir: dir.clone(),
            keeper: None,
        };
        if let Some(u) = owner {
            run(Command::new("chown").arg(u).arg(&dir))?;
        }
        let data = dir.join("data");
        run(Command::new("sh")
            .current_dir(&dir)
            .env_remove("PGDATA")
            .arg("-c")
            .arg(format!(
                "{} -U postgres --auth=trust --no-sync -D '{}'",
                as_owner(&bin.join("initdb")),
                data.display()
            )))?;
        let port = free_port()?;
        // Durability is not what these tests measure: no fsync, so 150 workers' commits are
        // not queued behind the disk of a shared machine.
        let server = format!(
            "{} -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 \
             -c max_connections={max_connections} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off",
            as_owner(&bin.join("postgres")),
            data.display(),
            dir.display()
        );
        let script = format!(
            "cd '{d}' && {server} >'{d}/server.log' 2>&1 & pid=$!; read _; kill -INT $pid; \
             wait $pid; rm -rf '{d}'",
            d = dir.display()
        );
        pg.keeper = Some(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?,
        );
        // The server says when it accepts connections; pg_isready asks it (no fixed sleep).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(format!(
                    "the server on port {port} was not ready within 60 s: {}",
                    log.trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pg.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Ok(pg)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if let Some(mut keeper) = self.keeper.take() {
            // Closing its stdin tells the keeper to stop the server and remove the directory.
            drop(keeper.stdin.take());
            let _ = keeper.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
