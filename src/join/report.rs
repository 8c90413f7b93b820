//! The joined verdict, from the meeting place's record alone: every host's figures, the run's plan and the
//! slots' final values. The host that finishes last prints it; `torture report --target URL
//! --run NAME` prints the same from anywhere.
//!
//! Expected per slot is the initial value plus every host's acknowledged updates to it, each
//! host's workers' slot choices replayed from its seed. A host that died (no figures) counts
//! what its last heartbeat saw as acknowledged and the rest of its plan as in flight: the
//! verdict is then bounded (acknowledged <= final <= acknowledged + in flight), never exact.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::check::{bounded_count, Count, SlotCount};
use crate::error::Error;
use crate::history::Event;
use crate::pick::{Pick, SlotPicker};
use crate::report::units::{count, percent, rate, time_ns};
use crate::report::{Fairness, Percentiles, Verdict};
use crate::strategy::StrategyKind;
use crate::verify::{RunCheck, Status, Witness};

/// One host as the tables show it.
#[derive(Clone, Debug, Serialize)]
pub struct Host {
    pub host: String,
    pub index: u32,
    pub pid: i64,
    pub workers: usize,
    #[serde(skip)]
    pub seed: u64,
    /// The database's clock minus the host's, measured at registration, and the round trip.
    pub clock_offset_ns: i64,
    pub rtt_ns: i64,
    pub state: String,
    pub note: Option<String>,
    /// Acknowledged updates: its figures', or (dead) its last heartbeat's.
    pub acknowledged: u64,
    /// Its updates whose outcome is unknown: deaths mid-update; a dead host's whole rest.
    pub in_flight: u64,
    pub ops_per_sec: Option<f64>,
    /// When it released its workers, after the agreed release (database clock), in ns.
    pub released_late_ns: Option<i64>,
    #[serde(skip)]
    pub figures: Option<Figures>,
    #[serde(skip)]
    pub progress: Vec<u64>,
}

/// One host's figures as its record keeps them (JSON; the histogram beside it, V2-serialized).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Figures {
    pub completed: Vec<u64>,
    pub in_flight: Vec<u64>,
    /// (worker, signal) of every worker that died.
    pub deaths: Vec<(usize, String)>,
    pub retries: u64,
    /// On the meeting place's clock, ns since the epoch: when this host released its workers, and
    /// when its last worker finished.
    pub released_ns: i64,
    pub ended_ns: i64,
    /// On the meeting place's clock: its first and its last worker's first update started.
    #[serde(default)]
    pub first_start_ns: i64,
    #[serde(default)]
    pub last_start_ns: i64,
    /// On the meeting place's clock: when each worker finished (its rate's end).
    #[serde(default)]
    pub worker_ended_ns: Vec<i64>,
    pub spawn_ms: f64,
}

/// A joined run's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Joined {
    pub name: String,
    pub url: String,
    pub run: u64,
    pub strategy: StrategyKind,
    pub hosts_planned: u32,
    pub ops: u64,
    pub slots: usize,
    pub initial: u32,
    pub hosts: Vec<Host>,
    /// Hosts not done: (host, state).
    pub open: Vec<(String, String)>,
    pub count: Count,
    pub wrong_slots: Vec<SlotCount>,
    /// Updates acknowledged over every host.
    pub updates: u64,
    /// Retries over every host that wrote its figures (serialization failures, cas misses).
    pub retries: u64,
    pub in_flight: u64,
    pub verdict: Verdict,
    /// The verdict is bounded: a host died or failed, or workers died.
    pub bounded: bool,
    /// First release to last completion, on the database's clock.
    pub window_ms: Option<f64>,
    /// First host released to last host released, on the database's clock.
    pub release_skew_ns: Option<i64>,
    /// First worker to last worker (over every host) starting its first update, on the
    /// database's clock.
    pub worker_start_skew_ns: Option<i64>,
    pub ops_per_sec: Option<f64>,
    /// Every live worker's rate over every host (from its host's release to its own finish).
    pub fairness: Fairness,
    pub latency_ns: Option<Percentiles>,
    pub reported_by: Option<String>,
    /// `--store target`: the run's record checked as `torture verify URL --run ID` checks it.
    pub history: Option<RunCheck>,
    /// For each listed witness, the hosts its two workers ran on.
    pub witness_hosts: Vec<[String; 2]>,
    /// Values won more than once by workers of different hosts, and the first of them.
    pub witnesses_across_hosts: u64,
    pub witness_across_hosts: Option<Witness>,
}

/// A joined run's record, as a meeting place keeps it, and its slots' final values.
pub struct Stored {
    pub name: String,
    /// The meeting place's URL, masked.
    pub url: String,
    /// The plan every host shares (JSON, see [`super::plan::plan_of`]).
    pub plan: String,
    pub hosts_planned: u32,
    pub run: u64,
    /// The agreed release, on the meeting place's clock (ns since the epoch).
    pub release_ns: Option<i64>,
    pub reported_by: Option<String>,
    /// Every registered host, in registration order (`acknowledged` .. `released_late_ns`
    /// are the verdict's to fill).
    pub hosts: Vec<Host>,
    pub histograms: Vec<Histogram<u64>>,
    /// The slots' final values, in slot order.
    pub finals: Vec<u32>,
}

impl Host {
    /// A host as its record shows it, before the verdict.
    #[allow(clippy::too_many_arguments)]
    pub fn recorded(
        host: String,
        index: u32,
        pid: i64,
        workers: usize,
        seed: u64,
        clock_offset_ns: i64,
        rtt_ns: i64,
        state: String,
        note: Option<String>,
        figures: Option<Figures>,
        progress: Vec<u64>,
    ) -> Host {
        Host {
            host,
            index,
            pid,
            workers,
            seed,
            clock_offset_ns,
            rtt_ns,
            state,
            note,
            acknowledged: 0,
            in_flight: 0,
            ops_per_sec: None,
            released_late_ns: None,
            figures,
            progress,
        }
    }
}

/// A V2-serialized histogram, as a host wrote it (None if it does not read back).
pub fn histogram_of(bytes: &[u8]) -> Option<Histogram<u64>> {
    hdrhistogram::serialization::Deserializer::new()
        .deserialize::<u64, _>(&mut &bytes[..])
        .ok()
}

/// Judges the record `s`: the verdict over every host's figures and the slots' final values.
pub fn judged(s: Stored) -> Result<Joined, Error> {
    let name = &s.name;
    let fail = |m: String| Error::Target(format!("{}: {m}", s.url));
    let plan: serde_json::Value = serde_json::from_str(&s.plan)
        .map_err(|e| fail(format!("run {name}'s plan is not JSON: {e}")))?;
    let field = |k: &str| plan.get(k).cloned().unwrap_or_default();
    let ops = field("ops").as_u64().unwrap_or(0);
    let slots = field("slots").as_u64().unwrap_or(1) as usize;
    let initial = field("initial").as_u64().unwrap_or(0) as u32;
    let pick: Pick = field("pick")
        .as_str()
        .unwrap_or("uniform")
        .parse()
        .unwrap_or(Pick::Uniform);
    let strategy_name = field("strategies")
        .get(0)
        .and_then(|s| s.as_str().map(String::from))
        .unwrap_or_default();
    let strategy =
        <StrategyKind as clap::ValueEnum>::from_str(&strategy_name, true).map_err(|_| {
            fail(format!(
                "run {name}'s strategy '{strategy_name}' is unknown"
            ))
        })?;
    if s.finals.len() != slots {
        return Err(fail(format!(
            "joined run {name} (run {}) has {} of its {slots} slots",
            s.run,
            s.finals.len()
        )));
    }
    Ok(judge(
        Joined {
            name: s.name.clone(),
            url: s.url.clone(),
            run: s.run,
            strategy,
            hosts_planned: s.hosts_planned,
            ops,
            slots,
            initial,
            hosts: Vec::new(),
            open: Vec::new(),
            count: Count::default(),
            wrong_slots: Vec::new(),
            updates: 0,
            retries: 0,
            in_flight: 0,
            verdict: Verdict::Exact,
            bounded: false,
            window_ms: None,
            release_skew_ns: None,
            worker_start_skew_ns: None,
            ops_per_sec: None,
            fairness: Fairness::default(),
            latency_ns: None,
            reported_by: s.reported_by,
            history: None,
            witness_hosts: Vec::new(),
            witnesses_across_hosts: 0,
            witness_across_hosts: None,
        },
        s.hosts,
        &s.histograms,
        s.release_ns,
        pick,
        &s.finals,
    ))
}

/// The verdict over every host's figures.
fn judge(
    mut j: Joined,
    mut hosts: Vec<Host>,
    histograms: &[Histogram<u64>],
    release_ns: Option<i64>,
    pick: Pick,
    finals: &[u32],
) -> Joined {
    let mut acked = vec![0u64; j.slots];
    let mut upper = vec![0u64; j.slots];
    for h in &mut hosts {
        for w in 0..h.workers {
            let (a, f) = match &h.figures {
                Some(fig) => (
                    fig.completed.get(w).copied().unwrap_or(0),
                    fig.in_flight.get(w).copied().unwrap_or(0),
                ),
                // No figures: everything past its last heartbeat is unknown.
                None => {
                    let seen = h.progress.get(w).copied().unwrap_or(0).min(j.ops);
                    (seen, j.ops - seen)
                }
            };
            let picker = SlotPicker::new(h.seed, w, j.slots, pick);
            picker.clone().replay(a, &mut acked);
            picker.replay(a + f, &mut upper);
            h.acknowledged += a;
            h.in_flight += f;
        }
        if let (Some(fig), Some(rel)) = (&h.figures, release_ns) {
            h.released_late_ns = Some(fig.released_ns - rel);
            let secs = (fig.ended_ns - fig.released_ns).max(1) as f64 / 1e9;
            h.ops_per_sec = Some(h.acknowledged as f64 / secs);
        }
        if !matches!(h.state.as_str(), "done" | "dead" | "failed") {
            j.open.push((h.host.clone(), h.state.clone()));
        }
    }
    let in_flight: Vec<u64> = upper.iter().zip(&acked).map(|(u, a)| u - a).collect();
    let (count, mut wrong) = bounded_count(j.initial, &acked, &in_flight, finals);
    wrong.truncate(16);
    j.updates = hosts.iter().map(|h| h.acknowledged).sum();
    j.retries = hosts
        .iter()
        .filter_map(|h| h.figures.as_ref())
        .map(|f| f.retries)
        .sum();
    j.in_flight = hosts.iter().map(|h| h.in_flight).sum();
    j.bounded = j.in_flight > 0
        || hosts
            .iter()
            .any(|h| h.state != "done" || h.figures.as_ref().is_some_and(|f| !f.deaths.is_empty()))
        || (hosts.len() as u32) < j.hosts_planned;
    j.verdict = Verdict::of(j.strategy, &count);
    let done: Vec<&Figures> = hosts.iter().filter_map(|h| h.figures.as_ref()).collect();
    if let Some(rel) = release_ns {
        if let Some(end) = done.iter().map(|f| f.ended_ns).max() {
            let first = done.iter().map(|f| f.released_ns).min().unwrap_or(rel);
            let window = (end - first).max(1) as f64;
            j.window_ms = Some(window / 1e6);
            j.ops_per_sec = Some(j.updates as f64 / (window / 1e9));
        }
        if done.len() > 1 {
            let max = done.iter().map(|f| f.released_ns).max().unwrap_or(0);
            let min = done.iter().map(|f| f.released_ns).min().unwrap_or(0);
            j.release_skew_ns = Some(max - min);
            let last = done.iter().map(|f| f.last_start_ns).max().unwrap_or(0);
            let first = done.iter().map(|f| f.first_start_ns).min().unwrap_or(0);
            j.worker_start_skew_ns = Some(last - first);
        }
    }
    // A dead worker's rate says when it died, not how fairly it was served.
    let mut rates = Vec::new();
    for f in &done {
        for (w, (&n, &end)) in f.completed.iter().zip(&f.worker_ended_ns).enumerate() {
            if !f.deaths.iter().any(|d| d.0 == w) {
                rates.push(n as f64 / ((end - f.released_ns).max(1) as f64 / 1e9));
            }
        }
    }
    j.fairness = Fairness::of(rates);
    let mut merged = crate::latency::new_histogram();
    for h in histograms {
        let _ = merged.add(h);
    }
    j.latency_ns = Percentiles::of(&merged);
    j.count = count;
    j.wrong_slots = wrong;
    j.hosts = hosts;
    j
}

impl Joined {
    /// `--store target`: the run's record, checked (`check`, as `torture verify` checks it),
    /// with its `events`. A correct strategy whose record does not verify failed, whatever the
    /// counts say (as on one host); each witness's workers are named by host.
    pub fn with_record(&mut self, check: RunCheck, events: &[Event]) {
        if check.status == Status::Failed && self.strategy.is_exact() {
            self.verdict = Verdict::Failed;
        }
        // Values won more than once, by their winners: those whose winners ran on two hosts.
        let mut winners: std::collections::BTreeMap<(u32, u32), Vec<u32>> = Default::default();
        for e in events {
            winners
                .entry((e.slot, e.written))
                .or_default()
                .push(e.worker);
        }
        for ((slot, written), ws) in winners {
            let host = |w: u32| self.host_index_of(w);
            if let Some(&other) = ws.iter().find(|&&w| host(w) != host(ws[0])) {
                self.witnesses_across_hosts += 1;
                self.witness_across_hosts.get_or_insert(Witness {
                    slot,
                    read: written.wrapping_sub(1),
                    written,
                    workers: [ws[0], other],
                    balance: None,
                });
            }
        }
        self.witness_hosts = check
            .witness_list
            .iter()
            .map(|w| w.workers.map(|g| self.host_of(g)))
            .collect();
        self.history = Some(check);
    }

    /// The index of the host the run's worker `g` ran on (hosts in registration order, each
    /// its workers' ids in turn).
    fn host_index_of(&self, g: u32) -> Option<u32> {
        let mut first = 0usize;
        self.hosts.iter().find_map(|h| {
            first += h.workers;
            ((g as usize) < first).then_some(h.index)
        })
    }

    /// The host the run's worker `g` ran on, and its own number there.
    pub fn host_of(&self, g: u32) -> String {
        let mut first = 0usize;
        for h in &self.hosts {
            if (g as usize) < first + h.workers {
                return format!("{} (its worker {})", h.host, g as usize - first);
            }
            first += h.workers;
        }
        "no host".into()
    }

    /// Whether every host is done, dead or failed: the verdict is final.
    pub fn over(&self) -> bool {
        self.open.is_empty() && self.hosts.len() as u32 == self.hosts_planned
    }

    /// The hosts that died or gave up.
    pub fn lost_hosts(&self) -> Vec<&Host> {
        self.hosts.iter().filter(|h| h.state != "done").collect()
    }

    /// The exit code the verdict means (docs/exit-codes.md): 1 a check failed, 3 bounds held
    /// but a host or workers died, 4 the run is not over, 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if !self.over() {
            4
        } else if self.verdict == Verdict::Failed {
            crate::error::exit::CHECK_FAILED
        } else if self.bounded {
            crate::error::exit::UNPLANNED_DEATHS
        } else {
            0
        }
    }

    /// The verdict in words.
    pub fn verdict_text(&self) -> String {
        match self.verdict {
            Verdict::Exact if self.bounded => "bounds held (not exact: updates in flight)".into(),
            Verdict::Exact => "exact".into(),
            Verdict::RaceCaught => "race caught".into(),
            Verdict::RaceMissed => "race missed".into(),
            Verdict::Failed if self.count.lost > 0 => "LOST UPDATES".into(),
            Verdict::Failed => "UNEXPECTED VALUES".into(),
        }
    }

    /// The summary, as the last host prints it and `torture report` does.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let workers: usize = self.hosts.iter().map(|h| h.workers).sum();
        let _ = writeln!(
            out,
            "joined run {} (run {}): {} host(s), {} workers in all, {} updates each, {} slot(s), initial {}",
            self.name,
            self.run,
            self.hosts_planned,
            workers,
            count(self.ops),
            self.slots,
            count(self.initial as u64)
        );
        let _ = writeln!(out, "          target {}\n", self.url);
        let lat = |f: fn(&Percentiles) -> u64| {
            self.latency_ns
                .as_ref()
                .map_or("–".into(), |p| time_ns(f(p) as f64))
        };
        let rows = [
            vec![
                "strategy".to_string(),
                "expected".into(),
                "observed".into(),
                "lost".into(),
                "loss".into(),
                "in flight".into(),
                "ops/s".into(),
                "p99".into(),
                "p99.9".into(),
                "retries/upd".into(),
                "verdict".into(),
            ],
            vec![
                self.strategy.name().to_string(),
                count(self.count.expected),
                count(self.count.observed),
                count(self.count.lost),
                percent(self.count.loss_rate(self.updates)),
                count(self.in_flight),
                self.ops_per_sec.map_or("–".into(), rate),
                lat(|p| p.p99),
                lat(|p| p.p999),
                format!("{:.2}", self.retries as f64 / self.updates.max(1) as f64),
                self.verdict_text(),
            ],
        ];
        table(&mut out, &rows);
        let _ = writeln!(
            out,
            "\nexpected = initial + every host's acknowledged updates, per slot (each host's slot choices replayed from its seed); lost = expected - observed."
        );
        for s in &self.wrong_slots {
            let _ = writeln!(
                out,
                "slot {}: expected {}, observed {}",
                s.slot,
                count(s.expected),
                count(s.observed)
            );
        }
        let _ = writeln!(out);
        let mut rows = vec![[
            "host",
            "#",
            "workers",
            "acked",
            "in flight",
            "ops/s",
            "clock offset",
            "rtt",
            "released",
            "state",
        ]
        .map(String::from)
        .to_vec()];
        for h in &self.hosts {
            rows.push(vec![
                h.host.clone(),
                h.index.to_string(),
                h.workers.to_string(),
                count(h.acknowledged),
                count(h.in_flight),
                h.ops_per_sec.map_or("–".into(), rate),
                signed_ms(h.clock_offset_ns),
                time_ns(h.rtt_ns as f64),
                h.released_late_ns.map_or("–".into(), signed_ms),
                h.state.clone(),
            ]);
        }
        table(&mut out, &rows);
        let _ = writeln!(
            out,
            "\nclock offset = database clock - host clock (midpoint of a round trip at registration); released = after the agreed moment, database clock."
        );
        match (self.window_ms, self.release_skew_ns) {
            (Some(w), Some(s)) => {
                let _ = writeln!(
                    out,
                    "window {} (first release to last completion, database clock); release skew across hosts {}; first to last worker started {}",
                    time_ns(w * 1e6),
                    time_ns(s as f64),
                    time_ns(self.worker_start_skew_ns.unwrap_or(0) as f64)
                );
            }
            (Some(w), None) => {
                let _ = writeln!(
                    out,
                    "window {} (release to last completion, database clock)",
                    time_ns(w * 1e6)
                );
            }
            _ => {}
        }
        if self.fairness.median_ops_per_sec > 0.0 {
            let f = &self.fairness;
            let _ = writeln!(
                out,
                "worker ops/s over every host: min {}, median {}, max {}; {} starved (below a tenth of the median)",
                rate(f.min_ops_per_sec),
                rate(f.median_ops_per_sec),
                rate(f.max_ops_per_sec),
                f.starved
            );
        }
        if let Some(h) = &self.history {
            let _ = writeln!(
                out,
                "\nstored record (--store target; torture verify {} --run {}): {} events, {} duplicate(s), {} gap(s), {} witness(es): {}",
                self.url,
                self.run,
                count(h.events),
                count(h.duplicates),
                count(h.gaps),
                count(h.witnesses),
                match h.status {
                    Status::Verified => "verified".to_string(),
                    Status::Incomplete => format!(
                        "incomplete (its end is not written{})",
                        if self.over() { "" } else { ": the run is not over" }
                    ),
                    Status::Failed => format!(
                        "NOT verified: {}",
                        h.problems.first().map_or(String::new(), |p| p.to_string())
                    ),
                }
            );
            for (w, hosts) in h.witness_list.iter().zip(&self.witness_hosts).take(1) {
                let _ = writeln!(
                    out,
                    "witness: {w}; worker {} ran on {}, worker {} on {}",
                    w.workers[0], hosts[0], w.workers[1], hosts[1]
                );
            }
            if let Some(w) = &self.witness_across_hosts {
                let _ = writeln!(
                    out,
                    "{} value(s) won by workers of two hosts; first: {w}; worker {} ran on {}, worker {} on {}",
                    count(self.witnesses_across_hosts),
                    w.workers[0],
                    self.host_of(w.workers[0]),
                    w.workers[1],
                    self.host_of(w.workers[1])
                );
            }
        }
        for h in self.lost_hosts() {
            let _ = writeln!(
                out,
                "host {} is {}{}: its {} update(s) past what it last reported are in flight; the verdict is bounded, not exact",
                h.host,
                h.state,
                h.note.as_deref().map_or(String::new(), |n| format!(" ({n})")),
                count(h.in_flight)
            );
        }
        if !self.over() {
            let open: Vec<String> = self
                .open
                .iter()
                .map(|(h, s)| format!("{h} ({s})"))
                .collect();
            let _ = writeln!(
                out,
                "the run is not over: {} of {} host(s) registered; still going: {}",
                self.hosts.len(),
                self.hosts_planned,
                if open.is_empty() {
                    "none".into()
                } else {
                    open.join(", ")
                }
            );
        }
        out
    }
}

fn signed_ms(ns: i64) -> String {
    format!("{:+.3} ms", ns as f64 / 1e6)
}

/// Columns padded to their widest cell, the first left-aligned, the rest right-aligned.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 || c + 1 == r.len() {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(strategy: StrategyKind, ops: u64) -> Joined {
        Joined {
            name: "t".into(),
            url: "postgres://h/db".into(),
            run: 1,
            strategy,
            hosts_planned: 2,
            ops,
            slots: 1,
            initial: 0,
            hosts: Vec::new(),
            open: Vec::new(),
            count: Count::default(),
            wrong_slots: Vec::new(),
            updates: 0,
            retries: 0,
            in_flight: 0,
            verdict: Verdict::Exact,
            bounded: false,
            window_ms: None,
            release_skew_ns: None,
            worker_start_skew_ns: None,
            ops_per_sec: None,
            fairness: Fairness::default(),
            latency_ns: None,
            reported_by: None,
            history: None,
            witness_hosts: Vec::new(),
            witnesses_across_hosts: 0,
            witness_across_hosts: None,
        }
    }

    fn host(index: u32, state: &str, workers: usize, figures: Option<Figures>) -> Host {
        Host {
            host: format!("h{index}"),
            index,
            pid: 100 + index as i64,
            workers,
            seed: super::super::plan::host_seed(1, index),
            clock_offset_ns: 0,
            rtt_ns: 0,
            state: state.into(),
            note: None,
            acknowledged: 0,
            in_flight: 0,
            ops_per_sec: None,
            released_late_ns: None,
            figures,
            progress: Vec::new(),
        }
    }

    fn done(workers: usize, ops: u64) -> Option<Figures> {
        Some(Figures {
            completed: vec![ops; workers],
            in_flight: vec![0; workers],
            released_ns: 1_000,
            ended_ns: 2_000_000_000,
            first_start_ns: 1_000,
            last_start_ns: 5_000,
            worker_ended_ns: vec![1_000_001_000; workers],
            ..Figures::default()
        })
    }

    #[test]
    fn expected_is_the_sum_over_hosts_and_exact_when_every_update_is_there() {
        let hosts = vec![
            host(0, "done", 3, done(3, 10)),
            host(1, "done", 2, done(2, 10)),
        ];
        let j = judge(
            joined(StrategyKind::Atomic, 10),
            hosts,
            &[],
            Some(0),
            Pick::Uniform,
            &[50],
        );
        assert_eq!((j.count.expected, j.count.lost, j.updates), (50, 0, 50));
        assert_eq!(
            (j.verdict, j.bounded, j.exit_code()),
            (Verdict::Exact, false, 0)
        );
        // One update short on the slot: an exact strategy fails (exit 1).
        let hosts = vec![
            host(0, "done", 3, done(3, 10)),
            host(1, "done", 2, done(2, 10)),
        ];
        let j = judge(
            joined(StrategyKind::Atomic, 10),
            hosts,
            &[],
            Some(0),
            Pick::Uniform,
            &[49],
        );
        assert_eq!(
            (j.count.lost, j.verdict, j.exit_code()),
            (1, Verdict::Failed, 1)
        );
        // racy losing is the race caught (exit 0).
        let hosts = vec![
            host(0, "done", 3, done(3, 10)),
            host(1, "done", 2, done(2, 10)),
        ];
        let j = judge(
            joined(StrategyKind::Racy, 10),
            hosts,
            &[],
            Some(0),
            Pick::Uniform,
            &[20],
        );
        assert_eq!(
            (j.count.lost, j.verdict, j.exit_code()),
            (30, Verdict::RaceCaught, 0)
        );
    }

    #[test]
    fn a_dead_host_bounds_the_verdict_by_its_last_heartbeat_and_its_plan() {
        let make = || {
            let mut dead = host(1, "dead", 2, None);
            dead.progress = vec![4, 6];
            vec![host(0, "done", 3, done(3, 10)), dead]
        };
        // Survivors' 30, the dead host's 10 seen, 10 more in flight: 40..=50 hold.
        for observed in [40, 45, 50] {
            let j = judge(
                joined(StrategyKind::Cas, 10),
                make(),
                &[],
                Some(0),
                Pick::Uniform,
                &[observed],
            );
            assert_eq!(
                (j.in_flight, j.count.lost, j.count.unexpected),
                (10, 0, 0),
                "{observed}"
            );
            assert_eq!(
                (j.verdict, j.bounded, j.exit_code()),
                (Verdict::Exact, true, 3)
            );
            assert!(j.verdict_text().starts_with("bounds held"));
            assert!(j.render().contains("host h1 is dead"));
        }
        // Below what the dead host's heartbeat saw acknowledged: lost, whatever it did later.
        let j = judge(
            joined(StrategyKind::Cas, 10),
            make(),
            &[],
            Some(0),
            Pick::Uniform,
            &[39],
        );
        assert_eq!(
            (j.count.lost, j.verdict, j.exit_code()),
            (1, Verdict::Failed, 1)
        );
        // Above its whole plan: unexpected.
        let j = judge(
            joined(StrategyKind::Cas, 10),
            make(),
            &[],
            Some(0),
            Pick::Uniform,
            &[51],
        );
        assert_eq!((j.count.unexpected, j.verdict), (1, Verdict::Failed));
    }

    #[test]
    fn every_hosts_slot_choices_are_replayed_from_its_own_seed() {
        let slots = 4;
        let mut expect = vec![0u64; slots];
        for (index, workers) in [(0u32, 2usize), (1, 3)] {
            for w in 0..workers {
                SlotPicker::new(
                    super::super::plan::host_seed(1, index),
                    w,
                    slots,
                    Pick::Uniform,
                )
                .replay(25, &mut expect);
            }
        }
        let finals: Vec<u32> = expect.iter().map(|&v| v as u32).collect();
        let hosts = vec![
            host(0, "done", 2, done(2, 25)),
            host(1, "done", 3, done(3, 25)),
        ];
        let mut j = joined(StrategyKind::Lock, 25);
        j.slots = slots;
        let j = judge(j, hosts, &[], Some(0), Pick::Uniform, &finals);
        assert_eq!(
            (j.count.expected, j.count.lost, j.verdict),
            (125, 0, Verdict::Exact)
        );
        // The same finals judged as if every host had host 0's seed are wrong somewhere.
        let mut same_seed = vec![
            host(0, "done", 2, done(2, 25)),
            host(1, "done", 3, done(3, 25)),
        ];
        same_seed[1].seed = same_seed[0].seed;
        let mut j = joined(StrategyKind::Lock, 25);
        j.slots = slots;
        let j = judge(j, same_seed, &[], Some(0), Pick::Uniform, &finals);
        assert!(j.count.wrong_slots > 0);
    }

    #[test]
    fn a_run_with_a_host_still_going_is_not_over() {
        let hosts = vec![host(0, "done", 1, done(1, 10)), host(1, "running", 1, None)];
        let j = judge(
            joined(StrategyKind::Atomic, 10),
            hosts,
            &[],
            Some(0),
            Pick::Uniform,
            &[15],
        );
        assert!(!j.over());
        assert_eq!(j.exit_code(), 4);
        assert!(j.render().contains("the run is not over"));
    }
}
