//! A booking or a change as the driver asks for it — a vehicle type or one of their registered
//! vehicles, a point or their saved workplace — resolved against their account into what the
//! booking rules check.

use super::*;
use crate::accounts::{vehicle_of, workplace_of};
use crate::domain::error::Result;
use crate::services::Reservations;
use warehouse_schema::{ReservationId, SpotId, UserId};

/// Which vehicle a reservation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VehicleChoice {
    /// Any vehicle of this type (no plate: the pass opens the gate).
    Type(VehicleType),
    /// One of the driver's registered vehicles: its type, and its plate opens the gate too.
    Registered(Uuid),
}

/// The point a booking's or a change's spot is chosen nearest to, when it names no spot.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Near {
    /// The driver's saved workplace, read from their account here (none saved: no point).
    #[default]
    Workplace,
    /// Known to the caller: the point the request gave, or the workplace the caller read
    /// already (an HTTP request's authentication reads it); `None`: no point.
    Known(Option<(f64, f64)>),
}

/// A booking as the driver asks for it.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub lot_id: LotId,
    pub spot_id: Option<SpotId>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle: VehicleChoice,
    /// Without a spot: prefer the one nearest to this point.
    pub near: Near,
}

/// A change as the driver asks for it; `None` keeps what the reservation has.
#[derive(Debug, Clone, Default)]
pub struct ChangeRequest {
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub vehicle: Option<VehicleChoice>,
    pub spot_id: Option<SpotId>,
    /// As for a booking.
    pub near: Near,
}

impl Reservations<'_> {
    /// Book for `user` what they asked for (see [`reserve_with_pass`](Self::reserve_with_pass)
    /// for the key and the pass).
    pub async fn book(
        &self,
        user: UserId,
        req: BookingRequest,
        key: &str,
    ) -> Result<(Reservation, Option<GatePass>)> {
        self.book_keeping(user, req, key, None).await
    }

    /// [`book`](Self::book), keeping the request's answer under its key in the booking's own
    /// change when `keep` is given (see [`KeepAnswer`]).
    pub async fn book_keeping(
        &self,
        user: UserId,
        req: BookingRequest,
        key: &str,
        keep: Option<&KeepAnswer<'_>>,
    ) -> Result<(Reservation, Option<GatePass>)> {
        let (vehicle_type, vehicle) = match req.vehicle {
            VehicleChoice::Type(vt) => (vt, None),
            VehicleChoice::Registered(id) => {
                let (v, vt) = self.own_vehicle(user, id).await?;
                (vt, Some(v))
            }
        };
        let new = NewReservation {
            lot_id: req.lot_id,
            spot_id: req.spot_id,
            start_at: req.start_at,
            end_at: req.end_at,
            vehicle_type,
            vehicle,
            near: self.measuring_from(user, req.near).await?,
        };
        self.reserve_keeping(user, new, key, keep).await
    }

    /// Change `user`'s reservation `id` as they asked.
    pub async fn change(
        &self,
        user: UserId,
        id: ReservationId,
        req: ChangeRequest,
    ) -> Result<Reservation> {
        let (vehicle_type, vehicle) = match req.vehicle {
            None => (None, None),
            Some(VehicleChoice::Type(vt)) => (Some(vt), None),
            Some(VehicleChoice::Registered(v)) => (None, Some(self.own_vehicle(user, v).await?)),
        };
        let change = ReservationChange {
            start_at: req.start_at,
            end_at: req.end_at,
            vehicle_type,
            vehicle,
            spot_id: req.spot_id,
            near: self.measuring_from(user, req.near).await?,
        };
        self.modify_reservation(user, id, change).await
    }

    /// The point distances are measured from: the one known, else the workplace `user` saved.
    async fn measuring_from(&self, user: UserId, near: Near) -> Result<Option<(f64, f64)>> {
        match near {
            Near::Known(point) => Ok(point),
            Near::Workplace => Ok(workplace_of(self.store(), user).await?.map(|p| p.pair())),
        }
    }

    /// `user`'s vehicle `id` as a reservation names it, with its type.
    async fn own_vehicle(&self, user: UserId, id: Uuid) -> Result<(VehicleRef, VehicleType)> {
        let v = vehicle_of(self.store(), user, id).await?;
        Ok((
            VehicleRef {
                id: v.id,
                plate: v.plate,
            },
            v.vehicle_type,
        ))
    }
}
