//! How every figure a person reads is written: the run's table, report.md, the plots' ticks.
//!
//! One formatter per kind of figure, so the same value reads the same everywhere:
//!
//! | figure | written as | chosen |
//! | --- | --- | --- |
//! | a duration | `85 ns`, `1.25 µs`, `14.7 ms`, `13.2 s` | unit per value, 3 significant figures |
//! | a rate | `950`, `12.3k`, `5.17M`, `265M`, `1.2G` | SI prefix per value, 3 significant figures |
//! | a share | `34.3%`, `0.017%`, `0%` | percent; never rounds a loss to 0 |
//! | a count | `27,985,559` | every digit, thousands separated |
//! | a ratio | `1.12×` | two decimals |
//! | a time left (ETA) | `7s`, `1m05s`, `2h03m` | whole seconds, the two largest units |
//!
//! Trailing zeros after the point are dropped (`1 µs`, not `1.00 µs`), so ticks and cells stay
//! short. The data formats keep raw numbers and name the unit in the key instead (`p99_ns`,
//! `window_ms`, `loss_fraction`, `ops_per_sec`), never a rendered string.

/// A duration given in nanoseconds, in the unit that suits its size.
pub fn time_ns(ns: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1.0, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")];
    if !ns.is_finite() {
        return "–".into();
    }
    if ns == 0.0 {
        return "0 ns".into();
    }
    let mut i = UNITS
        .iter()
        .rposition(|&(scale, _)| ns.abs() >= scale)
        .unwrap_or(0);
    let mut text = significant(ns / UNITS[i].0, 3);
    // 999.7 ns rounds to "1000": that is 1 µs.
    if i + 1 < UNITS.len() && text.trim_start_matches('-').starts_with("1000") {
        i += 1;
        text = significant(ns / UNITS[i].0, 3);
    }
    format!("{text} {}", UNITS[i].1)
}

/// A duration given in milliseconds (`spawn_ms`, `window_ms`), written as [`time_ns`] does.
pub fn time_ms(ms: f64) -> String {
    time_ns(ms * 1e6)
}

/// A rate (updates per second) with an SI prefix: `950`, `12.3k`, `5.17M`, `1.2G`.
pub fn rate(per_sec: f64) -> String {
    const PREFIXES: [(f64, &str); 4] = [(1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G")];
    if !per_sec.is_finite() {
        return "–".into();
    }
    let mut i = PREFIXES
        .iter()
        .rposition(|&(scale, _)| per_sec.abs() >= scale)
        .unwrap_or(0);
    let mut text = significant(per_sec / PREFIXES[i].0, 3);
    if i + 1 < PREFIXES.len() && text.trim_start_matches('-').starts_with("1000") {
        i += 1;
        text = significant(per_sec / PREFIXES[i].0, 3);
    }
    format!("{text}{}", PREFIXES[i].1)
}

/// A fraction (0.343) as a percent (`34.3%`). A share that is not zero never prints as `0%`:
/// below 1% it keeps two significant figures (`0.017%`), since a lost update is never nothing.
pub fn percent(fraction: f64) -> String {
    if !fraction.is_finite() {
        return "–".into();
    }
    let p = fraction * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p.abs() < 1.0 {
        format!("{}%", significant(p, 2))
    } else {
        format!("{}%", significant(p, 3))
    }
}

/// A count with every digit, thousands separated: `27,985,559`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `n` things, with the noun in the right number: `1 worker`, `1,000 workers`,
/// `2 worker processes`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if noun.ends_with('s') || noun.ends_with('x') || noun.ends_with("ch") {
        format!("{} {noun}es", count(n))
    } else {
        format!("{} {noun}s", count(n))
    }
}

/// A ratio of two figures: `1.12×`.
pub fn ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}×")
    } else {
        "–".into()
    }
}

/// A time still to wait (a progress bar's ETA), in whole seconds: `7s`, `1m05s`, `2h03m`.
pub fn time_left(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// `x` with `digits` significant figures, trailing zeros after the point dropped.
fn significant(x: f64, digits: i32) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_their_unit_per_value() {
        assert_eq!(time_ns(0.0), "0 ns");
        assert_eq!(time_ns(85.0), "85 ns");
        assert_eq!(time_ns(999.0), "999 ns");
        assert_eq!(time_ns(999.7), "1 µs");
        assert_eq!(time_ns(1_250.0), "1.25 µs");
        assert_eq!(time_ns(1_000.0), "1 µs");
        assert_eq!(time_ns(14_680_000.0), "14.7 ms");
        assert_eq!(time_ms(13_215.0), "13.2 s");
        assert_eq!(time_ms(0.4857), "486 µs");
        assert_eq!(time_ms(4_000_000.0), "4000 s");
    }

    #[test]
    fn one_rate_formatter_for_every_size() {
        assert_eq!(rate(950.0), "950");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(rate(5_170_000.0), "5.17M");
        assert_eq!(rate(73_000_000.0), "73M");
        assert_eq!(rate(265_004_000.0), "265M");
        assert_eq!(rate(999_700.0), "1M");
        assert_eq!(rate(1_000_000_000.0), "1G");
        assert_eq!(rate(0.5), "0.5");
    }

    #[test]
    fn a_loss_is_never_printed_as_nothing() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.343_12), "34.3%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.0123), "1.23%");
        assert_eq!(percent(0.000_17), "0.017%");
        assert_eq!(percent(1e-9), "0.0000001%");
        assert_ne!(percent(1e-12), "0%");
    }

    #[test]
    fn counts_are_separated_and_nouns_agree() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(27_985_559), "27,985,559");
        assert_eq!(plural(1, "worker"), "1 worker");
        assert_eq!(plural(0, "worker"), "0 workers");
        assert_eq!(plural(1_000, "slot"), "1,000 slots");
        assert_eq!(plural(1, "worker process"), "1 worker process");
        assert_eq!(plural(50, "worker process"), "50 worker processes");
        assert_eq!(ratio(1.123), "1.12×");
    }

    #[test]
    fn time_left_is_whole_seconds_in_two_units() {
        assert_eq!(time_left(0.2), "0s");
        assert_eq!(time_left(7.4), "7s");
        assert_eq!(time_left(59.6), "1m00s");
        assert_eq!(time_left(65.0), "1m05s");
        assert_eq!(time_left(7_380.0), "2h03m");
        assert_eq!(time_left(f64::INFINITY), "–");
    }
}
