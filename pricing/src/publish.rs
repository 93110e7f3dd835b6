//! The typed port between pricing and the operational API: pricing reads the rates in force as
//! [`CurrentRates`] (built by the caller from the API's typed rate schedules) and publishes its
//! changes to a [`RatesSink`] — the API's own rate intake in process, or the rates topic that
//! API processes read. Exactly one sink takes a run's changes, so no rate is published twice.

use crate::RateChange;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use warehouse_schema::event::RatePublished;
use warehouse_schema::{Cents, LotId};

/// A sink refused or failed to take a lot's rates.
#[derive(Debug, thiserror::Error)]
#[error("publishing the rates of lot {lot}: {reason}")]
pub struct PublishError {
    pub lot: LotId,
    pub reason: String,
}

pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + 'a>>;

/// Where a lot's new rates go.
pub trait RatesSink: Send + Sync {
    fn publish(&self, lot: LotId, rates: Vec<RatePublished>) -> PublishFuture<'_>;
}

/// `changes` as one rate list per lot, each effective from `effective_from`.
pub fn rates_by_lot(
    changes: &[RateChange],
    effective_from: DateTime<Utc>,
) -> BTreeMap<LotId, Vec<RatePublished>> {
    let mut by_lot: BTreeMap<LotId, Vec<RatePublished>> = BTreeMap::new();
    for c in changes {
        by_lot.entry(c.lot_id).or_default().push(RatePublished {
            band: c.band,
            day_kind: c.day_kind,
            vehicle_type: c.vehicle_type,
            cents_per_hour: Cents(c.new_cents),
            effective_from,
            reason: Some(c.reason.clone()),
        });
    }
    by_lot
}

/// Publish `changes` to `sink`, lot by lot; stops at the first lot the sink refuses.
pub async fn publish_changes(
    sink: &dyn RatesSink,
    changes: &[RateChange],
    effective_from: DateTime<Utc>,
) -> Result<(), PublishError> {
    for (lot, rates) in rates_by_lot(changes, effective_from) {
        sink.publish(lot, rates).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use warehouse_schema::{DayKind, TimeBand, VehicleType};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(LotId, usize)>>);

    impl RatesSink for Recorder {
        fn publish(&self, lot: LotId, rates: Vec<RatePublished>) -> PublishFuture<'_> {
            self.0.lock().unwrap().push((lot, rates.len()));
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn each_lot_is_published_once_with_all_its_changes() {
        let change = |lot: i64, band| RateChange {
            lot_id: LotId(lot),
            band,
            day_kind: DayKind::Weekday,
            vehicle_type: VehicleType::Car,
            occupancy: 0.9,
            old_cents: 200,
            new_cents: 225,
            reason: warehouse_schema::event::RateReason {
                policy: "SFpark step".into(),
                observed_occupancy: 0.9,
                observed_from: DateTime::from_timestamp(1_699_000_000, 0).unwrap(),
                observed_to: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                target_low: 0.6,
                target_high: 0.8,
                forecast_at_previous: None,
                forecast_at_new: None,
                elasticity: None,
                previous_cents: Cents(200),
                step_cents: 25,
                floor_cents: Cents(50),
                cap_cents: Cents(800),
                bound: None,
            },
        };
        let changes = [
            change(2, TimeBand::Morning),
            change(1, TimeBand::Midday),
            change(2, TimeBand::Evening),
        ];
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let by_lot = rates_by_lot(&changes, at);
        assert_eq!(by_lot[&LotId(2)].len(), 2);
        assert_eq!(by_lot[&LotId(2)][1].cents_per_hour, Cents(225));
        assert_eq!(by_lot[&LotId(1)][0].effective_from, at);
        // Each rate carries its reason, and the reason checks out against the rate.
        let why = by_lot[&LotId(1)][0].reason.as_ref().unwrap();
        assert_eq!(why.check(225), Ok(()));
        let sink = Recorder::default();
        futures_lite(publish_changes(&sink, &changes, at)).unwrap();
        assert_eq!(*sink.0.lock().unwrap(), [(LotId(1), 1), (LotId(2), 2)]);
    }

    /// Run a future that never waits (the recorder answers at once).
    fn futures_lite<F: Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("the recorder never waits"),
        }
    }
}
