//! What every host of a joined run shares and checks: the validated `--join`, the plan (the
//! options every host must agree on), the first flag two plans differ in, each host's seed and
//! name. No meeting place, no I/O beyond the host's name.

use std::time::Duration;

use crate::error::Error;
use crate::options::{JoinArgs, Mode, Options};
use crate::target::TargetSpec;

/// A validated `--join`.
#[derive(Clone, Debug)]
pub struct Join {
    pub name: String,
    pub hosts: u32,
    pub timeout: Duration,
    /// The meeting place's URL: the target's (PostgreSQL, MariaDB or Redis).
    pub url: String,
}

/// How long a joined run waits for its hosts unless told.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

fn usage(m: impl Into<String>) -> Error {
    Error::Usage(m.into())
}

impl Join {
    /// The join `args` ask for with `opts`, checked: None without `--join`.
    pub fn from_args(args: &JoinArgs, opts: &Options) -> Result<Option<Join>, Error> {
        let Some(name) = &args.join else {
            if args.hosts.is_some() {
                return Err(usage("--hosts applies to --join NAME: give --join too"));
            }
            if args.join_timeout.is_some() {
                return Err(usage(
                    "--join-timeout applies to --join NAME: give --join too",
                ));
            }
            return Ok(None);
        };
        let Some(hosts) = args.hosts else {
            return Err(usage(
                "--join NAME needs --hosts H: how many hosts take part",
            ));
        };
        if hosts == 0 {
            return Err(usage("--hosts must be at least 1"));
        }
        if name.is_empty()
            || name.len() > 63
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(usage(format!(
                "--join '{name}': a name is 1 to 63 letters, digits, '.', '_' or '-'"
            )));
        }
        let timeout = match args.join_timeout {
            None => DEFAULT_TIMEOUT,
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
            Some(_) => {
                return Err(usage(
                    "--join-timeout must be a positive number of seconds (at most a day)",
                ))
            }
        };
        let url = match &opts.target {
            TargetSpec::Postgres(url) | TargetSpec::Mysql(url) | TargetSpec::Redis(url) => {
                url.clone()
            }
            other => {
                return Err(usage(format!(
                    "--join coordinates the hosts through the target: give --target postgres://…, mysql://… or redis://…, not {}",
                    other.kind().name()
                )))
            }
        };
        if opts.variants().len() != 1 {
            return Err(usage(
                "--join runs one strategy: give --strategy NAME (one)",
            ));
        }
        if opts.repeat != 1 {
            return Err(usage("--join runs once: --repeat must be 1"));
        }
        if opts.scenario.is_some() {
            return Err(usage("--join runs the plain counter, not --scenario"));
        }
        if opts.store.is_some() {
            return Err(usage(
                "--join keeps its record in the target: give --store target, not a file",
            ));
        }
        if opts.levels().len() != 1 {
            return Err(usage(
                "--join runs one isolation level: give --isolation LEVEL (one)",
            ));
        }
        if opts.mode != Mode::Processes {
            return Err(usage("--join needs --mode processes"));
        }
        if opts.time_limit.is_some() {
            return Err(usage(
                "--join runs by --ops: every host's planned updates are the verdict's expectation",
            ));
        }
        Ok(Some(Join {
            name: name.clone(),
            hosts,
            timeout,
            url,
        }))
    }
}

/// The plan every host must share: the validated options minus what is the host's own (the
/// URL it reaches the database by), plus `--hosts`. Canonical JSON.
pub fn plan_of(opts: &Options, join: &Join) -> String {
    let mut v = serde_json::to_value(opts).expect("options serialise");
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "target".into(),
            serde_json::Value::String(opts.target.kind().name().into()),
        );
        m.insert("hosts".into(), serde_json::Value::from(join.hosts));
    }
    v.to_string()
}

/// Whether the hosts of the run planned by `plan` keep its record in the target
/// (`--store target`).
pub fn keeps_record(plan: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(plan)
        .ok()
        .and_then(|v| v.get("store_target").and_then(|s| s.as_bool()))
        .unwrap_or(false)
}

/// The flag whose value makes `theirs` differ from `ours` (the first, in the order of the
/// command line's sections), as the user would type it.
pub fn first_difference(ours: &str, theirs: &str) -> Option<String> {
    let a: serde_json::Value = serde_json::from_str(ours).ok()?;
    let b: serde_json::Value = serde_json::from_str(theirs).unwrap_or_default();
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return (ours != theirs).then(|| "the plan".into());
    };
    const ORDER: [&str; 12] = [
        "hosts",
        "workers",
        "ops",
        "slots",
        "pick",
        "initial",
        "mode",
        "seed",
        "strategies",
        "race_window",
        "target",
        "isolation",
    ];
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort_by_key(|k| (ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()), *k));
    keys.dedup();
    let k = keys.into_iter().find(|k| a.get(*k) != b.get(*k))?;
    let flag = match k.as_str() {
        "strategies" => "strategy".to_string(),
        "lock_ttl_ms" => "lock-ttl".to_string(),
        "faults" => "kill".to_string(),
        "target" => "target (its kind)".to_string(),
        "store_target" => "store target".to_string(),
        other => other.replace('_', "-"),
    };
    let show = |v: Option<&serde_json::Value>| v.map_or("none".to_string(), |v| v.to_string());
    Some(format!(
        "--{flag} ({} here, {} on the hosts that joined first)",
        show(a.get(k)),
        show(b.get(k))
    ))
}

/// Host `index`'s seed: each host's workers choose their own slots, and the verdict replays
/// them from the same function.
pub fn host_seed(seed: u64, index: u32) -> u64 {
    if index == 0 {
        return seed;
    }
    crate::pick::SplitMix64::new(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .next_u64()
}

/// This host's name in the run: its host name and its parent's pid (several parents on one
/// machine stand in for hosts in tests).
pub fn host_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_says_whether_its_hosts_keep_a_record() {
        assert!(keeps_record(r#"{"workers":8,"store_target":true}"#));
        assert!(!keeps_record(r#"{"workers":8}"#));
        assert!(!keeps_record("not json"));
    }

    #[test]
    fn the_first_differing_flag_is_named_in_command_line_order() {
        let a = r#"{"workers":8,"ops":100,"seed":1,"strategies":["atomic"]}"#;
        let b = r#"{"workers":8,"ops":200,"seed":2,"strategies":["atomic"]}"#;
        let d = first_difference(a, b).unwrap();
        assert!(d.starts_with("--ops (100 here, 200"), "{d}");
        let c = r#"{"workers":8,"ops":100,"seed":1,"strategies":["cas"],"race_window":3}"#;
        let d = first_difference(a, c).unwrap();
        assert!(d.starts_with("--strategy"), "{d}");
        assert_eq!(first_difference(a, a), None);
    }

    #[test]
    fn host_seeds_differ_and_host_zero_keeps_the_seed() {
        assert_eq!(host_seed(7, 0), 7);
        let seeds: std::collections::HashSet<u64> = (0..16).map(|h| host_seed(7, h)).collect();
        assert_eq!(seeds.len(), 16);
    }
}
