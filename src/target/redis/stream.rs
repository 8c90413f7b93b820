//! `--store target` on Redis: a run's record kept beside its keys, and the loader that reads
//! it back for `torture verify redis://…`.
//!
//! - `racepool:{RUN}:run`, a hash: `info` (the run's header, [`RunInfo`] as JSON, written by
//!   the parent before any worker starts) and `end` (its [`RunEnd`] as JSON, after every
//!   worker was reaped).
//! - `racepool:{RUN}:events`, a stream: one entry per winning update, added by the winning
//!   worker in the same atomic step as its write (a `MULTI … EXEC` or the script). Fields:
//!   `k` = `e`, `w` worker, `s` its sequence number, `slot`, `r` read, `v` written, `n`
//!   retries, `t0` invoke (CLOCK_MONOTONIC ns; a joined run's on the meeting place's clock), `pd` (below). A cache reader's batch of reads
//!   is `k` = `r`, `w`, `first`, `seen` = `value:lo:hi,…`.
//!
//! **Completion times.** An entry is written inside the update, before the worker sees the
//! reply: the moment the update completed is not known yet. So each entry carries, as `pd`,
//! the completion time of the same worker's *previous* event (0 when there is none), and a
//! session that ends writes one last entry `k` = `c`, `w`, `pd` for its last event. The loader
//! gives each event the completion its worker reported next; an event whose completion never
//! arrived (its worker died, or lost its connection) gets `u64::MAX`: unknown, which the
//! real-time check never holds against anyone.
//!
//! **No hash chain.** A framed log carries each event's `link_hash` because a file can be torn
//! or misattributed; a stream entry is written whole by the server or not at all, under its
//! run's own key. The loader computes the link from the entry's fields, so verify's checks of
//! values (duplicates, gaps, witnesses, finals) apply unchanged.

use std::collections::{BTreeSet, HashMap};

use super::resp::{Arg, Client, ClientError, Reply};
use super::{read_slots, Keys, RedisTarget, NAMESPACE};
use crate::error::Error;
use crate::history::event::ChainKey;
use crate::history::loaded::{Closure, Tail};
use crate::history::{Event, Reads, RunEnd, RunInfo, Seen};
use crate::history::{Loaded, RunHistory};

/// Entries read per XRANGE.
const PAGE: u32 = 1000;

/// One run as read back from Redis.
#[derive(Clone, Debug)]
pub struct StoredRun {
    pub info: RunInfo,
    pub events: Vec<Event>,
    pub reads: Vec<Reads>,
    pub end: Option<RunEnd>,
    /// The slot keys' values now, when every one exists (the state the target itself keeps).
    pub stored: Option<Vec<u32>>,
    /// Entries read (events, reads, completions).
    pub entries: u64,
}

/// The loaded runs as verify takes them (`verify::Loaded`): a stream has no torn tail and no
/// damaged record, so those parts are empty.
pub fn into_loaded(runs: Vec<StoredRun>) -> Loaded {
    let records = runs
        .iter()
        .map(|r| r.entries + 1 + r.end.is_some() as u64)
        .sum();
    Loaded {
        runs: runs
            .into_iter()
            .map(|r| RunHistory {
                events: r.events,
                reads: r.reads,
                end: r.end,
                stored: r.stored,
                ..RunHistory::new(r.info)
            })
            .collect(),
        orphans: Vec::new(),
        damaged: Vec::new(),
        tail: Tail::Clean,
        read_to: None,
        size: None,
        // Runs are keyed one by one: there is no invocation-wide closing record to miss.
        closure: Closure::Unrecorded,
        records,
    }
}

/// The last completion of a worker's session (see the module doc).
pub(super) fn add_completion(
    c: &mut Client,
    events: &str,
    worker: u32,
    done: u64,
) -> Result<(), ClientError> {
    c.call(&[
        &"XADD", &events, &"*", &"k", &"c", &"w", &worker, &"pd", &done,
    ])
    .map(drop)
}

/// The `seen` field of a batch of reads.
pub(super) fn encode_seen(seen: &[Seen]) -> String {
    let mut out = String::with_capacity(seen.len() * 12);
    for (i, s) in seen.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{}:{}:{}", s.value, s.lo, s.hi));
    }
    out
}

fn decode_seen(text: &str) -> Option<Vec<Seen>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|t| {
            let mut p = t.split(':').map(|n| n.parse::<u32>().ok());
            let s = Seen {
                value: p.next()??,
                lo: p.next()??,
                hi: p.next()??,
            };
            p.next().is_none().then_some(s)
        })
        .collect()
}

impl RedisTarget {
    /// Writes the run's header. Parent, after `create`, before any fork.
    pub fn begin(&self, info: &RunInfo) -> Result<(), Error> {
        self.put_record(info.run, "info", &serde_json::to_string(info))
    }

    /// Writes the run's end record. Parent, after every worker was reaped.
    pub fn end(&self, end: &RunEnd) -> Result<(), Error> {
        self.put_record(end.run, "end", &serde_json::to_string(end))
    }

    fn put_record(
        &self,
        run: u64,
        field: &str,
        json: &Result<String, serde_json::Error>,
    ) -> Result<(), Error> {
        let json = json
            .as_ref()
            .map_err(|e| Error::Store(format!("encoding run {run}'s {field}: {e}")))?;
        let mut c = self.client()?;
        c.call(&[&"HSET", &Keys::of(run).run(), &field, json])
            .map(drop)
            .map_err(|e| Error::Store(format!("{}: writing run {run}'s {field}: {e}", self.url)))
    }

    /// The runs that have a stored header, by id.
    pub fn stored_runs(&self, c: &mut Client) -> Result<Vec<u64>, Error> {
        let pattern = format!("{NAMESPACE}*}}:run");
        let mut runs = BTreeSet::new();
        c.scan(&pattern, |_, found| {
            // The pattern's `*` could span `}:x:{`: keep only keys that are a run key.
            runs.extend(
                found
                    .iter()
                    .filter_map(|k| Keys::run_of(k).filter(|r| Keys::of(*r).run().as_bytes() == k)),
            );
            Ok(())
        })
        .map_err(self.failed("SCAN"))?;
        let mut stored = Vec::new();
        for r in runs {
            let has = c
                .call(&[&"HEXISTS", &Keys::of(r).run(), &"info"])
                .and_then(|r| r.int())
                .map_err(self.failed("HEXISTS"))?;
            if has == 1 {
                stored.push(r);
            }
        }
        Ok(stored)
    }

    /// Reads back one run (`Some`) or every stored run. A record that is not racepool's is
    /// `Error::Usage` (exit 2), like a file that is not a racepool log.
    pub fn load(&self, run: Option<u64>) -> Result<Vec<StoredRun>, Error> {
        let mut c = self.client()?;
        let runs = match run {
            Some(r) => vec![r],
            None => self.stored_runs(&mut c)?,
        };
        runs.into_iter().map(|r| self.load_run(&mut c, r)).collect()
    }

    fn load_run(&self, c: &mut Client, run: u64) -> Result<StoredRun, Error> {
        let keys = Keys::of(run);
        let not_ours = |what: String| {
            Error::Usage(format!(
                "{}: run {run}: {what}: not a racepool record",
                self.url
            ))
        };
        let fields = c
            .call(&[&"HMGET", &keys.run(), &"info", &"end"])
            .and_then(Reply::array)
            .map_err(self.failed("HMGET"))?;
        let json = |r: &Reply| -> Result<Option<String>, Error> {
            match r {
                Reply::Nil => Ok(None),
                Reply::Bulk(b) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
                other => Err(not_ours(format!("{other:?} in its run key"))),
            }
        };
        let info: RunInfo = match fields.first().map(json).transpose()?.flatten() {
            Some(j) => {
                serde_json::from_str(&j).map_err(|e| not_ours(format!("its header: {e}")))?
            }
            None => {
                return Err(Error::Usage(format!(
                    "{}: run {run} has no stored record (was it run with --store target?)",
                    self.url
                )))
            }
        };
        let end: Option<RunEnd> = match fields.get(1).map(json).transpose()?.flatten() {
            Some(j) => {
                Some(serde_json::from_str(&j).map_err(|e| not_ours(format!("its end: {e}")))?)
            }
            None => None,
        };
        let chain = ChainKey::of(run);
        let mut out = StoredRun {
            info,
            events: Vec::new(),
            reads: Vec::new(),
            end,
            stored: None,
            entries: 0,
        };
        // Per worker: its last event's index, waiting for the completion its next entry brings.
        let mut last: HashMap<u32, usize> = HashMap::new();
        let stream = keys.events();
        let mut from = b"-".to_vec();
        loop {
            let page = c
                .call(&[&"XRANGE", &stream, &from, &"+", &"COUNT", &PAGE])
                .and_then(Reply::array)
                .map_err(self.failed("XRANGE"))?;
            let n = page.len();
            for entry in page {
                let (id, fields) = entry_fields(entry)
                    .ok_or_else(|| not_ours("a stream entry of another shape".into()))?;
                let bad = |what: &str| {
                    not_ours(format!("entry {}: {what}", String::from_utf8_lossy(&id)))
                };
                let num = |name: &str| -> Result<u64, Error> {
                    fields
                        .get(name)
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad(&format!("field '{name}' missing or not a number")))
                };
                let small = |name: &str| -> Result<u32, Error> {
                    u32::try_from(num(name)?).map_err(|_| bad(&format!("field '{name}' too big")))
                };
                out.entries += 1;
                let worker = small("w")?;
                // The completion of this worker's previous event.
                let pd = num("pd").unwrap_or(0);
                if pd != 0 {
                    if let Some(&i) = last.get(&worker) {
                        out.events[i].complete_ns = pd;
                    }
                }
                match fields.get("k").map(String::as_str) {
                    Some("e") => {
                        let (slot, read, written) = (small("slot")?, small("r")?, small("v")?);
                        last.insert(worker, out.events.len());
                        out.events.push(Event {
                            run,
                            worker,
                            seq: num("s")?,
                            slot,
                            read,
                            written,
                            retries: small("n")?,
                            invoke_ns: num("t0")?,
                            complete_ns: u64::MAX,
                            hash: chain.link(slot, read, written),
                        });
                    }
                    Some("c") => {
                        last.remove(&worker);
                    }
                    Some("r") => out.reads.push(Reads {
                        worker,
                        first: num("first")?,
                        seen: fields
                            .get("seen")
                            .and_then(|s| decode_seen(s))
                            .ok_or_else(|| bad("field 'seen' is not value:lo:hi,…"))?,
                    }),
                    _ => return Err(bad("no known kind 'k'")),
                }
                from = [b"(".as_slice(), &id].concat();
            }
            if n < PAGE as usize {
                break;
            }
        }
        let slots = out.info.slots as usize;
        let values = read_slots(c, &keys, slots).map_err(self.failed("MGET"))?;
        out.stored = values.into_iter().collect();
        Ok(out)
    }
}

/// A stream entry as its ID and its fields by name.
fn entry_fields(entry: Reply) -> Option<(Vec<u8>, HashMap<String, String>)> {
    let mut parts = entry.array().ok()?.into_iter();
    let id = match parts.next()? {
        Reply::Bulk(b) => b,
        _ => return None,
    };
    let flat = parts.next()?.array().ok()?;
    let mut fields = HashMap::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(Reply::Bulk(k)), Some(Reply::Bulk(v))) = (it.next(), it.next()) {
        fields.insert(
            String::from_utf8_lossy(&k).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        );
    }
    Some((id, fields))
}

/// Arguments of a cache reader's batch entry.
pub(super) fn queue_reads(c: &mut Client, events: &str, reads: &Reads) {
    let seen = encode_seen(&reads.seen);
    let args: [&dyn Arg; 11] = [
        &"XADD",
        &events,
        &"*",
        &"k",
        &"r",
        &"w",
        &reads.worker,
        &"first",
        &reads.first,
        &"seen",
        &seen,
    ];
    c.queue(&args);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_round_trips_and_refuses_garbage() {
        let seen = vec![
            Seen {
                value: 3,
                lo: 3,
                hi: 3,
            },
            Seen {
                value: 4,
                lo: 2,
                hi: 4,
            },
        ];
        assert_eq!(encode_seen(&seen), "3:3:3,4:2:4");
        assert_eq!(decode_seen(&encode_seen(&seen)), Some(seen));
        assert_eq!(decode_seen(""), Some(Vec::new()));
        assert_eq!(decode_seen("1:2"), None);
        assert_eq!(decode_seen("1:2:3:4"), None);
        assert_eq!(decode_seen("1:x:3"), None);
    }
}
