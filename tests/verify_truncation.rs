//! `torture verify` never calls a run verified whose end is missing, and never exits 0 on a
//! record that lacks anything: finished stores written by the built binary are cut at 200
//! offsets and have each kind of record (or row) removed in turn, then verified by the binary.
//! What is not a racepool record at all exits 2.

mod common;

use common::{run, TempPath};
use racepool::history::frame;
use racepool::history::Record;

/// The slowest a run may stall before the binary gives up (seconds): these runs take
/// milliseconds, but the machine may be busy.
const STALL: &str = "600";

/// What one record of a log is.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Run(u64),
    Event,
    Transfer,
    Reads,
    /// A run's end: the run and its killed workers.
    End(u64, Vec<u32>),
    Close,
    Damaged,
}

/// One record of a log: its bytes `at..end` and who wrote it.
#[derive(Clone, Debug)]
struct Rec {
    at: usize,
    end: usize,
    kind: Kind,
    writer: u32,
}

/// Every record of `bytes`, damaged ones included.
fn records(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    frame::scan_resync(bytes, |r| match r {
        Ok(f) => {
            let kind = match frame::decode(&f, 0).expect("intact records decode") {
                Record::Run(info) => Kind::Run(info.run),
                Record::Event(_) => Kind::Event,
                Record::Transfer(_) => Kind::Transfer,
                Record::Reads(_) => Kind::Reads,
                Record::End(e) => Kind::End(e.run, e.killed.iter().map(|k| k.worker).collect()),
                Record::Close(_) => Kind::Close,
            };
            out.push(Rec {
                at: f.offset as usize,
                end: (f.offset + f.len) as usize,
                kind,
                writer: f.writer,
            });
        }
        Err(d) => {
            let (at, len) = match d.at {
                racepool::history::loaded::Place::Bytes { offset, len } => (offset, len),
                other => panic!("a log's damage lies in bytes, not {other}"),
            };
            out.push(Rec {
                at: at as usize,
                end: (at + len) as usize,
                kind: Kind::Damaged,
                writer: u32::MAX,
            });
        }
    });
    out
}

/// A run of a log: its id, and the indices of its header and end among the records.
struct RunAt {
    id: u64,
    header: usize,
    end: usize,
    killed: Vec<u32>,
}

fn runs(recs: &[Rec]) -> Vec<RunAt> {
    let mut out = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        if let Kind::Run(id) = r.kind {
            let end = recs
                .iter()
                .position(|e| matches!(&e.kind, Kind::End(run, _) if *run == id))
                .expect("a finished log ends every run");
            let Kind::End(_, killed) = &recs[end].kind else {
                unreachable!()
            };
            out.push(RunAt {
                id,
                header: i,
                end,
                killed: killed.clone(),
            });
        }
    }
    out
}

/// Runs `torture ARGS` and demands exit 0.
fn write_store(args: &[&str]) {
    let (code, text, _) = run(args);
    assert_eq!(code, 0, "{args:?}: {text}");
}

/// A finished store (`store`: `log:PATH` or `sqlite:PATH`) of one run of a scenario's fix.
fn scenario_store(scenario: &str, fix: &str, store: &str) {
    write_store(&[
        "--scenario",
        scenario,
        "--fix",
        fix,
        "--workers",
        "4",
        "--ops",
        "300",
        "--latency",
        "off",
        "--stall-timeout",
        STALL,
        "--store",
        store,
    ]);
}

/// `torture verify PATH`: (exit code, stdout, stderr). A panic is never an answer.
fn verify(path: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut args = vec!["verify", path.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let (code, _, out) = run(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        code != 101 && !stderr.contains("panicked"),
        "verify panicked on {}: {stderr}",
        path.display()
    );
    (code, stdout, stderr)
}

/// The first line verify prints about run `id`, if it lists the run.
fn run_line(stdout: &str, id: u64) -> Option<&str> {
    let head = format!("run {id} (");
    stdout.lines().find(|l| l.starts_with(&head))
}

/// A finished log of three lock strategies with deaths (`--kill`, and a `--crash-at` death
/// certain in every run), so killed workers' missing batches are in it.
fn log_with_deaths(log: &TempPath) {
    write_store(&[
        "--workers",
        "8",
        "--ops",
        "400",
        "--strategy",
        "futex-lock,pthread,spin-lock",
        "--crash-at",
        "after-write:150",
        "--kill",
        "3",
        "--batch",
        "16",
        "--latency",
        "off",
        "--stall-timeout",
        STALL,
        "--store",
        &log.arg("log:"),
    ]);
}

/// Tears the last record of a killed worker (its header and 3 payload bytes kept, the records
/// after it intact): what a worker killed inside its `write(2)` leaves. `None` when no killed
/// worker persisted a record (a `--kill` can land before a worker's first batch).
fn tear_a_killed_workers_last_record(bytes: &[u8]) -> Option<Vec<u8>> {
    let recs = records(bytes);
    let last = runs(&recs).iter().find_map(|run| {
        run.killed.iter().find_map(|&w| {
            let last = recs[run.header..run.end]
                .iter()
                .rposition(|r| r.writer == w && r.kind == Kind::Event)?;
            Some(recs[run.header + last].clone())
        })
    })?;
    let mut out = bytes[..last.at + frame::HEADER + 3].to_vec();
    out.extend_from_slice(&bytes[last.end..]);
    Some(out)
}

/// A finished log with deaths in every run and a killed worker's torn last record.
fn log_with_a_torn_record(log: &TempPath) -> Vec<u8> {
    (0..5)
        .find_map(|_| {
            log_with_deaths(log);
            tear_a_killed_workers_last_record(&std::fs::read(log.path()).unwrap())
        })
        .expect("in 5 logs, a killed worker that persisted a record")
}

/// 200 offsets in 1..len: every start and end of each run's header and end record, of the
/// closing record and of the damaged record, a byte inside each, and pseudo-random offsets,
/// half of them on a record boundary.
fn cuts(recs: &[Rec], len: usize) -> Vec<usize> {
    let mut at: Vec<usize> = Vec::new();
    for r in recs
        .iter()
        .filter(|r| !matches!(r.kind, Kind::Event | Kind::Transfer | Kind::Reads))
    {
        at.extend([r.at, r.at + 1, r.at + frame::HEADER, r.end - 1, r.end]);
    }
    // xorshift: the same "random" offsets on every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while {
        at.retain(|&c| c >= 1 && c < len);
        at.sort_unstable();
        at.dedup();
        at.len() < 200
    } {
        let n = next();
        let c = if n % 2 == 0 {
            recs[(n / 2 % recs.len() as u64) as usize].at
        } else {
            (n / 2 % len as u64) as usize
        };
        at.push(c);
    }
    at.truncate(200);
    at
}

#[test]
fn a_cut_log_never_verifies_a_run_whose_end_is_cut_and_never_exits_0() {
    let log = TempPath::new("sweep-cut.log");
    let bytes = log_with_a_torn_record(&log);
    std::fs::write(log.path(), &bytes).unwrap();
    // The control: whole, with its torn record, it verifies.
    let (code, stdout, stderr) = verify(log.path(), false);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("1 torn record(s) accepted"), "{stdout}");
    let recs = records(&bytes);
    let runs = runs(&recs);
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter().all(|r| !r.killed.is_empty()),
        "deaths in every run"
    );
    let cut_log = TempPath::new("sweep-cut-copy.log");
    for cut in cuts(&recs, bytes.len()) {
        std::fs::write(cut_log.path(), &bytes[..cut]).unwrap();
        let (code, stdout, stderr) = verify(cut_log.path(), false);
        let what = format!("cut at {cut} of {}:\n{stdout}{stderr}", bytes.len());
        // Every cut loses at least the closing record: never 0, and never "unreadable".
        assert_eq!(code, 1, "{what}");
        assert!(stdout.contains("not closed"), "{what}");
        // A cut takes, it never falsifies: the last word is "incomplete", not "wrong".
        assert!(stderr.ends_with(": INCOMPLETE, not verified\n"), "{what}");
        for r in &runs {
            let (header_whole, end_whole) = (recs[r.header].end <= cut, recs[r.end].end <= cut);
            match run_line(&stdout, r.id) {
                None => assert!(!header_whole, "run {} not listed; {what}", r.id),
                Some(line) if !end_whole => {
                    assert!(line.ends_with("INCOMPLETE, not verified"), "{line}; {what}")
                }
                // Whole runs before the cut still verify: a cut takes nothing from them.
                Some(line) => assert!(line.ends_with(": verified"), "{line}; {what}"),
            }
        }
        // Where the readable record ends is said.
        assert!(
            stdout.contains(&format!(" of {cut}; ")),
            "no readable extent; {what}"
        );
    }
}

/// `bytes` without record `i`.
fn without(bytes: &[u8], recs: &[Rec], i: usize) -> Vec<u8> {
    let mut out = bytes[..recs[i].at].to_vec();
    out.extend_from_slice(&bytes[recs[i].end..]);
    out
}

/// What verify must say when one record is gone.
enum Expect {
    /// Run `id` is listed and incomplete.
    Incomplete(u64),
    /// Run `id` is listed and not verified.
    Failed(u64),
    /// Run `id` is not listed, and its records are named as a run's whose header is missing.
    Headless(u64),
    /// Every run verifies; the store as a whole says this.
    Store(&'static str),
}

fn check_without(path: &std::path::Path, bytes: &[u8], what: &str, expect: Expect) {
    std::fs::write(path, bytes).unwrap();
    let (code, stdout, stderr) = verify(path, false);
    let all = format!("{what}:\n{stdout}{stderr}");
    assert_eq!(code, 1, "{all}");
    match expect {
        Expect::Incomplete(id) => {
            let line = run_line(&stdout, id).unwrap_or_else(|| panic!("not listed; {all}"));
            assert!(line.contains("INCOMPLETE, not verified"), "{all}");
            let (_, json, _) = verify(path, true);
            let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
            let r = v["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["run"] == id)
                .expect("the run in JSON");
            assert_eq!(r["status"], "incomplete", "{all}");
            assert_eq!(r["verified"], false, "{all}");
            assert_eq!(v["verified"], false, "{all}");
        }
        Expect::Failed(id) => {
            let line = run_line(&stdout, id).unwrap_or_else(|| panic!("not listed; {all}"));
            assert!(line.contains("NOT verified"), "{all}");
        }
        Expect::Headless(id) => {
            assert!(run_line(&stdout, id).is_none(), "{all}");
            assert!(
                stdout.contains(&format!("of run {id}, whose header is missing")),
                "{all}"
            );
        }
        Expect::Store(text) => assert!(stdout.contains(text), "{all}"),
    }
}

/// Removes, one at a time, each run's header and end, a live worker's first, middle and last
/// record of `kind`, and the closing record.
fn remove_each_kind(bytes: &[u8], name: &str, kind: Kind) {
    let recs = records(bytes);
    let copy = TempPath::new(&format!("sweep-del-{name}"));
    for r in runs(&recs) {
        let h = r.header;
        check_without(
            copy.path(),
            &without(bytes, &recs, h),
            &format!("{name}: run {} without its header", r.id),
            Expect::Headless(r.id),
        );
        check_without(
            copy.path(),
            &without(bytes, &recs, r.end),
            &format!("{name}: run {} without its end", r.id),
            Expect::Incomplete(r.id),
        );
        // A live worker's records: removing one is a gap in what it acknowledged.
        let live = (0..)
            .take(10_000)
            .find(|w| {
                !r.killed.contains(w)
                    && recs[h..r.end]
                        .iter()
                        .any(|x| x.writer == *w && x.kind == kind)
            })
            .expect("a live worker with records of the kind");
        let mine: Vec<usize> = (h..r.end)
            .filter(|&i| recs[i].writer == live && recs[i].kind == kind)
            .collect();
        assert!(!mine.is_empty(), "{name}: no {kind:?} of worker {live}");
        for i in [mine[0], mine[mine.len() / 2], mine[mine.len() - 1]] {
            check_without(
                copy.path(),
                &without(bytes, &recs, i),
                &format!("{name}: run {} without {kind:?} record {i}", r.id),
                Expect::Failed(r.id),
            );
        }
    }
    let close = recs.iter().position(|r| r.kind == Kind::Close).unwrap();
    check_without(
        copy.path(),
        &without(bytes, &recs, close),
        &format!("{name}: without its closing record"),
        Expect::Store("no closing record"),
    );
}

#[test]
fn a_log_missing_any_kind_of_record_is_never_verified() {
    let log = TempPath::new("sweep-del.log");
    let bytes = log_with_a_torn_record(&log);
    remove_each_kind(&bytes, "deaths.log", Kind::Event);
    // The scenarios' own records: a ledger's transfers, a cache's reads.
    for (scenario, fix, kind) in [
        ("ledger", "ordered-locks", Kind::Transfer),
        ("cache", "seqlock", Kind::Reads),
    ] {
        let log = TempPath::new(&format!("sweep-del-{scenario}.log"));
        scenario_store(scenario, fix, &log.arg("log:"));
        let bytes = std::fs::read(log.path()).unwrap();
        remove_each_kind(&bytes, &format!("{scenario}.log"), kind);
    }
}

/// Runs `sql` on a copy of the database `db` and checks what verify says of the copy.
fn check_sql(db: &TempPath, sql: &str, expect: Expect) {
    let copy = TempPath::new("sweep-sql-copy.db");
    std::fs::copy(db.path(), copy.path()).unwrap();
    let conn = rusqlite::Connection::open(copy.path()).unwrap();
    conn.execute_batch(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(conn);
    let bytes = std::fs::read(copy.path()).unwrap();
    check_without(copy.path(), &bytes, sql, expect);
}

/// The runs of a database, in order.
fn db_runs(db: &TempPath) -> Vec<u64> {
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    let mut stmt = conn.prepare("SELECT run FROM runs ORDER BY rowid").unwrap();
    let runs = stmt
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as u64)
        .collect();
    runs
}

#[test]
fn a_database_missing_any_kind_of_row_is_never_verified() {
    let db = TempPath::new("sweep.db");
    write_store(&[
        "--workers",
        "8",
        "--ops",
        "200",
        "--strategy",
        "atomic,cas",
        "--latency",
        "off",
        "--stall-timeout",
        STALL,
        "--store",
        &db.arg("sqlite:"),
    ]);
    let (code, stdout, stderr) = verify(db.path(), false);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for id in db_runs(&db) {
        let of = |sql: &str| sql.replace("{id}", &id.to_string());
        check_sql(
            &db,
            &of("DELETE FROM runs WHERE run = {id}"),
            Expect::Headless(id),
        );
        check_sql(
            &db,
            &of("DELETE FROM events WHERE run = {id}"),
            Expect::Failed(id),
        );
        check_sql(
            &db,
            &of("DELETE FROM events WHERE run = {id} AND worker = 3 AND seq = 7"),
            Expect::Failed(id),
        );
        check_sql(
            &db,
            &of("UPDATE events SET retries = retries + 1 WHERE run = {id} AND worker = 2 AND seq = 5"),
            Expect::Failed(id),
        );
        for sql in [
            "DELETE FROM workers WHERE run = {id}",
            "DELETE FROM workers WHERE run = {id} AND worker = 1",
            "DELETE FROM slots WHERE run = {id}",
            "UPDATE slots SET region_value = NULL WHERE run = {id}",
            "UPDATE runs SET fingerprint = NULL WHERE run = {id}",
        ] {
            check_sql(&db, &of(sql), Expect::Incomplete(id));
        }
    }
    for sql in ["DELETE FROM closing", "DROP TABLE closing"] {
        check_sql(&db, sql, Expect::Store("no closing record"));
    }
    // The scenarios' own rows.
    for (scenario, fix, sql) in [
        (
            "ledger",
            "ordered-locks",
            "DELETE FROM transfers WHERE worker = 0 AND seq = 3",
        ),
        (
            "ledger",
            "ordered-locks",
            "UPDATE transfers SET amount = amount + 1 WHERE worker = 1 AND seq = 2",
        ),
        ("cache", "seqlock", "DELETE FROM reads WHERE seq = 5"),
    ] {
        let db = TempPath::new(&format!("sweep-{scenario}.db"));
        scenario_store(scenario, fix, &db.arg("sqlite:"));
        let id = db_runs(&db)[0];
        check_sql(&db, sql, Expect::Failed(id));
        check_sql(
            &db,
            &format!("UPDATE runs SET fingerprint = NULL WHERE run = {id}"),
            Expect::Incomplete(id),
        );
    }
}

#[test]
fn a_corrupt_row_is_named_and_its_run_not_verified() {
    let db = TempPath::new("corrupt-row.db");
    write_store(&[
        "--workers",
        "4",
        "--ops",
        "50",
        "--strategy",
        "atomic",
        "--latency",
        "off",
        "--store",
        &db.arg("sqlite:"),
    ]);
    let id = db_runs(&db)[0];
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    conn.execute_batch(&format!(
        "UPDATE events SET retries = retries + 1 WHERE run = {id} AND worker = 2 AND seq = 7"
    ))
    .unwrap();
    drop(conn);
    let (code, stdout, stderr) = verify(db.path(), false);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let named =
        format!("corrupt events row (run {id}, worker 2, seq 7): the row fails its checksum");
    assert!(stdout.contains(&named), "{stdout}");
    assert!(stderr.contains(&named), "{stderr}");
    assert!(!stdout.contains("byte offset"), "{stdout}");
    assert!(
        run_line(&stdout, id).unwrap().ends_with("NOT verified"),
        "{stdout}"
    );
}

#[test]
fn what_is_not_a_racepool_record_exits_2() {
    let mut random = vec![0u8; 4096];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in &mut random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let passwd =
        b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";
    let cases: [(&str, &[u8]); 5] = [
        ("empty", b""),
        ("text", b"hello, this is not a log\n"),
        ("passwd", passwd),
        ("random", &random),
        ("zeros", &[0u8; 512]),
    ];
    let file = TempPath::new("not-a-record");
    for (name, bytes) in cases {
        std::fs::write(file.path(), bytes).unwrap();
        let (code, stdout, stderr) = verify(file.path(), false);
        assert_eq!(code, 2, "{name}: {stdout}{stderr}");
        assert!(stderr.contains("not a racepool record"), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
    }
    // An SQLite database of something else.
    let db = TempPath::new("not-a-record.db");
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    conn.execute_batch("CREATE TABLE notes (text TEXT)")
        .unwrap();
    drop(conn);
    let (code, stdout, stderr) = verify(db.path(), false);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("not a racepool record"), "{stderr}");
    // A real record that fails stays 1: the first byte of a log's first record flipped.
    let log = TempPath::new("not-a-record-control.log");
    write_store(&[
        "--workers",
        "2",
        "--ops",
        "10",
        "--strategy",
        "atomic",
        "--store",
        &log.arg("log:"),
    ]);
    let whole = std::fs::read(log.path()).unwrap();
    // Its first record's payload, or its magic: damage in a record, not another kind of file.
    for byte in [frame::HEADER, 1] {
        let mut bytes = whole.clone();
        bytes[byte] ^= 1;
        std::fs::write(log.path(), &bytes).unwrap();
        let (code, stdout, stderr) = verify(log.path(), false);
        assert_eq!(code, 1, "byte {byte}: {stdout}{stderr}");
        assert!(
            stdout.contains("corrupt record at byte offset 0"),
            "byte {byte}: {stdout}"
        );
    }
}
