//! `torture`: parse the command line, run, print, exit. Errors become exit codes in one place
//! (`Error::exit_code`; docs/exit-codes.md), and everything printed goes through `out`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use racepool::error::{exit, Error};
use racepool::history::export::{self, Format};
use racepool::options::{Mode, Options, RunArgs};
use racepool::region::Layout;
use racepool::report::{self, Verdict};
use racepool::selftest::{self, WakeScope};
use racepool::strategy::StrategyKind;
use racepool::target::{Target, TargetSpec, WithTarget};

/// Tortures concurrent update strategies on shared memory across forked worker processes and
/// proves, with exact counts, whether any update was lost.
#[derive(Parser)]
#[command(
    name = "torture",
    version,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the torture test (the default when no subcommand is given).
    Run(RunArgs),
    /// Prove from a stored record alone (an event log or an SQLite database) that no update
    /// was lost or duplicated. Exit 0: every run verified; 1: a run not verified, or the
    /// record incomplete (a run without its end, a cut file, no closing record); 2: unreadable,
    /// or not a racepool record.
    Verify {
        /// The event log or SQLite database a run wrote with --store.
        path: PathBuf,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Also write each run's history, one Jepsen counter history per run and slot, into
        /// this directory (created if missing).
        #[arg(long, value_name = "DIR")]
        history: Option<PathBuf>,
        /// edn: Jepsen's form, one op map a line; json: elle-cli's, one array.
        #[arg(long, value_enum, default_value = "edn")]
        history_format: Format,
    },
    /// Measure the strategy × workers × slots × mode × layout matrix and write reports to --out.
    Bench(BenchArgs),
    /// Remove what runs left on a target (a dir: target's files), every run's or one's, and
    /// nothing else; prints how many runs it removed. Exit 2: the target cannot be reached.
    Clean {
        /// The target the runs used: dir:PATH (memory keeps nothing).
        #[arg(value_name = "TARGET")]
        target: TargetSpec,
        /// Only this run: its id, as its files' names and `torture verify` print it.
        #[arg(long, value_name = "ID")]
        run: Option<u64>,
    },
    /// Check the properties racepool relies on: shared memory and cross-process wakes.
    /// Prints a JSON report; exit 0 when the property holds, 1 when it does not.
    Selftest {
        #[command(subcommand)]
        check: SelftestCheck,
    },
}

#[derive(Subcommand)]
enum SelftestCheck {
    /// A forked child's write is seen through the shared map, not through map_anon.
    SharedWrite {
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
    },
    /// A futex wake from the parent reaches a child sleeping on the region with --scope
    /// shared; with --scope private (a negative control) it must not.
    Wake {
        #[arg(long, value_enum)]
        scope: WakeScope,
        /// [default: 100 shared, 5 private: a private round always waits out its timeout]
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: Option<u32>,
        /// How long the child sleeps at most, in ms [default: 1000 shared, 200 private].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_ms: Option<u64>,
        /// For tests: the futex flag both sides use [default: --scope]. The other scope's
        /// flag makes the property fail, which shows the exit code.
        #[arg(long, value_enum, value_name = "SCOPE")]
        use_flag: Option<WakeScope>,
    },
}

#[derive(Args, Clone)]
struct BenchArgs {
    /// Directory for report.md, summary.json, summary.csv, machine.json, points.jsonl, *.svg.
    /// It must not exist or be empty, unless --force.
    #[arg(long, default_value = "results/bench", value_name = "DIR")]
    out: std::path::PathBuf,
    /// Write into a --out directory that already holds files: the bench's own files there are
    /// removed first, nothing else.
    #[arg(long)]
    force: bool,
    /// A small matrix for CI: under a minute.
    #[arg(long)]
    quick: bool,
    /// Strategies, comma separated [default: all six].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME")]
    strategy: Vec<StrategyKind>,
    /// Worker counts, comma separated [default: 1,2,4,16,64,256,1000; quick: 1,4,16].
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    workers: Vec<usize>,
    /// Slot counts, comma separated [default: 1,64; quick: 1].
    #[arg(long, value_delimiter = ',', value_name = "S,..")]
    slots: Vec<usize>,
    /// Modes, comma separated [default: processes,threads].
    #[arg(long, value_enum, value_delimiter = ',')]
    mode: Vec<Mode>,
    /// Layouts, comma separated [default: packed,padded; quick: packed].
    #[arg(long, value_enum, value_delimiter = ',')]
    layout: Vec<Layout>,
    /// Measured runs per point [default: 5; quick: 1].
    #[arg(long, value_name = "R")]
    repeat: Option<u32>,
    /// Each run is told to stop after this many ms [default: 150; quick: 100].
    #[arg(long, value_name = "MS")]
    budget_ms: Option<u64>,
    /// Skip the unmeasured warm-up run before each point.
    #[arg(long)]
    no_warmup: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // One line naming the flag; clap's usage hints follow it in its own rendering.
            let text = e.render().to_string();
            out::note(&format!(
                "torture: {}",
                text.lines()
                    .next()
                    .unwrap_or("bad arguments")
                    .trim_start_matches("error: ")
            ));
            return ExitCode::from(2);
        }
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
            json,
            history,
            history_format,
        }) => verify(&path, json, history.as_deref().map(|d| (d, history_format))),
        Some(Command::Bench(args)) => bench(&args),
        Some(Command::Clean { target, run }) => clean(&target, run),
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

fn verify(path: &Path, json: bool, history: Option<(&Path, Format)>) -> Result<ExitCode, Error> {
    if let Some((dir, _)) = history {
        history_dir(dir)?;
    }
    let t0 = std::time::Instant::now();
    let loaded = racepool::verify::load(path)?;
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
    if let Some(dir) = &options.history {
        // Flags were refused above, before the directory is made: a refused run leaves nothing.
        history_dir(dir)?;
    }
    let summary = racepool::run::run(&options)?;
    if args.json {
        out::print(
            &(serde_json::to_string_pretty(&summary).expect("the summary serialises") + "\n"),
        )?;
    } else {
        out::print(&report::render_text(&summary))?;
    }
    if let (Some(store), Some(dir)) = (&options.store, &options.history) {
        write_history(
            &racepool::verify::load(store.spec.path())?,
            dir,
            args.history_format,
        )?;
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
    or(&args.strategy, &mut opts.strategies);
    or(&args.workers, &mut opts.workers);
    or(&args.slots, &mut opts.slots);
    or(&args.mode, &mut opts.modes);
    or(&args.layout, &mut opts.layouts);
    opts.repeat = args.repeat.unwrap_or(opts.repeat);
    opts.budget = args.budget_ms.map_or(opts.budget, Duration::from_millis);
    opts.warmup &= !args.no_warmup;
    opts.seed = args.seed;
    opts.command = std::env::args().collect();
    let summary = racepool::bench::bench(&opts)?;
    out::print(&format!(
        "bench: {} point(s) written to {} (report.md, summary.json, summary.csv, machine.json, points.jsonl, 4 plots)\n",
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
