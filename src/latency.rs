//! Per-update latency recording: every update, one in N, or none.
//!
//! The hot path is two [`Clock`](crate::clock::Clock) readings and one [`Buckets::record`]; the HDR histogram (ns)
//! is filled once, when the worker finishes, and is what the worker area publishes (V2), so
//! nothing downstream sees the buckets:
//!
//! ```text
//! let clock = Clock::calibrated();          // parent, before the first fork
//! let mut buckets = Buckets::new();         // worker: inline, no allocation
//! let t0 = clock.now();                     //   #[inline]: one rdtsc
//! /* the update */
//! buckets.record(clock.now().since(t0));    //   ~10 instructions, no branch
//! let histogram = buckets.to_histogram(clock.calibration());   // worker, at the end
//! ```
//!
//! One read per update is cheaper still (each update's end is the next one's start: 20
//! instructions instead of 22, ~5 ns less here), but the span then holds the loop's own work
//! between updates too; `benches/timed_update.rs` measures both.
//!
//! Precision: a span is kept as the middle of its bucket, at most 1/256 (0.39%) away from
//! it; the HDR histogram then keeps its 2 significant digits (sub-buckets at most 1/128 wide)
//! as before. So every percentile read from the merged histogram is within
//! [`PERCENTILE_ERROR`] (1.2%) plus 1 ns (both sides round ticks down to whole nanoseconds) of
//! the one a direct HDR record of the same spans would give.

use hdrhistogram::Histogram;

use crate::clock::{Calibration, Elapsed};

/// Which updates are timed. One clock read (`All`: an update's end is the next one's start;
/// a sampled update takes two) costs more than an uncontended `fetch_add`, so a throughput
/// figure is only comparable with others taken in the same mode.
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

/// Sub-buckets per power of two: 2^7 = 128, so a bucket is at most 1/128 of its values wide.
const SUB_BITS: u32 = 7;
/// One row of 2^(SUB_BITS + 1) exact buckets (spans below 256 ticks), then one row of 2^SUB_BITS
/// per power of two up to 2^64: every u64 has a bucket, so recording needs no clamp. Spans
/// past the histogram's ceiling (an hour) saturate there when the buckets are merged.
pub const BUCKETS: usize = ((u64::BITS - SUB_BITS + 1) as usize) << SUB_BITS;

/// How far (relative) a percentile read from [`Buckets::to_histogram`] may lie from the one a
/// direct HDR record of the same spans gives: half a bucket (1/256) on top of one HDR sub-bucket
/// (1/128), rounded up. Add 1 ns: each side rounds its ticks down to whole nanoseconds.
pub const PERCENTILE_ERROR: f64 = 0.012;

/// A worker's spans, in ticks, before they become an HDR histogram: a log-linear array of
/// counts (128 per power of two), inline and fixed in size (58 KiB, of which a run touches the
/// few lines its spans fall in), so recording is an index computation and an increment.
#[derive(Clone)]
pub struct Buckets {
    counts: [u64; BUCKETS],
}

impl Default for Buckets {
    fn default() -> Buckets {
        Buckets::new()
    }
}

impl Buckets {
    pub fn new() -> Buckets {
        Buckets {
            counts: [0; BUCKETS],
        }
    }

    /// Writes one word of every page, so that no `record` faults: the array's memory may come
    /// fresh from the kernel (calloc does not touch it), each page mapped at its first write.
    pub fn touch(&mut self) {
        const PAGE_WORDS: usize = 4096 / std::mem::size_of::<u64>();
        for i in (0..BUCKETS).step_by(PAGE_WORDS).chain([BUCKETS - 1]) {
            let word: *mut u64 = &mut self.counts[i];
            // SAFETY: `word` points into `self.counts`, borrowed mutably here. Volatile: the
            // compiler knows the array is zero and would drop a plain store of 0.
            unsafe { std::ptr::write_volatile(word, std::ptr::read_volatile(word)) };
        }
    }

    /// Counts one span: ten instructions, no branch (the index is in bounds by construction,
    /// and the compiler sees it: there is no bounds check).
    #[inline]
    pub fn record(&mut self, span: Elapsed) {
        self.counts[bucket_of(span.0)] += 1;
    }

    /// Every span recorded so far.
    pub fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds every span, in nanoseconds, to `histogram` (each bucket as its middle value; at
    /// least 1 ns, the histogram's floor; saturating at its ceiling).
    pub fn add_to(&self, histogram: &mut Histogram<u64>, calibration: Calibration) {
        for (i, &count) in self.counts.iter().enumerate() {
            if count > 0 {
                let ns = calibration.to_ns(Elapsed(middle_of(i))).max(1);
                histogram.saturating_record_n(ns, count);
            }
        }
    }

    /// A histogram like [`new_histogram`]'s, holding every span in nanoseconds. By reference:
    /// the buckets are 58 KiB, and a thread worker's stack is 256 KiB (`pool`).
    pub fn to_histogram(&self, calibration: Calibration) -> Histogram<u64> {
        let mut histogram = new_histogram();
        self.add_to(&mut histogram, calibration);
        histogram
    }
}

/// The bucket of a span of `ticks`. With `m` the top set bit of `ticks | 2^SUB_BITS`, the
/// bucket is 2^(m - SUB_BITS) ticks wide and holds the `SUB_BITS + 1` bits below and at `m`:
/// spans below 2^(SUB_BITS + 1) map to themselves, and every row starts where the last ended.
#[inline]
fn bucket_of(ticks: u64) -> usize {
    let m = 63 - (ticks | 1 << SUB_BITS).leading_zeros();
    let shift = m - SUB_BITS;
    // The mask changes nothing (the top bit of `ticks >> shift` is bit SUB_BITS); it shows
    // the compiler the index is below BUCKETS, which drops the bounds check.
    let sub = (ticks >> shift) as usize & ((2 << SUB_BITS) - 1);
    ((shift as usize) << SUB_BITS) + sub
}

/// The lowest span in bucket `i`, and its width.
fn range_of(i: usize) -> (u64, u64) {
    let shift = (i >> SUB_BITS).saturating_sub(1) as u32;
    let sub = (i - ((shift as usize) << SUB_BITS)) as u64;
    (sub << shift, 1 << shift)
}

/// The span bucket `i` stands for: its middle, at most half a width from any span in it.
fn middle_of(i: usize) -> u64 {
    let (low, width) = range_of(i);
    low + width / 2
}

/// Serialises with the V2 format (run-length encoded counts: small when latencies cluster).
/// An empty histogram (an untimed run's) travels as no bytes at all: serializing one walks
/// every count, and a thousand workers doing that on two cores delay each other's finish.
pub fn encode(h: &Histogram<u64>) -> Vec<u8> {
    use hdrhistogram::serialization::Serializer;
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(h, &mut out)
        .expect("serialising to a Vec cannot fail");
    out
}

pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    if bytes.is_empty() {
        return Ok(new_histogram());
    }
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_histogram_is_no_bytes_and_decodes_empty() {
        assert!(encode(&new_histogram()).is_empty());
        let h = decode(&[]).unwrap();
        assert!(h.is_empty());
        let mut one = new_histogram();
        one.saturating_record(7);
        assert!(
            !encode(&one).is_empty(),
            "a histogram with a value is serialized"
        );
    }

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

    /// Spans spread over every magnitude (log-uniform, 1 tick to 2^40), with a cluster
    /// where real updates fall (20–400 ticks) and the exact powers of two and their neighbours.
    fn spread_of_spans() -> Vec<u64> {
        let mut rng = crate::pick::SplitMix64::new(7);
        let mut spans: Vec<u64> = (0..20_000)
            .map(|_| {
                let bits = 1 + rng.below(40);
                (1 << (bits - 1)) + rng.below(1 << (bits - 1))
            })
            .collect();
        spans.extend((0..20_000).map(|_| 20 + rng.below(380)));
        for b in 0..41 {
            spans.extend([(1u64 << b) - 1, 1 << b, (1 << b) + 1]);
        }
        spans
    }

    #[test]
    fn buckets_tile_every_span() {
        let mut next_low = 0u128;
        for i in 0..BUCKETS {
            let (low, width) = range_of(i);
            assert_eq!(
                low as u128, next_low,
                "bucket {i} starts where the last ended"
            );
            assert_eq!((bucket_of(low), bucket_of(low + (width - 1))), (i, i));
            // The width is at most 1/128 of the bucket's values (exact below 256 ticks).
            assert!(
                width == 1 || width <= low / 128,
                "bucket {i}: {low} + {width}"
            );
            next_low = low as u128 + width as u128;
        }
        assert_eq!(next_low, 1 << 64, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn every_span_lies_in_its_bucket() {
        for span in spread_of_spans() {
            let (low, width) = range_of(bucket_of(span));
            assert!(
                (low..low + width).contains(&span),
                "{span} in {low} + {width}"
            );
        }
    }

    #[test]
    fn percentiles_match_a_direct_hdr_record() {
        let rates = [1000, 2_893, 3_999].map(Calibration::ticks_per_us);
        for calibration in rates {
            let (mut buckets, mut direct) = (Buckets::new(), new_histogram());
            let spans = spread_of_spans();
            for &span in &spans {
                buckets.record(Elapsed(span));
                direct.saturating_record(calibration.to_ns(Elapsed(span)).max(1));
            }
            let merged = buckets.to_histogram(calibration);
            assert_eq!(merged.len(), spans.len() as u64, "every span counted once");
            let quantiles = (0..=1000).map(|q| q as f64 / 1000.0);
            for q in quantiles.chain([0.9999, 0.99999]) {
                let (ours, theirs) = (merged.value_at_quantile(q), direct.value_at_quantile(q));
                assert!(
                    ours.abs_diff(theirs) as f64 <= PERCENTILE_ERROR * theirs as f64 + 1.0,
                    "{calibration:?} q={q}: {ours} ns vs {theirs} ns direct"
                );
            }
            assert_eq!(merged.min(), direct.min(), "small spans are exact");
        }
    }

    #[test]
    fn counts_are_conserved_across_buckets_and_merges() {
        let mut buckets = Buckets::new();
        assert!(buckets.is_empty());
        let mut h = new_histogram();
        h.record(5).unwrap();
        for span in [0, 1, 255, 256, 1_000_000] {
            buckets.record(Elapsed(span));
        }
        assert_eq!(buckets.len(), 5);
        buckets.add_to(&mut h, Calibration::NANOSECONDS);
        assert_eq!(h.len(), 6, "added to what was there");
        // A zero span still counts, at the histogram's floor.
        assert_eq!(h.count_at(1), 2);
    }

    #[test]
    fn spans_past_the_ceiling_saturate_and_still_count() {
        let mut buckets = Buckets::new();
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for span in [2 * MAX_NS, 1 << 50, 1 << 63, u64::MAX] {
            buckets.record(Elapsed(span));
        }
        let h = buckets.to_histogram(Calibration::NANOSECONDS);
        assert_eq!(h.len(), 4);
        assert!(h.high() >= MAX_NS);
        assert_eq!(h.count_at(h.high()), 4, "held at the histogram's ceiling");
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
