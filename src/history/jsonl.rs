//! The history as JSON Lines with Jepsen's keys, for external checkers (elle-cli's counter
//! model, Porcupine).
//!
//! Each winning update becomes an `invoke` at its invoke time and an `ok` at its completion,
//! `f` "add" with `value` 1 (a counter increment), `process` the worker. After the updates, a
//! final read per slot (`f` "read", `value` the region's final value) by process `workers`,
//! one past the last worker. Lines are sorted by `time` (ns since the run's first invocation),
//! `index` counts lines from 0 over the whole file. Extra keys: `key` (the slot: Jepsen's
//! independent key; a one-slot run is a plain counter history), `run`, and on `ok` lines of an
//! add, `read` and `votes_after` (the value the update read and wrote).

use std::io::{self, Write};

use serde::Serialize;

use super::Loaded;

#[derive(Serialize)]
struct Op<'a> {
    index: u64,
    time: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    process: u32,
    f: &'a str,
    value: u64,
    key: u32,
    run: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    read: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    votes_after: Option<u32>,
}

/// Writes every run's history; returns the number of lines.
pub fn write(loaded: &Loaded, out: impl Write) -> io::Result<u64> {
    let mut out = io::BufWriter::new(out);
    let mut index = 0u64;
    for run in &loaded.runs {
        // (time, order at equal times: invocations first, event index)
        let mut points: Vec<(u64, u8, usize)> = Vec::with_capacity(run.events.len() * 2);
        for (i, e) in run.events.iter().enumerate() {
            points.push((e.invoke_ns, 0, i));
            points.push((e.complete_ns.max(e.invoke_ns), 1, i));
        }
        points.sort_unstable();
        let origin = points.first().map_or(0, |p| p.0);
        let last = points.last().map_or(0, |p| p.0) - origin;
        for &(t, phase, i) in &points {
            let e = &run.events[i];
            let op = Op {
                index,
                time: t - origin,
                kind: if phase == 0 { "invoke" } else { "ok" },
                process: e.worker,
                f: "add",
                value: 1,
                key: e.slot,
                run: e.run,
                read: (phase == 1).then_some(e.read),
                votes_after: (phase == 1).then_some(e.written),
            };
            serde_json::to_writer(&mut out, &op)?;
            out.write_all(b"\n")?;
            index += 1;
        }
        if let Some(end) = &run.end {
            for (slot, &v) in end.finals.iter().enumerate() {
                for (kind, time) in [("invoke", last + 1), ("ok", last + 2)] {
                    let op = Op {
                        index,
                        time,
                        kind,
                        process: run.info.workers,
                        f: "read",
                        value: v as u64,
                        key: slot as u32,
                        run: run.info.run,
                        read: None,
                        votes_after: None,
                    };
                    serde_json::to_writer(&mut out, &op)?;
                    out.write_all(b"\n")?;
                    index += 1;
                }
            }
        }
    }
    out.flush()?;
    Ok(index)
}
