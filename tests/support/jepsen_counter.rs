//! Jepsen's counter rule over an exported history, written from the rule alone: it reads the
//! text (EDN or JSON) and uses nothing of racepool, so it cannot share a mistake with the
//! exporter or the verifier.
//!
//! The rule (jepsen.checker/counter): the counter starts at 0; each read must lie between
//! the sum of `:ok` adds completed before the read was invoked and the sum of all adds
//! (`:ok` or `:info`) invoked before it completed. An `:info` add may or may not have happened.
//! The history must also be well formed: indices 0, 1, 2 …, times that never go back, each
//! process invoking one operation at a time and completing it with the same function, and no
//! process invoking again after an `:info` (it crashed).

use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Invoke,
    Ok,
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F {
    Add,
    Read,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub index: i64,
    pub time: i64,
    pub kind: Type,
    pub process: i64,
    pub f: F,
    pub value: Option<i64>,
}

/// Why a history fails.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not a well-formed history: line (from 0) and what is wrong.
    Malformed(usize, String),
    /// A read outside its bounds: the counter rule is broken.
    OutOfBounds {
        index: i64,
        lower: i64,
        value: i64,
        upper: i64,
    },
}

/// What a valid history held.
#[derive(Debug, Default)]
pub struct Stats {
    pub reads: usize,
    /// Sum of `:ok` adds, the first (the starting value) included.
    pub ok_adds: i64,
    /// Sum of `:info` adds.
    pub info_adds: i64,
    /// The first operation's add value: the starting value.
    pub initial: Option<i64>,
    /// The last completed read's value.
    pub last_read: Option<i64>,
}

/// Parses Jepsen's EDN form: one `{:key value, …}` map a line; values are integers, `nil`
/// or keywords.
pub fn parse_edn(text: &str) -> Vec<Op> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            let body = line
                .trim()
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("line {n} is not one map: {line}"));
            let tokens: Vec<&str> = body
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .collect();
            assert!(tokens.len().is_multiple_of(2), "line {n}: odd map: {line}");
            let mut map = HashMap::new();
            for pair in tokens.chunks(2) {
                let key = pair[0]
                    .strip_prefix(':')
                    .unwrap_or_else(|| panic!("line {n}: key {} is no keyword", pair[0]));
                map.insert(key.to_string(), pair[1].to_string());
            }
            op_from(
                n,
                |k| map.get(k).cloned(),
                |v| v.strip_prefix(':').map(str::to_string),
            )
        })
        .collect()
}

/// Parses elle-cli's JSON form: one array of objects.
pub fn parse_json(text: &str) -> Vec<Op> {
    let array: Vec<serde_json::Value> =
        serde_json::from_str(text).expect("one JSON array of operations");
    array
        .iter()
        .enumerate()
        .map(|(n, o)| {
            let get = |k: &str| {
                o.get(k).map(|v| match v {
                    serde_json::Value::Null => "nil".to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            };
            op_from(n, get, |v| Some(v.to_string()))
        })
        .collect()
}

fn op_from(
    n: usize,
    get: impl Fn(&str) -> Option<String>,
    name: impl Fn(&str) -> Option<String>,
) -> Op {
    let field = |k: &str| get(k).unwrap_or_else(|| panic!("line {n} has no {k}"));
    let int = |k: &str| {
        field(k)
            .parse::<i64>()
            .unwrap_or_else(|_| panic!("line {n}: {k} is not an integer"))
    };
    let kind = match name(&field("type")).as_deref() {
        Some("invoke") => Type::Invoke,
        Some("ok") => Type::Ok,
        Some("info") => Type::Info,
        other => panic!("line {n}: type {other:?}"),
    };
    let f = match name(&field("f")).as_deref() {
        Some("add") => F::Add,
        Some("read") => F::Read,
        other => panic!("line {n}: f {other:?}"),
    };
    let value = match field("value").as_str() {
        "nil" => None,
        v => Some(
            v.parse::<i64>()
                .unwrap_or_else(|_| panic!("line {n}: value {v}")),
        ),
    };
    Op {
        index: int("index"),
        time: int("time"),
        kind,
        process: int("process"),
        f,
        value,
    }
}

/// Checks well-formedness, then the counter rule.
pub fn check(ops: &[Op]) -> Result<Stats, Problem> {
    let bad = |n: usize, why: String| Err(Problem::Malformed(n, why));
    let mut open: HashMap<i64, Op> = HashMap::new();
    let mut crashed: HashMap<i64, bool> = HashMap::new();
    let mut stats = Stats::default();
    let (mut lower, mut upper) = (0i64, 0i64);
    let mut read_lower: HashMap<i64, i64> = HashMap::new();
    for (n, op) in ops.iter().enumerate() {
        if op.index != n as i64 {
            return bad(n, format!("index {} at line {n}", op.index));
        }
        if n > 0 && op.time < ops[n - 1].time {
            return bad(n, format!("time goes back to {}", op.time));
        }
        match op.kind {
            Type::Invoke => {
                if open.contains_key(&op.process) {
                    return bad(n, format!("process {} invokes twice", op.process));
                }
                if crashed.get(&op.process) == Some(&true) {
                    return bad(n, format!("process {} invokes after :info", op.process));
                }
                match (op.f, op.value) {
                    (F::Add, Some(v)) if v >= 0 => upper += v,
                    (F::Read, None) => {
                        read_lower.insert(op.process, lower);
                    }
                    _ => return bad(n, format!("invocation value {:?}", op.value)),
                }
                if n == 0 {
                    stats.initial = op.value.filter(|_| op.f == F::Add);
                }
                open.insert(op.process, *op);
            }
            Type::Ok | Type::Info => {
                let Some(inv) = open.remove(&op.process) else {
                    return bad(n, format!("process {} completes nothing", op.process));
                };
                if inv.f != op.f {
                    return bad(n, "completion of another function".into());
                }
                match (op.f, op.kind) {
                    (F::Add, _) if op.value != inv.value => {
                        return bad(n, "add completes with another value".into())
                    }
                    (F::Add, Type::Ok) => lower += op.value.unwrap_or(0),
                    (F::Add, _) => {
                        stats.info_adds += op.value.unwrap_or(0);
                        crashed.insert(op.process, true);
                    }
                    (F::Read, Type::Ok) => {
                        let Some(value) = op.value else {
                            return bad(n, "a read returns nil".into());
                        };
                        let lo = read_lower.remove(&op.process).unwrap_or(0);
                        if !(lo <= value && value <= upper) {
                            return Err(Problem::OutOfBounds {
                                index: op.index,
                                lower: lo,
                                value,
                                upper,
                            });
                        }
                        stats.reads += 1;
                        stats.last_read = Some(value);
                    }
                    (F::Read, _) => {
                        read_lower.remove(&op.process);
                        crashed.insert(op.process, true);
                    }
                }
            }
        }
    }
    if let Some(p) = open.keys().next() {
        return bad(ops.len(), format!("process {p} never completes"));
    }
    stats.ok_adds = lower;
    Ok(stats)
}

#[test]
fn the_rule_takes_info_adds_as_maybe_and_catches_a_lost_add() {
    let op = |index, kind, process, f, value| Op {
        index,
        time: index,
        kind,
        process,
        f,
        value,
    };
    use {Type::*, F::*};
    let base = vec![
        op(0, Invoke, 0, Add, Some(1)),
        op(1, Invoke, 1, Add, Some(1)),
        op(2, Ok, 0, Add, Some(1)),
        op(3, Info, 1, Add, Some(1)),
        op(4, Invoke, 2, Read, None),
    ];
    for (read, ok) in [(0, false), (1, true), (2, true), (3, false)] {
        let mut h = base.clone();
        h.push(op(5, Ok, 2, Read, Some(read)));
        assert_eq!(check(&h).is_ok(), ok, "read {read}: {:?}", check(&h));
    }
}
