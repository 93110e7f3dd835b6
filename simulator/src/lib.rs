//! Synthetic lots and drivers for the demo, benchmarks and pricing evaluation.
//!
//! Demand has the shapes operators see: weekday commuters with personal habits (their own
//! arrival time ± noise and stay length), midday and weekend visitors, and evening events with
//! surges. Visitors respond to price with a constant elasticity (≈ −0.4, SFpark's measured
//! average); commuters much less. Everything is seeded and reproducible. The simulator drives the
//! real API service layer with a manual clock; it never writes events itself.

pub mod history;
pub mod scenario;

pub use scenario::{Arrival, ArrivalKind, LotPlan, SimConfig, scenario};

use chrono::{DateTime, Utc};
use parkflow_api::services::CheckInRequest;
use parkflow_api::{Error as ApiError, ManualClock, Services};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use warehouse_schema::{LotId, SessionId};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api: {0}")]
    Api(#[from] ApiError),
}

/// What happened during a simulation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Drivers who wanted to come before looking at the price.
    pub demand: u64,
    /// Drivers who stayed away because of the price.
    pub priced_out: u64,
    /// Drivers who came and found no free compatible spot.
    pub turned_away: u64,
    pub checked_in: u64,
    pub exits: u64,
    /// Vehicles still parked when the simulation ended (open stays).
    pub still_parked: u64,
    pub revenue_cents: i64,
}

/// A scheduled exit: when, a tie-breaker, the lot and the stay.
type Departure = Reverse<(DateTime<Utc>, u64, LotId, SessionId)>;

/// Replay `arrivals` (already priced and thinned, any order) through the API, ending at `end`:
/// entries and exits are applied in global time order with the clock set to each instant.
pub async fn run(
    service: &Services,
    clock: &ManualClock,
    arrivals: Vec<Arrival>,
    end: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> Result<SimReport, Error> {
    let mut report = SimReport::default();
    let mut arrivals = arrivals;
    arrivals.sort_by_key(|a| (a.at, a.lot_id, a.seq));
    let mut departures: BinaryHeap<Departure> = BinaryHeap::new();
    for a in arrivals.into_iter().filter(|a| a.at < end) {
        while let Some(Reverse((at, _, _, _))) = departures.peek()
            && *at <= a.at
        {
            let Reverse((at, _, lot, session)) = departures.pop().expect("peeked");
            depart(service, clock, &mut report, at, lot, session).await?;
        }
        clock.set(a.at);
        let request = CheckInRequest {
            vehicle_type: a.vehicle_type,
            method: a.method,
            plate: a.plate.clone(),
            user_id: a.user_id,
        };
        match service.gates().check_in(a.lot_id, request).await {
            Ok(receipt) => {
                report.checked_in += 1;
                departures.push(Reverse((
                    a.at + a.stay,
                    a.seq,
                    a.lot_id,
                    receipt.session_id,
                )));
            }
            Err(ApiError::Conflict {
                code: "lot_full", ..
            }) => report.turned_away += 1,
            Err(e) => return Err(e.into()),
        }
        progress(1);
    }
    while let Some(Reverse((at, _, lot, session))) = departures.pop() {
        if at >= end {
            report.still_parked += 1 + departures.len() as u64;
            break;
        }
        depart(service, clock, &mut report, at, lot, session).await?;
    }
    clock.set(end);
    Ok(report)
}

async fn depart(
    service: &Services,
    clock: &ManualClock,
    report: &mut SimReport,
    at: DateTime<Utc>,
    lot: LotId,
    session: SessionId,
) -> Result<(), Error> {
    clock.set(at);
    let receipt = service.gates().check_out(lot, session).await?;
    report.exits += 1;
    report.revenue_cents += receipt.amount_cents;
    Ok(())
}
