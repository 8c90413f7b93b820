//! What verify can find wrong, as values: each variant carries what a user needs to look for
//! it in the store. `Display` gives the sentence (`label: detail`); JSON carries the sentence
//! too, beside the counters of `RunCheck`.

use serde::{Serialize, Serializer};

use crate::history::loaded::{Damage, Orphans, Place};

/// Two winners of one value: the lost update, named. For a ledger, `slot` is the account,
/// `read` and `written` its versions and `balance` the balance both read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Witness {
    pub slot: u32,
    pub read: u32,
    pub written: u32,
    pub workers: [u32; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<u32>,
}

impl std::fmt::Display for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.balance {
            None if self.workers[0] == self.workers[1] => write!(
                f,
                "worker {} read {} on slot {} and wrote {} twice (a stale write in between had rolled the slot back)",
                self.workers[0], self.read, self.slot, self.written
            ),
            None => write!(
                f,
                "worker {} and worker {} both read {} on slot {} and both wrote {}",
                self.workers[0], self.workers[1], self.read, self.slot, self.written
            ),
            Some(b) => write!(
                f,
                "worker {} and worker {} both read version {} of account {} (balance {}) and both wrote version {}",
                self.workers[0], self.workers[1], self.read, self.slot, b as i32, self.written
            ),
        }
    }
}

/// A cache read that saw the value beside related entries of another version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TornRead {
    pub worker: u32,
    /// The reader's read number.
    pub read: u64,
    pub value: u32,
    /// The lowest and highest version among the related entries it saw.
    pub lo: u32,
    pub hi: u32,
    /// The writer of the value's version, if a write event names it.
    pub value_by: Option<u32>,
}

impl std::fmt::Display for TornRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker {} (read {}) saw value version {}",
            self.worker, self.read, self.value
        )?;
        if let Some(w) = self.value_by {
            write!(f, " (written by worker {w})")?;
        }
        if self.lo == self.hi {
            write!(f, " beside related entries of version {}", self.lo)
        } else {
            write!(
                f,
                " beside related entries of versions {} to {}",
                self.lo, self.hi
            )
        }
    }
}

/// A slot whose stored final value is not the region's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinalMismatch {
    pub slot: u32,
    pub stored: u32,
    pub region: u32,
}

/// Why a damaged record was not accepted as a killed worker's torn last record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Its header names a writer that is no worker of the run.
    NotAWorker {
        writer: u32,
    },
    /// It is the parent's: a run's header or end, or the closing record.
    Parent,
    NotKilled {
        worker: u32,
    },
    /// The worker already has a torn record.
    AlreadyTorn {
        worker: u32,
    },
    /// Its sequence is not the worker's next (`next`), or the worker may have only `most`.
    NotLast {
        worker: u32,
        next: u64,
        most: u64,
    },
    /// Nameless (torn in its header), and every killed worker is claimed.
    TooMany,
    /// The run's end, which names the killed workers, is missing.
    NoEnd,
    /// A row: written whole inside a transaction, it is never torn.
    Row,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::NotAWorker { writer } => {
                write!(f, "written by {writer}, not a worker of this run")
            }
            Rejection::Parent => f.write_str("it is the parent's (a run's header or end)"),
            Rejection::NotKilled { worker } => write!(f, "worker {worker} was not killed"),
            Rejection::AlreadyTorn { worker } => {
                write!(f, "worker {worker} already has a torn record")
            }
            Rejection::NotLast { worker, next, most } => write!(
                f,
                "not worker {worker}'s last record (its records end at {next}, it may have {most})"
            ),
            Rejection::TooMany => f.write_str("more torn records than killed workers"),
            Rejection::NoEnd => {
                f.write_str("the run's end record, which names the killed workers, is missing")
            }
            Rejection::Row => f.write_str("a row is written whole, inside a transaction"),
        }
    }
}

/// One thing wrong with a run's record. Verify lists the first of each label; the counts are
/// in `RunCheck`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Records of a kind this run's scenario never writes.
    ForeignRecords {
        events: u64,
        transfers: u64,
        reads: u64,
        strategy: String,
        /// What the run writes ("events only").
        writes: &'static str,
    },
    /// The end record's sizes do not fit the run's header.
    MalformedEnd {
        completed: usize,
        finals: usize,
        workers: u32,
        slots: u32,
    },
    /// A scenario run whose end names killed workers (scenarios refuse faults).
    KilledInScenario {
        killed: usize,
    },
    /// A damaged record that is not a killed worker's torn last record.
    Damaged {
        damage: Damage,
        why: Rejection,
    },
    /// A live worker's records end before what it acknowledged (or go past it).
    AcknowledgedNotPersisted {
        worker: u32,
        acknowledged: u64,
        persisted: u64,
    },
    /// A killed worker persisted more than it acknowledged plus its update in flight.
    PersistedNotAcknowledged {
        worker: u32,
        acknowledged: u64,
        in_flight: u64,
        persisted: u64,
    },
    /// The saved final values do not hash to the saved fingerprint.
    Fingerprint {
        computed: u64,
        saved: u64,
    },
    /// A worker's record numbers skip or repeat: `seq` came where `next` was due.
    Sequence {
        worker: u32,
        seq: u64,
        next: u64,
    },

    /// counter: values won twice; the first witness.
    LostUpdate {
        values: u64,
        first: Witness,
    },
    /// counter: an event naming a worker, slot or value the run cannot have.
    ImpossibleEvent {
        worker: u32,
        slot: u32,
        written: u32,
        workers: u32,
        slots: u32,
        initial: u32,
    },
    /// counter: an event whose hash does not link what it read to what it wrote.
    BrokenLink {
        worker: u32,
        seq: u64,
        slot: u32,
        read: u32,
        written: u32,
        hash: u64,
    },
    /// counter: an event completed `ahead_ns` before a lower value's writer was invoked.
    OrderViolation {
        worker: u32,
        slot: u32,
        value: u32,
        ahead_ns: u64,
        lower_worker: u32,
        lower_value: u32,
    },
    /// counter: no event wrote `value` on `slot`; `missing` in all, `allowed` for the killed.
    Gap {
        slot: u32,
        value: u32,
        missing: u64,
        allowed: u64,
        killed: bool,
    },
    /// counter: a slot's stored final value is not the region's.
    FinalState(FinalMismatch),
    /// counter: the stored values do not hash to the region's fingerprint.
    StoredFingerprint,
    /// The region holds more updates than were acknowledged plus those in flight.
    FinalAboveAcknowledged {
        region: u64,
        acknowledged: u64,
        in_flight: u64,
    },
    /// The region holds fewer updates than were acknowledged.
    FinalBelowAcknowledged {
        region: u64,
        acknowledged: u64,
    },

    /// ledger: account states read by two transfers; the first witness.
    LostTransfer {
        states: u64,
        first: Witness,
    },
    ImpossibleTransfer {
        worker: u32,
        amount: u32,
        from: u32,
        to: u32,
        workers: u32,
        accounts: u32,
    },
    Overdraft {
        worker: u32,
        amount: u32,
        account: u32,
        version: u32,
        before: i64,
        after: i64,
    },
    /// ledger: no transfer read `version` of `account`.
    VersionGap {
        account: u32,
        version: u32,
    },
    /// ledger: a transfer read a balance its account's previous version did not leave.
    BrokenChain {
        worker: u32,
        account: u32,
        version: u32,
        read: i64,
        left_by: Option<u32>,
        left: i64,
    },
    /// ledger: an account's chain ends away from the region's balance.
    AccountFinal {
        account: u32,
        balance: i64,
        version: u32,
        region: i64,
    },
    /// ledger: the total changed.
    Total {
        total: i64,
        start: i64,
    },
    NegativeBalances {
        accounts: u64,
    },

    /// cache: reads that saw the value beside related entries of another version.
    TornReads {
        torn: u64,
        reads: u64,
        new_beside_stale: u64,
        first: TornRead,
    },
    ImpossibleWrite {
        worker: u32,
        version: u32,
        slot: u32,
        writes: u64,
        initial: u32,
    },
    /// cache: a write whose hash does not link version - 1 to version.
    BrokenWrite {
        worker: u32,
        seq: u64,
        version: u32,
    },
    /// cache: versions up to `top` never written.
    VersionsUnwritten {
        versions: u64,
        top: u32,
    },
    ImpossibleRead {
        worker: u32,
        workers: u32,
    },
    /// cache: a reader's batches resume at `first` after `after` reads.
    ReadSequence {
        worker: u32,
        first: u64,
        after: u64,
    },
    PhantomRead {
        worker: u32,
        value: u32,
        lo: u32,
        hi: u32,
    },
    /// cache: the region's final value and related entries are not one written version.
    CacheFinal {
        finals: Vec<u32>,
    },
    DuplicateWrites {
        versions: u64,
    },
}

impl Problem {
    /// The label the sentence starts with; verify lists the first problem of each.
    pub fn label(&self) -> &'static str {
        use Problem::*;
        match self {
            ForeignRecords { .. } => "foreign records",
            MalformedEnd { .. } | KilledInScenario { .. } => "malformed end record",
            Damaged { .. } => "corrupt record",
            AcknowledgedNotPersisted { .. } => "acknowledged but not persisted",
            PersistedNotAcknowledged { .. } => "persisted but never acknowledged",
            Fingerprint { .. } => "fingerprint",
            Sequence { .. } | ReadSequence { .. } => "sequence",
            LostUpdate { .. } | LostTransfer { .. } => "lost update",
            ImpossibleEvent { .. } => "impossible event",
            BrokenLink { .. } | BrokenWrite { .. } => "broken hash chain",
            OrderViolation { .. } => "real-time order",
            Gap { .. } | VersionGap { .. } | VersionsUnwritten { .. } => "gap",
            FinalState(_) | StoredFingerprint | AccountFinal { .. } | CacheFinal { .. } => {
                "final state"
            }
            FinalAboveAcknowledged { .. } => "final count above acknowledged",
            FinalBelowAcknowledged { .. } => "final count below acknowledged",
            ImpossibleTransfer { .. } => "impossible transfer",
            Overdraft { .. } => "overdraft",
            BrokenChain { .. } => "broken chain",
            Total { .. } => "total",
            NegativeBalances { .. } => "negative balance",
            TornReads { .. } => "torn read",
            ImpossibleWrite { .. } => "impossible write",
            ImpossibleRead { .. } => "impossible read",
            PhantomRead { .. } => "phantom read",
            DuplicateWrites { .. } => "duplicate write",
        }
    }

    /// Whether it proves the run wrong. A damaged record in a run whose end is missing may be
    /// a killed worker's torn last record, which only the end could tell: it leaves the run
    /// incomplete, not failed.
    pub fn proves_failure(&self) -> bool {
        !matches!(
            self,
            Problem::Damaged {
                why: Rejection::NoEnd,
                ..
            }
        )
    }

    /// Where it lies in the store, when one record says it.
    pub fn place(&self) -> Option<&Place> {
        match self {
            Problem::Damaged { damage, .. } => Some(&damage.at),
            _ => None,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use Problem::*;
        // A damaged record's sentence starts with the record ("corrupt record at byte offset
        // …", "corrupt events row (…)"), not with the label.
        if let Damaged { damage, why } = self {
            return match why {
                Rejection::Row => write!(f, "{damage}; {why}, so this is corruption"),
                Rejection::NoEnd => write!(
                    f,
                    "{damage}; it may be a killed worker's torn last record, but {why}"
                ),
                _ => write!(
                    f,
                    "{damage}; a torn record is accepted only as a killed worker's last, and {why}"
                ),
            };
        }
        write!(f, "{}: ", self.label())?;
        match self {
            ForeignRecords {
                events,
                transfers,
                reads,
                strategy,
                writes,
            } => write!(
                f,
                "{events} events, {transfers} transfers and {reads} read batches in a run of {strategy}, which writes {writes}"
            ),
            MalformedEnd {
                completed,
                finals,
                workers,
                slots,
            } => write!(
                f,
                "{completed} worker counts and {finals} final values for {workers} workers and {slots} slots"
            ),
            KilledInScenario { killed } => write!(
                f,
                "{killed} killed workers in a scenario run (faults are refused)"
            ),
            Damaged { .. } => unreachable!("written above"),
            AcknowledgedNotPersisted {
                worker,
                acknowledged,
                persisted,
            } => write!(
                f,
                "worker {worker} acknowledged {acknowledged} updates, its records end at {persisted}"
            ),
            PersistedNotAcknowledged {
                worker,
                acknowledged,
                in_flight,
                persisted,
            } => write!(
                f,
                "worker {worker} (killed) acknowledged {acknowledged} updates with {in_flight} in flight, its records end at {persisted}"
            ),
            Fingerprint { computed, saved } => write!(
                f,
                "the saved final values hash to {computed:016x}, the region's fingerprint is {saved:016x}"
            ),
            Sequence { worker, seq, next } => write!(
                f,
                "worker {worker} record {seq} follows record {}",
                *next as i64 - 1
            ),
            LostUpdate { values, first } => {
                write!(f, "{values} value(s) won twice, first: {first}")
            }
            ImpossibleEvent {
                worker,
                slot,
                written,
                workers,
                slots,
                initial,
            } => write!(
                f,
                "worker {worker} wrote {written} on slot {slot} (run has {workers} workers, {slots} slots, initial {initial})"
            ),
            BrokenLink {
                worker,
                seq,
                slot,
                read,
                written,
                hash,
            } => write!(
                f,
                "worker {worker} seq {seq} on slot {slot} read {read} wrote {written} with hash {hash:016x}"
            ),
            OrderViolation {
                worker,
                slot,
                value,
                ahead_ns,
                lower_worker,
                lower_value,
            } => write!(
                f,
                "worker {worker} wrote {value} on slot {slot} and completed {ahead_ns} ns before worker {lower_worker} wrote the lower value {lower_value} was even invoked"
            ),
            Gap {
                slot,
                value,
                missing,
                allowed,
                killed,
            } => {
                write!(f, "no event wrote {value} on slot {slot}")?;
                if *killed {
                    write!(
                        f,
                        " ({missing} missing, at most {allowed} allowed for killed workers)"
                    )?;
                }
                Ok(())
            }
            FinalState(m) => write!(
                f,
                "slot {} is stored as {}, {} the region's {}",
                m.slot,
                m.stored,
                if m.stored < m.region {
                    "behind"
                } else {
                    "ahead of"
                },
                m.region
            ),
            StoredFingerprint => {
                f.write_str("the stored values do not hash to the region's fingerprint")
            }
            FinalAboveAcknowledged {
                region,
                acknowledged,
                in_flight,
            } => write!(
                f,
                "the region holds {region} updates, workers acknowledged {acknowledged} with {in_flight} in flight"
            ),
            FinalBelowAcknowledged {
                region,
                acknowledged,
            } => write!(
                f,
                "the region holds {region} updates, workers acknowledged {acknowledged}"
            ),
            LostTransfer { states, first } => write!(
                f,
                "{states} account state(s) read by two transfers, first: {first}"
            ),
            ImpossibleTransfer {
                worker,
                amount,
                from,
                to,
                workers,
                accounts,
            } => write!(
                f,
                "worker {worker} moved {amount} from account {from} to account {to} (run has {workers} workers, {accounts} accounts)"
            ),
            Overdraft {
                worker,
                amount,
                account,
                version,
                before,
                after,
            } => write!(
                f,
                "worker {worker} moved {amount} from account {account} at version {version}, taking it from {before} to {after}"
            ),
            VersionGap { account, version } => write!(
                f,
                "no transfer of account {account} read its version {version}"
            ),
            BrokenChain {
                worker,
                account,
                version,
                read,
                left_by,
                left,
            } => {
                write!(
                    f,
                    "worker {worker} read account {account} at version {version} holding {read}, but "
                )?;
                match left_by {
                    Some(w) => write!(f, "worker {w}")?,
                    None => f.write_str("the run's start")?,
                }
                write!(f, " left it holding {left}")
            }
            AccountFinal {
                account,
                balance,
                version,
                region,
            } => write!(
                f,
                "account {account}'s transfers leave it holding {balance} at version {version}, the region holds {region}"
            ),
            Total { total, start } => write!(
                f,
                "the accounts hold {total}, the run started with {start} ({} {})",
                if total > start {
                    "created"
                } else {
                    "destroyed"
                },
                total.abs_diff(*start)
            ),
            NegativeBalances { accounts } => {
                write!(f, "{accounts} account(s) end below zero")
            }
            TornReads {
                torn,
                reads,
                new_beside_stale,
                first,
            } => write!(
                f,
                "{torn} of {reads} reads saw the value beside related entries of another version ({new_beside_stale} a new value beside stale entries), first: {first}"
            ),
            ImpossibleWrite {
                worker,
                version,
                slot,
                writes,
                initial,
            } => write!(
                f,
                "worker {worker} wrote version {version} on slot {slot} ({writes} writes from version {initial})"
            ),
            BrokenWrite {
                worker,
                seq,
                version,
            } => write!(f, "worker {worker} seq {seq} wrote version {version}"),
            VersionsUnwritten { versions, top } => {
                write!(f, "{versions} version(s) up to {top} were never written")
            }
            ImpossibleRead { worker, workers } => {
                write!(f, "reads of worker {worker} in a run of {workers} workers")
            }
            ReadSequence {
                worker,
                first,
                after,
            } => write!(f, "worker {worker}'s reads resume at {first} after {after}"),
            PhantomRead {
                worker,
                value,
                lo,
                hi,
            } => write!(
                f,
                "worker {worker} saw value version {value} beside related {lo} to {hi}, which no write made"
            ),
            CacheFinal { finals } => write!(
                f,
                "the region ends with value and related versions {finals:?}"
            ),
            DuplicateWrites { versions } => write!(f, "{versions} version(s) written twice"),
        }
    }
}

/// In JSON, a problem is its sentence (the counters beside it carry the numbers).
impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What is wrong with a store as a whole, beside its runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordProblem {
    /// The file ends inside a record: it was cut there.
    TornTail {
        offset: u64,
        bytes: u64,
    },
    /// Records whose run header is missing.
    Orphans(Orphans),
    /// A damaged record outside any run.
    Damaged(Damage),
    /// The format keeps a closing record and there is none.
    NotClosed,
    /// The closing record counts `closed` runs; the store holds `found`.
    RunCount {
        closed: u64,
        found: u64,
    },
    NoRun,
}

impl std::fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordProblem::TornTail { offset, bytes } => write!(
                f,
                "torn tail: the last {bytes} bytes (from byte offset {offset}) are an incomplete record: the record was cut there"
            ),
            RecordProblem::Orphans(o) => {
                write!(f, "records of no run: {} record(s)", o.records())?;
                if let Some(at) = &o.at {
                    write!(f, " from {at}")?;
                }
                let kinds = [
                    (o.events, "event(s)"),
                    (o.transfers, "transfer(s)"),
                    (o.reads, "read batch(es)"),
                    (o.ends, "end record(s)"),
                ];
                let mut sep = " (";
                for (n, kind) in kinds.iter().filter(|k| k.0 > 0) {
                    write!(f, "{sep}{n} {kind}")?;
                    sep = ", ";
                }
                if sep == ", " {
                    f.write_str(")")?;
                }
                match o.run {
                    Some(run) => write!(f, " of run {run}, whose header is missing"),
                    None => f.write_str(" whose run header is missing"),
                }
            }
            RecordProblem::Damaged(d) => write!(f, "{d}, outside any run"),
            RecordProblem::NotClosed => f.write_str(
                "no closing record: the invocation did not finish writing this store (it crashed, or the store was cut), so runs after the last one listed may be missing",
            ),
            RecordProblem::RunCount { closed, found } => write!(
                f,
                "run count: the closing record says the invocation wrote {closed} run(s), the store holds {found}"
            ),
            RecordProblem::NoRun => f.write_str("no run found"),
        }
    }
}

impl Serialize for RecordProblem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
