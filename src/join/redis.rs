//! Redis as the meeting place: the joined run's record in keys beside the run's own, each
//! step one Lua script (Redis runs one script at a time: every decision taken once is taken
//! there), every time the server's `TIME`.
//!
//! Every key of the joined run `NAME` starts with `racepool:join:{NAME}:` (the braces are a
//! Redis Cluster hash tag: the scripts touch several of them). The run's slots are the run's
//! own keys, `racepool:{RUN}:slot:I` (see [`crate::target::redis`]).
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `…:run` | hash | `plan` (JSON), `hosts`, `run` (the slots' run id), `created_us`, `slots_ready`, `release_us`, `reported_by` |
//! | `…:index` | hash | host name -> its index (order of registration, from 0) |
//! | `…:host:I` | hash | `host`, `idx`, `pid`, `workers`, `seed`, `offset_ns`, `rtt_ns`, `state`, `note`, `registered_us`, `heartbeat_us`, `progress` (JSON), `figures` (JSON), `histogram` (HdrHistogram V2), `finished_us` |
//! | `…:go:I` | list | host I's wake-ups at the start barrier (`go`, `failed`), popped by `BLPOP`; expires |
//!
//! Times in the keys are µs since the epoch on the server's clock (Lua's numbers are doubles:
//! ns would not fit 53 bits); they become ns when read. A host's `state` moves as in the
//! PostgreSQL tables: `registered` -> `ready` -> `running` -> `done`, or `failed`, or `dead`.
//!
//! The barrier: a host marks itself ready in one script, which also sees whether every host
//! is; the script that sees the last one sets `release_us` (now + [`RELEASE_LEAD`]) and
//! pushes `go` onto every other host's list. A waiting host blocks on its own list
//! (`BLPOP`, at most [`WAKE`]), then asks the script again: the list only wakes it, the run's
//! hash is the truth. A host that gives up pushes `failed` onto the others' lists.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::meeting::{Meeting, Registration, Seat};
use super::plan::{first_difference, host_seed, Join};
use super::report::{histogram_of, Figures, Host, Stored};
use crate::error::Error;
use crate::target::redis::resp::{Arg, Client, ClientError, RedisUrl, Reply};
use crate::target::redis::Keys;

/// How far ahead of "every host is ready" the release is set (as PostgreSQL's).
pub const RELEASE_LEAD: Duration = Duration::from_millis(250);
/// How long a waiting host blocks on its list before it looks at the run again.
pub const WAKE: Duration = Duration::from_millis(100);
/// How often a host waiting for the slots or the others' figures looks.
const POLL: Duration = Duration::from_millis(5);
/// How often a running host says it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// Every coordination connection's connect, read and write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The prefix of every key of the joined run `name`.
pub fn prefix(name: &str) -> String {
    format!("racepool:join:{{{name}}}:")
}

/// The SCAN pattern of every joined run's hash.
const RUNS: &str = "racepool:join:{*}:run";

/// The clock in µs, as a string Lua prints exactly (its numbers print with 14 digits).
const NOW: &str = "
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function us(x) return string.format('%.0f', x) end
";

/// KEYS: run. ARGV: prefix, plan, hosts, fresh run id, host, pid, workers, offset ns,
/// rtt ns, then every index's seed. Returns {'ok', run, index, creator} or why not.
const REGISTER: &str = "
local P = ARGV[1]
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'plan', ARGV[2], 'hosts', ARGV[3], 'run', ARGV[4], 'created_us', us(now))
  created = 1
end
local r = redis.call('HMGET', KEYS[1], 'plan', 'run', 'release_us', 'hosts')
if r[1] ~= ARGV[2] then return {'plan', r[1] or ''} end
if r[3] then return {'started', r[2]} end
local n = redis.call('HLEN', P .. 'index')
if n >= tonumber(r[4]) then
  local names = {}
  for i = 0, n - 1 do names[#names + 1] = redis.call('HGET', P .. 'host:' .. i, 'host') or '?' end
  return {'full', r[4], table.concat(names, ', ')}
end
redis.call('HSET', P .. 'index', ARGV[5], n)
redis.call('HSET', P .. 'host:' .. n, 'host', ARGV[5], 'idx', n, 'pid', ARGV[6],
  'workers', ARGV[7], 'seed', ARGV[10 + n], 'offset_ns', ARGV[8], 'rtt_ns', ARGV[9],
  'state', 'registered', 'registered_us', us(now), 'heartbeat_us', us(now))
return {'ok', r[2], n, created}
";

/// KEYS: run. ARGV: prefix. Returns {slots_ready or '', the failed hosts and why}, or
/// {'gone'}.
const STATUS: &str = "
local P = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local failed = {}
for i = 0, redis.call('HLEN', P .. 'index') - 1 do
  local h = redis.call('HMGET', P .. 'host:' .. i, 'host', 'state', 'note')
  if h[2] == 'failed' then failed[#failed + 1] = h[1] .. ': ' .. (h[3] or '') end
end
return {redis.call('HGET', KEYS[1], 'slots_ready') or '', table.concat(failed, '; ')}
";

/// KEYS: run. ARGV: prefix, index, release lead µs, '1' to mark this host ready, expiry of
/// the wake-up lists in ms. Returns {'go', release µs}, {'failed', host, note}, {'gone'} or
/// {'wait', host, state, …}.
const MEET: &str = "
local P = ARGV[1]
if ARGV[4] == '1' then
  redis.call('HSET', P .. 'host:' .. ARGV[2], 'state', 'ready', 'heartbeat_us', us(now))
end
local r = redis.call('HMGET', KEYS[1], 'release_us', 'hosts')
if not r[2] then return {'gone'} end
if r[1] then return {'go', r[1]} end
local n = redis.call('HLEN', P .. 'index')
local states, ready, failed = {}, 0, nil
for i = 0, n - 1 do
  local h = redis.call('HMGET', P .. 'host:' .. i, 'host', 'state', 'note')
  states[#states + 1] = h[1]
  states[#states + 1] = h[2]
  if h[2] == 'ready' then ready = ready + 1 end
  if h[2] == 'failed' and tostring(i) ~= ARGV[2] and not failed then
    failed = {h[1], h[3] or 'no reason given'}
  end
end
if ready == tonumber(r[2]) then
  local at = us(now + tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'release_us', at)
  for i = 0, n - 1 do
    if tostring(i) ~= ARGV[2] then
      redis.call('RPUSH', P .. 'go:' .. i, 'go')
      redis.call('PEXPIRE', P .. 'go:' .. i, ARGV[5])
    end
  end
  return {'go', at}
end
if failed then return {'failed', failed[1], failed[2]} end
return {'wait', unpack(states)}
";

/// KEYS: run. ARGV: prefix, host, note, expiry of the wake-up lists in ms. Marks the host
/// failed (if it was still in the run) and, before the release, wakes every other host.
const FAIL: &str = "
local P = ARGV[1]
local idx = redis.call('HGET', P .. 'index', ARGV[2])
if not idx then return 0 end
local me = P .. 'host:' .. idx
local s = redis.call('HGET', me, 'state')
if s ~= 'registered' and s ~= 'ready' and s ~= 'running' then return 0 end
redis.call('HSET', me, 'state', 'failed', 'note', ARGV[3], 'finished_us', us(now))
if not redis.call('HGET', KEYS[1], 'release_us') then
  for i = 0, redis.call('HLEN', P .. 'index') - 1 do
    if tostring(i) ~= idx then
      redis.call('RPUSH', P .. 'go:' .. i, 'failed')
      redis.call('PEXPIRE', P .. 'go:' .. i, ARGV[4])
    end
  end
end
return 1
";

/// KEYS: run. Marks the run's slots made (if the run is still there).
const SLOTS: &str = "
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], 'slots_ready', '1')
";

/// KEYS: host. ARGV: progress (JSON). Writes nothing once the record is gone (cleaned): no
/// stray key is made.
const BEAT: &str = "
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'heartbeat_us', us(now), 'progress', ARGV[1])
if redis.call('HGET', KEYS[1], 'state') == 'ready' then
  redis.call('HSET', KEYS[1], 'state', 'running')
end
return 1
";

/// KEYS: host. ARGV: figures (JSON), histogram, progress (JSON). Returns 0 when the record
/// is gone.
const DONE: &str = "
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'figures', ARGV[1], 'histogram', ARGV[2],
  'progress', ARGV[3], 'finished_us', us(now), 'heartbeat_us', us(now))
return 1
";

/// KEYS: run. ARGV: prefix, index, host, silence µs that makes a host dead, its note.
/// Returns {'by', host} once every host is done, failed or dead (the first to see it
/// reports), {'gone'} when the record was removed, else {'wait'}.
const JUDGE: &str = "
local P = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local by = redis.call('HGET', KEYS[1], 'reported_by')
if by then return {'by', by} end
local open = 0
for i = 0, redis.call('HLEN', P .. 'index') - 1 do
  local key = P .. 'host:' .. i
  local h = redis.call('HMGET', key, 'state', 'heartbeat_us')
  if h[1] == 'registered' or h[1] == 'ready' or h[1] == 'running' then
    if tonumber(h[2] or '0') < now - tonumber(ARGV[4]) then
      redis.call('HSET', key, 'state', 'dead', 'note', ARGV[5])
    else
      open = open + 1
    end
  end
end
if open == 0 then
  redis.call('HSET', KEYS[1], 'reported_by', ARGV[3])
  return {'by', ARGV[3]}
end
redis.call('HSET', P .. 'host:' .. ARGV[2], 'heartbeat_us', us(now))
return {'wait'}
";

/// Redis as a joined run's meeting place (see the module doc).
pub struct Keyspace {
    pub url: String,
}

impl Keyspace {
    fn parsed(&self) -> Result<RedisUrl, String> {
        RedisUrl::parse(&self.url)
    }

    /// The URL as it may be printed (no password).
    fn shown(&self) -> String {
        self.parsed()
            .map_or_else(|_| self.url.clone(), |u| u.to_string())
    }

    /// Opens a coordination connection (in the process that uses it; closed when dropped).
    fn connect(&self) -> Result<Client, String> {
        let url = self.parsed()?;
        Client::connect(&url, IO_TIMEOUT).map_err(|e| e.to_string())
    }

    fn target_error(&self, join: &Join, m: impl std::fmt::Display) -> Error {
        Error::Target(format!("--join {}: {}: {m}", join.name, self.shown()))
    }

    fn failed_error(&self, join: &Join, m: impl std::fmt::Display) -> Error {
        Error::Join(format!("--join {}: {}: {m}", join.name, self.shown()))
    }

    /// The joined runs' names and their slots' run ids.
    fn runs(&self, c: &mut Client) -> Result<Vec<(String, Option<u64>)>, ClientError> {
        let mut found = Vec::new();
        c.scan(RUNS, |c, keys| {
            for k in keys {
                let Some(name) = name_of(&k) else { continue };
                let run = c.call(&[&"HGET", &k, &"run"])?.number()?;
                found.push((name, run));
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Removes every key of the joined run `name`.
    fn remove(c: &mut Client, name: &str) -> Result<(), ClientError> {
        c.scan(&format!("{}*", prefix(name)), |c, keys| {
            if keys.is_empty() {
                return Ok(());
            }
            let mut args: Vec<&dyn Arg> = vec![&"UNLINK"];
            args.extend(keys.iter().map(|k| k as &dyn Arg));
            c.call(&args).map(drop)
        })
    }
}

/// The name in a joined run's hash key (`racepool:join:{NAME}:run`).
fn name_of(key: &[u8]) -> Option<String> {
    let rest = std::str::from_utf8(key)
        .ok()?
        .strip_prefix("racepool:join:{")?;
    let name = rest.strip_suffix("}:run")?;
    (!name.is_empty() && !name.contains(['{', '}'])).then(|| name.to_string())
}

/// Runs `script` (its source: a handful of coordination calls, not worth a digest) on one
/// key. The clock preamble comes first; effects replication makes writing after `TIME`
/// legal on 6.2 (7.0 always replicates effects).
fn eval(c: &mut Client, script: &str, key: &str, args: &[&dyn Arg]) -> Result<Reply, ClientError> {
    let source =
        format!("if redis.replicate_commands then redis.replicate_commands() end\n{NOW}\n{script}");
    let mut all: Vec<&dyn Arg> = vec![&"EVAL", &source, &1u32, &key];
    all.extend_from_slice(args);
    c.call(&all)
}

/// A script's answer as text: the words of an array (numbers as decimals).
fn words(r: Reply) -> Result<Vec<String>, ClientError> {
    r.array()?
        .into_iter()
        .map(|w| match w {
            Reply::Bulk(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Reply::Int(n) => Ok(n.to_string()),
            Reply::Status(s) => Ok(s),
            Reply::Nil => Ok(String::new()),
            other => Err(ClientError::Protocol(format!(
                "a script answered {other:?}"
            ))),
        })
        .collect()
}

/// A hash, from `HGETALL`.
fn hash(r: Reply) -> Result<HashMap<String, Vec<u8>>, ClientError> {
    let mut out = HashMap::new();
    let mut items = r.array()?.into_iter();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        if let (Reply::Bulk(k), Reply::Bulk(v)) = (k, v) {
            out.insert(String::from_utf8_lossy(&k).into_owned(), v);
        }
    }
    Ok(out)
}

fn text(h: &HashMap<String, Vec<u8>>, k: &str) -> Option<String> {
    h.get(k).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn int(h: &HashMap<String, Vec<u8>>, k: &str) -> Option<i64> {
    text(h, k).and_then(|v| v.parse().ok())
}

fn json<T: serde::de::DeserializeOwned>(h: &HashMap<String, Vec<u8>>, k: &str) -> Option<T> {
    h.get(k).and_then(|v| serde_json::from_slice(v).ok())
}

/// Measures the server's clock against CLOCK_REALTIME: the midpoint of the quickest of a few
/// `TIME` round trips. Returns (offset, round trip) in ns.
fn clock_offset(c: &mut Client) -> Result<(i64, i64), ClientError> {
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..5 {
        let t0 = crate::clock::realtime_ns();
        let w = words(c.call(&[&"TIME"])?)?;
        let t1 = crate::clock::realtime_ns();
        let (Some(s), Some(us)) = (
            w.first().and_then(|s| s.parse::<i128>().ok()),
            w.get(1).and_then(|s| s.parse::<i128>().ok()),
        ) else {
            return Err(ClientError::Protocol("TIME answered something else".into()));
        };
        let server = s * 1_000_000_000 + us * 1000;
        let rtt = (t1 - t0) as i64;
        let offset = (server - (t0 + t1) / 2) as i64;
        if best.is_none_or(|(_, r)| rtt < r) {
            best = Some((offset, rtt));
        }
    }
    Ok(best.expect("measured at least once"))
}

/// How long the wake-up lists outlive a barrier nobody finished, in ms.
fn expiry_ms(join: &Join) -> u64 {
    (join.timeout.as_millis() as u64)
        .saturating_mul(2)
        .max(1000)
}

impl Meeting for Keyspace {
    fn register(
        &self,
        join: &Join,
        plan: &str,
        me: &str,
        workers: usize,
        seed: u64,
    ) -> Result<Registration, Error> {
        let mut c = self.connect().map_err(|m| self.target_error(join, m))?;
        let r = (|| {
            let (offset_ns, rtt_ns) = clock_offset(&mut c)?;
            let p = prefix(&join.name);
            let fresh = crate::store::RunStore::new_run_id();
            let seeds: Vec<String> = (0..join.hosts)
                .map(|i| host_seed(seed, i).to_string())
                .collect();
            let (pid, offset, rtt) = (
                std::process::id(),
                offset_ns.to_string(),
                rtt_ns.to_string(),
            );
            let mut args: Vec<&dyn Arg> = vec![
                &p,
                &plan,
                &join.hosts,
                &fresh,
                &me,
                &pid,
                &workers,
                &offset,
                &rtt,
            ];
            args.extend(seeds.iter().map(|s| s as &dyn Arg));
            let w = words(eval(&mut c, REGISTER, &format!("{p}run"), &args)?)?;
            Ok::<_, ClientError>((w, offset_ns, rtt_ns))
        })();
        let (w, offset_ns, rtt_ns) = r.map_err(|e| self.target_error(join, e))?;
        match w.first().map(String::as_str) {
            Some("ok") if w.len() == 4 => Ok(Registration {
                run: w[1].parse().unwrap_or(0),
                index: w[2].parse().unwrap_or(0),
                creator: w[3] == "1",
                offset_ns,
                rtt_ns,
            }),
            Some("plan") => {
                let flag = first_difference(plan, w.get(1).map_or("", |s| s))
                    .unwrap_or("the plan".into());
                Err(Error::Usage(format!(
                    "--join {}: this host's flags differ from the run's: {flag}",
                    join.name
                )))
            }
            Some("started") => Err(Error::Usage(format!(
                "--join {}: that run has started already (its hosts were released); join a new name, or remove it with torture clean --run {}",
                join.name,
                w.get(1).map_or("", |s| s)
            ))),
            Some("full") => Err(Error::Usage(format!(
                "--join {}: the run has its {} host(s) already ({})",
                join.name,
                w.get(1).map_or("", |s| s),
                w.get(2).map_or("", |s| s)
            ))),
            _ => Err(self.target_error(join, format!("registration answered {w:?}"))),
        }
    }

    fn withdraw(&self, join: &Join, run: u64) {
        if let Ok(mut c) = self.connect() {
            let mine = c
                .call(&[&"HGET", &format!("{}run", prefix(&join.name)), &"run"])
                .and_then(|r| r.number());
            if matches!(mine, Ok(Some(r)) if r == run) {
                let _ = Keyspace::remove(&mut c, &join.name);
            }
        }
    }

    fn slots_ready(&self, join: &Join) -> Result<(), Error> {
        let mut c = self.connect().map_err(|m| self.failed_error(join, m))?;
        eval(&mut c, SLOTS, &format!("{}run", prefix(&join.name)), &[])
            .map_err(|e| self.failed_error(join, e))?;
        Ok(())
    }

    fn wait_for_slots(&self, join: &Join, me: &str) -> Result<(), Error> {
        let mut c = self.connect().map_err(|m| self.failed_error(join, m))?;
        let p = prefix(&join.name);
        let run = format!("{p}run");
        let deadline = Instant::now() + join.timeout;
        loop {
            let w = eval(&mut c, STATUS, &run, &[&p])
                .and_then(words)
                .map_err(|e| self.failed_error(join, e))?;
            match (w.first().map(String::as_str), w.get(1)) {
                (Some("1"), _) => return Ok(()),
                (Some("gone"), _) => {
                    return Err(self.failed_error(
                        join,
                        "the run's record is gone (its creator withdrew, or it was cleaned)",
                    ))
                }
                (_, Some(f)) if !f.is_empty() => {
                    return Err(
                        self.failed_error(join, format!("a host failed before the start: {f}"))
                    )
                }
                _ => {}
            }
            if Instant::now() > deadline || crate::pool::interrupted() {
                return Err(self.failed_error(join, super::meeting::slots_late(join, me)));
            }
            std::thread::sleep(POLL);
        }
    }

    fn failed(&self, join: &Join, me: &str, why: &str) {
        if let Ok(mut c) = self.connect() {
            let p = prefix(&join.name);
            let _ = eval(
                &mut c,
                FAIL,
                &format!("{p}run"),
                &[&p, &me, &why, &expiry_ms(join)],
            );
        }
    }

    fn meet(&self, co: &Seat) -> Result<i128, Error> {
        let join = &co.join;
        let fail = |m: String| self.failed_error(join, m);
        let mut c = self.connect().map_err(fail)?;
        let redis = |e: ClientError| self.failed_error(join, e);
        let p = prefix(&join.name);
        let run = format!("{p}run");
        let mine = format!("{p}go:{}", co.reg.index);
        let lead = RELEASE_LEAD.as_micros() as u64;
        let expiry = expiry_ms(join);
        let deadline = Instant::now() + join.timeout;
        let mut first = true;
        loop {
            let mark = if first { "1" } else { "0" };
            first = false;
            let w = eval(
                &mut c,
                MEET,
                &run,
                &[&p, &co.reg.index, &lead, &mark, &expiry],
            )
            .and_then(words)
            .map_err(redis)?;
            let why = match w.first().map(String::as_str) {
                Some("go") => {
                    let at: i128 = w.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                    let _ = c.call(&[&"DEL", &mine]);
                    return Ok(at * 1000 - co.reg.offset_ns as i128);
                }
                Some("gone") => {
                    return Err(fail(
                        "the run's record is gone (removed by torture clean?)".into(),
                    ))
                }
                Some("failed") => super::meeting::gave_up(
                    w.get(1).map_or("?", |s| s),
                    w.get(2).map(String::as_str),
                ),
                _ => {
                    let late = Instant::now() > deadline;
                    if late {
                        let hosts: Vec<(String, String)> = w
                            .get(1..)
                            .unwrap_or_default()
                            .chunks(2)
                            .map(|h| (h[0].clone(), h.get(1).cloned().unwrap_or_default()))
                            .collect();
                        super::meeting::missing(join, &hosts)
                    } else if crate::pool::interrupted() {
                        super::meeting::INTERRUPTED.into()
                    } else {
                        let wait = WAKE.min(deadline.saturating_duration_since(Instant::now()));
                        // Woken by `go` or `failed`, or not: the script tells which, next.
                        c.call(&[
                            &"BLPOP",
                            &mine,
                            &format!("{:.3}", wait.as_secs_f64().max(0.001)),
                        ])
                        .map_err(redis)?;
                        continue;
                    }
                }
            };
            eval(&mut c, FAIL, &run, &[&p, &co.me, &why, &expiry]).map_err(redis)?;
            let _ = c.call(&[&"DEL", &mine]);
            let gave_up = w.first().map(String::as_str) == Some("failed");
            return Err(
                if crate::pool::interrupted() && !gave_up && Instant::now() <= deadline {
                    Error::Interrupted(format!("--join {}: {why}", join.name))
                } else {
                    fail(why)
                },
            );
        }
    }

    fn beat(&self, co: &Seat, completed: &dyn Fn() -> Vec<u64>, stop: &AtomicBool) {
        let key = format!("{}host:{}", prefix(&co.join.name), co.reg.index);
        let mut conn: Option<Client> = None;
        // SeqCst: pairs with the runner's store that ends the heartbeat.
        while !stop.load(Ordering::SeqCst) {
            if conn.is_none() {
                conn = self.connect().ok();
            }
            if let Some(c) = conn.as_mut() {
                let progress = serde_json::to_string(&completed()).expect("numbers serialise");
                if eval(c, BEAT, &key, &[&progress]).is_err() {
                    conn = None;
                }
            }
            let until = Instant::now() + HEARTBEAT;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn finish(&self, co: &Seat, figures: Figures, histogram: Vec<u8>) -> Result<String, Error> {
        let join = &co.join;
        let mut c = self.connect().map_err(|m| self.failed_error(join, m))?;
        let redis = |e: ClientError| self.failed_error(join, e);
        let p = prefix(&join.name);
        let json = serde_json::to_string(&figures).expect("figures serialise");
        let progress = serde_json::to_string(&figures.completed).expect("numbers serialise");
        let written = eval(
            &mut c,
            DONE,
            &format!("{p}host:{}", co.reg.index),
            &[&json, &histogram, &progress],
        )
        .and_then(|r| r.int())
        .map_err(redis)?;
        if written == 0 {
            return Err(self.failed_error(
                join,
                "the run's record is gone (removed by torture clean?): this host's figures are not kept",
            ));
        }
        let silence = join.timeout.as_micros() as u64;
        let note = format!("no heartbeat for {} s", join.timeout.as_secs_f64());
        let run = format!("{p}run");
        loop {
            let w = eval(
                &mut c,
                JUDGE,
                &run,
                &[&p, &co.reg.index, &co.me, &silence, &note],
            )
            .and_then(words)
            .map_err(redis)?;
            match w.first().map(String::as_str) {
                Some("by") => return Ok(w.get(1).cloned().unwrap_or_default()),
                Some("gone") => {
                    return Err(self.failed_error(
                        join,
                        "the run's record is gone (removed by torture clean?)",
                    ))
                }
                _ => {}
            }
            if crate::pool::interrupted() {
                // This host's figures are written: the others judge without waiting for it.
                return Err(Error::Interrupted(format!(
                    "--join {}: interrupted while waiting for the other hosts; torture report --run {} prints the verdict once they are done",
                    join.name, join.name
                )));
            }
            std::thread::sleep(POLL * 4);
        }
    }

    fn load(&self, name: &str) -> Result<Stored, Error> {
        let fail = |m: String| Error::Target(format!("{}: {m}", self.shown()));
        let mut c = self.connect().map_err(fail)?;
        let p = prefix(name);
        let redis = |e: ClientError| fail(e.to_string());
        let run = hash(c.call(&[&"HGETALL", &format!("{p}run")]).map_err(redis)?).map_err(redis)?;
        let (Some(plan), Some(id)) = (text(&run, "plan"), int(&run, "run")) else {
            return Err(Error::Usage(format!(
                "--run {name}: {} holds no joined run of that name",
                self.shown()
            )));
        };
        let registered = c
            .call(&[&"HLEN", &format!("{p}index")])
            .and_then(|r| r.int())
            .map_err(redis)?;
        let mut hosts = Vec::new();
        let mut histograms = Vec::new();
        for i in 0..registered.max(0) as u32 {
            let h = hash(
                c.call(&[&"HGETALL", &format!("{p}host:{i}")])
                    .map_err(redis)?,
            )
            .map_err(redis)?;
            if let Some(hist) = h.get("histogram").and_then(|b| histogram_of(b)) {
                histograms.push(hist);
            }
            hosts.push(Host::recorded(
                text(&h, "host").unwrap_or_default(),
                i,
                int(&h, "pid").unwrap_or(0),
                int(&h, "workers").unwrap_or(0) as usize,
                text(&h, "seed").and_then(|s| s.parse().ok()).unwrap_or(0),
                int(&h, "offset_ns").unwrap_or(0),
                int(&h, "rtt_ns").unwrap_or(0),
                text(&h, "state").unwrap_or_default(),
                text(&h, "note"),
                json(&h, "figures"),
                json(&h, "progress").unwrap_or_default(),
            ));
        }
        let slots = serde_json::from_str::<serde_json::Value>(&plan)
            .ok()
            .and_then(|v| v.get("slots").and_then(|s| s.as_u64()))
            .unwrap_or(1) as usize;
        let keys = Keys::of(id as u64);
        let names: Vec<String> = (0..slots).map(|i| keys.slot(i)).collect();
        let mut finals = Vec::with_capacity(slots);
        for chunk in names.chunks(1024) {
            let mut args: Vec<&dyn Arg> = vec![&"MGET"];
            args.extend(chunk.iter().map(|k| k as &dyn Arg));
            for v in c.call(&args).and_then(|r| r.array()).map_err(redis)? {
                // A missing slot shortens the list: the verdict names the shortfall.
                if let Some(n) = v.number().map_err(redis)? {
                    finals.push(u32::try_from(n).unwrap_or(u32::MAX));
                }
            }
        }
        Ok(Stored {
            name: name.into(),
            url: self.shown(),
            plan,
            hosts_planned: int(&run, "hosts").unwrap_or(0) as u32,
            run: id as u64,
            release_ns: int(&run, "release_us").map(|us| us * 1000),
            reported_by: text(&run, "reported_by"),
            hosts,
            histograms,
            finals,
        })
    }

    fn clean(&self, run: Option<u64>) -> Result<u64, Error> {
        let fail = |e: ClientError| Error::Target(format!("{}: {e}", self.shown()));
        let mut c = self
            .connect()
            .map_err(|m| Error::Target(format!("{}: {m}", self.shown())))?;
        let mut removed = 0;
        for (name, id) in self.runs(&mut c).map_err(fail)? {
            if run.is_none() || id == run {
                Keyspace::remove(&mut c, &name).map_err(fail)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_runs_name_reads_back_from_its_hash_key_only() {
        let key = format!("{}run", prefix("t1-a.b_c"));
        assert_eq!(name_of(key.as_bytes()).as_deref(), Some("t1-a.b_c"));
        assert_eq!(name_of(b"racepool:join:{x}:host:0"), None);
        assert_eq!(name_of(b"racepool:{12}:run"), None);
    }
}
