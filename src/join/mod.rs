//! `--join NAME --hosts H`: one run across several hosts against one target, coordinated
//! through that target (the system under test, which every such deployment already has),
//! never through a protocol of our own.
//!
//! ```text
//! each host: register (plan checked, clock offset measured; the first host creates the run
//!            and its slots) -> fork its workers -> they connect and wait at the local barrier
//!            -> ready -> every host ready: one release moment on the target's clock
//!            -> released together -> heartbeat while running -> figures written back
//!            -> the host that sees every other done (or dead) prints the joined verdict
//! ```
//!
//! The modules, each importing only those below it:
//!
//! - this one: a host's steps ([`run`]) and the entry points of `torture report` and `clean`;
//! - [`db`] (PostgreSQL tables), [`maria`] (the same tables in MariaDB) and [`redis`] (Redis
//!   keys and scripts): the [`Meeting`]s, every statement and script in them;
//! - [`meeting`](mod@meeting): the [`Meeting`] trait, what every meeting place implements;
//! - [`report`]: the verdict, from a meeting place's record alone (so `torture report --run
//!   NAME` prints it from anywhere);
//! - [`plan`]: the validated `--join`, the plan every host shares, seeds and names;
//! - [`store`]: `--store target`: the joined run's one record in the target (header, each
//!   host's share of worker ids and clock, the end).
//!
//! docs/multihost.md describes the protocol and its failure cases.
//!
//! Fork safety: every coordination call opens its own connection and closes it before it
//! returns, and none is open while the parent forks; the heartbeat's connection lives in the
//! heartbeat thread, which runs only after every fork of the run and is joined before the next.

pub mod db;
pub mod maria;
pub mod meeting;
pub mod plan;
pub mod redis;
pub mod report;
pub mod store;

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

pub use self::meeting::Meeting;
use self::meeting::Seat;
pub use self::plan::Join;
use self::plan::{host_name, host_seed, plan_of};
use crate::error::Error;
use crate::options::Options;
use crate::run::{HostFigures, Joint};
use crate::target::{Records, RunShape, Share, Target, TargetSpec, WithTarget};

/// The meeting place a joined run on `target` coordinates through (`Error::Usage` naming
/// `--target` where there is none).
pub fn meeting(target: &TargetSpec) -> Result<Box<dyn Meeting>, Error> {
    match target {
        TargetSpec::Postgres(url) => Ok(Box::new(db::Tables { url: url.clone() })),
        TargetSpec::Mysql(url) => Ok(Box::new(maria::InnoTables { url: url.clone() })),
        TargetSpec::Redis(url) => Ok(Box::new(redis::Keyspace { url: url.clone() })),
        other => Err(Error::Usage(format!(
            "--target {}: joined runs (--join) meet in PostgreSQL, MariaDB or Redis: give --target postgres://…, mysql://… or redis://…",
            other.kind().name()
        ))),
    }
}

/// `torture report --target URL --run NAME`: the joined run's verdict from its record.
pub fn load(target: &TargetSpec, name: &str) -> Result<report::Joined, Error> {
    let stored = meeting(target)?.load(name)?;
    let recorded = plan::keeps_record(&stored.plan);
    let mut joined = report::judged(stored)?;
    if !recorded {
        return Ok(joined);
    }
    struct Checked(u64);
    impl WithTarget for Checked {
        type Out = Result<Option<(crate::verify::RunCheck, Vec<crate::history::Event>)>, Error>;
        fn memory(self) -> Self::Out {
            Ok(None)
        }
        fn with<T: Target + 'static>(self, target: T) -> Self::Out {
            target
                .records()
                .map_or(Ok(None), |r| store::checked(r, self.0))
        }
    }
    if let Some((check, events)) = target.open(Checked(joined.run))?? {
        joined.with_record(check, &events);
    }
    Ok(joined)
}

/// `torture clean URL [--run ID]`: the joined runs whose slots were run `run` (every one if
/// None) go with them. Targets that hold no joined run have nothing to remove.
pub fn clean(target: &TargetSpec, run: Option<u64>) -> Result<u64, Error> {
    match meeting(target) {
        Ok(m) => m.clean(run),
        Err(_) => Ok(0),
    }
}

/// How a host's part of a joined run ended.
pub struct Outcome {
    /// The joined verdict, from the meeting place's record.
    pub joined: report::Joined,
    /// Whether this host printed it (it saw every other host done or dead), or who did.
    pub reported_by: String,
    pub me: String,
}

/// Runs this host's part of the joined run `join`: register, fork, meet, run, write back,
/// and, if last, judge.
pub fn run(opts: &Options, join: &Join) -> Result<Outcome, Error> {
    struct Host<'a> {
        opts: &'a Options,
        join: &'a Join,
    }
    impl WithTarget for Host<'_> {
        type Out = Result<Outcome, Error>;
        fn memory(self) -> Self::Out {
            Err(Error::Usage(
                "--join coordinates the hosts through the target: memory is no meeting place"
                    .into(),
            ))
        }
        fn with<T: Target + 'static>(self, target: T) -> Self::Out {
            let meeting = meeting(&self.opts.target)?;
            host(self.opts, self.join, target, meeting.as_ref())
        }
    }
    let options = opts.target_options(opts.levels()[0]);
    opts.target.open_with(&options, Host { opts, join })?
}

fn host<T: Target>(
    opts: &Options,
    join: &Join,
    target: T,
    meeting: &dyn Meeting,
) -> Result<Outcome, Error> {
    let me = host_name();
    let plan = plan_of(opts, join);
    let variant = opts.variants()[0];
    // Before anything forks: the target refuses what cannot work (connections, strategies).
    let mut shape = RunShape {
        run: 0,
        slots: opts.slots,
        workers: opts.workers,
        initial: opts.initial,
        race_window: opts.race_window,
        fsync: opts.fsync,
        holds: Default::default(),
        share: Share::default(),
    };
    target.preflight(&shape, &[variant.mechanism()])?;
    let reg = meeting.register(join, &plan, &me, opts.workers, opts.seed)?;
    shape.run = reg.run;
    if reg.creator && join.hosts > 1 {
        // The first host asks for every host's connections (none is open yet): a run the
        // server cannot take whole is refused before anyone forks.
        let all = RunShape {
            workers: opts.workers * join.hosts as usize,
            ..shape.clone()
        };
        if let Err(e) = target.preflight(&all, &[variant.mechanism()]) {
            let e = match e {
                Error::Usage(m) => Error::Usage(format!(
                    "--join {} --hosts {}: {} workers on every host: {m}",
                    join.name, join.hosts, opts.workers
                )),
                other => other,
            };
            meeting.withdraw(join, reg.run);
            return Err(e);
        }
    }
    // `--store target`: the run's one record (validated: the target keeps one).
    let records: Option<&dyn Records> =
        match opts.store_target {
            true => Some(target.records().ok_or_else(|| {
                Error::Usage("--store target: this target keeps no record".into())
            })?),
            false => None,
        };
    let coordinator = Coordinator {
        meeting,
        seat: Seat {
            join: join.clone(),
            me: me.clone(),
            reg: reg.clone(),
        },
        share: store::share(&reg, opts.workers),
        ended: Mutex::new(None),
    };
    let result = (|| {
        if reg.creator {
            target.create(&shape)?;
            // The header, once, before any host's workers connect.
            if let Some(r) = records {
                r.begin_record(&store::header(opts, join, reg.run))?;
            }
            meeting.slots_ready(join)?;
        } else {
            meeting.wait_for_slots(join, &me)?;
        }
        crate::run::host(
            opts,
            &target,
            variant,
            host_seed(opts.seed, reg.index),
            &coordinator,
        )
    })();
    if let Err(e) = result {
        meeting.failed(join, &me, &e.to_string());
        return Err(e);
    }
    let reported_by = coordinator
        .ended
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    let mut joined = report::judged(meeting.load(&join.name)?)?;
    if let Some(r) = records {
        if reported_by == me {
            // Every host is done or dead: the run's end, once, by the host that reports.
            let events = store::checked(r, reg.run)?.map(|c| c.1).unwrap_or_default();
            r.end_record(&store::end(&joined, target.finals(&shape)?, &events))?;
        } else {
            store::wait_for_end(r, join, reg.run)?;
        }
        if let Some((check, events)) = store::checked(r, reg.run)? {
            joined.with_record(check, &events);
        }
    }
    Ok(Outcome {
        joined,
        reported_by,
        me,
    })
}

/// One host's side of the rendezvous: the `Joint` the runner calls, each step taken in the
/// meeting place.
struct Coordinator<'m> {
    meeting: &'m dyn Meeting,
    seat: Seat,
    /// This host's workers' ids and clock in the run's record.
    share: Share,
    /// Set by `finish`: the host that reported the verdict.
    ended: Mutex<Option<String>>,
}

impl Joint for Coordinator<'_> {
    fn run_id(&self) -> u64 {
        self.seat.reg.run
    }
    fn share(&self) -> Share {
        self.share
    }
    fn meet(&self) -> Result<i128, Error> {
        self.meeting.meet(&self.seat)
    }
    fn beat(&self, completed: &dyn Fn() -> Vec<u64>, stop: &AtomicBool) {
        self.meeting.beat(&self.seat, completed, stop)
    }
    fn finish(&self, figures: HostFigures) -> Result<(), Error> {
        let join = &self.seat.join;
        let (figures, histogram) = meeting::stored_figures(figures, self.seat.reg.offset_ns)
            .map_err(|m| {
                Error::Join(format!(
                    "--join {}: {}: {m}",
                    join.name,
                    crate::target::sql::masked(&join.url)
                ))
            })?;
        let by = self.meeting.finish(&self.seat, figures, histogram)?;
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(by);
        Ok(())
    }
}
