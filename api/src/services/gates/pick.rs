//! How an entry picks its spot among the free ones, and the stay it is about to open.

use crate::domain::spot_choice::SpotPolicy;
use warehouse_schema::{EntryMethod, LotId, MonthlyPassId, ReservationId, UserId, VehicleType};

/// How an entry chooses among the spots equally good for its vehicle: the first (lowest id),
/// or, after losing one to a concurrent entry, one at random so the losers spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    First,
    Spread(u64),
}

impl Pick {
    /// The spot of `free` (id, label, spot type; listed by id) a `vehicle` takes under
    /// `policy`: one of the best rank it may use, or none.
    pub(crate) fn choose(
        self,
        free: &[(i64, String, String)],
        policy: SpotPolicy,
        vehicle: VehicleType,
    ) -> Option<(i64, &str)> {
        let ranked: Vec<(usize, i64, &str)> = free
            .iter()
            .filter_map(|(id, label, spot_type)| {
                let rank = policy.rank(vehicle, spot_type.parse().ok()?)?;
                Some((rank, *id, label.as_str()))
            })
            .collect();
        let best = ranked.iter().map(|(rank, ..)| *rank).min()?;
        let equal: Vec<_> = ranked.iter().filter(|(rank, ..)| *rank == best).collect();
        let chosen = match self {
            Self::First => equal.first(),
            Self::Spread(r) => {
                let n = u64::try_from(equal.len()).unwrap_or(u64::MAX);
                usize::try_from(r % n).ok().and_then(|i| equal.get(i))
            }
        };
        chosen.map(|(_, id, label)| (*id, *label))
    }
}

/// A stay about to open: where, who and how.
pub(crate) struct NewStay<'a> {
    pub(crate) lot: LotId,
    /// Spot id and label.
    pub(crate) spot: (i64, String),
    pub(crate) vehicle_type: VehicleType,
    pub(crate) method: EntryMethod,
    pub(crate) plate: Option<&'a str>,
    pub(crate) user: Option<UserId>,
    pub(crate) reservation: Option<ReservationId>,
    /// The monthly pass a holder entered on.
    pub(crate) monthly_pass: Option<MonthlyPassId>,
}

#[cfg(test)]
mod tests {
    use super::{Pick, SpotPolicy, VehicleType};

    fn spots(types: &[&str]) -> Vec<(i64, String, String)> {
        (1..)
            .zip(types)
            .map(|(id, t)| (id, format!("A{id}"), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn an_entry_takes_the_best_spot_and_losers_spread_over_the_equally_good() {
        let free = spots(&["ev", "car", "car", "car", "motorcycle"]);
        let policy = SpotPolicy {
            ev_spots_open_to_cars: true,
        };
        // A car prefers car spots to the EV spot; the first attempt takes the lowest id.
        assert_eq!(
            Pick::First.choose(&free, policy, VehicleType::Car),
            Some((2, "A2"))
        );
        // After a loss, every car spot is offered by some draw, never the EV spot.
        let drawn: std::collections::BTreeSet<i64> = (0..12)
            .filter_map(|r| Pick::Spread(r).choose(&free, policy, VehicleType::Car))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(drawn, [2, 3, 4].into());
        // A draw at the end of u64 still lands on a spot.
        assert!(
            Pick::Spread(u64::MAX)
                .choose(&free, policy, VehicleType::Car)
                .is_some()
        );
        // Nothing the vehicle may use: no spot.
        let evs = spots(&["ev"]);
        let closed = SpotPolicy {
            ev_spots_open_to_cars: false,
        };
        assert_eq!(Pick::First.choose(&evs, closed, VehicleType::Car), None);
        assert_eq!(Pick::Spread(7).choose(&evs, closed, VehicleType::Car), None);
        assert_eq!(Pick::First.choose(&[], policy, VehicleType::Car), None);
    }
}
