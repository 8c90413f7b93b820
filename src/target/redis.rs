//! `--target redis://HOST:PORT[/DB]`: one key per slot, on a real Redis server.
//!
//! Every key of a run starts with `racepool:{RUN}:`, where RUN is the run id. The braces are
//! a Redis Cluster hash tag: every key of a run hashes to one cluster slot, which MULTI and
//! scripts over several keys require. A run's keys:
//!
//! | key                          | type   | what                                             |
//! | ---------------------------- | ------ | ------------------------------------------------ |
//! | `racepool:{RUN}:run`         | hash   | `shape` (JSON), and with `--store target` `info` (the run's header) and `end` (its end record), as JSON |
//! | `racepool:{RUN}:slot:I`      | string | slot I's value, in decimal (INCR-able)           |
//! | `racepool:{RUN}:lock:I`      | string | `lock`: slot I's lock, the holder's unique value, expiring after the TTL |
//! | `racepool:{RUN}:fence:I`     | string | `lock --fencing`: the last fencing token issued for slot I |
//! | `racepool:{RUN}:guard:I`     | string | `lock --fencing`: the highest token that has read or written slot I |
//! | `racepool:{RUN}:events`      | stream | with `--store target`: one entry per winning update (see [`stream`]) |
//! | `racepool:{RUN}:ticket`      | string | the cache scenario's version tickets             |
//!
//! The strategies, one per way a Redis user adds 1 (`Applied::retries` counts what each
//! retries):
//!
//! | strategy | commands | retries |
//! | -------- | -------- | ------- |
//! | `racy`   | `GET`, then `SET` read + 1: the bug | none |
//! | `atomic` | `INCR` | none |
//! | `cas`    | `WATCH`+`GET`, then `MULTI`/`SET`/`EXEC`, again while `EXEC` answers nil | failed EXECs |
//! | `script` | `EVALSHA` of one Lua script that reads and writes (`EVAL` when the server answers NOSCRIPT) | none |
//! | `lock`   | `SET lock holder NX PX ttl`, `GET`, `SET`, compare-and-delete; see [the protocol](#the-lock-and-its-fencing-tokens) | failed acquisitions and fenced refusals |
//!
//! With an [`EventDraft`] (`--store target`), the winning write and the event's `XADD` are one
//! atomic step: a `MULTI … EXEC` (racy, cas, lock) or inside the script (atomic, script,
//! fenced lock).
//!
//! Errors: a broken or timed-out connection mid-update is [`UpdateError::Unknown`] (the
//! command may have been applied); an error reply is [`UpdateError::Fatal`] (the server
//! refuses what the run needs: out of memory, a key of the wrong type, a script error).
//!
//! # The lock and its fencing tokens
//!
//! A slot's lock is the key `lock:I`; its states and the steps that move between them:
//!
//! | `lock:I`                    | meaning                                              |
//! | --------------------------- | ---------------------------------------------------- |
//! | absent                      | free                                                 |
//! | holder value, TTL left      | held by the worker whose unique value it is          |
//!
//! - **acquire**: `SET lock:I holder NX PX ttl`. Succeeds only if the key is absent; otherwise
//!   the worker backs off (a short sleep that doubles, up to 1 ms) and tries again.
//! - **expire**: the server deletes `lock:I` once `ttl` ms have passed. Nobody is told: a
//!   holder that is still working (paused, swapped out, stuck in GC) goes on believing it
//!   holds the lock.
//! - **release**: a script deletes `lock:I` only if it still holds the holder's own value
//!   (compare-and-delete), so a late holder never frees its successor's lock. When the
//!   compare fails, the holder has outlived its lock; the session counts it
//!   ([`SessionStats::robbed`]).
//!
//! The update between acquire and release is `GET`, then `SET` read + 1. Invariant without
//! fencing: *while every holder finishes within the TTL*, at most one holder exists, so the
//! `GET`/`SET` pairs never interleave and no update is lost. That premise is a timing
//! assumption: a holder paused past the TTL (`--pause`) wakes up after another worker has
//! taken the lock and updated the slot, and writes its stale read + 1 over their work. The
//! lost updates are real, and verify names their witnesses.
//!
//! **Fencing** (`--fencing`) drops the timing assumption. Acquisition is one script: `SET NX
//! PX`, and if it succeeded, `INCR fence:I`, whose value is the holder's *token*. Tokens are
//! issued in acquisition order (the script is atomic), so a later holder always has a higher
//! token. The slot's storage then refuses stale holders itself:
//!
//! | `guard:I` | meaning                                               |
//! | --------- | ----------------------------------------------------- |
//! | absent    | no fenced holder has touched the slot (token 0)       |
//! | g         | the highest token that has read or written the slot   |
//!
//! - **fenced read** (script, token t): refused if t < g; otherwise `guard:I` = t and the
//!   slot's value is returned.
//! - **fenced write** (script, token t, value): refused if t < g; otherwise `guard:I` = t, the
//!   value is set (and the event added).
//! - **refused**: the holder releases (compare-and-delete: a no-op, the lock is someone else's
//!   or gone) and starts over from acquire; counted in `retries` and
//!   [`SessionStats::fenced`].
//!
//! Invariant with fencing: *a write with token t is applied only if no token above t has
//! read or written the slot*. Suppose holder A (token t) reads, and its write is applied.
//! No write with a token below t is applied after A's read (the guard is at least t), and no
//! holder with a token above t read the slot before A's write (it would have raised the
//! guard above t and A's write would be refused); a higher holder that reads *after* A's
//! write sees A's value. So no write lands between A's read and A's write: every applied
//! read-then-write is indivisible, whatever the clocks and pauses do, and the count is exact.
//!
//! Why the read is fenced too, not only the write: with write-only fencing, A (token 5) reads
//! 10 and is paused; its lock expires; B (token 6) takes it and reads 10; A wakes and writes
//! 11 (5 ≥ the guard, nobody has written); B writes 11 (6 ≥ 5). Both wrote 11: lost. Checking
//! tokens at the write alone protects a store that is only ever overwritten, not one whose
//! new value depends on what was read. [`Fencing::WriteOnly`] runs exactly that, as the
//! negative control the tests hold `Tokens` against.
//!
//! What each step relies on: Redis runs one command or script at a time (SET NX, the scripts
//! and INCR are indivisible); the TTL is measured by the server's clock (without fencing, a
//! clock jump on the server shortens it too); `fence:I` and `guard:I` are lost together or
//! not at all (one server, one keyspace), so tokens stay ordered against the guard.

pub mod cache;
pub mod resp;
pub mod stream;

use std::collections::BTreeSet;
use std::time::Duration;

use self::resp::{Arg, Client, ClientError, RedisUrl, Reply};
use super::{EventDraft, RunShape, Session, Target, TargetKind, UpdateError};
use crate::clock::now_ns;
use crate::error::Error;
use crate::fault::Point;
use crate::strategy::{Applied, StrategyKind};

/// The strategies this target implements, the bug first.
pub const STRATEGIES: &[StrategyKind] = &[
    StrategyKind::Racy,
    StrategyKind::Atomic,
    StrategyKind::Cas,
    StrategyKind::Script,
    StrategyKind::Lock,
];

/// Whether `lock` carries fencing tokens (`--fencing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fencing {
    /// The lock alone: exact only while every holder finishes within the TTL.
    #[default]
    Off,
    /// Tokens from `INCR`, checked by the slot's read and write scripts.
    Tokens,
    /// Tokens checked at the write only: the usual recipe, which still loses a
    /// read-modify-write (see the protocol). Kept as the negative control of `Tokens`.
    WriteOnly,
}

impl Fencing {
    /// Whether acquisitions issue tokens.
    fn issues_tokens(self) -> bool {
        self != Fencing::Off
    }
}

/// What a Redis run is asked to do beyond its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// `lock`'s TTL (`PX`): how long a holder may hold before the server frees the lock.
    pub lock_ttl: Duration,
    pub fencing: Fencing,
    /// Connect, read and write timeout of every connection: a server that stops answering
    /// makes the update in flight `Unknown` after this long, never a hang.
    pub io_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            lock_ttl: Duration::from_millis(1000),
            fencing: Fencing::Off,
            io_timeout: Duration::from_secs(5),
        }
    }
}

/// The keys of one run (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// Every racepool key starts with this.
const NAMESPACE: &str = "racepool:{";

impl Keys {
    pub fn of(run: u64) -> Keys {
        Keys {
            prefix: format!("{NAMESPACE}{run}}}:"),
        }
    }

    pub fn run(&self) -> String {
        format!("{}run", self.prefix)
    }
    pub fn slot(&self, i: usize) -> String {
        format!("{}slot:{i}", self.prefix)
    }
    pub fn lock(&self, i: usize) -> String {
        format!("{}lock:{i}", self.prefix)
    }
    pub fn fence(&self, i: usize) -> String {
        format!("{}fence:{i}", self.prefix)
    }
    pub fn guard(&self, i: usize) -> String {
        format!("{}guard:{i}", self.prefix)
    }
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
    pub fn ticket(&self) -> String {
        format!("{}ticket", self.prefix)
    }
    /// A SCAN pattern for every key of the run.
    pub fn pattern(&self) -> String {
        format!("{}*", self.prefix)
    }

    /// The run id a racepool key belongs to (`racepool:{RUN}:…`); None for any other key.
    pub fn run_of(key: &[u8]) -> Option<u64> {
        let rest = key.strip_prefix(NAMESPACE.as_bytes())?;
        let end = rest.iter().position(|&b| b == b'}')?;
        if rest.get(end + 1) != Some(&b':') || end == 0 {
            return None;
        }
        std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
    }
}

/// A Lua script the sessions run by `EVALSHA`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Script {
    /// atomic with an event: INCR, then XADD of what it did.
    IncrEvent,
    /// script: GET, SET + 1 (and the event), in one step.
    ReadWrite,
    /// lock --fencing: SET NX PX, then INCR the token counter.
    AcquireFenced,
    /// lock: compare-and-delete.
    Release,
    FencedRead,
    FencedWrite,
    /// cache: the value and its related entries set in one step.
    CacheWrite,
}

/// Returned by a fenced script that refused a stale token.
const REFUSED: i64 = -1;
/// Returned by a script that found the slot's key missing.
const MISSING: i64 = -2;

impl Script {
    const COUNT: usize = 7;

    fn source(self) -> &'static str {
        match self {
            // KEYS: slot, events. ARGV: worker, seq, slot, invoke, previous completion.
            Script::IncrEvent => {
                "local v = redis.call('INCR', KEYS[1])
                 redis.call('XADD', KEYS[2], '*', 'k', 'e', 'w', ARGV[1], 's', ARGV[2],
                   'slot', ARGV[3], 'r', v - 1, 'v', v, 'n', 0, 't0', ARGV[4], 'pd', ARGV[5])
                 return v"
            }
            // KEYS: slot, events. ARGV (with an event): worker, seq, slot, invoke, previous
            // completion. Returns the value read.
            Script::ReadWrite => {
                "local v = redis.call('GET', KEYS[1])
                 if not v then return -2 end
                 v = tonumber(v)
                 redis.call('SET', KEYS[1], v + 1)
                 if #ARGV > 0 then
                   redis.call('XADD', KEYS[2], '*', 'k', 'e', 'w', ARGV[1], 's', ARGV[2],
                     'slot', ARGV[3], 'r', v, 'v', v + 1, 'n', 0, 't0', ARGV[4], 'pd', ARGV[5])
                 end
                 return v"
            }
            // KEYS: lock, fence. ARGV: holder, ttl ms. Returns the token, or 0 when held.
            Script::AcquireFenced => {
                "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
                   return redis.call('INCR', KEYS[2])
                 end
                 return 0"
            }
            // KEYS: lock. ARGV: holder. Returns 1 when it deleted the holder's own lock.
            Script::Release => {
                "if redis.call('GET', KEYS[1]) == ARGV[1] then
                   return redis.call('DEL', KEYS[1])
                 end
                 return 0"
            }
            // KEYS: slot, guard. ARGV: token. Returns the value, -1 when refused.
            Script::FencedRead => {
                "local t = tonumber(ARGV[1])
                 if t < tonumber(redis.call('GET', KEYS[2]) or '0') then return -1 end
                 redis.call('SET', KEYS[2], ARGV[1])
                 local v = redis.call('GET', KEYS[1])
                 if not v then return -2 end
                 return tonumber(v)"
            }
            // KEYS: slot, guard, events. ARGV: token, value, then the event's XADD fields.
            // Returns 1 when written, -1 when refused.
            Script::FencedWrite => {
                "local t = tonumber(ARGV[1])
                 if t < tonumber(redis.call('GET', KEYS[2]) or '0') then return -1 end
                 redis.call('SET', KEYS[2], ARGV[1])
                 redis.call('SET', KEYS[1], ARGV[2])
                 if #ARGV > 2 then redis.call('XADD', KEYS[3], '*', unpack(ARGV, 3)) end
                 return 1"
            }
            // KEYS: value, related…, events (last). ARGV: version, then the event's XADD
            // fields. Sets every key but the last to the version.
            Script::CacheWrite => {
                "for i = 1, #KEYS - 1 do redis.call('SET', KEYS[i], ARGV[1]) end
                 if #ARGV > 1 then redis.call('XADD', KEYS[#KEYS], '*', unpack(ARGV, 2)) end
                 return 1"
            }
        }
    }
}

/// Script digests a connection has loaded (`SCRIPT LOAD` answers them, so no SHA-1 here).
#[derive(Default)]
pub(crate) struct Scripts {
    sha: [Option<String>; Script::COUNT],
}

impl Scripts {
    /// Loads `s` if this connection has not yet.
    fn load(&mut self, c: &mut Client, s: Script) -> Result<(), ClientError> {
        if self.sha[s as usize].is_none() {
            let sha = match c.call(&[&"SCRIPT", &"LOAD", &s.source()])? {
                Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                other => return Err(ClientError::Protocol(format!("SCRIPT LOAD: {other:?}"))),
            };
            self.sha[s as usize] = Some(sha);
        }
        Ok(())
    }

    /// Runs `s` by its digest; when the server has forgotten it (a restart, `SCRIPT FLUSH`),
    /// by its source, which caches it again. An error reply is `ClientError::Server`.
    pub(crate) fn eval(
        &mut self,
        c: &mut Client,
        s: Script,
        keys: &[&dyn Arg],
        args: &[&dyn Arg],
    ) -> Result<Reply, ClientError> {
        self.load(c, s)?;
        let sha = self.sha[s as usize].as_deref().unwrap_or_default();
        let n = keys.len();
        c.queue_parts(&[&[&"EVALSHA", &sha, &n], keys, args]);
        c.send()?;
        match c.reply()? {
            Reply::Error(e) if e.starts_with("NOSCRIPT") => {
                c.queue_parts(&[&[&"EVAL", &s.source(), &n], keys, args]);
                c.send()?;
                match c.reply()? {
                    Reply::Error(e) => Err(ClientError::Server(e)),
                    r => Ok(r),
                }
            }
            Reply::Error(e) => Err(ClientError::Server(e)),
            r => Ok(r),
        }
    }
}

/// `--target redis://…`, parent side: a URL and options, never a connection.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    url: RedisUrl,
    pub options: RedisOptions,
}

impl RedisTarget {
    /// Parses the URL (`Error::Usage` naming `--target` when it is not one).
    pub fn open(url: &str, options: RedisOptions) -> Result<RedisTarget, Error> {
        let url = RedisUrl::parse(url).map_err(|e| Error::Usage(format!("--target {e}")))?;
        Ok(RedisTarget { url, options })
    }

    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// A short-lived connection of the parent's own (or of a loader's).
    pub fn client(&self) -> Result<Client, Error> {
        Client::connect(&self.url, self.options.io_timeout)
            .map_err(|e| Error::Target(format!("{}: {e}", self.url)))
    }

    fn failed(&self, what: &str) -> impl Fn(ClientError) -> Error + '_ {
        let what = what.to_string();
        move |e| Error::Target(format!("{}: {what}: {e}", self.url))
    }

    /// One section of `INFO`, as its text.
    fn info(&self, c: &mut Client, section: &str) -> Result<String, Error> {
        c.call(&[&"INFO", &section])
            .and_then(|r| {
                r.bulk()
                    .map(|b| String::from_utf8_lossy(b.unwrap_or_default()).into_owned())
            })
            .map_err(self.failed(&format!("INFO {section}")))
    }

    /// The server's `maxclients` and `connected_clients`, from `INFO clients`.
    pub fn clients(&self, c: &mut Client) -> Result<(u64, u64), Error> {
        let info = self.info(c, "clients")?;
        let field = |name| info_field(&info, name).and_then(|v| v.parse().ok());
        match (field("maxclients"), field("connected_clients")) {
            (Some(max), Some(connected)) => Ok((max, connected)),
            _ => Err(Error::Target(format!(
                "{}: INFO clients names no maxclients or connected_clients",
                self.url
            ))),
        }
    }

    /// Refuses a server older than [`MINIMUM_VERSION`].
    fn check_version(&self, c: &mut Client) -> Result<(), Error> {
        let info = self.info(c, "server")?;
        let version = info_field(&info, "redis_version").unwrap_or("unknown");
        match parse_version(version) {
            Some(v) if v >= MINIMUM_VERSION => Ok(()),
            _ => Err(Error::Target(format!(
                "{}: Redis {version}: racepool needs {}.{} or later (streams, exclusive XRANGE)",
                self.url, MINIMUM_VERSION.0, MINIMUM_VERSION.1
            ))),
        }
    }
}

/// The oldest Redis the target runs on: streams (5.0) and XRANGE's exclusive `(` ranges (6.2),
/// which the loader pages with.
pub const MINIMUM_VERSION: (u32, u32) = (6, 2);

/// `name:value` of an INFO text.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// "7.0.15" → (7, 0).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse().ok());
    Some((parts.next()??, parts.next()??))
}

/// What a session did beyond its updates' `Applied`, for the report and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// `lock`: releases that found the lock gone or someone else's: the holder outlived its
    /// TTL (without fencing, its write may have destroyed others').
    pub robbed: u64,
    /// `lock --fencing`: reads or writes the slot refused because a higher token had been
    /// there; each one started the update over.
    pub fenced: u64,
}

impl Target for RedisTarget {
    type Session = RedisSession;

    fn kind(&self) -> TargetKind {
        TargetKind::Redis
    }

    fn strategies(&self) -> &'static [StrategyKind] {
        STRATEGIES
    }

    /// Counters, and the cache: two-step (racy), multi (atomic), script, watch (cas).
    fn strategies_for(&self, holds: super::Holds) -> &'static [StrategyKind] {
        match holds {
            super::Holds::Counters => STRATEGIES,
            super::Holds::Cache => &[
                StrategyKind::Racy,
                StrategyKind::Atomic,
                StrategyKind::Script,
                StrategyKind::Cas,
            ],
            super::Holds::Record | super::Holds::Poll => &[],
        }
    }

    fn connect_cache(
        &self,
        shape: &RunShape,
        worker: usize,
        fix: cache::CacheFix,
    ) -> Result<Box<dyn super::CacheOps>, UpdateError> {
        // The inherent `connect_cache` (it takes the Redis fix itself).
        Ok(Box::new(RedisTarget::connect_cache(
            self, shape, worker, fix,
        )?))
    }

    fn preflight(&self, shape: &RunShape, strategies: &[StrategyKind]) -> Result<(), Error> {
        if let Some(s) = strategies.iter().find(|s| !STRATEGIES.contains(s)) {
            let names: Vec<&str> = STRATEGIES.iter().map(|s| s.name()).collect();
            return Err(Error::Usage(format!(
                "--strategy {}: {} implements {}",
                s.name(),
                self.url,
                names.join(", ")
            )));
        }
        if strategies.contains(&StrategyKind::Lock) && self.options.lock_ttl.as_millis() == 0 {
            return Err(Error::Usage("--lock-ttl must be at least 1 ms".into()));
        }
        let mut c = self.client()?;
        c.call(&[&"PING"]).map_err(self.failed("PING"))?;
        self.check_version(&mut c)?;
        let (max, connected) = self.clients(&mut c)?;
        // Our own connection closes before the workers connect.
        let free = max.saturating_sub(connected.saturating_sub(1));
        if shape.workers as u64 > free {
            return Err(Error::Usage(format!(
                "--workers {} is more than {} can still accept (maxclients {max}, {} in use)",
                shape.workers,
                self.url,
                connected.saturating_sub(1)
            )));
        }
        Ok(())
    }

    fn create(&self, shape: &RunShape) -> Result<(), Error> {
        let keys = Keys::of(shape.run);
        let mut c = self.client()?;
        let json = serde_json::to_string(shape).unwrap_or_default();
        let fresh = c
            .call(&[&"HSETNX", &keys.run(), &"shape", &json])
            .and_then(|r| r.int())
            .map_err(self.failed("creating the run key"))?;
        if fresh == 0 {
            return Err(Error::Target(format!(
                "{}: run {} already has keys (racepool:{{{}}}:*): refusing to overwrite them",
                self.url, shape.run, shape.run
            )));
        }
        let slots: Vec<String> = (0..shape.slots).map(|i| keys.slot(i)).collect();
        for chunk in slots.chunks(512) {
            let mut args: Vec<&dyn Arg> = Vec::with_capacity(1 + chunk.len() * 2);
            args.push(&"MSET");
            for k in chunk {
                args.push(k);
                args.push(&shape.initial);
            }
            c.call(&args).map_err(self.failed("creating the slots"))?;
        }
        Ok(())
    }

    fn connect(
        &self,
        shape: &RunShape,
        worker: usize,
        strategy: StrategyKind,
    ) -> Result<RedisSession, UpdateError> {
        RedisSession::open(self, shape, worker, strategy)
    }

    fn finals(&self, shape: &RunShape) -> Result<Vec<u32>, Error> {
        let mut c = self.client()?;
        read_slots(&mut c, &Keys::of(shape.run), shape.slots)
            .map_err(self.failed("reading the final values"))?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    Error::Target(format!(
                        "{}: slot {i} of run {} is gone (the server lost its keys: restarted without persistence, or flushed?)",
                        self.url, shape.run
                    ))
                })
            })
            .collect()
    }

    fn clean(&self, run: Option<u64>) -> Result<u64, Error> {
        let mut c = self.client()?;
        let pattern = match run {
            Some(r) => Keys::of(r).pattern(),
            None => format!("{NAMESPACE}*}}:*"),
        };
        let mut runs = BTreeSet::new();
        c.scan(&pattern, |c, found| {
            let doomed: Vec<Vec<u8>> = found
                .into_iter()
                .filter(|k| match Keys::run_of(k) {
                    Some(r) if run.is_none_or(|want| want == r) => {
                        runs.insert(r);
                        true
                    }
                    _ => false,
                })
                .collect();
            if doomed.is_empty() {
                return Ok(());
            }
            let mut args: Vec<&dyn Arg> = vec![&"UNLINK"];
            args.extend(doomed.iter().map(|k| k as &dyn Arg));
            c.call(&args).map(drop)
        })
        .map_err(self.failed("removing the run's keys"))?;
        Ok(runs.len() as u64)
    }

    fn records(&self) -> Option<&dyn super::Records> {
        Some(self)
    }
}

/// `--store target`: the run's hash holds its header and end, its stream the events (see
/// [`stream`]).
impl super::RecordStore for RedisTarget {
    fn begin_record(&self, info: &crate::history::RunInfo) -> Result<(), Error> {
        let mut info = info.clone();
        info.persist = "target".into();
        self.begin(&info)
    }
    fn end_record(&self, end: &crate::history::RunEnd) -> Result<(), Error> {
        self.end(end)
    }
    fn load(&self, run: Option<u64>) -> Result<crate::history::Loaded, Error> {
        RedisTarget::load(self, run).map(stream::into_loaded)
    }
}

/// Every slot's value (None where the key is missing), by MGET in pages.
fn read_slots(c: &mut Client, keys: &Keys, slots: usize) -> Result<Vec<Option<u32>>, ClientError> {
    let names: Vec<String> = (0..slots).map(|i| keys.slot(i)).collect();
    let mut out = Vec::with_capacity(slots);
    for chunk in names.chunks(1024) {
        let mut args: Vec<&dyn Arg> = vec![&"MGET"];
        args.extend(chunk.iter().map(|k| k as &dyn Arg));
        for v in c.call(&args)?.array()? {
            out.push(match v.number()? {
                None => None,
                Some(n) => Some(u32::try_from(n).map_err(|_| {
                    ClientError::Protocol(format!("slot value {n} does not fit 32 bits"))
                })?),
            });
        }
    }
    Ok(out)
}

/// An update's failure, by what the client saw.
fn update_error(what: &str, e: ClientError) -> UpdateError {
    match e {
        ClientError::Server(m) => UpdateError::Fatal(format!("{what}: {m}")),
        e => UpdateError::Unknown(format!("{what}: {e}")),
    }
}

/// A slot key that is gone mid-run: the server lost the run's state.
fn missing(slot: u32) -> UpdateError {
    UpdateError::Fatal(format!(
        "slot {slot}'s key is gone (the server restarted without persistence, or was flushed)"
    ))
}

/// A value read from a slot, or a script's return, as a slot value.
fn slot_value(slot: u32, n: i64) -> Result<u32, UpdateError> {
    match n {
        MISSING => Err(missing(slot)),
        n => u32::try_from(n)
            .map_err(|_| UpdateError::Fatal(format!("slot {slot} holds {n}, not a 32-bit count"))),
    }
}

/// Where a session may stop for a hook: `Point`s of the update, in the order it reaches them.
/// The pipeline's probe implements `--pause`, `--crash-at` and `--stop-at` through it; tests
/// hold a thread on a barrier.
pub type At<'a> = &'a mut dyn FnMut(Point);

/// A held lock: the holder's unique value, and its fencing token (0 without fencing).
struct Held {
    holder: String,
    token: u64,
}

/// One worker's connection, for one strategy.
pub struct RedisSession {
    client: Client,
    scripts: Scripts,
    strategy: StrategyKind,
    options: RedisOptions,
    /// The run's id of the worker (its host's first, plus its own).
    worker: u32,
    /// A joined run's: the run's ids of this host's workers, and its events' clock.
    share: super::Share,
    /// Per slot: the value key; for `lock`, also the lock, token and guard keys.
    slots: Vec<String>,
    locks: Vec<String>,
    fences: Vec<String>,
    guards: Vec<String>,
    events: String,
    /// Makes each lock holder's value unique across workers, processes and hosts.
    tag: u64,
    acquisitions: u64,
    /// xorshift state for the lock's backoff jitter.
    jitter: u64,
    /// CLOCK_MONOTONIC ns when this worker's last event-bearing update was acknowledged,
    /// carried by its next entry (0: none yet). Read, never taken, by each attempt: an
    /// attempt that does not land (EXEC nil, a fenced refusal) must not lose it; each success
    /// replaces it. See `stream`.
    pending_completion: u64,
    /// Set once an exchange failed: the connection is not trusted any more.
    broken: bool,
    pub stats: SessionStats,
}

impl RedisSession {
    fn open(
        target: &RedisTarget,
        shape: &RunShape,
        worker: usize,
        strategy: StrategyKind,
    ) -> Result<RedisSession, UpdateError> {
        if !STRATEGIES.contains(&strategy) {
            return Err(UpdateError::Fatal(format!(
                "{} does not implement {}",
                target.url,
                strategy.name()
            )));
        }
        let client = Client::connect(&target.url, target.options.io_timeout)
            .map_err(|e| UpdateError::Fatal(format!("{}: {e}", target.url)))?;
        let keys = Keys::of(shape.run);
        let per_slot = |f: fn(&Keys, usize) -> String, wanted: bool| -> Vec<String> {
            match wanted {
                true => (0..shape.slots).map(|i| f(&keys, i)).collect(),
                false => Vec::new(),
            }
        };
        let lock = strategy == StrategyKind::Lock;
        let fenced = lock && target.options.fencing.issues_tokens();
        let tag = now_ns() ^ (std::process::id() as u64).rotate_left(40);
        let mut s = RedisSession {
            client,
            scripts: Scripts::default(),
            strategy,
            options: target.options,
            // The run's id of the worker (a joined run's: unique across its hosts).
            worker: (shape.share.first_worker + worker) as u32,
            share: shape.share,
            slots: per_slot(Keys::slot, true),
            locks: per_slot(Keys::lock, lock),
            fences: per_slot(Keys::fence, fenced),
            guards: per_slot(Keys::guard, fenced),
            events: keys.events(),
            tag,
            acquisitions: 0,
            jitter: tag | 1,
            pending_completion: 0,
            broken: false,
            stats: SessionStats::default(),
        };
        // Load the strategy's scripts now, so the first update does not pay for it.
        let needed: &[Script] = match (strategy, fenced) {
            (StrategyKind::Atomic, _) => &[Script::IncrEvent],
            (StrategyKind::Script, _) => &[Script::ReadWrite],
            (StrategyKind::Lock, false) => &[Script::Release],
            (StrategyKind::Lock, true) => &[
                Script::Release,
                Script::AcquireFenced,
                Script::FencedRead,
                Script::FencedWrite,
            ],
            _ => &[],
        };
        for &script in needed {
            s.scripts
                .load(&mut s.client, script)
                .map_err(|e| update_error("SCRIPT LOAD", e))?;
        }
        Ok(s)
    }

    /// [`Session::update`], stopping at each [`Point`] it reaches for `at`.
    ///
    /// Points: racy and cas `AfterRead` between their read and write; atomic and script
    /// `AfterCas` after the indivisible step; lock `HoldingLock` and `AfterRead` once it holds
    /// the lock *and has read* (a pause there carries a read value past the TTL: the stale
    /// write of the fencing demonstration), `AfterWrite` before releasing.
    pub fn update_at(
        &mut self,
        slot: u32,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<Applied, UpdateError> {
        if self.broken {
            return Err(UpdateError::Unknown("the connection broke earlier".into()));
        }
        let s = slot as usize;
        if s >= self.slots.len() {
            return Err(UpdateError::Fatal(format!(
                "slot {slot} is not one of the run's {}",
                self.slots.len()
            )));
        }
        // The run's worker id and the run's clock (a joined run's: unique across hosts, the
        // meeting place's).
        let event = event.map(|e| EventDraft {
            worker: e.worker + self.share.first_worker as u32,
            invoke_ns: self.share.on_run_clock(e.invoke_ns),
            ..e
        });
        let result = match self.strategy {
            StrategyKind::Racy => self.racy(s, event, at),
            StrategyKind::Atomic => self.atomic(s, event, at),
            StrategyKind::Cas => self.cas(s, event, at),
            StrategyKind::Script => self.script(s, event, at),
            StrategyKind::Lock => self.lock(s, event, at),
            other => Err(UpdateError::Fatal(format!(
                "redis does not implement {}",
                other.name()
            ))),
        };
        match &result {
            Err(UpdateError::Unknown(_)) => self.broken = true,
            Ok(_) if event.is_some() => self.pending_completion = self.share.on_run_clock(now_ns()),
            _ => {}
        }
        result
    }

    /// The XADD of one event, as arguments after the stream key and `*`.
    fn queue_event(&mut self, e: &EventDraft, slot: usize, a: &Applied) {
        let pd = self.pending_completion;
        self.client.queue(&[
            &"XADD",
            &self.events,
            &"*",
            &"k",
            &"e",
            &"w",
            &e.worker,
            &"s",
            &e.seq,
            &"slot",
            &slot,
            &"r",
            &a.read,
            &"v",
            &a.written,
            &"n",
            &a.retries,
            &"t0",
            &e.invoke_ns,
            &"pd",
            &pd,
        ]);
    }

    /// Sets `slot` to `a.written`: a plain SET, or with an event MULTI/SET/XADD/EXEC, sent in
    /// one write.
    fn write(
        &mut self,
        slot: usize,
        event: Option<EventDraft>,
        a: &Applied,
    ) -> Result<(), ClientError> {
        let key = &self.slots[slot];
        match event {
            None => self.client.call(&[&"SET", key, &a.written])?.status(),
            Some(e) => {
                self.client.queue(&[&"MULTI"]);
                self.client.queue(&[&"SET", key, &a.written]);
                self.queue_event(&e, slot, a);
                self.client.queue(&[&"EXEC"]);
                self.client
                    .exec(2)?
                    .map(drop)
                    .ok_or_else(|| ClientError::Protocol("EXEC without WATCH aborted".into()))
            }
        }
    }

    fn get(&mut self, slot: usize) -> Result<u32, UpdateError> {
        let n = self
            .client
            .call(&[&"GET", &self.slots[slot]])
            .and_then(|r| r.number())
            .map_err(|e| update_error("GET", e))?
            .ok_or(missing(slot as u32))?;
        slot_value(slot as u32, n as i64)
    }

    fn racy(
        &mut self,
        s: usize,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<Applied, UpdateError> {
        let read = self.get(s)?;
        at(Point::AfterRead);
        let a = Applied {
            read,
            written: read.wrapping_add(1),
            ..Applied::default()
        };
        self.write(s, event, &a)
            .map_err(|e| update_error("SET", e))?;
        at(Point::AfterWrite);
        Ok(a)
    }

    fn atomic(
        &mut self,
        s: usize,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<Applied, UpdateError> {
        let n = match event {
            None => self
                .client
                .call(&[&"INCR", &self.slots[s]])
                .and_then(|r| r.int())
                .map_err(|e| update_error("INCR", e))?,
            Some(e) => {
                let pd = self.pending_completion;
                self.scripts
                    .eval(
                        &mut self.client,
                        Script::IncrEvent,
                        &[&self.slots[s], &self.events],
                        &[&e.worker, &e.seq, &s, &e.invoke_ns, &pd],
                    )
                    .and_then(|r| r.int())
                    .map_err(|e| update_error("INCR script", e))?
            }
        };
        let written = slot_value(s as u32, n)?;
        at(Point::AfterCas);
        Ok(Applied {
            read: written.wrapping_sub(1),
            written,
            ..Applied::default()
        })
    }

    fn cas(
        &mut self,
        s: usize,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<Applied, UpdateError> {
        let mut a = Applied::default();
        loop {
            let key = &self.slots[s];
            self.client.queue(&[&"WATCH", key]);
            self.client.queue(&[&"GET", key]);
            let read = (|| {
                self.client.send()?;
                self.client.reply()?.status()?;
                self.client.reply()?.number()
            })()
            .map_err(|e| update_error("WATCH/GET", e))?
            .ok_or(missing(s as u32))?;
            a.read = slot_value(s as u32, read as i64)?;
            a.written = a.read.wrapping_add(1);
            at(Point::AfterRead);
            let key = &self.slots[s];
            self.client.queue(&[&"MULTI"]);
            self.client.queue(&[&"SET", key, &a.written]);
            if let Some(e) = event {
                self.queue_event(&e, s, &a);
            }
            self.client.queue(&[&"EXEC"]);
            let won = self
                .client
                .exec(1 + event.is_some() as usize)
                .map_err(|e| update_error("MULTI/SET/EXEC", e))?;
            if won.is_some() {
                at(Point::AfterCas);
                return Ok(a);
            }
            // Another worker changed the slot after our WATCH: EXEC did nothing.
            a.retries += 1;
        }
    }

    fn script(
        &mut self,
        s: usize,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<Applied, UpdateError> {
        let pd = match event {
            Some(_) => self.pending_completion,
            None => 0,
        };
        let keys: [&dyn Arg; 2] = [&self.slots[s], &self.events];
        let reply = match event {
            None => self
                .scripts
                .eval(&mut self.client, Script::ReadWrite, &keys, &[]),
            Some(e) => self.scripts.eval(
                &mut self.client,
                Script::ReadWrite,
                &keys,
                &[&e.worker, &e.seq, &s, &e.invoke_ns, &pd],
            ),
        };
        let read = slot_value(
            s as u32,
            reply
                .and_then(|r| r.int())
                .map_err(|e| update_error("script", e))?,
        )?;
        at(Point::AfterCas);
        Ok(Applied {
            read,
            written: read.wrapping_add(1),
            ..Applied::default()
        })
    }

    /// Takes slot `s`'s lock, backing off while another holds it.
    fn acquire(&mut self, s: usize, a: &mut Applied) -> Result<Held, UpdateError> {
        self.acquisitions += 1;
        let holder = format!("{}:{:x}:{}", self.worker, self.tag, self.acquisitions);
        let ttl = self.options.lock_ttl.as_millis().max(1) as u64;
        let mut attempt = 0u32;
        loop {
            let token = match self.options.fencing {
                Fencing::Off => {
                    let reply = self
                        .client
                        .call(&[&"SET", &self.locks[s], &holder, &"NX", &"PX", &ttl])
                        .map_err(|e| update_error("SET NX PX", e))?;
                    match reply {
                        Reply::Nil => None,
                        r => r
                            .status()
                            .map(|()| 0)
                            .map(Some)
                            .map_err(|e| update_error("SET NX PX", e))?,
                    }
                }
                Fencing::Tokens | Fencing::WriteOnly => {
                    let t = self
                        .scripts
                        .eval(
                            &mut self.client,
                            Script::AcquireFenced,
                            &[&self.locks[s], &self.fences[s]],
                            &[&holder, &ttl],
                        )
                        .and_then(|r| r.int())
                        .map_err(|e| update_error("lock script", e))?;
                    (t > 0).then_some(t as u64)
                }
            };
            if let Some(token) = token {
                return Ok(Held { holder, token });
            }
            a.retries += 1;
            attempt += 1;
            self.backoff(attempt);
            a.waits += 1;
        }
    }

    /// Sleeps 20 µs, doubling per attempt up to 1 ms, with jitter so waiters do not retry in
    /// step.
    #[cold]
    fn backoff(&mut self, attempt: u32) {
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let base = (20u64 << attempt.min(6)).min(1000);
        std::thread::sleep(Duration::from_micros(base / 2 + self.jitter % base));
    }

    fn release(&mut self, s: usize, held: &Held) -> Result<(), UpdateError> {
        let deleted = self
            .scripts
            .eval(
                &mut self.client,
                Script::Release,
                &[&self.locks[s]],
                &[&held.holder],
            )
            .and_then(|r| r.int())
            .map_err(|e| update_error("release script", e))?;
        if deleted == 0 {
            // Our lock expired while we held it: someone else may hold it now.
            self.stats.robbed += 1;
        }
        Ok(())
    }

    fn lock(
        &mut self,
        s: usize,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<Applied, UpdateError> {
        let mut a = Applied::default();
        loop {
            let held = self.acquire(s, &mut a)?;
            let read = match self.options.fencing {
                Fencing::Off | Fencing::WriteOnly => self.get(s)?,
                Fencing::Tokens => {
                    let n = self
                        .scripts
                        .eval(
                            &mut self.client,
                            Script::FencedRead,
                            &[&self.slots[s], &self.guards[s]],
                            &[&held.token],
                        )
                        .and_then(|r| r.int())
                        .map_err(|e| update_error("fenced read", e))?;
                    if n == REFUSED {
                        self.refused(s, &held, &mut a)?;
                        continue;
                    }
                    slot_value(s as u32, n)?
                }
            };
            at(Point::HoldingLock);
            at(Point::AfterRead);
            a.read = read;
            a.written = read.wrapping_add(1);
            match self.options.fencing {
                Fencing::Off => self
                    .write(s, event, &a)
                    .map_err(|e| update_error("SET", e))?,
                Fencing::Tokens | Fencing::WriteOnly => {
                    if !self.fenced_write(s, event, &held, &a)? {
                        self.refused(s, &held, &mut a)?;
                        continue;
                    }
                }
            }
            at(Point::AfterWrite);
            self.release(s, &held)?;
            return Ok(a);
        }
    }

    /// A fenced script refused our token: give the lock back (if it is still ours) and count.
    fn refused(&mut self, s: usize, held: &Held, a: &mut Applied) -> Result<(), UpdateError> {
        self.stats.fenced += 1;
        a.retries += 1;
        self.release(s, held)
    }

    /// The fenced write; false when the slot refused our token.
    fn fenced_write(
        &mut self,
        s: usize,
        event: Option<EventDraft>,
        held: &Held,
        a: &Applied,
    ) -> Result<bool, UpdateError> {
        let keys: [&dyn Arg; 3] = [&self.slots[s], &self.guards[s], &self.events];
        let reply = match event {
            None => self.scripts.eval(
                &mut self.client,
                Script::FencedWrite,
                &keys,
                &[&held.token, &a.written],
            ),
            Some(e) => {
                let pd = self.pending_completion;
                let fields = event_fields(&e, s, a, pd);
                let mut args: Vec<&dyn Arg> = vec![&held.token, &a.written];
                args.extend(fields.iter().map(|f| f as &dyn Arg));
                self.scripts
                    .eval(&mut self.client, Script::FencedWrite, &keys, &args)
            }
        };
        let n = reply
            .and_then(|r| r.int())
            .map_err(|e| update_error("fenced write", e))?;
        Ok(n != REFUSED)
    }
}

/// An event's XADD field-value pairs, for a script that adds it.
fn event_fields(e: &EventDraft, slot: usize, a: &Applied, pd: u64) -> [String; 18] {
    [
        "k".into(),
        "e".into(),
        "w".into(),
        e.worker.to_string(),
        "s".into(),
        e.seq.to_string(),
        "slot".into(),
        slot.to_string(),
        "r".into(),
        a.read.to_string(),
        "v".into(),
        a.written.to_string(),
        "n".into(),
        a.retries.to_string(),
        "t0".into(),
        e.invoke_ns.to_string(),
        "pd".into(),
        pd.to_string(),
    ]
}

impl Session for RedisSession {
    fn update(&mut self, slot: u32, event: Option<EventDraft>) -> Result<Applied, UpdateError> {
        RedisSession::update_at(self, slot, event, &mut |_| {})
    }

    fn update_at(
        &mut self,
        slot: u32,
        event: Option<EventDraft>,
        at: At<'_>,
    ) -> Result<Applied, UpdateError> {
        RedisSession::update_at(self, slot, event, at)
    }

    fn robbed(&self) -> u64 {
        self.stats.robbed
    }
}

impl Drop for RedisSession {
    /// Writes the completion time of this worker's last event, which no later entry will
    /// carry (see `stream`). Best effort: a worker that dies leaves it unknown.
    fn drop(&mut self) {
        if self.pending_completion != 0 && !self.broken {
            let _ = stream::add_completion(
                &mut self.client,
                &self.events,
                self.worker,
                self.pending_completion,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_run_as_a_hash_tag_and_parse_back() {
        let k = Keys::of(42);
        assert_eq!(k.slot(3), "racepool:{42}:slot:3");
        assert_eq!(k.pattern(), "racepool:{42}:*");
        assert_eq!(Keys::run_of(k.lock(0).as_bytes()), Some(42));
        assert_eq!(Keys::run_of(k.run().as_bytes()), Some(42));
        assert_eq!(Keys::run_of(b"racepool:{x}:slot:0"), None);
        assert_eq!(Keys::run_of(b"racepool:{}:slot:0"), None);
        assert_eq!(Keys::run_of(b"racepool:{42}slot"), None);
        assert_eq!(Keys::run_of(b"user:{42}:slot:0"), None);
    }

    #[test]
    fn versions_parse_and_old_servers_are_told_apart() {
        assert_eq!(parse_version("7.0.15"), Some((7, 0)));
        assert_eq!(parse_version("6.2"), Some((6, 2)));
        assert!(parse_version("6.0.9").unwrap() < MINIMUM_VERSION);
        assert!(parse_version("10.0.0").unwrap() > MINIMUM_VERSION);
        assert_eq!(parse_version("unknown"), None);
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("7.0.15"));
        assert_eq!(info_field(info, "redis"), None);
    }

    #[test]
    fn bad_urls_are_usage_errors_naming_the_flag() {
        let e = RedisTarget::open("redis://h:port", RedisOptions::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Usage(m) if m.starts_with("--target")),
            "{e}"
        );
    }
}
