//! What "nothing lost" means for a counter: per slot, the final value equals the initial value
//! plus every update the workers applied to it. Lost = expected − observed, summed over slots:
//! one stale write can erase many updates, so colliding pairs are never what is counted.

use serde::Serialize;

/// One slot's accounting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotCount {
    pub slot: usize,
    pub expected: u64,
    pub observed: u64,
}

/// The whole region's accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    /// Initial values plus every update applied.
    pub expected: u64,
    /// The sum of the final slot values.
    pub observed: u64,
    /// Updates applied but absent from the final values.
    pub lost: u64,
    /// Value present that no update accounts for (must be 0 for any strategy).
    pub unexpected: u64,
    /// Slots whose value is not what was expected.
    pub wrong_slots: usize,
}

impl Count {
    pub fn exact(&self) -> bool {
        self.lost == 0 && self.unexpected == 0
    }

    /// Loss rate as a fraction of the updates applied.
    pub fn loss_rate(&self, updates: u64) -> f64 {
        if updates == 0 {
            0.0
        } else {
            self.lost as f64 / updates as f64
        }
    }
}

/// Compares each slot's final value with its initial value plus the updates sent to it.
pub fn count(initial: u32, applied: &[u64], observed: &[u32]) -> (Count, Vec<SlotCount>) {
    bounded_count(initial, applied, &vec![0; applied.len()], observed)
}

/// Compares each slot's final value with the bounds deaths allow: acknowledged updates (plus
/// the initial value) at least, plus the updates in flight at most. Lost counts what is below
/// the lower bound, unexpected what is above the upper one. With nothing in flight this is the
/// exact count of `count`.
pub fn bounded_count(
    initial: u32,
    acknowledged: &[u64],
    in_flight: &[u64],
    observed: &[u32],
) -> (Count, Vec<SlotCount>) {
    assert_eq!(acknowledged.len(), observed.len(), "one count per slot");
    assert_eq!(in_flight.len(), observed.len(), "one count per slot");
    let mut total = Count::default();
    let mut wrong = Vec::new();
    for (slot, ((&n, &f), &v)) in acknowledged.iter().zip(in_flight).zip(observed).enumerate() {
        let low = initial as u64 + n;
        let high = low + f;
        let observed = v as u64;
        // Report the value the run actually holds as expected when it is within bounds.
        let expected = observed.clamp(low, high);
        total.expected += expected;
        total.observed += observed;
        if observed < low {
            total.lost += low - observed;
        } else if observed > high {
            total.unexpected += observed - high;
        }
        if observed != expected {
            total.wrong_slots += 1;
            wrong.push(SlotCount {
                slot,
                expected,
                observed,
            });
        }
    }
    (total, wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_when_every_update_is_present() {
        let (c, wrong) = count(50, &[25, 0, 3], &[75, 50, 53]);
        assert!(c.exact());
        assert_eq!((c.expected, c.observed), (178, 178));
        assert!(wrong.is_empty());
    }

    #[test]
    fn one_stale_write_erasing_many_updates_counts_them_all() {
        // 10 updates applied, but a stale write left the slot at 3: 7 are lost, not "one pair".
        let (c, wrong) = count(0, &[10], &[3]);
        assert_eq!(c.lost, 7);
        assert_eq!(
            wrong,
            vec![SlotCount {
                slot: 0,
                expected: 10,
                observed: 3
            }]
        );
    }

    #[test]
    fn bounds_accept_anything_between_acknowledged_and_in_flight() {
        // Slot 0: 10 acked, 2 in flight: 10, 11 and 12 are all fine.
        for v in 10..=12 {
            let (c, wrong) = bounded_count(0, &[10], &[2], &[v]);
            assert!(c.exact(), "{v}: {c:?}");
            assert!(wrong.is_empty());
        }
    }

    #[test]
    fn below_acknowledged_is_lost_and_above_in_flight_is_unexpected() {
        let (c, _) = bounded_count(5, &[10, 10], &[1, 1], &[14, 17]);
        assert_eq!((c.lost, c.unexpected, c.wrong_slots), (1, 1, 2));
    }

    #[test]
    fn loss_on_one_slot_is_not_hidden_by_excess_on_another() {
        let (c, _) = count(0, &[5, 5], &[3, 7]);
        assert_eq!((c.lost, c.unexpected, c.wrong_slots), (2, 2, 2));
        assert!(!c.exact());
    }
}
