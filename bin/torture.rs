//! `torture`: parse the command line, run, print, exit. Errors become exit codes in one place
//! (`Error::exit_code`; docs/exit-codes.md), and everything printed goes through `out`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use racepool::error::{exit, Error};
use racepool::history::export::{self, Format};
use racepool::options::{heading, Mode, Options, RunArgs};
use racepool::region::Layout;
use racepool::report::{self, Verdict};
use racepool::selftest::{self, WakeScope};
use racepool::strategy::StrategyKind;
use racepool::target::{Target, TargetSpec, WithTarget};

/// Races forked workers on shared counters and proves whether any update was lost
///
/// Each strategy (racy, atomic, cas, the locks) runs the same workload, and the final count of
/// every slot is checked against the updates the workers acknowledged: a lost update is a
/// number, not a suspicion. racy is the bug and is expected to lose; every other strategy must
/// be exact.
#[derive(Parser)]
#[command(
    name = "torture",
    version,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true,
    // Help is laid out for 100 columns at most; narrower terminals wrap it (wrap_help).
    max_term_width = 100,
    after_help = RUN_AFTER_HELP,
    after_long_help = RUN_AFTER_LONG_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

/// Real commands, each of which runs as written, in this order (tests/help.rs runs them).
macro_rules! run_examples {
    () => {
        "\
Examples:
  torture -w 8 -n 100000              8 workers, 100,000 updates each
  torture -s racy,cas -r 10           how often racy loses in 10 runs
  torture --scenario ledger           an incident: the bug, then each fix
  torture --kill 3                    kill 3 workers mid-update: still exact
  torture -s cas --store log:run.log  log every update, and verify the log
  torture verify run.log              prove it again from the log alone
"
    };
}

macro_rules! run_exit_codes {
    () => {
        "\
Exit codes (docs/exit-codes.md):
  0    everything promised held: every exact strategy was exact
  1    a check failed: updates lost, or a stored record not verified
  2    bad input: a flag, a file, or a target that cannot take the run
  3    completed, but workers died that nobody asked to kill
  4    the run could not finish: the store, target, fork or output failed
  130  interrupted (Ctrl-C): the partial summary is printed
"
    };
}

/// After `torture -h` and `torture run -h`: examples, then the exit codes (one line each;
/// docs/exit-codes.md has the detail, and tests/help.rs checks that both list the same codes).
const RUN_AFTER_HELP: &str = concat!(
    run_examples!(),
    "\n",
    run_exit_codes!(),
    "\n--help shows every flag in full, and the testing hooks."
);

/// After `torture --help`.
const RUN_AFTER_LONG_HELP: &str = concat!(
    run_examples!(),
    "\n",
    run_exit_codes!(),
    "\nMore: docs/scenarios.md, docs/faults.md, docs/history.md."
);

#[derive(Subcommand)]
enum Command {
    /// Run the torture test (the default when no command is given)
    #[command(after_help = RUN_AFTER_HELP, after_long_help = RUN_AFTER_LONG_HELP)]
    Run(Box<RunArgs>),
    /// Prove from a stored record alone that no update was lost or duplicated
    ///
    /// PATH is the event log (--store log:PATH) or SQLite database (--store sqlite:PATH) a run
    /// wrote; URL the database or Redis server a run recorded itself in (--store target).
    /// Nothing else is read. A run whose record stops before its end (a cut file, no closing
    /// record, no end row) is incomplete, not verified.
    #[command(after_help = VERIFY_AFTER_HELP)]
    Verify {
        /// The event log or SQLite database a run wrote with --store, or the target URL
        #[arg(value_name = "PATH|URL")]
        path: PathBuf,
        /// URL only: verify this run alone [default: every run]
        ///
        /// Its id, as the run printed it (--json: history.run).
        #[arg(long, value_name = "ID")]
        run: Option<u64>,
        /// Print the verdict as JSON
        #[arg(long)]
        json: bool,
        /// Also export each run's Jepsen histories into DIR
        ///
        /// One counter history per run and slot, for external checkers; DIR is created if
        /// missing.
        #[arg(long, value_name = "DIR")]
        history: Option<PathBuf>,
        /// --history's form: edn (Jepsen) or json (elle-cli)
        ///
        /// edn: Jepsen's form, one op map a line. json: elle-cli's, one array.
        #[arg(
            long,
            value_enum,
            default_value = "edn",
            value_name = "FORMAT",
            hide_possible_values = true
        )]
        history_format: Format,
    },
    /// Measure strategies over workers, slots, modes and layouts; write reports
    ///
    /// Runs every point of the matrix strategy × workers × slots × mode × layout on the memory
    /// target, --repeat times after an unmeasured warm-up run, and writes report.md,
    /// summary.json, summary.csv, machine.json, points.jsonl and the plots (*.svg) into --out.
    /// With --target URL,..: engine × isolation × strategy × workers on each server, by count
    /// (--ops per worker), with pgbench and redis-benchmark beside racepool where installed.
    #[command(after_help = BENCH_AFTER_HELP)]
    Bench(BenchArgs),
    /// Remove what runs left on a target: every run's, or one's
    ///
    /// A dir: target's files, a database's racepool_* rows (and the tables once no run is
    /// left), a Redis server's racepool:{RUN}:* keys (memory keeps nothing), and the record of
    /// every joined run (--join) whose slots these were; nothing else is touched. Prints how many runs it removed. Exit 0: done; 2: the target cannot be reached.
    Clean {
        /// The target the runs used: dir:PATH, postgres://…, mysql://… or redis://…
        #[arg(value_name = "TARGET")]
        target: TargetSpec,
        /// Only this run: its id, as its files' names and `torture verify` print it
        #[arg(long, value_name = "ID")]
        run: Option<u64>,
    },
    /// Print a joined run's verdict (--join NAME) from the target alone
    ///
    /// Reads every host's figures and the slots' final values from the target and prints the
    /// summary the run's last host printed. Exit 0: exact (or the race caught); 1: updates
    /// lost; 2: no such run, or the target cannot be reached; 3: bounds held but a host or
    /// workers died; 4: the run is not over.
    Report {
        /// The target the run coordinated through: postgres://…, mysql://… or redis://…
        #[arg(short, long, value_name = "TARGET")]
        target: TargetSpec,
        /// The joined run's name, as given to --join
        #[arg(long, value_name = "NAME")]
        run: String,
        /// Print the verdict as JSON
        #[arg(long)]
        json: bool,
    },
    /// Check what racepool relies on: shared memory and cross-process wakes
    ///
    /// Each check prints a JSON report naming the property it checked and whether it holds.
    #[command(after_help = SELFTEST_AFTER_HELP)]
    Selftest {
        #[command(subcommand)]
        check: SelftestCheck,
    },
}

const VERIFY_AFTER_HELP: &str = "\
Examples:
  torture -s cas --store log:run.log && torture verify run.log
  torture verify run.db --json
  torture verify run.log --history histories
  torture verify postgres://postgres@localhost/test --run 42

Exit codes (docs/exit-codes.md):
  0    every run in the record verified
  1    a run not verified, or its record incomplete
  2    PATH unreadable, or not a racepool record
  4    the verdict or a --history file could not be written
";

const BENCH_AFTER_HELP: &str = "\
Examples:
  torture bench --quick -o quick
  torture bench -s atomic,cas -w 1,4,16 --mode processes -r 3 -o bench-cas
  torture bench -t postgres://postgres@localhost/test,redis://localhost:6379 -o targets

Exit codes (docs/exit-codes.md):
  0    every exact point was exact
  1    an exact point lost updates
  2    bad input
  4    the bench could not finish, or its reports could not be written
";

const SELFTEST_AFTER_HELP: &str = "\
Examples:
  torture selftest shared-write
  torture selftest wake --scope shared
  torture selftest wake --scope private

Exit codes (docs/exit-codes.md):
  0    the property holds
  1    it does not (stderr and the JSON say which)
  2    bad input
";

#[derive(Subcommand)]
enum SelftestCheck {
    /// A forked child's write is seen through the shared region
    ///
    /// Each round a forked child writes one value through the shared region and through a
    /// private anonymous map (map_anon). The parent must see every write through the region
    /// and none through the private map, the negative control.
    SharedWrite {
        /// Rounds, each with a new child
        #[arg(
            long,
            default_value_t = 100,
            value_name = "N",
            value_parser = clap::value_parser!(u32).range(1..)
        )]
        rounds: u32,
    },
    /// A futex wake crosses processes with --scope shared, and not with private
    ///
    /// The parent wakes a child sleeping on the shared region. With --scope shared the wake
    /// must reach it; --scope private is the negative control: no wake may cross processes, so
    /// every round waits out its timeout.
    Wake {
        /// The futex flag both sides use: shared or private
        #[arg(long, value_enum, hide_possible_values = true)]
        scope: WakeScope,
        /// Rounds [default: 100 shared, 5 private]
        ///
        /// A private round always waits out its timeout, so the negative control runs few.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        rounds: Option<u32>,
        /// How long the child sleeps at most, in ms [default: 1000 shared, 200 private]
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout_ms: Option<u64>,
        /// The futex flag both sides use, shared or private [default: --scope]
        ///
        /// The other scope's flag makes the property fail, which shows the exit code.
        #[arg(
            long,
            value_enum,
            value_name = "SCOPE",
            hide_possible_values = true,
            hide_short_help = true,
            help_heading = heading::TESTING
        )]
        use_flag: Option<WakeScope>,
    },
}

/// The matrix `torture bench` measures; an empty list takes the default.
#[derive(Args, Clone)]
struct BenchArgs {
    /// Where the slots live, comma separated: memory, postgres://…, mysql://…, redis://…, dir:PATH
    ///
    /// Each target is benched in turn [default: memory]. A server's points run by count
    /// (--ops per worker) at each --isolation level (SQL) and worker count, each run's rows or
    /// keys removed once measured; --workers above what a server can still accept is refused
    /// before anything runs. pgbench runs beside PostgreSQL atomic and lock, redis-benchmark
    /// beside Redis atomic, when installed.
    #[arg(
        short,
        long,
        value_delimiter = ',',
        value_name = "TARGET,..",
        help_heading = "Matrix"
    )]
    target: Vec<TargetSpec>,
    /// SQL: isolation levels, comma separated [default: all three]
    ///
    /// read-committed, repeatable-read, serializable.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LEVEL,..",
        hide_possible_values = true,
        help_heading = "Matrix"
    )]
    isolation: Vec<racepool::target::sql::Isolation>,
    /// Strategies, comma separated [default: each target's own]
    #[arg(
        short,
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "NAME,..",
        hide_possible_values = true,
        long_help = bench_strategy_help(),
        help_heading = "Matrix"
    )]
    strategy: Vec<StrategyKind>,
    /// Worker counts [default: 1,2,4,16,64,256,1000; quick: 1,4,16; targets: 1,8,50]
    #[arg(
        short,
        long,
        value_delimiter = ',',
        value_name = "N,..",
        help_heading = "Matrix"
    )]
    workers: Vec<usize>,
    /// Slot counts [default: 1,64; quick: 1]
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "S,..",
        help_heading = "Matrix"
    )]
    slots: Vec<usize>,
    /// processes, threads or both [default: processes,threads]
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "MODE,..",
        hide_possible_values = true,
        help_heading = "Matrix"
    )]
    mode: Vec<Mode>,
    /// packed, padded or both [default: packed,padded; quick: packed]
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LAYOUT,..",
        hide_possible_values = true,
        help_heading = "Matrix"
    )]
    layout: Vec<Layout>,
    /// A small matrix for CI: under a minute
    #[arg(long, help_heading = "Runs")]
    quick: bool,
    /// Measured runs per point [default: 5; quick: 1; targets: 3]
    #[arg(short, long, value_name = "R", help_heading = "Runs")]
    repeat: Option<u32>,
    /// Targets: updates per worker in each run [default: 1000]
    ///
    /// A server's runs go by count, not time: every update is accounted for, and the peers
    /// make as many per client.
    #[arg(long, value_name = "N", help_heading = "Runs")]
    ops: Option<u64>,
    /// Stop each run after MS [default: 150; quick: 100; targets: none]
    ///
    /// A run stops by time, not by count: its workers finish the update in flight and stop. On
    /// a target, runs go by --ops and MS only caps one that is not done by then.
    #[arg(long, value_name = "MS", help_heading = "Runs")]
    budget_ms: Option<u64>,
    /// Skip the unmeasured warm-up run before each point
    #[arg(long, help_heading = "Runs")]
    no_warmup: bool,
    /// Seed of every run's random choices
    #[arg(long, default_value_t = 1, help_heading = "Runs")]
    seed: u64,
    /// Directory for the reports and plots
    ///
    /// report.md, summary.json, summary.csv, machine.json, points.jsonl and *.svg. It must
    /// not exist or be empty, unless --force.
    #[arg(
        short,
        long,
        default_value = "results/bench",
        value_name = "DIR",
        help_heading = "Output"
    )]
    out: std::path::PathBuf,
    /// Write into a --out directory that already holds files
    ///
    /// The bench's own files there are removed first, nothing else.
    #[arg(long, help_heading = "Output")]
    force: bool,
}

/// `torture bench --strategy`'s long help.
fn bench_strategy_help() -> String {
    let names: Vec<_> = StrategyKind::ALL.iter().map(|s| s.name()).collect();
    format!(
        "Strategies, comma separated [default: each target's own]\n\n\
         Memory's: {}. A server runs those named that it implements. `torture --help` says \
         what each does.",
        names.join(", ")
    )
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => return refused(&e),
        // --help and --version go to stdout, which may be full too.
        Err(e) => {
            return match e.print() {
                Ok(()) => ExitCode::SUCCESS,
                Err(io) => fail(out::stdout_failed(io)),
            }
        }
    };
    execute(cli).unwrap_or_else(fail)
}

/// A command line clap refused: all it says (what is wrong, a suggestion, the possible values,
/// the usage) on stderr, exit 2. Its first line starts `torture:` like every error of ours, in
/// clap's colours where stderr shows colours (anstream decides as clap would).
fn refused(e: &clap::Error) -> ExitCode {
    use std::io::Write;

    let styled = e.render();
    let mut text = styled.ansi().to_string();
    // A missing subcommand prints help, which has no `error:` to replace.
    if styled.to_string().starts_with("error:") {
        text = text.replacen("error:", "torture:", 1);
    }
    // If stderr cannot be written there is nobody left to tell.
    let _ = write!(anstream::stderr(), "{text}");
    ExitCode::from(2)
}

/// The one place an error becomes its line and its exit code.
fn fail(e: Error) -> ExitCode {
    out::note(&format!("torture: {e}"));
    ExitCode::from(e.exit_code() as u8)
}

/// Everything the binary prints goes through here: a write that fails (stdout full or closed)
/// is `Error::Output`, exit 4, never a panic (`println!` panics).
mod out {
    use std::io::Write;

    use racepool::error::Error;

    /// Writes `text` to stdout and flushes it.
    pub fn print(text: &str) -> Result<(), Error> {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(stdout_failed)
    }

    pub fn stdout_failed(e: std::io::Error) -> Error {
        Error::Output(format!("writing the results to stdout: {e}"))
    }

    /// One line on stderr. If stderr itself cannot be written there is nobody left to tell.
    pub fn note(line: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

fn execute(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        None => torture(&cli.run),
        Some(Command::Run(args)) => torture(&args),
        Some(Command::Verify {
            path,
            run,
            json,
            history,
            history_format,
        }) => verify(
            &path,
            run,
            json,
            history.as_deref().map(|d| (d, history_format)),
        ),
        Some(Command::Bench(args)) => bench(&args),
        Some(Command::Clean { target, run }) => clean(&target, run),
        Some(Command::Report { target, run, json }) => joined_report(&target, &run, json),
        Some(Command::Selftest { check }) => selftest(check),
    }
}

fn clean(target: &TargetSpec, run: Option<u64>) -> Result<ExitCode, Error> {
    /// Cleans whichever target the spec names; None: memory, which keeps nothing.
    struct Clean(Option<u64>);
    impl WithTarget for Clean {
        type Out = Result<Option<u64>, Error>;
        fn memory(self) -> Self::Out {
            Ok(None)
        }
        fn with<T: Target + 'static>(self, target: T) -> Self::Out {
            target.clean(self.0).map(Some)
        }
    }
    // The joined runs (--join) whose slots these were go with them.
    racepool::join::clean(target, run)?;
    match target.open(Clean(run))?? {
        None => out::print("memory: nothing to clean (a run's region vanishes with it)\n")?,
        Some(runs) => out::print(&format!("{target}: removed {runs} run(s)\n"))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn selftest(check: SelftestCheck) -> Result<ExitCode, Error> {
    let (json, holds, property, counts) = match check {
        SelftestCheck::SharedWrite { rounds } => {
            let r = selftest::shared_write(rounds)?;
            (json_line(&r), r.holds, r.property, r.counts())
        }
        SelftestCheck::Wake {
            scope,
            rounds,
            timeout_ms,
            use_flag,
        } => {
            let r = selftest::cross_process_wake(
                scope,
                use_flag.unwrap_or(scope),
                rounds.unwrap_or(scope.default_rounds()),
                timeout_ms.map_or(scope.default_timeout(), Duration::from_millis),
            )?;
            (json_line(&r), r.holds, r.property, r.counts())
        }
    };
    out::print(&json)?;
    if holds {
        Ok(ExitCode::SUCCESS)
    } else {
        out::note(&format!(
            "torture selftest: does NOT hold: {property} ({counts})"
        ));
        Ok(ExitCode::from(1))
    }
}

fn json_line(report: &impl serde::Serialize) -> String {
    serde_json::to_string(report).expect("reports serialise") + "\n"
}

/// The target a `torture verify` argument names, when it is a URL of a target that keeps its
/// own record (--store target); None: a path.
fn record_target(path: &Path) -> Option<TargetSpec> {
    let spec: TargetSpec = path.to_str()?.parse().ok()?;
    spec.keeps_record().then_some(spec)
}

/// Every recorded run (or `run`) the target at `spec` holds.
fn load_target(spec: &TargetSpec, run: Option<u64>) -> Result<racepool::verify::Loaded, Error> {
    struct Load(Option<u64>);
    impl WithTarget for Load {
        type Out = Result<racepool::verify::Loaded, Error>;
        fn memory(self) -> Self::Out {
            Err(Error::Usage("memory keeps no record".into()))
        }
        fn with<T: Target + 'static>(self, target: T) -> Self::Out {
            match target.records() {
                Some(r) => r.load_record(self.0),
                None => Err(Error::Usage(format!(
                    "{} keeps no record of its own",
                    target.kind().name()
                ))),
            }
        }
    }
    spec.open(Load(run))?
}

fn verify(
    path: &Path,
    run: Option<u64>,
    json: bool,
    history: Option<(&Path, Format)>,
) -> Result<ExitCode, Error> {
    if let Some((dir, _)) = history {
        history_dir(dir)?;
    }
    let t0 = std::time::Instant::now();
    let target = record_target(path);
    let loaded = match (&target, run) {
        (Some(spec), _) => {
            let loaded = load_target(spec, run)?;
            if loaded.runs.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: no run recorded with --store target{}",
                    racepool::target::sql::masked(&spec.to_string()),
                    run.map_or(String::new(), |r| format!(" has id {r}"))
                )));
            }
            loaded
        }
        (None, Some(_)) => {
            return Err(Error::Usage(
                "--run applies to a target URL (postgres://, mysql://, redis://); a file is verified whole".into(),
            ))
        }
        (None, None) => racepool::verify::load(path)?,
    };
    let verdict = racepool::verify::verify(&loaded);
    let secs = t0.elapsed().as_secs_f64();
    if let Some((dir, format)) = history {
        write_history(&loaded, dir, format)?;
    }
    if json {
        out::print(
            &(serde_json::to_string_pretty(&verdict).expect("the verdict serialises") + "\n"),
        )?;
    } else {
        out::print(&format!(
            "{}{}\n",
            report::verify::render(&verdict),
            report::verify::checked(&verdict, secs)
        ))?;
    }
    if let Some(c) = &verdict.corrupt {
        out::note(&format!("torture verify: {}: {c}", path.display()));
    }
    // 0: every run verified and the store whole; 1: a run failed or is incomplete.
    if verdict.verified {
        Ok(ExitCode::SUCCESS)
    } else {
        out::note(&format!(
            "torture verify: {}: {}",
            path.display(),
            report::verify::overall(&verdict)
        ));
        Ok(ExitCode::from(1))
    }
}

/// Makes the history directory before anything runs: a path that cannot be one is bad input.
fn history_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Usage(format!("--history {}: {e}", dir.display())))
}

/// Writes the histories of what `loaded` holds into `dir`; says which runs it left out.
fn write_history(
    loaded: &racepool::verify::Loaded,
    dir: &Path,
    format: Format,
) -> Result<(), Error> {
    let written =
        export::write_dir(loaded, dir, format).map_err(|e| Error::Output(e.to_string()))?;
    for skipped in &written.skipped {
        out::note(&format!("torture: --history: {skipped}"));
    }
    Ok(())
}

fn torture(args: &RunArgs) -> Result<ExitCode, Error> {
    let options = Options::from_args(args)?;
    if let Some(join) = racepool::join::Join::from_args(&args.join, &options)? {
        return joined(&options, &join, args.json);
    }
    if let Some(dir) = &options.history {
        // Flags were refused above, before the directory is made: a refused run leaves nothing.
        history_dir(dir)?;
    }
    let summary = if args.json {
        // JSON is one document, written whole at the end.
        let summary = racepool::run::run(&options)?;
        out::print(
            &(serde_json::to_string_pretty(&summary).expect("the summary serialises") + "\n"),
        )?;
        summary
    } else {
        // Each strategy's row as soon as it is done (the table's head with the first), the
        // notes at the end: together exactly `render_text_with`. A run that fails before its
        // first row prints no table. Printed between runs and flushed: no worker inherits
        // unwritten output.
        let columns = report::Columns::of(&options);
        let mut head = Some(report::render_head(
            &options,
            report::Machine::this().cores,
            &columns,
        ));
        let summary = racepool::run::run_each(&options, &mut |row| {
            let head = head.take().unwrap_or_default();
            out::print(&(head + &report::render_row(row, &columns)))
        })?;
        let detail = if args.verbose {
            report::Detail::Full
        } else {
            report::Detail::Brief
        };
        out::print(&(head.unwrap_or_default() + &report::render_tail(&summary, detail)))?;
        summary
    };
    if let (Some(store), Some(dir)) = (&options.store, &options.history) {
        write_history(
            &racepool::verify::load(store.spec.path())?,
            dir,
            args.history_format,
        )?;
    }
    if let (true, Some(dir)) = (options.store_target, &options.history) {
        let runs: Vec<u64> = summary
            .strategies
            .iter()
            .flat_map(|s| &s.runs)
            .filter_map(|r| r.history.as_ref().map(|h| h.run))
            .collect();
        for run in runs {
            write_history(
                &load_target(&options.target, Some(run))?,
                dir,
                args.history_format,
            )?;
        }
    }
    for s in summary
        .strategies
        .iter()
        .filter(|s| s.verdict == Verdict::Failed)
    {
        // A run can fail on its stored record alone (the region exact): say only what broke.
        if s.lost > 0 || s.unexpected > 0 {
            out::note(&format!(
                "torture: {} promises exactness but lost {} update(s) (+{} unexpected) in {} of {} run(s)",
                s.label(),
                s.lost,
                s.unexpected,
                s.runs.iter().filter(|r| r.verdict == Verdict::Failed).count(),
                s.runs.len()
            ));
        }
        for h in s.runs.iter().filter_map(|r| r.history.as_ref()) {
            if let Some(p) = h.problems.first() {
                out::note(&format!(
                    "torture: {}'s stored record (run {}) is not verified: {p}",
                    s.strategy.name(),
                    h.run
                ));
            }
        }
    }
    let unplanned = summary.unplanned_deaths();
    if unplanned > 0 {
        eprintln!(
            "torture: {unplanned} worker(s) were killed from outside the run (unplanned); the counts above are bounded, not exact"
        );
    }
    Ok(if summary.interrupted {
        ExitCode::from(exit::INTERRUPTED)
    } else if !summary.all_exact {
        ExitCode::from(exit::CHECK_FAILED)
    } else if unplanned > 0 {
        ExitCode::from(exit::UNPLANNED_DEATHS)
    } else {
        ExitCode::SUCCESS
    })
}

/// This host's part of a joined run: the host that reports prints the verdict; every other
/// prints one line naming it. Every host exits with the verdict's code.
fn joined(options: &Options, join: &racepool::join::Join, json: bool) -> Result<ExitCode, Error> {
    let outcome = racepool::join::run(options, join)?;
    let j = &outcome.joined;
    if json {
        // Every host prints the same verdict (`reported_by` names the host that judged it).
        out::print(&(serde_json::to_string_pretty(j).expect("the verdict serialises") + "\n"))?;
    } else if outcome.reported_by == outcome.me {
        out::print(&j.render())?;
    } else {
        let mine = j.hosts.iter().find(|h| h.host == outcome.me);
        out::print(&format!(
            "joined run {}: host {} done ({} updates acknowledged); verdict {} (printed by host {}; torture report --target {} --run {} prints it again)\n",
            j.name,
            outcome.me,
            mine.map_or(0, |h| h.acknowledged),
            j.verdict_text(),
            outcome.reported_by,
            j.url,
            j.name
        ))?;
    }
    Ok(ExitCode::from(j.exit_code()))
}

fn joined_report(target: &TargetSpec, run: &str, json: bool) -> Result<ExitCode, Error> {
    let j = racepool::join::load(target, run)?;
    if json {
        out::print(&(serde_json::to_string_pretty(&j).expect("the verdict serialises") + "\n"))?;
    } else {
        out::print(&j.render())?;
    }
    Ok(ExitCode::from(j.exit_code()))
}

fn bench(args: &BenchArgs) -> Result<ExitCode, Error> {
    let mut opts = racepool::bench::BenchOptions::defaults(args.quick);
    if args.workers.contains(&0) || args.slots.contains(&0) {
        return Err(Error::Usage(
            "--workers and --slots take counts of at least 1".into(),
        ));
    }
    opts.out = args.out.clone();
    opts.force = args.force;
    fn or<T: Clone>(given: &[T], default: &mut Vec<T>) {
        if !given.is_empty() {
            *default = given.to_vec();
        }
    }
    if args.target.iter().any(|t| *t != TargetSpec::Memory) {
        // A server's round trip is thousands of times memory's: fewer, smaller points.
        opts.workers = racepool::bench::TARGET_WORKERS.to_vec();
        opts.repeat = racepool::bench::TARGET_REPEAT;
        opts.strategies = Vec::new();
        opts.modes = vec![Mode::Processes];
    }
    or(&args.target, &mut opts.targets);
    or(&args.isolation, &mut opts.isolation);
    opts.ops = args.ops.unwrap_or(opts.ops);
    opts.target_budget = args.budget_ms.map(Duration::from_millis);
    or(&args.strategy, &mut opts.strategies);
    or(&args.workers, &mut opts.workers);
    or(&args.slots, &mut opts.slots);
    or(&args.mode, &mut opts.modes);
    or(&args.layout, &mut opts.layouts);
    opts.repeat = args.repeat.unwrap_or(opts.repeat);
    opts.budget = args.budget_ms.map_or(opts.budget, Duration::from_millis);
    opts.warmup &= !args.no_warmup;
    opts.seed = args.seed;
    // Recorded in machine.json and report.md: a URL's password is masked.
    opts.command = std::env::args()
        .map(|a| {
            a.split(',')
                .map(racepool::target::sql::masked)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let summary = racepool::bench::bench_each(&opts, &mut |line| out::print(line))?;
    out::print(&format!(
        "bench: {} point(s) written to {} (report.md, summary.json, summary.csv, machine.json, points.jsonl, plots)\n",
        summary.points.len(),
        opts.out.display()
    ))?;
    for p in summary
        .points
        .iter()
        .filter(|p| p.verdict == Verdict::Failed)
    {
        out::note(&format!(
            "torture: {} promises exactness but lost {} update(s) (+{} unexpected)",
            p.key.label(),
            p.lost,
            p.unexpected
        ));
    }
    Ok(if summary.all_exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // Clashing short flags, a default outside its possible values, a bad value name.
        Cli::command().debug_assert();
    }

    /// The example commands of an after_help: lines `  torture …`, up to the two spaces before
    /// their description; `a && b` is two commands.
    fn examples(help: &str) -> Vec<Vec<&str>> {
        help.lines()
            .filter_map(|l| l.strip_prefix("  "))
            .filter(|l| l.starts_with("torture "))
            .map(|l| l.split("  ").next().unwrap_or(l))
            .flat_map(|l| l.split(" && "))
            .map(|c| c.split_whitespace().collect())
            .collect()
    }

    #[test]
    fn every_example_in_the_help_is_a_valid_command() {
        let helps = [
            RUN_AFTER_HELP,
            RUN_AFTER_LONG_HELP,
            VERIFY_AFTER_HELP,
            BENCH_AFTER_HELP,
            SELFTEST_AFTER_HELP,
        ];
        let mut seen = 0;
        for words in helps.iter().flat_map(|h| examples(h)) {
            let cli = Cli::try_parse_from(&words)
                .unwrap_or_else(|e| panic!("{}: {}", words.join(" "), e.render()));
            // A run is validated as it would be before it forks (nothing is forked here).
            let run = match &cli.command {
                None => Some(&cli.run),
                Some(Command::Run(args)) => Some(&**args),
                _ => None,
            };
            if let Some(args) = run {
                if let Err(e) = Options::from_args(args) {
                    panic!("{}: {e}", words.join(" "));
                }
            }
            seen += 1;
        }
        assert!(
            seen >= 12,
            "only {seen} examples found: did their layout change?"
        );
    }
}
