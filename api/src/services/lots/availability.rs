//! Availability as a service: the index (`domain::availability`) answered from memory, loaded
//! from the store on a lot's first query, and kept fresh across processes through the outbox.

use crate::domain::TimeRange;
use crate::domain::availability::{AvailabilityIndex, FreeSpot, Hold, IndexedSpot, Offer};
use crate::domain::error::{Error, Result};
use crate::domain::spot_choice::Choice;
use crate::services::Lots;
use crate::store::{lots, reservations};
use std::collections::HashSet;
use warehouse_schema::{Event, EventPayload, LotId, ReservationId, SpotId, VehicleType};

/// The event types that change which spots of a lot are free: what the live streams watch, with
/// rates.
pub(crate) const AVAILABILITY_EVENTS: &[&str] = &[
    "reservation_created",
    "reservation_modified",
    "reservation_cancelled",
    "reservation_no_show",
    "check_in",
    "exit",
    "lot_capacity_changed",
    // A pass's kept spot is taken with its purchase or renewal and given back with its end.
    "monthly_pass_purchased",
    "monthly_pass_renewed",
    "monthly_pass_ended",
];

/// The event types that can free a spot of a lot (all of [`AVAILABILITY_EVENTS`] but a new
/// reservation and a check-in, which only take one): what a booking the index has no spot for
/// asks the outbox about (`services::reservations::book`). PostgreSQL's partial index
/// `outbox_releases` (migration 0024) lists the same types: a change here needs a migration
/// there (`postgres_only::a_spot_freed_since_the_index_read_its_lot_is_found_by_its_own_index`
/// fails until then).
pub const RELEASING_EVENTS: &[&str] = &[
    "reservation_modified",
    "reservation_cancelled",
    "reservation_no_show",
    "exit",
    "lot_capacity_changed",
    "monthly_pass_purchased",
    "monthly_pass_renewed",
    "monthly_pass_ended",
];

impl<'a> Lots<'a> {
    /// The best spot of `lot` for `choice` that the availability index believes free during
    /// `window` and no other booking in flight was offered, except `skip`: claimed for the
    /// caller until the [`Claim`](crate::domain::availability::Claim) it comes with is dropped.
    pub(crate) async fn best_unreserved_spot(
        self,
        lot: LotId,
        window: TimeRange,
        choice: Choice,
        skip: &[SpotId],
    ) -> Result<Offer<'a>> {
        self.read_index(lot, |index| {
            index.best_unreserved(lot, window, choice, skip)
        })
        .await
    }

    /// `read` from the availability index, loading `lot` first when it is not loaded (or was
    /// dropped again by a concurrent change). What it reads may borrow the index (an offer's
    /// claim does).
    async fn read_index<T>(
        self,
        lot: LotId,
        read: impl Fn(&'a AvailabilityIndex) -> Option<T>,
    ) -> Result<T> {
        let index: &'a AvailabilityIndex = self.cx.availability();
        for _ in 0..3 {
            if let Some(answer) = read(index) {
                return Ok(answer);
            }
            self.load_availability(lot).await?;
        }
        Err(busy())
    }
}

impl Lots<'_> {
    /// Spots of `lot` a `vehicle` may use that no reservation holds during `window`: best fit
    /// first, then nearest to `near` when given. Answered from the availability index.
    pub async fn free_spots(
        &self,
        lot: LotId,
        window: TimeRange,
        vehicle: VehicleType,
        near: Option<(f64, f64)>,
    ) -> Result<Vec<FreeSpot>> {
        self.read_index(lot, |index| index.free_spots(lot, window, vehicle, near))
            .await
    }

    /// Read `lot` into the availability index (spots and every holding reservation).
    async fn load_availability(&self, lot: LotId) -> Result<()> {
        const ATTEMPTS: usize = 10;
        let pool = self.store().pool();
        for _ in 0..ATTEMPTS {
            let version = self.availability().version(lot);
            // Read before the lot: every change recorded up to it is in what is read next.
            let as_of = self.store().outbox().head().await?;
            // The lot's row: its spot policy, and `NotFound` for a lot that does not exist.
            let policy = {
                let mut conn = pool.acquire().await?;
                self.lot_row(&mut conn, lot).await?.policy
            };
            let spots = lots::open_spots(pool, lot).await?;
            let holds = reservations::holds_of_lot(pool, lot).await?;
            let spots = spots
                .into_iter()
                .map(|(id, label, vt, lat, lng)| {
                    Ok(IndexedSpot::new(
                        SpotId(id),
                        label,
                        vt.parse().map_err(Error::Invalid)?,
                        lat.zip(lng),
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let holds = holds
                .into_iter()
                .filter_map(|(id, spot, start_ms, end_ms)| {
                    Some(Hold {
                        reservation: ReservationId(id.parse().ok()?),
                        spot: SpotId(spot),
                        start_ms,
                        end_ms,
                    })
                })
                .collect::<Vec<_>>();
            if self
                .availability()
                .install(lot, (version, as_of), policy, spots, holds)
            {
                return Ok(());
            }
        }
        Err(busy())
    }

    /// Bring the availability index up to what every process recorded: reads the outbox after
    /// the last position seen. A lot with a change that may free a spot since
    /// ([`RELEASING_EVENTS`]) is dropped, to be read again; the other loaded lots take the new
    /// reservations in place (this process's own are held already: holding is idempotent) and
    /// hold every change up to the head read. `parkflow serve` runs this every second so that
    /// several API processes on one database agree.
    pub async fn sync_availability(&self) -> Result<Synced> {
        // Read before the head: every commit counted is at or before it.
        let foreign = self.store().writer_watch().map(|w| w.foreign_commits());
        let loaded = self.availability().loaded();
        let outbox = self.store().outbox();
        let head = outbox.head().await?;
        let mut after = self.availability_position();
        if after == 0 {
            // Never synced: each loaded lot holds every change up to the position it was read at.
            after = loaded.iter().map(|&(_, as_of)| as_of).min().unwrap_or(head);
        }
        let mut synced = Synced::default();
        if head > after {
            let freed: HashSet<i64> = outbox
                .lots_with_events(after, head, RELEASING_EVENTS)
                .await?
                .into_iter()
                .collect();
            for lot in &freed {
                self.availability().invalidate(LotId(*lot));
            }
            synced.dropped = freed.len();
            let kept: HashSet<LotId> = loaded
                .into_iter()
                .map(|(lot, _)| lot)
                .filter(|lot| !freed.contains(&lot.0))
                .collect();
            if !kept.is_empty() {
                for row in outbox
                    .read_of_types(after, head, &["reservation_created"])
                    .await?
                {
                    let event: Event = serde_json::from_str(&row.payload).map_err(|e| {
                        Error::Storage(format!("outbox row {}: {e}", row.position).into())
                    })?;
                    if let (true, EventPayload::ReservationCreated(w)) =
                        (kept.contains(&event.lot_id), event.payload)
                    {
                        let hold = Hold {
                            reservation: w.reservation_id,
                            spot: w.spot_id,
                            start_ms: w.start_at.timestamp_millis(),
                            end_ms: w.end_at.timestamp_millis(),
                        };
                        self.availability().hold_new(event.lot_id, hold);
                        synced.held += 1;
                    }
                }
                for lot in kept {
                    self.availability().synced_to(lot, head);
                }
            }
        }
        self.set_availability_position(head);
        if let Some(f) = foreign {
            self.set_availability_synced(f);
        }
        Ok(synced)
    }
}

/// What a sync of the availability index did ([`Lots::sync_availability`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Lots dropped, to be read again: a spot may have been freed.
    pub dropped: usize,
    /// New bookings (another process's, or this one's) held in place.
    pub held: usize,
}

/// A lot whose availability changed under every attempt to read it.
fn busy() -> Error {
    Error::conflict(
        "busy",
        "availability of this lot is changing too fast; retry",
    )
}
