//! What a person reads of a run (the text table) and the shape of what a program reads (the
//! JSON summary), through the built binary.

mod common;

use common::{output, run_json};

/// Every line of the default table fits a 100-column terminal.
fn assert_narrow(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}\n{text}",
            line.chars().count()
        );
    }
}

#[test]
fn the_table_has_separators_plurals_and_fits_100_columns() {
    let out = output(&[
        "--workers",
        "1",
        "--ops",
        "2000",
        "--strategy",
        "atomic,cas",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("1 worker process × 2,000 updates on 1 slot"),
        "{text}"
    );
    assert!(
        !text.contains("1 workers") && !text.contains("1 slots"),
        "{text}"
    );
    assert_narrow(&text);

    let out = output(&[
        "--workers",
        "300",
        "--ops",
        "100",
        "--repeat",
        "2",
        "--strategy",
        "racy,atomic,futex-lock",
        "--race-window",
        "200",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // 300 workers × 100 updates × 2 runs.
    assert!(text.contains("60,000"), "{text}");
    assert!(text.contains("exact in 2 of 2 runs"), "{text}");
    // Latency is written with its unit, never as a bare number of ns.
    assert!(
        [" ns ", " µs ", " ms "].iter().any(|u| text.contains(u)),
        "{text}"
    );
    assert_narrow(&text);
}

#[test]
fn json_fields_have_one_shape_and_name_their_unit() {
    let (code, summary) = run_json(&[
        "--workers",
        "8",
        "--ops",
        "500",
        "--repeat",
        "2",
        "--strategy",
        "racy,atomic",
    ]);
    assert_eq!(code, 0, "{summary}");
    for s in summary["strategies"].as_array().unwrap() {
        // ops_per_sec is a number everywhere; its spread over runs sits beside it.
        assert!(s["ops_per_sec"].is_f64(), "{s}");
        let spread = &s["ops_per_sec_over_runs"];
        for k in ["median", "min", "max", "q1", "q3"] {
            assert!(spread[k].is_f64(), "{k}: {spread}");
        }
        assert_eq!(spread["median"], s["ops_per_sec"]);
        assert!(s.get("median_ops_per_sec").is_none());
        for r in s["runs"].as_array().unwrap() {
            assert!(r["ops_per_sec"].is_f64(), "{r}");
            let f = &r["fairness"];
            for k in [
                "min_ops_per_sec",
                "median_ops_per_sec",
                "max_ops_per_sec",
                "min_over_median",
            ] {
                assert!(f[k].is_f64(), "{k}: {f}");
            }
            assert!(f["starved"].is_u64(), "{f}");
            let loss = r["loss_fraction"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&loss), "{r}");
            assert!(r.get("loss_rate").is_none());
        }
    }
    assert!(
        summary["tool"].as_str().unwrap().contains("(git "),
        "{summary}"
    );
}

#[test]
fn a_scenario_table_fits_100_columns_and_names_its_invariant_once() {
    let out = output(&[
        "--scenario",
        "record",
        "--workers",
        "20",
        "--ops",
        "100",
        "--repeat",
        "2",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let table: String = text
        .lines()
        .skip_while(|l| !l.starts_with("strategy"))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(table.contains("holds in 2 of 2 runs"), "{text}");
    assert_narrow(&table);
    assert_eq!(text.matches("every field update kept").count(), 1, "{text}");
}

/// The main table of a text output: its heading line and the rows under it.
fn main_table(text: &str) -> (String, Vec<String>) {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("strategy "));
    let head = lines.next().unwrap_or_else(|| panic!("no table: {text}"));
    let rows = lines
        .take_while(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (head.to_string(), rows)
}

#[test]
fn rows_come_one_per_strategy_in_order_under_one_heading_and_line_up() {
    let out = output(&[
        "--workers",
        "4",
        "--ops",
        "5000",
        "--repeat",
        "2",
        "--strategy",
        "racy,atomic,cas",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("strategy ")).count(),
        1,
        "one heading: {text}"
    );
    let (head, rows) = main_table(&text);
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["racy", "atomic", "cas"], "{text}");
    // 4 workers × 5,000 updates × 2 runs, with its separator.
    for r in &rows {
        assert!(r.contains("40,000"), "{r}");
    }
    assert_eq!(rows[1].matches("40,000").count(), 2, "{text}");
    // Right-aligned figures end where their heading ends, in every row (the widths are fixed
    // before the first row is printed).
    let chars: Vec<char> = head.chars().collect();
    for heading in ["expected", "observed", "lost", "ops/s", "p99.9"] {
        let end = head.find(&format!(" {heading} ")).unwrap() + 1 + heading.len();
        let end = head[..end].chars().count();
        assert_eq!(chars[end - 1], heading.chars().last().unwrap());
        for r in &rows {
            let cells: Vec<char> = r.chars().collect();
            assert!(
                !cells[end - 1].is_whitespace() && cells[end].is_whitespace(),
                "{heading} is not aligned in\n{head}\n{r}"
            );
        }
    }
    assert_narrow(&text);
}

#[test]
fn with_json_stdout_is_one_json_document_and_nothing_else() {
    let out = output(&[
        "--workers",
        "2",
        "--ops",
        "1000",
        "--strategy",
        "racy,atomic,cas",
        "--json",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with('{') && !text.contains("\nstrategy "),
        "{text}"
    );
    let summary: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
    let names: Vec<&str> = summary["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["racy", "atomic", "cas"]);
}

/// A finished strategy's row is on stdout while the next one still runs, not held back until
/// every strategy is done. racy's widened window makes the second strategy take at least
/// 20 × 1,000,000 spins (most of a second), while atomic's 20 updates are done at once: read
/// as it comes, atomic's row arrives well before the end of the output.
#[test]
fn a_strategys_row_is_printed_as_soon_as_it_finishes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let mut child = common::torture()
        .args([
            "--workers",
            "1",
            "--ops",
            "20",
            "--strategy",
            "atomic,racy",
            "--race-window",
            "1000000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn torture");
    let mut first_row = None;
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("atomic ") {
            first_row = Some(Instant::now());
        }
        text.push_str(&line);
        text.push('\n');
    }
    let end = Instant::now();
    assert!(child.wait().unwrap().success(), "{text}");
    let first_row = first_row.unwrap_or_else(|| panic!("no atomic row: {text}"));
    let (_, rows) = main_table(&text);
    assert_eq!(rows.len(), 2, "{text}");
    let gap = end - first_row;
    assert!(
        gap >= Duration::from_millis(100),
        "atomic's row came only {gap:?} before the end: held back?\n{text}"
    );
}
