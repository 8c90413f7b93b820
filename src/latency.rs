//! Per-update latency recording: every update, one in N, or none.

use hdrhistogram::Histogram;

/// Which updates are timed. Two clock reads cost more than an uncontended `fetch_add`, so a
/// throughput figure is only comparable with others taken in the same mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyMode {
    All,
    Sample(u32),
    Off,
}

impl LatencyMode {
    /// Whether update number `i` (from 0) is timed.
    #[inline]
    pub fn times(self, i: u64) -> bool {
        match self {
            LatencyMode::All => true,
            LatencyMode::Sample(n) => i.is_multiple_of(n as u64),
            LatencyMode::Off => false,
        }
    }
}

impl std::str::FromStr for LatencyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<LatencyMode, String> {
        match s {
            "all" => Ok(LatencyMode::All),
            "off" => Ok(LatencyMode::Off),
            _ => match s.strip_prefix("sample:").map(str::parse::<u32>) {
                Some(Ok(n)) if n >= 1 => Ok(LatencyMode::Sample(n)),
                _ => Err(format!(
                    "'{s}': expected 'all', 'off' or 'sample:N' (N ≥ 1)"
                )),
            },
        }
    }
}

impl std::fmt::Display for LatencyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LatencyMode::All => f.write_str("all"),
            LatencyMode::Sample(n) => write!(f, "sample:{n}"),
            LatencyMode::Off => f.write_str("off"),
        }
    }
}

/// Highest latency recorded exactly; longer ones saturate here (an hour, in ns).
const MAX_NS: u64 = 3_600_000_000_000;

/// An empty latency histogram in nanoseconds, 2 significant digits (1% resolution).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 2).expect("static bounds are valid")
}

/// Serialises with the V2 format (run-length encoded counts: small when latencies cluster).
pub fn encode(h: &Histogram<u64>) -> Vec<u8> {
    use hdrhistogram::serialization::Serializer;
    let mut out = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(h, &mut out)
        .expect("serialising to a Vec cannot fail");
    out
}

pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_round_trips_and_fits_a_worker_area() {
        let mut h = new_histogram();
        for v in [1u64, 50, 900, 12_000, 5_000_000, 40_000_000_000] {
            h.saturating_record(v);
        }
        let bytes = encode(&h);
        assert!(bytes.len() <= crate::region::HISTOGRAM_CAPACITY);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn a_fully_spread_histogram_still_fits() {
        // The worst case for the run-length encoding: a count in every bucket.
        let mut h = new_histogram();
        let mut v = 1u64;
        while v < MAX_NS {
            h.record(v).unwrap();
            v = v + v / 100 + 1;
        }
        assert!(
            encode(&h).len() <= crate::region::HISTOGRAM_CAPACITY,
            "{}",
            encode(&h).len()
        );
    }

    #[test]
    fn latency_mode_parses() {
        assert_eq!("all".parse::<LatencyMode>(), Ok(LatencyMode::All));
        assert_eq!(
            "sample:8".parse::<LatencyMode>(),
            Ok(LatencyMode::Sample(8))
        );
        assert!("sample:0".parse::<LatencyMode>().is_err());
        assert!(LatencyMode::Sample(4).times(8) && !LatencyMode::Sample(4).times(9));
    }
}
