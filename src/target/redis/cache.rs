//! The stale-cache incident on Redis (`--scenario cache --target redis://…`).
//!
//! The run's slots are the cache: slot 0's key is the value, slots 1..=R its related entries
//! (`--related R`), as in memory. Every key holds the version of the write that set it, so a
//! reader can tell whether what it read belongs together. A writer writes version v (a ticket:
//! [`CacheSession::ticket`], or the workload's own counter) into the value and every related
//! entry; a reader reads them and returns what it saw as a [`Seen`], torn when the related
//! versions are not the value's.
//!
//! | fix        | writer                                   | reader                                |
//! | ---------- | ---------------------------------------- | ------------------------------------- |
//! | `two-step` | `SET value v`, then `MSET related… v`: two commands (the bug: `set`, then `invalidateRelated`) | `GET value`, then `MGET related…` |
//! | `multi`    | `MULTI`, `SET`, `MSET`, `EXEC`           | `MULTI`, `GET`, `MGET`, `EXEC`        |
//! | `script`   | one Lua script sets every key            | one `MGET` of every key (one command is indivisible too) |
//! | `watch`    | `MULTI`, `SET`, `MSET`, `EXEC`           | `WATCH` every key, `GET`, `MGET`, then an empty `MULTI`/`EXEC`, again while it answers nil |
//!
//! A fix must make both sides indivisible: a `MULTI` writer beside a reader that reads in two
//! commands still tears (the reader's two reads straddle a write), and `WATCH` readers beside
//! a two-step writer still tear (a whole read can fit between the writer's two commands). The
//! watch reader is the seqlock of Redis: optimistic, retried when a write landed under it.
//!
//! With an [`EventDraft`], each write is an event on slot 0 from version v-1 to v, in the same
//! atomic step as the write (two-step: as its second command); readers batch what they saw
//! into `Reads` entries ([`CacheSession::record_reads`]). `torture verify` then counts torn
//! reads from the record alone.

use super::resp::{Arg, Client, ClientError, Reply};
use super::stream::queue_reads;
use super::{missing, slot_value, update_error, At, Keys, RedisTarget, Script, Scripts};
use crate::clock::now_ns;
use crate::fault::Point;
use crate::history::{Reads, Seen};
use crate::strategy::Applied;
use crate::target::{EventDraft, RunShape, UpdateError};

/// How the cache's writers and readers keep the value and its related entries together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheFix {
    /// The bug: the value, then the related entries, in two commands; readers read twice.
    TwoStep,
    /// Both sides in `MULTI`/`EXEC`.
    Multi,
    /// Writers in one Lua script, readers in one `MGET`.
    Script,
    /// Writers in `MULTI`/`EXEC`; readers optimistic under `WATCH`.
    Watch,
}

impl CacheFix {
    /// In the order a run without `--fix` runs them (the bug first).
    pub const ALL: [CacheFix; 4] = [
        CacheFix::TwoStep,
        CacheFix::Multi,
        CacheFix::Script,
        CacheFix::Watch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CacheFix::TwoStep => "two-step",
            CacheFix::Multi => "multi",
            CacheFix::Script => "script",
            CacheFix::Watch => "watch",
        }
    }

    /// Whether readers must never see a torn read.
    pub fn is_exact(self) -> bool {
        self != CacheFix::TwoStep
    }
}

/// What one read saw, and how many times it started over (`watch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub seen: Seen,
    pub retries: u32,
}

/// One cache worker's connection (a writer or a reader: the same session does either).
pub struct CacheSession {
    client: Client,
    scripts: Scripts,
    fix: CacheFix,
    worker: u32,
    /// Slot 0, then the related entries: `keys[0]` is the value.
    keys: Vec<String>,
    events: String,
    ticket: String,
    initial: u32,
    pending_completion: u64,
    broken: bool,
}

impl RedisTarget {
    /// Opens worker `worker`'s cache session. In the worker, after the fork; the run's slots
    /// (`create`) are the value and its related entries.
    pub fn connect_cache(
        &self,
        shape: &RunShape,
        worker: usize,
        fix: CacheFix,
    ) -> Result<CacheSession, UpdateError> {
        if shape.slots == 0 {
            return Err(UpdateError::Fatal(
                "a cache needs a value slot (slots = related + 1)".into(),
            ));
        }
        let mut client = Client::connect(&self.url, self.options.io_timeout)
            .map_err(|e| UpdateError::Fatal(format!("{}: {e}", self.url)))?;
        let mut scripts = Scripts::default();
        if fix == CacheFix::Script {
            scripts
                .load(&mut client, Script::CacheWrite)
                .map_err(|e| update_error("SCRIPT LOAD", e))?;
        }
        let keys = Keys::of(shape.run);
        Ok(CacheSession {
            client,
            scripts,
            fix,
            worker: worker as u32,
            keys: (0..shape.slots).map(|i| keys.slot(i)).collect(),
            events: keys.events(),
            ticket: keys.ticket(),
            initial: shape.initial,
            pending_completion: 0,
            broken: false,
        })
    }
}

impl CacheSession {
    /// The next version: `initial` + `INCR ticket`. Unique across every worker of the run,
    /// on every host; a workload with a shared counter of its own may use that instead.
    pub fn ticket(&mut self) -> Result<u32, UpdateError> {
        let n = self
            .client
            .call(&[&"INCR", &self.ticket])
            .and_then(|r| r.int())
            .map_err(|e| self.failed("INCR ticket", e))?;
        u32::try_from(n)
            .ok()
            .and_then(|n| self.initial.checked_add(n))
            .ok_or_else(|| UpdateError::Fatal(format!("version ticket {n} out of range")))
    }

    /// Writes `version` into the value and every related entry, the fix's way. Returns it as
    /// an update of slot 0 from `version - 1` to `version`.
    pub fn write(
        &mut self,
        version: u32,
        event: Option<EventDraft>,
    ) -> Result<Applied, UpdateError> {
        self.write_at(version, event, &mut |_| {})
    }

    /// [`CacheSession::write`], stopping at `AfterWrite` between the value and the related
    /// entries (two-step), or after the whole write (the fixes).
    pub fn write_at(
        &mut self,
        version: u32,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<Applied, UpdateError> {
        self.usable()?;
        let a = Applied {
            read: version.wrapping_sub(1),
            written: version,
            ..Applied::default()
        };
        let result = match self.fix {
            CacheFix::TwoStep => self.write_two_step(&a, event, at),
            CacheFix::Multi | CacheFix::Watch => self.write_multi(&a, event, at),
            CacheFix::Script => self.write_script(&a, event, at),
        };
        if result.is_ok() && event.is_some() {
            self.pending_completion = now_ns();
        }
        result.map(|()| a)
    }

    fn write_two_step(
        &mut self,
        a: &Applied,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<(), UpdateError> {
        self.client
            .call(&[&"SET", &self.keys[0], &a.written])
            .and_then(|r| r.status())
            .map_err(|e| self.failed("SET value", e))?;
        at(Point::AfterWrite);
        // The "invalidation": a second command, whenever it gets there.
        let related = self.keys.len() > 1;
        if event.is_none() && !related {
            return Ok(());
        }
        let queued = (event.is_some() as usize) + related as usize;
        self.client.queue(&[&"MULTI"]);
        self.queue_related(a.written);
        if let Some(e) = event {
            self.queue_event(&e, a);
        }
        self.client.queue(&[&"EXEC"]);
        self.exec(queued)
            .map(drop)
            .map_err(|e| self.failed("MSET related", e))
    }

    fn write_multi(
        &mut self,
        a: &Applied,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<(), UpdateError> {
        self.client.queue(&[&"MULTI"]);
        self.client.queue(&[&"SET", &self.keys[0], &a.written]);
        self.queue_related(a.written);
        if let Some(e) = event {
            self.queue_event(&e, a);
        }
        self.client.queue(&[&"EXEC"]);
        let queued = 1 + (self.keys.len() > 1) as usize + event.is_some() as usize;
        self.exec(queued)
            .map_err(|e| self.failed("MULTI/SET/MSET/EXEC", e))?;
        at(Point::AfterWrite);
        Ok(())
    }

    fn write_script(
        &mut self,
        a: &Applied,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<(), UpdateError> {
        let mut keys: Vec<&dyn Arg> = self.keys.iter().map(|k| k as &dyn Arg).collect();
        keys.push(&self.events);
        let fields = event.map(|e| {
            let pd = self.pending_completion;
            super::event_fields(&e, 0, a, pd)
        });
        let mut args: Vec<&dyn Arg> = vec![&a.written];
        if let Some(f) = &fields {
            args.extend(f.iter().map(|x| x as &dyn Arg));
        }
        let r = self
            .scripts
            .eval(&mut self.client, Script::CacheWrite, &keys, &args);
        drop(keys);
        r.map_err(|e| self.failed("cache script", e))?;
        at(Point::AfterWrite);
        Ok(())
    }

    fn queue_related(&mut self, version: u32) {
        if self.keys.len() > 1 {
            let mut args: Vec<&dyn Arg> = Vec::with_capacity(self.keys.len() * 2 - 1);
            args.push(&"MSET");
            for k in &self.keys[1..] {
                args.push(k);
                args.push(&version);
            }
            self.client.queue(&args);
        }
    }

    fn queue_event(&mut self, e: &EventDraft, a: &Applied) {
        let pd = self.pending_completion;
        let fields = super::event_fields(e, 0, a, pd);
        let mut args: Vec<&dyn Arg> = vec![&"XADD", &self.events, &"*"];
        args.extend(fields.iter().map(|f| f as &dyn Arg));
        self.client.queue(&args);
    }

    /// Sends what is queued (MULTI, `queued` commands, EXEC); nothing is watched, so EXEC
    /// always answers its array.
    fn exec(&mut self, queued: usize) -> Result<Vec<Reply>, ClientError> {
        self.client
            .exec(queued)?
            .ok_or_else(|| ClientError::Protocol("EXEC without WATCH answered nil".into()))
    }

    /// Reads the value and the related entries, the fix's way.
    pub fn read(&mut self) -> Result<Read, UpdateError> {
        self.read_at(&mut |_| {})
    }

    /// [`CacheSession::read`], stopping at `AfterRead` between the value and the related
    /// entries (two-step and watch; the others read in one step and never stop).
    pub fn read_at(&mut self, at: At<'_>) -> Result<Read, UpdateError> {
        self.usable()?;
        match self.fix {
            CacheFix::TwoStep => {
                let value = self.get_value()?;
                at(Point::AfterRead);
                let related = self.mget_related()?;
                Ok(Read {
                    seen: self.seen(value, &related)?,
                    retries: 0,
                })
            }
            CacheFix::Multi => {
                self.client.queue(&[&"MULTI"]);
                self.client.queue(&[&"GET", &self.keys[0]]);
                self.queue_mget_related();
                self.client.queue(&[&"EXEC"]);
                let queued = 1 + (self.keys.len() > 1) as usize;
                let mut items = self
                    .exec(queued)
                    .map_err(|e| self.failed("MULTI/GET/MGET/EXEC", e))?
                    .into_iter();
                let value = self.version(0, items.next())?;
                let related = match items.next() {
                    Some(r) => self.versions(r)?,
                    None => Vec::new(),
                };
                Ok(Read {
                    seen: self.seen(value, &related)?,
                    retries: 0,
                })
            }
            CacheFix::Script => {
                let mut args: Vec<&dyn Arg> = vec![&"MGET"];
                args.extend(self.keys.iter().map(|k| k as &dyn Arg));
                let reply = self.client.call(&args);
                let reply = reply.map_err(|e| self.failed("MGET", e))?;
                let all = self.versions(reply)?;
                Ok(Read {
                    seen: self.seen(all[0], &all[1..])?,
                    retries: 0,
                })
            }
            CacheFix::Watch => self.read_watching(at),
        }
    }

    fn read_watching(&mut self, at: At<'_>) -> Result<Read, UpdateError> {
        let mut retries = 0;
        loop {
            let mut args: Vec<&dyn Arg> = vec![&"WATCH"];
            args.extend(self.keys.iter().map(|k| k as &dyn Arg));
            self.client.queue(&args);
            self.client.queue(&[&"GET", &self.keys[0]]);
            let value = (|| {
                self.client.send()?;
                self.client.reply()?.status()?;
                self.client.reply()
            })()
            .map_err(|e| self.failed("WATCH/GET", e))?;
            let value = self.version(0, Some(value))?;
            at(Point::AfterRead);
            self.queue_mget_related();
            self.client.queue(&[&"MULTI"]);
            self.client.queue(&[&"EXEC"]);
            let related = self.keys.len() > 1;
            let replies = (|| {
                self.client.send()?;
                let related = match related {
                    true => Some(self.client.reply()?),
                    false => None,
                };
                self.client.reply()?.status()?;
                Ok((related, self.client.reply()?))
            })()
            .map_err(|e| self.failed("MGET/MULTI/EXEC", e))?;
            let (related, exec) = replies;
            match exec {
                // A watched key changed since WATCH: what we read may be torn. Again.
                Reply::Nil => retries += 1,
                Reply::Array(_) => {
                    let related = match related {
                        Some(r) => self.versions(r)?,
                        None => Vec::new(),
                    };
                    return Ok(Read {
                        seen: self.seen(value, &related)?,
                        retries,
                    });
                }
                other => {
                    return Err(self.failed(
                        "EXEC",
                        ClientError::Protocol(format!("EXEC answered {other:?}")),
                    ))
                }
            }
        }
    }

    fn queue_mget_related(&mut self) {
        if self.keys.len() > 1 {
            let mut args: Vec<&dyn Arg> = vec![&"MGET"];
            args.extend(self.keys[1..].iter().map(|k| k as &dyn Arg));
            self.client.queue(&args);
        }
    }

    fn get_value(&mut self) -> Result<u32, UpdateError> {
        let r = self.client.call(&[&"GET", &self.keys[0]]);
        let r = r.map_err(|e| self.failed("GET value", e))?;
        self.version(0, Some(r))
    }

    fn mget_related(&mut self) -> Result<Vec<u32>, UpdateError> {
        if self.keys.len() == 1 {
            return Ok(Vec::new());
        }
        let mut args: Vec<&dyn Arg> = vec![&"MGET"];
        args.extend(self.keys[1..].iter().map(|k| k as &dyn Arg));
        let r = self.client.call(&args);
        let r = r.map_err(|e| self.failed("MGET related", e))?;
        self.versions(r)
    }

    /// Key `i`'s version from its reply.
    fn version(&self, i: usize, reply: Option<Reply>) -> Result<u32, UpdateError> {
        let n = reply
            .ok_or_else(|| ClientError::Protocol("a reply short".into()))
            .and_then(|r| r.number())
            .map_err(|e| update_error("reading a version", e))?
            .ok_or(missing(i as u32))?;
        slot_value(i as u32, n as i64)
    }

    /// The versions of an MGET, in key order (index 0 of the reply is the first key read).
    fn versions(&self, reply: Reply) -> Result<Vec<u32>, UpdateError> {
        let items = reply
            .array()
            .map_err(|e| update_error("reading versions", e))?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, r)| self.version(i, Some(r)))
            .collect()
    }

    fn seen(&self, value: u32, related: &[u32]) -> Result<Seen, UpdateError> {
        let (lo, hi) = match (related.iter().min(), related.iter().max()) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => (value, value),
        };
        Ok(Seen { value, lo, hi })
    }

    /// Adds a reader's batch of reads to the run's stream.
    pub fn record_reads(&mut self, reads: &Reads) -> Result<(), UpdateError> {
        self.usable()?;
        queue_reads(&mut self.client, &self.events, reads);
        let r = self.client.send().and_then(|()| self.client.reply());
        match r {
            Ok(Reply::Error(e)) => Err(UpdateError::Fatal(format!("XADD reads: {e}"))),
            Ok(_) => Ok(()),
            Err(e) => Err(self.failed("XADD reads", e)),
        }
    }

    fn usable(&self) -> Result<(), UpdateError> {
        match self.broken {
            true => Err(UpdateError::Unknown("the connection broke earlier".into())),
            false => Ok(()),
        }
    }

    /// An exchange failed: a broken connection is not used again.
    fn failed(&mut self, what: &str, e: ClientError) -> UpdateError {
        let e = update_error(what, e);
        if matches!(e, UpdateError::Unknown(_)) {
            self.broken = true;
        }
        e
    }
}

impl crate::target::CacheOps for CacheSession {
    fn write(&mut self, event: Option<EventDraft>) -> Result<Applied, UpdateError> {
        let version = self.ticket()?;
        CacheSession::write(self, version, event)
    }
    fn read(&mut self) -> Result<(Seen, u32), UpdateError> {
        CacheSession::read(self).map(|r| (r.seen, r.retries))
    }
    fn record_reads(&mut self, reads: &Reads) -> Result<(), UpdateError> {
        CacheSession::record_reads(self, reads)
    }
}

impl Drop for CacheSession {
    /// Writes the completion time of this writer's last event (see `stream`); best effort.
    fn drop(&mut self) {
        if self.pending_completion != 0 && !self.broken {
            let _ = super::stream::add_completion(
                &mut self.client,
                &self.events,
                self.worker,
                self.pending_completion,
            );
        }
    }
}
