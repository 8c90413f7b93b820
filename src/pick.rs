//! Which slot each update goes to, and every other seeded choice. Deterministic from
//! (seed, worker), so the parent can replay any worker's first `n` choices and know exactly how
//! many updates each slot was sent, and which slot a worker that died was updating.
//!
//! Ranges are reduced without division: Lemire's multiply-shift maps a 64-bit draw `r` onto
//! `0..n` as the high half of `r * n` (one multiply; the bias is below n / 2^64).

/// How updates are spread over the slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// Every slot equally likely.
    Uniform,
    /// This percentage of updates go to slot 0; the rest are uniform.
    Hot(u8),
}

impl std::str::FromStr for Pick {
    type Err = String;
    fn from_str(s: &str) -> Result<Pick, String> {
        if s == "uniform" {
            return Ok(Pick::Uniform);
        }
        if let Some(p) = s.strip_prefix("hot:") {
            return match p.parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Pick::Hot(p)),
                _ => Err(format!("'{s}': hot:P takes a percentage from 0 to 100")),
            };
        }
        Err(format!(
            "'{s}': expected 'uniform' or 'hot:P' (P a percentage)"
        ))
    }
}

impl std::fmt::Display for Pick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pick::Uniform => f.write_str("uniform"),
            Pick::Hot(p) => write!(f, "hot:{p}"),
        }
    }
}

/// `r` mapped onto `0..n` by multiply-shift (Lemire): no division.
#[inline]
pub fn reduce(r: u64, n: u64) -> u64 {
    ((r as u128 * n as u128) >> 64) as u64
}

/// splitmix64: tiny, fast, good enough to spread load, and replayable from its state. Every
/// seeded choice in racepool (slots, ballots, transfers, fault victims) draws from one.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(state: u64) -> SplitMix64 {
        SplitMix64(state)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        reduce(self.next_u64(), n)
    }
}

/// One worker's stream of slot indices.
#[derive(Clone, Debug)]
pub struct SlotPicker {
    rng: SplitMix64,
    slots: u64,
    /// `Pick::Hot(p)`: a draw whose low 32 bits are below this goes to slot 0 (p% of 2^32);
    /// 0 for uniform.
    hot_below: u64,
}

impl SlotPicker {
    pub fn new(seed: u64, worker: usize, slots: usize, pick: Pick) -> SlotPicker {
        let state = seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        SlotPicker {
            rng: SplitMix64::new(state),
            slots: slots as u64,
            hot_below: match pick {
                Pick::Uniform => 0,
                // Once per worker: the only division here.
                Pick::Hot(p) => (p as u64) * (1 << 32) / 100,
            },
        }
    }

    /// The next slot. Callers with one slot do not call this (the slot is fixed).
    #[inline]
    pub fn next_slot(&mut self) -> usize {
        let r = self.rng.next_u64();
        if (r & 0xFFFF_FFFF) < self.hot_below {
            return 0;
        }
        reduce(r, self.slots) as usize
    }

    /// Adds the slots of this worker's first `n` updates to `counts`.
    pub fn replay(mut self, n: u64, counts: &mut [u64]) {
        if counts.len() == 1 {
            counts[0] += n;
            return;
        }
        for _ in 0..n {
            counts[self.next_slot()] += 1;
        }
    }

    /// The slot of this worker's update number `n` (from 0): the one a worker that
    /// acknowledged `n` updates was making next.
    pub fn nth(mut self, n: u64) -> usize {
        if self.slots == 1 {
            return 0;
        }
        for _ in 0..n {
            self.next_slot();
        }
        self.next_slot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_matches_the_stream_the_worker_saw() {
        let mut live = SlotPicker::new(7, 3, 64, Pick::Hot(50));
        let mut seen = vec![0u64; 64];
        let mut order = Vec::new();
        for _ in 0..1000 {
            let s = live.next_slot();
            seen[s] += 1;
            order.push(s);
        }
        let mut replayed = vec![0u64; 64];
        SlotPicker::new(7, 3, 64, Pick::Hot(50)).replay(1000, &mut replayed);
        assert_eq!(seen, replayed);
        for n in [0, 1, 17, 999] {
            assert_eq!(
                SlotPicker::new(7, 3, 64, Pick::Hot(50)).nth(n as u64),
                order[n]
            );
        }
    }

    #[test]
    fn hot_pick_sends_about_its_share_to_slot_zero() {
        let mut counts = vec![0u64; 64];
        SlotPicker::new(1, 0, 64, Pick::Hot(90)).replay(100_000, &mut counts);
        assert!(counts[0] > 89_000 && counts[0] < 92_000, "{}", counts[0]);
    }

    #[test]
    fn uniform_pick_reaches_every_slot_about_evenly() {
        let mut counts = vec![0u64; 10];
        SlotPicker::new(5, 2, 10, Pick::Uniform).replay(100_000, &mut counts);
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn reduce_stays_below_its_bound() {
        for n in [1u64, 2, 3, 64, 1000, u32::MAX as u64] {
            for r in [0, 1, u64::MAX / 3, u64::MAX - 1, u64::MAX] {
                assert!(reduce(r, n) < n, "{r} onto {n}");
            }
        }
        assert_eq!(reduce(u64::MAX, 10), 9);
    }

    #[test]
    fn pick_parses_and_rejects() {
        assert_eq!("uniform".parse::<Pick>(), Ok(Pick::Uniform));
        assert_eq!("hot:90".parse::<Pick>(), Ok(Pick::Hot(90)));
        assert!("hot:101".parse::<Pick>().is_err());
        assert!("zipf".parse::<Pick>().is_err());
    }
}
