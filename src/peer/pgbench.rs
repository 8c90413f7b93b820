//! pgbench, PostgreSQL's own load generator, running the statements of a racepool strategy on
//! the same server, with the same number of clients and at the same isolation level, so the
//! bench can put racepool's throughput beside it as a ratio.
//!
//! The script is rendered from the very statements the PostgreSQL target prepares
//! (`target::sql`), with pgbench's `:name` variables for the arguments: `atomic` is the one
//! `UPDATE … RETURNING`; `lock` is `BEGIN; SELECT … FOR UPDATE \gset`, the `UPDATE` of the value
//! read plus one, `COMMIT`. Both use the extended protocol with prepared statements (`-M
//! prepared`), as the target's sessions do. pgbench runs on a run of its own (one slot), which
//! it leaves exact: the final value is checked against the transactions it reports, then the
//! run is removed.
//!
//! Figures: tps as pgbench prints it (without connection time) and the latency percentiles of
//! every transaction from its `-l` logs (the third column, microseconds).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;
use crate::strategy::StrategyKind;
use crate::target::postgres::{Pg, Postgres};
use crate::target::sql::{render, statement, Driver, Isolation, Placeholders, Tables};
use crate::target::{RunShape, Target};

/// Why pgbench could not give figures.
#[derive(Debug)]
pub enum PeerError {
    /// `pg_config --bindir` has no pgbench (or there is no pg_config).
    NotInstalled(String),
    /// pgbench runs only the strategies it has a script for.
    NoScript(StrategyKind),
    /// The target refused the run or failed around it.
    Target(Error),
    /// pgbench did not start, failed, or printed what we cannot read.
    Failed(String),
    /// pgbench's run did not leave the value its transactions add up to.
    NotExact { expected: u64, found: u64 },
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::NotInstalled(m) => write!(f, "pgbench is not installed: {m}"),
            PeerError::NoScript(s) => write!(f, "pgbench has no script for {}", s.name()),
            PeerError::Target(e) => write!(f, "{e}"),
            PeerError::Failed(m) => write!(f, "pgbench failed: {m}"),
            PeerError::NotExact { expected, found } => write!(
                f,
                "pgbench's transactions add up to {expected}, the row holds {found}"
            ),
        }
    }
}

impl std::error::Error for PeerError {}

/// What one pgbench run measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Figures {
    pub strategy: StrategyKind,
    pub clients: usize,
    /// Transactions processed (all clients).
    pub transactions: u64,
    /// As pgbench reports it, without the initial connection time.
    pub tps: f64,
    /// Per-transaction latency percentiles from the `-l` logs, in microseconds.
    pub p50_us: u64,
    pub p99_us: u64,
}

/// The pgbench binary beside the server's tools.
pub fn binary() -> Result<PathBuf, PeerError> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .map_err(|e| PeerError::NotInstalled(format!("pg_config: {e}")))?;
    let path = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("pgbench");
    if path.is_file() {
        Ok(path)
    } else {
        Err(PeerError::NotInstalled(format!(
            "{} does not exist",
            path.display()
        )))
    }
}

/// The pgbench script of `strategy`: the target's statements, one transaction.
pub fn script(strategy: StrategyKind) -> Result<String, PeerError> {
    let t = Tables::Counter;
    let pgbench = |sql: String| render(&sql, Placeholders::Pgbench).sql;
    match strategy {
        StrategyKind::Atomic => Ok(format!("{};\n", pgbench(Pg::increment_sql(t)))),
        StrategyKind::Lock => Ok(format!(
            "BEGIN;\n{} \\gset\n\\set next :value + 1\n{};\nCOMMIT;\n",
            pgbench(statement::read::<Pg>(t, true)),
            pgbench(statement::write::<Pg>(t, false)),
        )),
        other => Err(PeerError::NoScript(other)),
    }
}

/// `p` percentile (0–100) of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Reads pgbench's "tps = N (without initial connection time)".
fn parse_tps(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .find(|l| l.starts_with("tps = ") && l.contains("without"))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Each transaction's latency (µs) from pgbench's `-l` log lines: `client transaction
/// latency script epoch_s epoch_us`.
fn parse_log(text: &str, into: &mut Vec<u64>) -> Result<(), PeerError> {
    for line in text.lines().filter(|l| !l.is_empty()) {
        let latency = line
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| PeerError::Failed(format!("unreadable log line '{line}'")))?;
        into.push(latency);
    }
    Ok(())
}

/// Runs pgbench with `strategy`'s script, `clients` clients of `transactions` each, against
/// `target`'s server at its isolation level, on a run of its own that it removes.
pub fn run(
    target: &Postgres,
    strategy: StrategyKind,
    clients: usize,
    transactions: u64,
) -> Result<Figures, PeerError> {
    let script = script(strategy)?;
    let bin = binary()?;
    let shape = RunShape {
        run: crate::store::RunStore::new_run_id(),
        slots: 1,
        workers: clients,
        initial: 0,
        race_window: 0,
    };
    target
        .preflight(&shape, &[strategy])
        .map_err(PeerError::Target)?;
    target.create(&shape).map_err(PeerError::Target)?;
    let dir = std::env::temp_dir().join(format!("racepool-pgbench-{}", shape.run));
    let measured = (|| {
        std::fs::create_dir(&dir).map_err(|e| PeerError::Failed(e.to_string()))?;
        let file = dir.join("script.sql");
        std::fs::write(&file, &script).map_err(|e| PeerError::Failed(e.to_string()))?;
        measure(target, &bin, &file, &dir, &shape, clients, transactions)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let cleaned = target.clean(Some(shape.run)).map_err(PeerError::Target);
    let (tps, latencies) = measured?;
    cleaned?;
    let processed = latencies.len() as u64;
    Ok(Figures {
        strategy,
        clients,
        transactions: processed,
        tps,
        p50_us: percentile(&latencies, 50.0),
        p99_us: percentile(&latencies, 99.0),
    })
}

/// Runs pgbench and checks the row it updated; returns tps and the sorted latencies.
fn measure(
    target: &Postgres,
    bin: &Path,
    file: &Path,
    dir: &Path,
    shape: &RunShape,
    clients: usize,
    transactions: u64,
) -> Result<(f64, Vec<u64>), PeerError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(clients);
    let isolation = match target.isolation() {
        Isolation::ReadCommitted => "read\\ committed",
        Isolation::RepeatableRead => "repeatable\\ read",
        Isolation::Serializable => "serializable",
    };
    let out = Command::new(bin)
        .env(
            "PGOPTIONS",
            format!("-c default_transaction_isolation={isolation}"),
        )
        .args(["-n", "-M", "prepared", "--max-tries", "1000000"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={threads}"))
        .arg(format!("--transactions={transactions}"))
        .arg(format!("--define=run={}", shape.run))
        .arg("--define=slot=0")
        .arg("-l")
        .arg(format!("--log-prefix={}", dir.join("log").display()))
        .arg("-f")
        .arg(file)
        .arg(target.url())
        .output()
        .map_err(|e| PeerError::Failed(format!("{}: {e}", bin.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(PeerError::Failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let tps = parse_tps(&stdout)
        .ok_or_else(|| PeerError::Failed(format!("no tps in its output: {stdout}")))?;
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| PeerError::Failed(e.to_string()))? {
        let path = entry.map_err(|e| PeerError::Failed(e.to_string()))?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("log."))
        {
            let text =
                std::fs::read_to_string(&path).map_err(|e| PeerError::Failed(e.to_string()))?;
            parse_log(&text, &mut latencies)?;
        }
    }
    latencies.sort_unstable();
    let expected = clients as u64 * transactions;
    if latencies.len() as u64 != expected {
        return Err(PeerError::Failed(format!(
            "{} transactions logged, {expected} asked for",
            latencies.len()
        )));
    }
    let found = target.finals(shape).map_err(PeerError::Target)?[0] as u64;
    if found != expected {
        return Err(PeerError::NotExact { expected, found });
    }
    Ok((tps, latencies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_the_targets_statements() {
        assert_eq!(
            script(StrategyKind::Atomic).unwrap(),
            "UPDATE racepool_slots SET value = value + 1, version = version + 1 \
             WHERE run = :run AND slot = :slot RETURNING value;\n"
        );
        assert_eq!(
            script(StrategyKind::Lock).unwrap(),
            "BEGIN;\nSELECT value, version FROM racepool_slots WHERE run = :run AND slot = :slot \
             FOR UPDATE \\gset\n\\set next :value + 1\nUPDATE racepool_slots SET value = :next, \
             version = version + 1 WHERE run = :run AND slot = :slot;\nCOMMIT;\n"
        );
        assert!(matches!(
            script(StrategyKind::Racy),
            Err(PeerError::NoScript(StrategyKind::Racy))
        ));
    }

    #[test]
    fn output_and_logs_parse() {
        let out = "latency average = 9.895 ms\ninitial connection time = 162.548 ms\n\
                   tps = 202.129093 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(202.129093));
        assert_eq!(parse_tps("tps = x"), None);
        let mut v = Vec::new();
        parse_log(
            "0 1 11151 0 1796014761 184097\n1 1 50 0 1796014761 184162\n",
            &mut v,
        )
        .unwrap();
        assert_eq!(v, vec![11151, 50]);
        assert!(parse_log("garbage", &mut v).is_err());
    }

    #[test]
    fn percentiles_pick_the_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 99.0), 0);
    }
}
