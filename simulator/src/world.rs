//! The drivers' side of the world: what each driver does with the app besides driving up.
//!
//! Every arrival of the scenario is a driver. Some reserve ahead — most the same day, some days
//! ahead (commuters with the habit the evening before) — pay by card, wallet or prepaid
//! balance (with the sandbox's declines, and a few card payments the bank later reverses),
//! change or cancel, or never come (the `reservations`
//! sweep warns and cancels them); a full window sends them to the waitlist. They enter by
//! pass, commuters without a booking by plate, the rest drive up. What each driver intends is
//! drawn from its own seeded stream, so the demand is the same whatever the choices.

use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use warehouse_schema::{ReservationId, UserId};

use crate::scenario::{Arrival, ArrivalKind};

/// How a reserving driver pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pay {
    /// By card: declined at once, or captured and (`reversed`) clawed back by the bank later.
    Card {
        declined: bool,
        reversed: bool,
    },
    Wallet {
        declined: bool,
    },
    Balance,
}

/// What a driver does between booking and arriving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Then {
    /// Comes as booked.
    Show,
    /// Cancels this far (a share of the time between booking and start) into the wait.
    Cancel(f64),
    /// Moves the window 30 minutes later this far into the wait, and comes then.
    Change(f64),
    /// Never comes.
    NoShow,
}

/// What one driver intends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intent {
    /// Drives up (by plate when a commuter, else by what the gate reads).
    DriveUp,
    /// Books `lead` before arriving, pays with `pay`, then does `then`.
    Reserve {
        lead: Duration,
        pay: Pay,
        then: Then,
    },
}

/// The share of drivers of each kind who reserve ahead.
fn reserve_share(kind: ArrivalKind) -> f64 {
    match kind {
        ArrivalKind::Visitor => 0.25,
        ArrivalKind::Event => 0.45,
        ArrivalKind::Commuter => 0.3,
    }
}

/// The intent of driver `a`, reproducible from `seed` and the arrival alone.
pub fn intent(seed: u64, a: &Arrival) -> Intent {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ a.seq.wrapping_mul(0xA24B_AED4_963E_E407));
    // A commuter's habit is theirs every day: decided by who they are, not by the day.
    let reserves = match (a.kind, a.user_id) {
        (ArrivalKind::Commuter, Some(u)) => {
            (u.0.as_u128() % 10) as f64 / 10.0 < reserve_share(ArrivalKind::Commuter)
        }
        (kind, _) => rng.random_bool(reserve_share(kind)),
    };
    if !reserves {
        return Intent::DriveUp;
    }
    let minutes = match (a.kind, rng.random_range(0..100)) {
        // Commuters book the evening before.
        (ArrivalKind::Commuter, _) => rng.random_range(10 * 60..16 * 60),
        // Most book the same day, some days ahead (events more often).
        (ArrivalKind::Event, 0..40) | (_, 0..60) => rng.random_range(30..6 * 60),
        (ArrivalKind::Event, 40..85) | (_, 60..90) => rng.random_range(24 * 60..3 * 24 * 60),
        _ => rng.random_range(4 * 24 * 60..7 * 24 * 60),
    };
    let pay = match rng.random_range(0..100) {
        0..52 => {
            let declined = rng.random_bool(0.04);
            Pay::Card {
                declined,
                reversed: !declined && rng.random_bool(0.02),
            }
        }
        52..82 => Pay::Wallet {
            declined: rng.random_bool(0.03),
        },
        _ => Pay::Balance,
    };
    let then = match rng.random_range(0..100) {
        0..8 => Then::Cancel(rng.random_range(0.1..0.9)),
        8..13 => Then::Change(rng.random_range(0.1..0.9)),
        13..18 => Then::NoShow,
        _ => Then::Show,
    };
    Intent::Reserve {
        lead: Duration::minutes(minutes),
        pay,
        then,
    }
}

/// The window a driver arriving at `at` for `stay` books: from the quarter hour of arrival
/// (the gate opens 15 minutes either side of the start) for the stay rounded up to the
/// quarter hour, at least 30 minutes, at most a day.
pub fn window(at: DateTime<Utc>, stay: Duration) -> (DateTime<Utc>, DateTime<Utc>) {
    let quarter = Duration::minutes(15);
    let start = at.duration_trunc(quarter).unwrap_or(at);
    let minutes = (at - start + stay).num_minutes().clamp(30, 24 * 60);
    let length = Duration::minutes((minutes + 14) / 15 * 15);
    (start, start + length.min(Duration::days(1)))
}

/// A synthetic account for a driver who has none in the scenario (a visitor using the app).
pub fn visitor_account(seed: u64, a: &Arrival) -> UserId {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ a.seq.rotate_left(17) ^ 0x0A11_0C47);
    UserId(uuid::Builder::from_random_bytes(rng.random()).into_uuid())
}

/// What a booked driver holds: the reservation and the pass that opens the gate.
#[derive(Debug, Clone)]
pub struct Booked {
    pub id: ReservationId,
    pub pass: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{SimConfig, arrivals, numbered_lots};

    #[test]
    fn intents_are_reproducible_varied_and_commuters_keep_their_habit() {
        let cfg = SimConfig {
            lots: 3,
            days: 14,
            ..SimConfig::default()
        };
        let (all, _, _) = arrivals(&cfg, &numbered_lots(&cfg), |_, _, _| 200);
        let intents: Vec<Intent> = all.iter().map(|a| intent(cfg.seed, a)).collect();
        assert_eq!(
            intents,
            all.iter().map(|a| intent(cfg.seed, a)).collect::<Vec<_>>()
        );
        let reserving: Vec<&Intent> = intents
            .iter()
            .filter(|i| matches!(i, Intent::Reserve { .. }))
            .collect();
        let share = reserving.len() as f64 / intents.len() as f64;
        assert!((0.2..0.45).contains(&share), "{share}");
        let has = |f: &dyn Fn(&Intent) -> bool| reserving.iter().any(|i| f(i));
        assert!(has(&|i| matches!(
            i,
            Intent::Reserve {
                pay: Pay::Balance,
                ..
            }
        )));
        assert!(has(&|i| matches!(
            i,
            Intent::Reserve {
                pay: Pay::Card { declined: true, .. },
                ..
            }
        )));
        assert!(has(&|i| matches!(
            i,
            Intent::Reserve {
                pay: Pay::Card { reversed: true, .. },
                ..
            }
        )));
        assert!(has(&|i| matches!(
            i,
            Intent::Reserve {
                then: Then::NoShow,
                ..
            }
        )));
        assert!(has(&|i| matches!(
            i,
            Intent::Reserve {
                then: Then::Cancel(_),
                ..
            }
        )));
        assert!(has(
            &|i| matches!(i, Intent::Reserve { lead, .. } if *lead > Duration::days(3))
        ));
        // A commuter reserves on every day they come, or on none.
        let mut habit = std::collections::HashMap::new();
        for (a, i) in all.iter().zip(&intents) {
            if let (ArrivalKind::Commuter, Some(u)) = (a.kind, a.user_id) {
                let r = matches!(i, Intent::Reserve { .. });
                assert_eq!(*habit.entry(u).or_insert(r), r);
            }
        }
    }

    #[test]
    fn a_booked_window_covers_the_stay_in_quarter_hours() {
        let at: DateTime<Utc> = "2026-06-01T08:07:30Z".parse().unwrap();
        let (s, e) = window(at, Duration::minutes(100));
        assert_eq!(s, "2026-06-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(e, "2026-06-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert!(e >= at + Duration::minutes(100));
        let (s, e) = window(at, Duration::minutes(5));
        assert_eq!(e - s, Duration::minutes(30), "at least the minimum");
    }
}
