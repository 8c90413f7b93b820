//! `redis-benchmark`, Redis' own load generator, as the peer of racepool's Redis `atomic`:
//! both send one `INCR` per update, one at a time per client, over loopback.
//!
//! The one difference the ratio measures: redis-benchmark is one process multiplexing its
//! clients over an event loop, while racepool's workers are processes, each blocked in its own
//! round trip. On a small machine the workers pay context switches that the event loop does
//! not.
//!
//! It runs `INCR racepool:{ID}:peer` rather than `-t incr`: the same command on one key
//! (`-t incr` without `-r` increments the single key `counter:__rand_int__`), but inside
//! racepool's namespace, so it never touches a key of the user's and `torture clean` finds it
//! if we die before deleting it ourselves.

use std::process::Command;

use serde::Serialize;

use crate::clock::now_ns;
use crate::target::redis::resp::{Client, RedisUrl};
use crate::target::redis::Keys;

/// What one redis-benchmark run measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Figures {
    pub clients: usize,
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Why the peer gave no figures.
#[derive(Debug)]
pub enum PeerError {
    /// `redis-benchmark` is not on PATH: the bench reports racepool's rate alone.
    NotInstalled,
    /// It ran and failed (the server refused, a bad flag): its exit status and stderr.
    Failed(String),
    /// Its output is not the CSV we parse (another version's format).
    Output(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::NotInstalled => f.write_str("redis-benchmark is not installed"),
            PeerError::Failed(m) => write!(f, "redis-benchmark failed: {m}"),
            PeerError::Output(m) => write!(f, "redis-benchmark's output: {m}"),
        }
    }
}

impl std::error::Error for PeerError {}

/// Runs `requests` INCRs over `clients` connections against `url`; deletes its key after.
pub fn incr(url: &RedisUrl, clients: usize, requests: u64) -> Result<Figures, PeerError> {
    let id = (now_ns() ^ ((std::process::id() as u64) << 40)) & (i64::MAX as u64);
    let key = format!("{}peer", Keys::of(id).pattern().trim_end_matches('*'));
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", &url.host])
        .args(["-p", &url.port.to_string()])
        .args(["--dbnum", &url.db.to_string()])
        .args(["-c", &clients.to_string()])
        .args(["-n", &requests.to_string()])
        .arg("--csv");
    if let Some(p) = &url.password {
        cmd.args(["-a", p]);
        if let Some(u) = &url.user {
            cmd.args(["--user", u]);
        }
    }
    cmd.args(["INCR", &key]);
    let out = cmd.output();
    // Whatever happened, the key goes (best effort: a server that is gone keeps nothing).
    if let Ok(mut c) = Client::connect(url, std::time::Duration::from_secs(2)) {
        let _ = c.call(&[&"DEL", &key]);
    }
    let out = match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(PeerError::NotInstalled),
        Err(e) => return Err(PeerError::Failed(e.to_string())),
        Ok(o) => o,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(PeerError::Failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_csv(&stdout, clients, requests)
}

/// Parses `--csv` output: a header row naming the columns, then one row per test. Columns are
/// found by name, so a version that adds some still parses.
pub fn parse_csv(text: &str, clients: usize, requests: u64) -> Result<Figures, PeerError> {
    let row = |line: &str| -> Vec<String> {
        line.split(',')
            .map(|c| c.trim().trim_matches('"').to_string())
            .collect()
    };
    let mut lines = text.lines().filter(|l| l.starts_with('"'));
    let header = row(lines
        .next()
        .ok_or_else(|| PeerError::Output(format!("no CSV header in {text:?}")))?);
    let values = row(lines
        .next()
        .ok_or_else(|| PeerError::Output(format!("no CSV row in {text:?}")))?);
    let column = |name: &str| -> Result<f64, PeerError> {
        let i = header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| PeerError::Output(format!("no column '{name}' in {header:?}")))?;
        values
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| PeerError::Output(format!("column '{name}' is not a number")))
    };
    Ok(Figures {
        clients,
        requests,
        rps: column("rps")?,
        avg_ms: column("avg_latency_ms")?,
        p50_ms: column("p50_latency_ms")?,
        p99_ms: column("p99_latency_ms")?,
        max_ms: column("max_latency_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEVEN: &str = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"INCR racepool:{1}:peer\",\"90909.09\",\"0.026\",\"0.008\",\"0.031\",\"0.047\",\"0.087\",\"0.407\"\n";

    #[test]
    fn csv_columns_are_found_by_name() {
        let f = parse_csv(SEVEN, 8, 2000).unwrap();
        assert_eq!(f.rps, 90909.09);
        assert_eq!(f.p99_ms, 0.087);
        assert_eq!((f.avg_ms, f.p50_ms, f.max_ms), (0.026, 0.031, 0.407));
        assert_eq!((f.clients, f.requests), (8, 2000));
    }

    #[test]
    fn csv_without_the_columns_is_refused() {
        assert!(matches!(parse_csv("", 1, 1), Err(PeerError::Output(_))));
        let old = "\"INCR\",\"32000.00\"\n";
        assert!(matches!(parse_csv(old, 1, 1), Err(PeerError::Output(_))));
        let swapped = "\"test\",\"p99_latency_ms\",\"rps\",\"avg_latency_ms\",\"p50_latency_ms\",\"max_latency_ms\"\n\"INCR\",\"0.5\",\"1000\",\"0.1\",\"0.1\",\"2\"\n";
        let f = parse_csv(swapped, 1, 1).unwrap();
        assert_eq!((f.rps, f.p99_ms), (1000.0, 0.5));
    }
}
