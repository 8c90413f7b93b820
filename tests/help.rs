//! What a person meets first, as snapshots: `-h` and `--help` of every command and the errors
//! of common mistakes. A change to any of them shows as a diff against tests/snapshots/.
//!
//! After a deliberate change, rewrite the snapshots and read the diff before committing:
//!
//!     SNAPSHOTS=overwrite cargo test --test help
//!
//! The binary is run at 100 columns (COLUMNS; clap's `max_term_width` is 100 too, so any wider
//! terminal sees exactly this) and without colour, so the snapshots hold on any machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::torture;

/// Runs `torture ARGS` as the snapshots see it: no stream a terminal (clap would take its
/// width from any of the three), 100 columns, no colour.
fn run(args: &[&str]) -> Output {
    torture()
        .args(args)
        .stdin(Stdio::null())
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("torture runs")
}

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"))
}

/// The command, its exit code and what it printed on each stream, compared with the snapshot
/// `name`.
fn assert_snapshot(name: &str, args: &[&str]) -> Output {
    let out = run(args);
    let mut text = format!(
        "$ torture {}\nexit: {}\n",
        args.join(" "),
        out.status.code().map_or("signal".into(), |c| c.to_string())
    );
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if !bytes.is_empty() {
            text.push_str(&format!("--- {stream}\n{}", String::from_utf8_lossy(bytes)));
        }
    }
    let expected = snapbox::Data::read_from(&snapshot_path(name), None);
    snapbox::assert_data_eq!(text, expected);
    out
}

const HELP: [(&str, &[&str]); 17] = [
    ("help-h", &["-h"]),
    ("help-long", &["--help"]),
    ("run-h", &["run", "-h"]),
    ("run-help", &["run", "--help"]),
    ("verify-h", &["verify", "-h"]),
    ("verify-help", &["verify", "--help"]),
    ("bench-h", &["bench", "-h"]),
    ("bench-help", &["bench", "--help"]),
    ("clean-h", &["clean", "-h"]),
    ("clean-help", &["clean", "--help"]),
    ("report-h", &["report", "-h"]),
    ("report-help", &["report", "--help"]),
    ("selftest-h", &["selftest", "-h"]),
    ("selftest-help", &["selftest", "--help"]),
    (
        "selftest-shared-write-help",
        &["selftest", "shared-write", "--help"],
    ),
    ("selftest-wake-h", &["selftest", "wake", "-h"]),
    ("selftest-wake-help", &["selftest", "wake", "--help"]),
];

#[test]
fn help_of_every_command_matches_its_snapshot() {
    for (name, args) in HELP {
        let out = assert_snapshot(name, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
    // A command added later gets its snapshots too.
    let top = String::from_utf8(run(&["-h"]).stdout).unwrap();
    let commands = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help");
    for command in commands {
        for flag in ["-h", "--help"] {
            assert!(
                HELP.iter().any(|(_, args)| *args == [command, flag]),
                "torture {command} {flag} has no snapshot: add it to HELP"
            );
        }
    }
}

/// Common mistakes: a typo in a value or a flag, a missing argument, a refused value.
const MISTAKES: [(&str, &[&str]); 8] = [
    ("error-strategy-typo", &["--strategy", "cass"]),
    ("error-flag-typo", &["--worker", "10"]),
    ("error-verify-without-path", &["verify"]),
    ("error-zero-workers", &["--workers", "0"]),
    ("error-unknown-target", &["--target", "sqlite://x"]),
    ("error-missing-value", &["-w"]),
    ("error-selftest-without-check", &["selftest"]),
    (
        "error-strategy-with-fix-scenario",
        &["--scenario", "ledger", "--strategy", "atomic"],
    ),
];

#[test]
fn common_mistakes_print_what_to_do_and_exit_2() {
    for (name, args) in MISTAKES {
        let out = assert_snapshot(name, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

/// The codes of the lines after `Exit codes` up to the next blank line: `  N    meaning`.
fn help_codes(help: &str) -> Vec<u8> {
    help.lines()
        .skip_while(|l| !l.starts_with("Exit codes"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let code = l.split_whitespace().next().unwrap_or_default();
            code.parse()
                .unwrap_or_else(|_| panic!("not an exit code line: {l:?}"))
        })
        .collect()
}

#[test]
fn the_help_lists_the_exit_codes_of_docs_exit_codes_md() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/exit-codes.md"))
            .expect("docs/exit-codes.md");
    // The table's rows: `| N | meaning | when |`.
    let documented: Vec<u8> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next()?.trim().parse().ok())
        .collect();
    assert!(documented.len() >= 6, "the doc's table: {documented:?}");
    for args in [&["-h"][..], &["--help"], &["run", "--help"]] {
        let help = String::from_utf8(run(args).stdout).unwrap();
        assert_eq!(
            help_codes(&help),
            documented,
            "{args:?} and the doc disagree"
        );
    }
    // Each command lists the codes it can end with: all of them documented.
    for command in ["verify", "bench", "selftest"] {
        let help = String::from_utf8(run(&[command, "--help"]).stdout).unwrap();
        let codes = help_codes(&help);
        assert!(
            codes.contains(&0) && codes.contains(&2),
            "{command}: {codes:?}"
        );
        for code in codes {
            assert!(
                documented.contains(&code),
                "{command} --help lists exit {code}, which docs/exit-codes.md does not"
            );
        }
    }
}

/// The examples under `torture -h`, run as written and in order (the verify example reads the
/// log the one before it wrote) in a scratch directory: a person who copies one sees it work.
#[test]
fn every_example_of_torture_h_runs_as_written_and_exits_0() {
    let help = String::from_utf8(run(&["-h"]).stdout).unwrap();
    let examples: Vec<Vec<&str>> = help
        .lines()
        .skip_while(|l| *l != "Examples:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let command = l.trim_start().split("  ").next().unwrap_or_default();
            command.split_whitespace().skip(1).collect()
        })
        .collect();
    assert!(examples.len() >= 4, "examples: {examples:?}");
    let dir = std::env::temp_dir().join(format!("racepool-help-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failed = Vec::new();
    for args in examples {
        // A bench measures for minutes; bench's own examples are parsed by the binary's tests.
        if args.first() == Some(&"bench") {
            continue;
        }
        let out = torture().args(&args).current_dir(&dir).output().unwrap();
        if out.status.code() != Some(0) {
            failed.push(format!(
                "torture {}: exit {:?}: {}",
                args.join(" "),
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failed.is_empty(), "{failed:#?}");
}
