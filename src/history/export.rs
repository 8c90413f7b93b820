//! The history of each counter run as Jepsen histories, for external checkers: one file per
//! run and slot, in Jepsen's EDN or elle-cli's JSON form.
//!
//! Why per slot: each slot is its own counter, and Jepsen's counter checker (elle-cli's
//! `counter` model) checks one counter per history. A one-slot run is one file.
//!
//! What a history holds (`process` numbers, with W the run's worker count):
//! - the slot's starting value, as an `add` of `initial` by the parent (process W), completed
//!   before anything else: Jepsen's counter starts at 0;
//! - each persisted update, as an `add` of 1 by its worker (process w), from its invoke time
//!   to its completion time;
//! - what each update read, as a `read` by the worker's observer (process W+1+w) over the
//!   same interval: the update saw the counter at that value somewhere in between;
//! - each update whose outcome is unknown (a dead worker's acknowledged updates that never
//!   reached the store, and its update in flight), as an `add` of 1 that completes `:info`,
//!   one process each (2W+1+j: a process whose operation crashed never invokes again). The
//!   record does not say which slot such an update picked, so it appears in every slot's
//!   history: for each slot, it may or may not have added to it;
//! - the region's final value, as a `read` by the parent after every worker was reaped.
//!
//! Lines are in time order (`time`: ns since the run's first invocation), `index` counts them
//! from 0. At equal times invocations come before completions (an operation that completed at
//! the very nanosecond another was invoked is taken as concurrent with it), except a
//! process's own next invocation, which follows its previous completion.
//!
//! A run without its end record (incomplete: nothing says what the workers acknowledged, who
//! died, or the final values) and a run that is not a counter (ledger, cache) are skipped.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::loaded::{Loaded, RunHistory, Shape};

/// The file format: Jepsen's EDN (one op map a line) or elle-cli's JSON (one array).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Edn,
    Json,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Edn => "edn",
            Format::Json => "json",
        }
    }
}

/// Jepsen's operation types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Type {
    Invoke,
    Ok,
    /// The outcome is unknown: the operation may or may not have taken effect.
    Info,
}

/// The counter model's two functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum F {
    Add,
    Read,
}

/// One line of a history, without its index (its position).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// ns since the run's first invocation.
    pub time: u64,
    pub kind: Type,
    pub process: u64,
    pub f: F,
    /// None on a read's invocation (Jepsen's nil: the value is not known yet).
    pub value: Option<u64>,
}

/// One slot's history of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotHistory {
    pub slot: u32,
    pub ops: Vec<Op>,
}

/// Why a run has no history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// No end record: what the workers acknowledged and who died is unknown.
    Incomplete,
    /// A ledger or cache run: transfers and reads do not fit the counter model.
    NotACounter,
}

/// A run the export left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub run: u64,
    pub name: String,
    pub why: Skip,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.why {
            Skip::Incomplete => "has no end record (incomplete)",
            Skip::NotACounter => "is not a counter (Jepsen's counter model does not fit it)",
        };
        write!(
            f,
            "run {} ({}) {why}: no history written",
            self.run, self.name
        )
    }
}

/// What `write_dir` wrote.
#[derive(Clone, Debug, Default)]
pub struct Exported {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<Skipped>,
}

/// A history file that could not be written.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WriteError {}

/// Writes one file per counter run and slot into `dir` (which must exist):
/// `<run>-<name>-slot<k>.<edn|json>`.
pub fn write_dir(loaded: &Loaded, dir: &Path, format: Format) -> Result<Exported, WriteError> {
    let mut out = Exported::default();
    for run in &loaded.runs {
        let histories = match histories(run) {
            Ok(h) => h,
            Err(why) => {
                out.skipped.push(Skipped {
                    run: run.info.run,
                    name: run.info.strategy.clone(),
                    why,
                });
                continue;
            }
        };
        let width = run.info.slots.saturating_sub(1).to_string().len();
        for h in &histories {
            let path = dir.join(format!(
                "{}-{}-slot{:0width$}.{}",
                run.info.run,
                file_label(&run.info.strategy),
                h.slot,
                format.extension()
            ));
            let fail = |source| WriteError {
                path: path.clone(),
                source,
            };
            let file = File::create(&path).map_err(fail)?;
            write(&h.ops, format, file).map_err(fail)?;
            out.files.push(path);
        }
    }
    Ok(out)
}

/// `futex-lock`, `votes-atomic`: the run's name as a file name part.
fn file_label(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Writes one history in `format`.
pub fn write(ops: &[Op], format: Format, out: impl Write) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    if format == Format::Json {
        out.write_all(b"[")?;
    }
    for (index, op) in ops.iter().enumerate() {
        if format == Format::Json && index > 0 {
            out.write_all(b",\n")?;
        }
        write_op(&mut out, index, op, format)?;
        if format == Format::Edn {
            out.write_all(b"\n")?;
        }
    }
    if format == Format::Json {
        out.write_all(b"]\n")?;
    }
    out.flush()
}

fn write_op(out: &mut impl Write, index: usize, op: &Op, format: Format) -> io::Result<()> {
    let kind = match op.kind {
        Type::Invoke => "invoke",
        Type::Ok => "ok",
        Type::Info => "info",
    };
    let f = match op.f {
        F::Add => "add",
        F::Read => "read",
    };
    let (time, process) = (op.time, op.process);
    match format {
        Format::Edn => {
            write!(out, "{{:index {index}, :time {time}, :type :{kind}, :process {process}, :f :{f}, :value ")?;
            match op.value {
                Some(v) => write!(out, "{v}}}"),
                None => out.write_all(b"nil}"),
            }
        }
        Format::Json => {
            write!(out, "{{\"index\":{index},\"time\":{time},\"type\":\"{kind}\",\"process\":{process},\"f\":\"{f}\",\"value\":")?;
            match op.value {
                Some(v) => write!(out, "{v}}}"),
                None => out.write_all(b"null}"),
            }
        }
    }
}

/// Where an operation's line goes among lines of equal time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tie {
    Invoke,
    Completion,
    /// The invocation of a process whose previous operation completed at the same time.
    InvokeAfterOwnCompletion,
    /// The completion of such an invocation at the same time (a zero-length operation).
    CompletionAfterOwnInvoke,
}

/// The histories of one run, one per slot.
pub fn histories(run: &RunHistory) -> Result<Vec<SlotHistory>, Skip> {
    if Shape::of(&run.info.strategy) != Shape::Counter {
        return Err(Skip::NotACounter);
    }
    let end = run.end.as_ref().ok_or(Skip::Incomplete)?;
    let workers = u64::from(run.info.workers);
    let parent = workers;
    let observer = |w: u32| workers + 1 + u64::from(w);
    let unknown = |j: u64| 2 * workers + 1 + j;

    let origin = run.events.iter().map(|e| e.invoke_ns).min().unwrap_or(0);
    let at = |ns: u64| ns.saturating_sub(origin);
    let complete = |e: &crate::history::Event| at(e.complete_ns.max(e.invoke_ns));
    let last = run.events.iter().map(complete).max().unwrap_or(0);

    // Per worker: events persisted and the completion of its last one.
    let mut persisted = vec![0u64; run.info.workers as usize];
    let mut last_done: Vec<Option<u64>> = vec![None; run.info.workers as usize];
    for e in &run.events {
        if let Some(n) = persisted.get_mut(e.worker as usize) {
            *n += 1;
            let t = &mut last_done[e.worker as usize];
            *t = Some(t.map_or(complete(e), |t| t.max(complete(e))));
        }
    }
    // A dead worker's updates that are neither persisted nor known not to have happened:
    // acknowledged (or in flight) after its last persisted event, so invoked after it.
    let mut unknowns: Vec<u64> = Vec::new();
    for k in &end.killed {
        let w = k.worker as usize;
        // A worker makes at most `ops` updates: a damaged count cannot inflate the file.
        let acked = end.completed.get(w).copied().unwrap_or(0).min(run.info.ops);
        let seen = persisted.get(w).copied().unwrap_or(0);
        let n = (acked + u64::from(k.in_flight)).saturating_sub(seen);
        let since = last_done.get(w).copied().flatten().unwrap_or(0);
        unknowns.extend(std::iter::repeat_n(since, n as usize));
    }

    let mut by_slot: Vec<Vec<&crate::history::Event>> = vec![Vec::new(); end.finals.len()];
    for e in &run.events {
        if let Some(s) = by_slot.get_mut(e.slot as usize) {
            s.push(e);
        }
    }
    let mut out = Vec::with_capacity(by_slot.len());
    for (slot, mut events) in by_slot.into_iter().enumerate() {
        events.sort_unstable_by_key(|e| (e.worker, e.seq, e.invoke_ns));
        let mut mid: Vec<(u64, Tie, u64, Op)> = Vec::with_capacity(events.len() * 4);
        let mut push = |tie: Tie, op: Op| mid.push((op.time, tie, op.process, op));
        let mut previous: Option<(u32, u64)> = None;
        for e in events {
            let (t0, t1) = (at(e.invoke_ns), complete(e));
            let tie = if previous == Some((e.worker, t0)) {
                Tie::InvokeAfterOwnCompletion
            } else {
                Tie::Invoke
            };
            let done = if tie == Tie::InvokeAfterOwnCompletion && t1 == t0 {
                Tie::CompletionAfterOwnInvoke
            } else {
                Tie::Completion
            };
            previous = Some((e.worker, t1));
            for (process, f, value) in [
                (u64::from(e.worker), F::Add, 1),
                (observer(e.worker), F::Read, u64::from(e.read)),
            ] {
                let invoke_value = (f == F::Add).then_some(1);
                push(tie, op(t0, Type::Invoke, process, f, invoke_value));
                push(done, op(t1, Type::Ok, process, f, Some(value)));
            }
        }
        for (j, &since) in unknowns.iter().enumerate() {
            push(
                Tie::Invoke,
                op(since, Type::Invoke, unknown(j as u64), F::Add, Some(1)),
            );
        }
        mid.sort_unstable_by_key(|&(time, tie, process, _)| (time, tie, process));

        let initial = u64::from(run.info.initial);
        let mut ops = Vec::with_capacity(mid.len() + unknowns.len() + 4);
        ops.push(op(0, Type::Invoke, parent, F::Add, Some(initial)));
        ops.push(op(0, Type::Ok, parent, F::Add, Some(initial)));
        ops.extend(mid.into_iter().map(|(_, _, _, op)| op));
        // Learned when the parent reaped the dead workers: after every persisted update.
        for j in 0..unknowns.len() {
            ops.push(op(last + 1, Type::Info, unknown(j as u64), F::Add, Some(1)));
        }
        let fin = u64::from(end.finals[slot]);
        ops.push(op(last + 1, Type::Invoke, parent, F::Read, None));
        ops.push(op(last + 2, Type::Ok, parent, F::Read, Some(fin)));
        out.push(SlotHistory {
            slot: slot as u32,
            ops,
        });
    }
    Ok(out)
}

fn op(time: u64, kind: Type, process: u64, f: F, value: Option<u64>) -> Op {
    Op {
        time,
        kind,
        process,
        f,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, Killed, RunEnd, RunInfo};

    fn run(workers: u32, slots: u32, initial: u32, events: Vec<Event>, end: RunEnd) -> RunHistory {
        RunHistory {
            info: RunInfo {
                run: 7,
                strategy: "atomic".into(),
                workers,
                slots,
                ops: 10,
                initial,
                seed: 1,
                persist: "events".into(),
            },
            events,
            transfers: vec![],
            reads: vec![],
            end: Some(end),
            missing: vec![],
            stored: None,
            damaged: vec![],
            span: None,
        }
    }

    fn event(
        worker: u32,
        seq: u64,
        slot: u32,
        read: u32,
        invoke_ns: u64,
        complete_ns: u64,
    ) -> Event {
        Event {
            run: 7,
            worker,
            seq,
            slot,
            read,
            written: read + 1,
            retries: 0,
            invoke_ns,
            complete_ns,
            hash: 0,
        }
    }

    fn end(finals: Vec<u32>, completed: Vec<u64>, killed: Vec<Killed>) -> RunEnd {
        RunEnd {
            run: 7,
            fingerprint: 0,
            finals,
            completed,
            killed,
        }
    }

    fn killed(worker: u32, in_flight: bool) -> Killed {
        Killed { worker, in_flight }
    }

    fn text(ops: &[Op], format: Format) -> String {
        let mut out = Vec::new();
        write(ops, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn two_workers_in_edn_start_at_the_initial_value_and_end_with_the_final_read() {
        let r = run(
            2,
            1,
            50,
            vec![
                event(1, 0, 0, 50, 1000, 1010),
                event(0, 0, 0, 51, 1005, 1020),
            ],
            end(vec![52], vec![1, 1], vec![]),
        );
        let h = histories(&r).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(
            text(&h[0].ops, Format::Edn),
            "\
{:index 0, :time 0, :type :invoke, :process 2, :f :add, :value 50}
{:index 1, :time 0, :type :ok, :process 2, :f :add, :value 50}
{:index 2, :time 0, :type :invoke, :process 1, :f :add, :value 1}
{:index 3, :time 0, :type :invoke, :process 4, :f :read, :value nil}
{:index 4, :time 5, :type :invoke, :process 0, :f :add, :value 1}
{:index 5, :time 5, :type :invoke, :process 3, :f :read, :value nil}
{:index 6, :time 10, :type :ok, :process 1, :f :add, :value 1}
{:index 7, :time 10, :type :ok, :process 4, :f :read, :value 50}
{:index 8, :time 20, :type :ok, :process 0, :f :add, :value 1}
{:index 9, :time 20, :type :ok, :process 3, :f :read, :value 51}
{:index 10, :time 21, :type :invoke, :process 2, :f :read, :value nil}
{:index 11, :time 22, :type :ok, :process 2, :f :read, :value 52}
"
        );
    }

    /// The worked example of docs/history.md: initial 5, worker 1 killed with one
    /// acknowledged update that never reached the store.
    #[test]
    fn the_worked_example_in_the_docs_is_what_the_export_writes() {
        let r = run(
            2,
            1,
            5,
            vec![
                event(0, 0, 0, 5, 1000, 1040),
                event(1, 0, 0, 6, 1030, 1090),
                event(0, 1, 0, 7, 1100, 1130),
            ],
            end(vec![9], vec![2, 2], vec![killed(1, false)]),
        );
        let edn = text(&histories(&r).unwrap()[0].ops, Format::Edn);
        let docs = include_str!("../../docs/history.md");
        assert!(docs.contains(&format!("```clojure\n{edn}```")), "{edn}");
    }

    #[test]
    fn json_is_one_array_with_null_for_a_reads_invocation() {
        let ops = [
            op(0, Type::Invoke, 2, F::Read, None),
            op(3, Type::Ok, 2, F::Read, Some(9)),
        ];
        assert_eq!(
            text(&ops, Format::Json),
            "[{\"index\":0,\"time\":0,\"type\":\"invoke\",\"process\":2,\"f\":\"read\",\"value\":null},\n\
             {\"index\":1,\"time\":3,\"type\":\"ok\",\"process\":2,\"f\":\"read\",\"value\":9}]\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text(&ops, Format::Json)).unwrap();
        assert_eq!(parsed.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn at_equal_times_invocations_come_first_but_a_process_follows_its_own_completion() {
        // Worker 0's second update is invoked at the nanosecond its first completed, as is
        // worker 1's only one.
        let r = run(
            2,
            1,
            0,
            vec![
                event(0, 0, 0, 0, 100, 200),
                event(0, 1, 0, 2, 200, 300),
                event(1, 0, 0, 1, 200, 250),
            ],
            end(vec![3], vec![2, 1], vec![]),
        );
        let ops = &histories(&r).unwrap()[0].ops;
        let at_100: Vec<(Type, u64)> = ops
            .iter()
            .filter(|o| o.time == 100 && o.f == F::Add)
            .map(|o| (o.kind, o.process))
            .collect();
        assert_eq!(
            at_100,
            vec![(Type::Invoke, 1), (Type::Ok, 0), (Type::Invoke, 0)]
        );
        assert!(ops.windows(2).all(|w| w[0].time <= w[1].time));
        // Every process alternates invoke, completion.
        let mut open = std::collections::HashMap::new();
        for o in ops {
            let was_open = open.insert(o.process, o.kind == Type::Invoke);
            assert_eq!(was_open.unwrap_or(false), o.kind != Type::Invoke, "{o:?}");
        }
    }

    #[test]
    fn a_zero_length_update_right_after_its_workers_last_still_invokes_first() {
        let r = run(
            1,
            1,
            0,
            vec![event(0, 0, 0, 0, 100, 200), event(0, 1, 0, 1, 200, 200)],
            end(vec![2], vec![2], vec![]),
        );
        let adds: Vec<(u64, Type)> = histories(&r).unwrap()[0]
            .ops
            .iter()
            .filter(|o| o.process == 0)
            .map(|o| (o.time, o.kind))
            .collect();
        assert_eq!(
            adds,
            vec![
                (0, Type::Invoke),
                (100, Type::Ok),
                (100, Type::Invoke),
                (100, Type::Ok)
            ]
        );
    }

    #[test]
    fn a_dead_workers_unpersisted_updates_complete_as_info_in_every_slot() {
        // Worker 1 acknowledged 3 and died with one in flight; one event reached the store.
        let r = run(
            2,
            2,
            0,
            vec![
                event(0, 0, 0, 0, 10, 20),
                event(0, 1, 1, 0, 30, 40),
                event(1, 0, 1, 1, 50, 60),
            ],
            end(vec![3, 3], vec![2, 3], vec![killed(1, true)]),
        );
        let h = histories(&r).unwrap();
        assert_eq!(h.len(), 2);
        for slot in &h {
            let infos: Vec<&Op> = slot.ops.iter().filter(|o| o.kind == Type::Info).collect();
            assert_eq!(infos.len(), 3, "3 acknowledged + 1 in flight - 1 persisted");
            let processes: Vec<u64> = infos.iter().map(|o| o.process).collect();
            assert_eq!(processes, vec![5, 6, 7], "one fresh process each");
            for p in processes {
                let invoke = slot
                    .ops
                    .iter()
                    .find(|o| o.process == p && o.kind == Type::Invoke)
                    .unwrap();
                // After worker 1's last persisted completion (60 - 10), before the final read.
                assert_eq!((invoke.time, invoke.value), (50, Some(1)));
            }
            let last = slot.ops.last().unwrap();
            assert_eq!((last.f, last.value), (F::Read, Some(3)));
            assert!(slot.ops.windows(2).all(|w| w[0].time <= w[1].time));
        }
    }

    #[test]
    fn incomplete_runs_and_ledgers_are_skipped() {
        let mut r = run(1, 1, 0, vec![], end(vec![0], vec![0], vec![]));
        r.info.strategy = "ledger ordered-locks".into();
        assert_eq!(histories(&r), Err(Skip::NotACounter));
        r.info.strategy = "atomic".into();
        r.end = None;
        assert_eq!(histories(&r), Err(Skip::Incomplete));
    }
}
