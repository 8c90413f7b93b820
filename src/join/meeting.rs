//! The meeting place of a joined run: where the hosts register, agree on one release moment
//! and leave their figures. One trait, one implementation per kind of target that can hold a
//! run's record ([`super::db`]: PostgreSQL tables; [`super::redis`]: Redis keys); the steps
//! of a host ([`super::run`]) and the verdict ([`super::report`]) know nothing of either.
//!
//! Every step opens its own connection in the process that calls it and closes it before it
//! returns (the heartbeat keeps one, in its thread): nothing crosses a fork.

use std::sync::atomic::AtomicBool;

use super::plan::Join;
use super::report::{Figures, Stored};
use crate::error::Error;
use crate::run::HostFigures;

/// What registration decided for this host.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The slots' run id, the same on every host.
    pub run: u64,
    /// This host's place in the order of registration, from 0.
    pub index: u32,
    /// Whether this host created the run (and so creates its slots).
    pub creator: bool,
    /// The meeting place's clock minus this host's CLOCK_REALTIME, in ns.
    pub offset_ns: i64,
    /// The round trip the offset was measured in.
    pub rtt_ns: i64,
}

/// One host's place in a joined run, once registered.
#[derive(Clone, Debug)]
pub struct Seat {
    pub join: Join,
    /// This host's name in the run (see [`super::plan::host_name`]).
    pub me: String,
    pub reg: Registration,
}

/// The steps of a joined run, each taken by one host against the meeting place. Every
/// decision that must be taken once (who creates the run, when to release, who is dead, who
/// reports) is taken atomically in the meeting place, so two hosts never take it differently;
/// every time is the meeting place's clock.
pub trait Meeting: Sync {
    /// Registers `me` in the run `join.name`, creating the run if it is the first: the plan
    /// must be the run's (else `Error::Usage` naming the first differing flag), the run must
    /// not have started, and must not have its hosts already. Measures the clock offset.
    fn register(
        &self,
        join: &Join,
        plan: &str,
        me: &str,
        workers: usize,
        seed: u64,
    ) -> Result<Registration, Error>;
    /// Best effort: the creator was refused before anything was made: the run goes.
    fn withdraw(&self, join: &Join, run: u64);
    /// The creator made the run's slots: the other hosts' workers may connect.
    fn slots_ready(&self, join: &Join) -> Result<(), Error>;
    /// Waits (at most `--join-timeout`) until the creator made the run's slots.
    fn wait_for_slots(&self, join: &Join, me: &str) -> Result<(), Error>;
    /// Best effort: says `me` gave up, and why, so the others stop waiting for it.
    fn failed(&self, join: &Join, me: &str, why: &str);
    /// The start barrier across hosts: this host's workers all stand at its own barrier; it
    /// says it is ready, then waits until every host is (the one that sees it sets the
    /// release, once) or until `--join-timeout` (then it fails, naming who is missing).
    /// Returns the release as this host's CLOCK_REALTIME ns.
    fn meet(&self, seat: &Seat) -> Result<i128, Error>;
    /// Until `stop`: says this host is alive and what its workers have acknowledged. On its
    /// own connection, in the heartbeat thread; a failed beat is tried again at the next.
    fn beat(&self, seat: &Seat, completed: &dyn Fn() -> Vec<u64>, stop: &AtomicBool);
    /// Writes this host's figures (and its V2-serialized histogram), then waits until every
    /// host is done, failed, or silent for `--join-timeout` (dead). Returns who reports the
    /// verdict (the host that saw that first).
    fn finish(&self, seat: &Seat, figures: Figures, histogram: Vec<u8>) -> Result<String, Error>;
    /// The record of the joined run `name` and its slots' final values, for the verdict.
    fn load(&self, name: &str) -> Result<Stored, Error>;
    /// `torture clean`: removes the joined runs whose slots' run is `run` (every one if None).
    /// Returns how many it removed.
    fn clean(&self, run: Option<u64>) -> Result<u64, Error>;
}

/// This host's figures as a meeting place keeps them: every time on the meeting place's clock
/// (CLOCK_MONOTONIC -> CLOCK_REALTIME -> + the offset measured at registration), and the
/// histogram V2-serialized.
pub fn stored_figures(f: HostFigures, offset_ns: i64) -> Result<(Figures, Vec<u8>), String> {
    let to_db = {
        let real = crate::clock::realtime_ns();
        let mono = crate::clock::now_ns() as i128;
        move |mono_ns: u64| (mono_ns as i128 + (real - mono) + offset_ns as i128) as i64
    };
    let figures = Figures {
        released_ns: to_db(f.go_ns),
        first_start_ns: to_db(f.start_ns.iter().copied().min().unwrap_or(f.go_ns)),
        last_start_ns: to_db(f.start_ns.iter().copied().max().unwrap_or(f.go_ns)),
        worker_ended_ns: f.end_ns.iter().map(|&e| to_db(e.max(f.go_ns))).collect(),
        ended_ns: to_db(
            f.end_ns
                .iter()
                .copied()
                .max()
                .unwrap_or(f.go_ns)
                .max(f.go_ns),
        ),
        completed: f.completed,
        in_flight: f.in_flight,
        deaths: f.deaths,
        retries: f.retries,
        spawn_ms: f.spawn_ms,
    };
    let mut histogram = Vec::new();
    hdrhistogram::serialization::Serializer::serialize(
        &mut hdrhistogram::serialization::V2Serializer::new(),
        &f.histogram,
        &mut histogram,
    )
    .map_err(|e| format!("the histogram does not serialise: {e}"))?;
    Ok((figures, histogram))
}

/// `me` waited `--join-timeout` for the run's slots in vain.
pub fn slots_late(join: &Join, me: &str) -> String {
    format!(
        "{me}: the run's slots were not made within {:?} by the host that created it",
        join.timeout
    )
}

/// Host `host` gave up before the release (its note says why): so does everyone.
pub fn gave_up(host: &str, note: Option<&str>) -> String {
    format!(
        "host {host} failed before the start barrier ({}); every host of the run fails",
        note.unwrap_or("no reason given")
    )
}

/// This host was interrupted (SIGINT) while waiting at the start barrier.
pub const INTERRUPTED: &str = "interrupted at the start barrier";

/// Who is missing at the barrier, named: `hosts` are (host, state) in registration order.
pub fn missing(join: &Join, hosts: &[(String, String)]) -> String {
    let not_ready: Vec<String> = hosts
        .iter()
        .filter(|h| h.1 != "ready")
        .map(|h| format!("{} ({})", h.0, h.1))
        .collect();
    let unregistered = (join.hosts as usize).saturating_sub(hosts.len());
    let mut parts = Vec::new();
    if !not_ready.is_empty() {
        parts.push(format!("not ready: {}", not_ready.join(", ")));
    }
    if unregistered > 0 {
        parts.push(format!("{unregistered} never registered"));
    }
    format!(
        "{} of {} host(s) did not reach the start barrier within {:?} ({}); every host of the run fails",
        join.hosts as usize - hosts.iter().filter(|h| h.1 == "ready").count(),
        join.hosts,
        join.timeout,
        parts.join("; ")
    )
}
