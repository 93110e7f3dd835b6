//! The synthetic world: lots around one city and the drivers who want to park in them.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use parkflow_api::services::NewLot;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};
use std::collections::BTreeMap;
use warehouse_schema::{EntryMethod, LotId, UserId, VehicleType};

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub lots: usize,
    pub days: u32,
    /// First simulated local day (a Monday by default, so a week covers every weekday).
    pub start: NaiveDate,
    pub time_zone: Tz,
    /// Constant price elasticity of visitor demand (SFpark measured ≈ −0.4 on average).
    pub elasticity: f64,
    /// The rate at which demand is "as planned"; higher rates thin it by the elasticity.
    pub reference_cents: i64,
    /// Where the world stops, if before the end of its last day (see [`Self::ending_at`]).
    pub until: Option<DateTime<Utc>>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            lots: 20,
            days: 7,
            start: NaiveDate::from_ymd_opt(2026, 6, 1).expect("valid date"),
            time_zone: chrono_tz::America::Los_Angeles,
            elasticity: -0.4,
            reference_cents: 200,
            until: None,
        }
    }
}

impl SimConfig {
    /// Local midnight at the start of day `d` as a UTC instant.
    pub fn day_start(&self, d: u32) -> DateTime<Utc> {
        local(self.time_zone, self.start + Duration::days(i64::from(d)), 0)
    }

    /// Whole weeks in the period.
    pub fn weeks(&self) -> u32 {
        self.days / 7
    }

    /// The end of the simulated period.
    pub fn end(&self) -> DateTime<Utc> {
        let last = self.day_start(self.days);
        self.until.map_or(last, |until| until.min(last))
    }

    /// A world of `days` whole days that ends at `end`: it starts at local midnight `days`
    /// days before `end`'s local day and runs through that day up to `end`.
    pub fn ending_at(mut self, end: DateTime<Utc>, days: u32) -> Self {
        let last_day = end.with_timezone(&self.time_zone).date_naive();
        self.start = last_day - Duration::days(i64::from(days));
        self.days = days + 1;
        self.until = Some(end);
        self
    }
}

/// A commuter's habits.
#[derive(Debug, Clone)]
pub struct Commuter {
    pub user_id: UserId,
    pub plate: String,
    pub vehicle_type: VehicleType,
    /// Usual arrival, in local minutes after midnight.
    pub arrive_minute: f64,
    pub stay_hours: f64,
    /// Probability of coming on a weekday.
    pub attendance: f64,
}

/// One lot and the demand it sees.
#[derive(Debug, Clone)]
pub struct LotPlan {
    pub name: String,
    pub time_zone: Tz,
    pub latitude: f64,
    pub longitude: f64,
    pub spots: BTreeMap<VehicleType, u32>,
    pub default_cents: i64,
    pub commuters: Vec<Commuter>,
    /// Visitors per spot per hour at the daily peak.
    pub visitor_intensity: f64,
    /// Probability of an evening event on any day.
    pub event_probability: f64,
}

impl LotPlan {
    pub fn capacity(&self) -> u32 {
        self.spots.values().sum()
    }

    pub fn new_lot(&self) -> NewLot {
        NewLot {
            ev_spots_open_to_cars: false,
            name: self.name.clone(),
            time_zone: self.time_zone.name().to_owned(),
            latitude: self.latitude,
            longitude: self.longitude,
            currency: "USD".into(),
            default_cents_per_hour: self.default_cents,
            spots: self.spots.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalKind {
    Commuter,
    Visitor,
    Event,
}

/// A driver who decided to come (after price thinning).
#[derive(Debug, Clone)]
pub struct Arrival {
    pub seq: u64,
    pub lot_id: LotId,
    pub at: DateTime<Utc>,
    pub stay: Duration,
    pub vehicle_type: VehicleType,
    pub method: EntryMethod,
    pub plate: Option<String>,
    pub user_id: Option<UserId>,
    pub kind: ArrivalKind,
}

const STREETS: [&str; 10] = [
    "Market St",
    "Mission St",
    "Embarcadero",
    "Union Square",
    "Civic Center",
    "SoMa",
    "Fisherman's Wharf",
    "Financial District",
    "Mission Bay",
    "Hayes Valley",
];

/// The lots of a scenario, reproducible from the seed.
pub fn scenario(cfg: &SimConfig) -> Vec<LotPlan> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    (0..cfg.lots)
        .map(|i| {
            let capacity = rng.random_range(80..=250u32);
            let ev = capacity / 10;
            let moto = capacity / 20;
            let van = capacity / 25;
            let spots = BTreeMap::from([
                (VehicleType::Car, capacity - ev - moto - van),
                (VehicleType::Ev, ev),
                (VehicleType::Motorcycle, moto),
                (VehicleType::Van, van),
            ]);
            // Some lots are commuter magnets, some are nearly empty: pricing has work to do.
            let commuter_share = rng.random_range(0.25..1.05);
            let commuters = (0..(f64::from(capacity) * commuter_share) as usize)
                .map(|c| Commuter {
                    user_id: UserId(uuid_from(&mut rng)),
                    plate: format!("{}{:04}", (b'A' + (i % 26) as u8) as char, c),
                    vehicle_type: vehicle_mix(&mut rng),
                    arrive_minute: rng.random_range(6.5 * 60.0..9.75 * 60.0),
                    stay_hours: rng.random_range(7.0..10.0),
                    attendance: rng.random_range(0.75..0.97),
                })
                .collect();
            LotPlan {
                name: format!("Lot {} — {}", i + 1, STREETS[i % STREETS.len()]),
                time_zone: cfg.time_zone,
                latitude: 37.7749 + rng.random_range(-0.03..0.03),
                longitude: -122.4194 + rng.random_range(-0.03..0.03),
                spots,
                default_cents: 200 + 25 * rng.random_range(0..=4),
                commuters,
                visitor_intensity: rng.random_range(0.04..0.26),
                event_probability: rng.random_range(0.0..0.25),
            }
        })
        .collect()
}

/// The lots of a scenario with ids 1, 2, … — as a fresh store numbers them, and as the
/// in-memory runs (`history`) use them without a store.
pub fn numbered_lots(cfg: &SimConfig) -> Vec<(LotId, LotPlan)> {
    scenario(cfg)
        .into_iter()
        .enumerate()
        .map(|(i, p)| (LotId(i as i64 + 1), p))
        .collect()
}

fn uuid_from(rng: &mut ChaCha8Rng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn vehicle_mix(rng: &mut ChaCha8Rng) -> VehicleType {
    match rng.random_range(0..100) {
        0..75 => VehicleType::Car,
        75..87 => VehicleType::Ev,
        87..93 => VehicleType::Motorcycle,
        _ => VehicleType::Van,
    }
}

/// The UTC instant of local `minute` after midnight on `date` (a time in a DST gap moves on).
pub fn local(tz: Tz, date: NaiveDate, minute: u32) -> DateTime<Utc> {
    let mut m = minute.min(24 * 60 - 1);
    loop {
        let t = NaiveTime::from_hms_opt(m / 60, m % 60, 0).expect("valid time");
        if let Some(at) = tz.from_local_datetime(&date.and_time(t)).earliest() {
            // A wall time inside a gap is pushed on by the length of the gap (02:30 → 03:30).
            return at.with_timezone(&Utc) + Duration::minutes(i64::from(m - minute.min(m)));
        }
        m += 1;
    }
}

/// Visitor arrivals per spot-hour relative to the peak, by local hour.
fn visitor_shape(hour: u32, weekend: bool) -> f64 {
    match (weekend, hour) {
        (_, 0..=5) => 0.02,
        (false, 6..=9) => 0.3,
        (false, 10..=15) => 1.0,
        (false, 16..=20) => 0.6,
        (true, 6..=9) => 0.2,
        (true, 10..=18) => 1.0,
        (true, 19..=21) => 0.7,
        _ => 0.15,
    }
}

/// Every arrival of the period for lots `lots` (ids as created in the API), shaped by price:
/// `rate(lot, vehicle, at)` is the hourly rate that driver would see. Above the reference rate
/// drivers stay away by the elasticity; below it, visitors come in larger numbers by the same
/// curve (a second visitor with the probability of the excess).
pub fn arrivals(
    cfg: &SimConfig,
    lots: &[(LotId, LotPlan)],
    mut rate: impl FnMut(LotId, VehicleType, DateTime<Utc>) -> i64,
) -> (Vec<Arrival>, u64, u64) {
    let mut out = Vec::new();
    let (mut demand, mut priced_out) = (0u64, 0u64);
    let mut seq = 0u64;
    for (idx, (lot_id, plan)) in lots.iter().enumerate() {
        for d in 0..cfg.days {
            let date = cfg.start + Duration::days(i64::from(d));
            let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
            // One stream per lot and day: a change in one lot does not reshuffle the others.
            let stream = cfg.seed ^ ((idx as u64) << 32) ^ u64::from(d).wrapping_mul(0x9E37_79B9);
            let mut rng = ChaCha8Rng::seed_from_u64(stream);
            // Price decisions draw from their own stream, so the demand itself is identical
            // whatever the prices (common random numbers when comparing policies).
            let mut thin_rng = ChaCha8Rng::seed_from_u64(stream ^ 0x005E_ED0F_u64.rotate_left(40));
            let mut push = |rng: &mut ChaCha8Rng,
                            kind: ArrivalKind,
                            minute: f64,
                            stay_h: f64,
                            vt: VehicleType,
                            who: Option<&Commuter>| {
                demand += 1;
                let at = local(plan.time_zone, date, minute.clamp(0.0, 1439.0) as u32)
                    + Duration::seconds(rng.random_range(0..60));
                let price = rate(*lot_id, vt, at) as f64;
                let elasticity = if kind == ArrivalKind::Commuter {
                    cfg.elasticity / 4.0
                } else {
                    cfg.elasticity
                };
                let method = match (kind, rng.random_range(0..20)) {
                    (ArrivalKind::Commuter, _) => EntryMethod::Plate,
                    (_, 0) => EntryMethod::Staff,
                    (_, 1..=8) => EntryMethod::Nfc,
                    _ => EntryMethod::Qr,
                };
                // Demand relative to the reference price: below 1 some stay away; above 1 (a
                // visitor seeing a price under the reference) a second visitor may come too.
                let relative = (price.max(1.0) / cfg.reference_cents as f64).powf(elasticity);
                let draw = thin_rng.random::<f64>();
                if draw >= relative {
                    priced_out += 1;
                    return;
                }
                let extra = kind != ArrivalKind::Commuter && draw < relative - 1.0;
                for copy in 0..=u32::from(extra) {
                    seq += 1;
                    out.push(Arrival {
                        seq,
                        lot_id: *lot_id,
                        at: at + Duration::minutes(i64::from(copy) * 7),
                        stay: Duration::seconds((stay_h * 3600.0) as i64),
                        vehicle_type: vt,
                        method,
                        plate: who.map(|c| c.plate.clone()),
                        user_id: who.map(|c| c.user_id),
                        kind,
                    });
                }
            };
            if !weekend {
                let noise = Normal::new(0.0, 12.0).expect("valid normal");
                for c in &plan.commuters {
                    if rng.random_bool(c.attendance) {
                        let minute = c.arrive_minute + noise.sample(&mut rng);
                        let stay = (c.stay_hours + rng.random_range(-0.5..0.5)).max(1.0);
                        push(
                            &mut rng,
                            ArrivalKind::Commuter,
                            minute,
                            stay,
                            c.vehicle_type,
                            Some(c),
                        );
                    }
                }
            }
            let stay_dist = LogNormal::<f64>::new(0.3, 0.6).expect("valid lognormal");
            for hour in 0..24 {
                let lambda = f64::from(plan.capacity())
                    * plan.visitor_intensity
                    * visitor_shape(hour, weekend);
                let n = Poisson::new(lambda.max(1e-9))
                    .expect("valid poisson")
                    .sample(&mut rng) as u32;
                for _ in 0..n {
                    let minute = f64::from(hour * 60) + rng.random_range(0.0..60.0);
                    let stay = stay_dist.sample(&mut rng).clamp(0.25, 6.0);
                    let vt = vehicle_mix(&mut rng);
                    push(&mut rng, ArrivalKind::Visitor, minute, stay, vt, None);
                }
            }
            if rng.random_bool(plan.event_probability) {
                let surge = (f64::from(plan.capacity()) * rng.random_range(0.3..0.8)) as u32;
                for _ in 0..surge {
                    let minute = rng.random_range(17.5 * 60.0..19.25 * 60.0);
                    let stay = rng.random_range(2.5..4.0);
                    let vt = vehicle_mix(&mut rng);
                    push(&mut rng, ArrivalKind::Event, minute, stay, vt, None);
                }
            }
        }
    }
    (out, demand, priced_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_is_reproducible_and_varied() {
        let cfg = SimConfig {
            lots: 5,
            ..SimConfig::default()
        };
        let a = scenario(&cfg);
        let b = scenario(&cfg);
        assert_eq!(a.len(), 5);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (x.capacity(), x.commuters.len(), x.default_cents),
                (y.capacity(), y.commuters.len(), y.default_cents)
            );
        }
        assert!(a.iter().any(|l| l.commuters.len() != a[0].commuters.len()));
    }

    #[test]
    fn higher_prices_thin_visitor_demand_by_the_elasticity() {
        let cfg = SimConfig {
            lots: 3,
            days: 7,
            ..SimConfig::default()
        };
        let lots: Vec<(LotId, LotPlan)> = numbered_lots(&cfg);
        let (cheap, demand_a, out_a) = arrivals(&cfg, &lots, |_, _, _| 200);
        let (dear, demand_b, out_b) = arrivals(&cfg, &lots, |_, _, _| 400);
        assert_eq!(demand_a, demand_b, "demand before price is the same");
        assert_eq!(out_a, 0);
        let visitors =
            |v: &[Arrival]| v.iter().filter(|a| a.kind != ArrivalKind::Commuter).count() as f64;
        // Doubling the price keeps 2^-0.4 ≈ 76 % of visitors.
        let kept = visitors(&dear) / visitors(&cheap);
        assert!((kept - 2f64.powf(-0.4)).abs() < 0.05, "kept {kept}");
        assert!(out_b > 0);
        assert!(cheap.iter().filter(|a| a.kind == ArrivalKind::Commuter).all(|a| a.at.weekday().number_from_monday() <= 5 || a.at.weekday() == Weekday::Sat));
    }

    #[test]
    fn prices_under_the_reference_bring_more_visitors() {
        let cfg = SimConfig {
            lots: 3,
            days: 7,
            ..SimConfig::default()
        };
        let lots: Vec<(LotId, LotPlan)> = numbered_lots(&cfg);
        let count = |cents: i64, kind: ArrivalKind| {
            let (all, _, _) = arrivals(&cfg, &lots, |_, _, _| cents);
            all.iter().filter(|a| a.kind == kind).count() as f64
        };
        // Halving the price brings 2^0.4 ≈ 1.32 times the visitors; commuters do not multiply.
        let more = count(100, ArrivalKind::Visitor) / count(200, ArrivalKind::Visitor);
        assert!((more - 2f64.powf(0.4)).abs() < 0.05, "{more}");
        assert_eq!(
            count(100, ArrivalKind::Commuter),
            count(200, ArrivalKind::Commuter)
        );
    }

    #[test]
    fn a_world_ending_now_covers_whole_days_up_to_the_end() {
        let end: DateTime<Utc> = "2026-12-03T15:00:00Z".parse().unwrap(); // 07:00 in LA
        let cfg = SimConfig::default().ending_at(end, 28);
        assert_eq!(cfg.start, NaiveDate::from_ymd_opt(2026, 11, 5).unwrap());
        assert_eq!(cfg.end(), end);
        assert_eq!(cfg.days, 29, "28 whole days and the day so far");
        let (all, _, _) = arrivals(
            &cfg,
            &numbered_lots(&SimConfig {
                lots: 2,
                ..cfg.clone()
            }),
            |_, _, _| 200,
        );
        assert!(
            all.iter().any(|a| a.at >= end),
            "arrivals past the end exist; run drops them"
        );
    }

    #[test]
    fn local_times_honour_dst() {
        let tz = chrono_tz::America::Los_Angeles;
        // 2026-03-08: clocks jump from 02:00 to 03:00; 02:30 does not exist.
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        assert_eq!(
            local(tz, d, 150),
            "2026-03-08T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            local(tz, d, 8 * 60),
            "2026-03-08T15:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
