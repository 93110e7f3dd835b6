//! Which spot a vehicle takes: the lot's spot policy (which spot types a vehicle may use, best
//! first), the one best-spot choice every booking, change and pass makes (fit, then nearest,
//! then spread), and distances. The availability index (`availability.rs`) offers through it.

use warehouse_schema::VehicleType;

/// Which spots a lot lets which vehicles use, beyond the fixed fits of `VehicleType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpotPolicy {
    /// EV spots take cars too (as the last choice), where the operator configured it.
    pub ev_spots_open_to_cars: bool,
}

impl SpotPolicy {
    /// How well a `spot` suits a `vehicle` (lower is better), or `None` if it may not use it.
    pub fn rank(self, vehicle: VehicleType, spot: VehicleType) -> Option<usize> {
        let preferred = vehicle.preferred_spots();
        preferred.iter().position(|p| *p == spot).or_else(|| {
            (self.ev_spots_open_to_cars && vehicle == VehicleType::Car && spot == VehicleType::Ev)
                .then_some(preferred.len())
        })
    }

    /// The spot types `vehicle` may take under this policy, best first.
    pub fn ranked_spot_types(self, vehicle: VehicleType) -> Vec<VehicleType> {
        let mut types: Vec<(usize, VehicleType)> = VehicleType::ALL
            .into_iter()
            .filter_map(|spot| Some((self.rank(vehicle, spot)?, spot)))
            .collect();
        types.sort_unstable();
        types.into_iter().map(|(_, spot)| spot).collect()
    }
}

/// What a booking asks of its spot: the vehicle, the point to be near (the driver's workplace),
/// and `spread`, a hash of the request that picks among equally good spots.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub vehicle: VehicleType,
    pub near: Option<(f64, f64)>,
    pub spread: u64,
}

/// What the best-spot choice reads of a spot, as the index holds it or the store returns it.
pub trait Candidate {
    fn id(&self) -> i64;
    fn spot_type(&self) -> VehicleType;
    fn position(&self) -> Option<(f64, f64)>;
}

/// The best spot for `choice.vehicle` among `free`: the best fit, then the nearest to
/// `choice.near`. Without a point every best-fit spot is as good as another, and
/// `choice.spread` picks one: concurrent requests then rarely race for the same spot, which on
/// PostgreSQL would make all but one retry. (The availability index, which knows the taken
/// spots too, walks from the spread's place among all of them to the first free one instead of
/// counting the free ones: `LotIndex::spread_pick`.)
pub fn best_spot<'a, S: Candidate + 'a>(
    free: impl IntoIterator<Item = &'a S>,
    policy: SpotPolicy,
    choice: Choice,
) -> Option<&'a S> {
    let fitting: Vec<(usize, &S)> = free
        .into_iter()
        .filter_map(|s| Some((policy.rank(choice.vehicle, s.spot_type())?, s)))
        .collect();
    let best_fit = fitting.iter().map(|(rank, _)| *rank).min()?;
    let best: Vec<&S> = fitting
        .into_iter()
        .filter(|(rank, _)| *rank == best_fit)
        .map(|(_, s)| s)
        .collect();
    match choice.near {
        Some(n) => {
            let distance = |s: &S| distance_from(s, Some(n));
            best.into_iter().min_by(|a, b| {
                distance(a)
                    .total_cmp(&distance(b))
                    .then(a.id().cmp(&b.id()))
            })
        }
        None => best
            .get((choice.spread % best.len() as u64) as usize)
            .copied(),
    }
}

/// Metres from `spot` to `near`; a spot without a position, or no point, is farthest.
pub fn distance_from(spot: &impl Candidate, near: Option<(f64, f64)>) -> f64 {
    match (spot.position(), near) {
        (Some(p), Some(n)) => distance_m(p, n),
        _ => f64::MAX,
    }
}

/// Great-circle distance in metres between two (latitude, longitude) points (haversine).
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dla = la2 - la1;
    let dlo = (b.1 - a.1).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_distance_is_right_to_a_metre() {
        // One degree of latitude is about 111.2 km.
        let d = distance_m((52.0, 13.0), (53.0, 13.0));
        assert!((d - 111_195.0).abs() < 1.0, "{d}");
        assert_eq!(distance_m((1.0, 2.0), (1.0, 2.0)), 0.0);
    }

    #[test]
    fn ranked_spot_types_are_the_ranks_in_order() {
        for ev_spots_open_to_cars in [false, true] {
            let policy = SpotPolicy {
                ev_spots_open_to_cars,
            };
            for vehicle in VehicleType::ALL {
                let types = policy.ranked_spot_types(vehicle);
                let ranks: Vec<usize> = types
                    .iter()
                    .map(|t| policy.rank(vehicle, *t).expect("a listed type is usable"))
                    .collect();
                assert!(
                    ranks.windows(2).all(|w| w[0] < w[1]),
                    "{vehicle}: {ranks:?}"
                );
                let usable = VehicleType::ALL
                    .into_iter()
                    .filter(|t| policy.rank(vehicle, *t).is_some())
                    .count();
                assert_eq!(types.len(), usable, "{vehicle}");
            }
        }
        let open = SpotPolicy {
            ev_spots_open_to_cars: true,
        };
        assert_eq!(
            open.ranked_spot_types(VehicleType::Car).last(),
            Some(&VehicleType::Ev)
        );
    }
}
