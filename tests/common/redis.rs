//! A real Redis for the tests, never a mock.
//!
//! [`redis`] gives the shared server (`RACEPOOL_REDIS_URL`, default `redis://127.0.0.1:6379`)
//! when it answers, else a throwaway `redis-server` of the test's own on a free port in a
//! temporary dir when the binary exists, else `None` after one loud line naming the test.
//! [`Server::start`] always starts a throwaway server: for what must never be done to the
//! shared one (restart it, stop it, clean every run). With `RACEPOOL_REQUIRE_SERVICES=1` a
//! skip is a failure.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use racepool::store::RunStore;
use racepool::target::redis::resp::{Client, RedisUrl};
use racepool::target::redis::RedisTarget;
use racepool::target::Target;

/// A run id no other test of this process uses.
pub fn fresh_run() -> u64 {
    // Distinct within a process (each call counts up), and across processes (clock and pid).
    RunStore::new_run_id()
}

/// Removes the run's keys when the test ends, however it ends.
pub struct Cleanup<'a>(pub &'a RedisTarget, pub u64);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.clean(Some(self.1));
    }
}

pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// Where a test's Redis is. Dropping it stops and removes a throwaway server.
pub enum Redis {
    Shared(String),
    Own(Server),
}

impl Redis {
    pub fn url(&self) -> &str {
        match self {
            Redis::Shared(u) => u,
            Redis::Own(s) => &s.url,
        }
    }
}

/// Skips `test` with one loud line, or fails it when services are required.
pub fn skip(test: &str, why: &str) {
    if std::env::var("RACEPOOL_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{test}: {why}, and RACEPOOL_REQUIRE_SERVICES=1");
    }
    // Straight to the stream: the harness captures `eprintln!` of a passing test.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "!!!!! SKIPPED {test}: {why} !!!!!");
}

/// Whether a server answers PING at `url` within a second.
pub fn answers(url: &str) -> bool {
    let Ok(u) = RedisUrl::parse(url) else {
        return false;
    };
    Client::connect(&u, Duration::from_secs(1))
        .and_then(|mut c| c.call(&[&"PING"]))
        .is_ok()
}

/// The shared server, or a throwaway one, or None (skipped, loudly).
pub fn redis(test: &str) -> Option<Redis> {
    let url = std::env::var("RACEPOOL_REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    if answers(&url) {
        return Some(Redis::Shared(url));
    }
    Server::start(test, &[]).map(Redis::Own)
}

/// A `redis-server` of our own, on a free loopback port, in a temporary dir.
pub struct Server {
    pub url: String,
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

static DIRS: AtomicU32 = AtomicU32::new(0);

impl Server {
    /// Starts one with `extra` arguments (`--appendonly yes`, `--maxclients 8`); None when
    /// `redis-server` is not installed (skipped, loudly).
    pub fn start(test: &str, extra: &[&str]) -> Option<Server> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            skip(test, "no Redis answers and redis-server is not installed");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "racepool-redis-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // A port another process takes between our probe and the server's bind: try again.
        for _ in 0..5 {
            let port = free_port();
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                "server.log",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut s = Server {
                url: format!("redis://127.0.0.1:{port}"),
                port,
                dir: dir.clone(),
                args,
                child: None,
            };
            if s.launch() {
                return Some(s);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("{test}: redis-server did not start on any of 5 free ports");
    }

    /// Starts the process (again) and waits, bounded, until it answers.
    fn launch(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(&self.args)
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if answers(&self.url) {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                break; // it exited: the port was taken
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, and reap it: nothing is saved beyond what its persistence already wrote.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, in the same dir (its AOF, if any, is reloaded).
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.launch(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "kill {signal}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) server too.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Counts keys matching `pattern` by SCAN.
pub fn count_keys(url: &str, pattern: &str) -> usize {
    let u = RedisUrl::parse(url).unwrap();
    let mut c = Client::connect(&u, Duration::from_secs(5)).unwrap();
    let mut n = 0;
    c.scan(pattern, |_, keys| {
        n += keys.len();
        Ok(())
    })
    .unwrap();
    n
}

/// One command on a fresh connection.
pub fn command(url: &str, args: &[&str]) -> racepool::target::redis::resp::Reply {
    let u = RedisUrl::parse(url).unwrap();
    let mut c = Client::connect(&u, Duration::from_secs(5)).unwrap();
    let args: Vec<&dyn racepool::target::redis::resp::Arg> = args
        .iter()
        .map(|a| a as &dyn racepool::target::redis::resp::Arg)
        .collect();
    c.call(&args).unwrap()
}
