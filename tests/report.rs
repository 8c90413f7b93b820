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
