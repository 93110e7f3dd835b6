//! Reading reservations back: one of a driver's, a page of them, a gate pass, the overlap audit.

use super::*;
use crate::domain::error::{Error, Result};
use crate::domain::passes::PassClaims;
use crate::services::Reservations;
use crate::store::Conn;
use crate::store::reservations::{self as rows, Lookup};
use chrono::{DateTime, Duration};
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, SessionId, SpotId, UserId};

impl Reservations<'_> {
    /// The gate pass of `user`'s reservation, while it can still open a gate.
    pub async fn gate_pass(&self, user: UserId, id: ReservationId) -> Result<GatePass> {
        let r = self.reservation_of(user, id).await?;
        require_active(&r)?;
        let mut conn = self.store().pool().acquire().await?;
        let grace = self
            .lots()
            .lot_row(&mut conn, r.lot_id)
            .await?
            .entry_grace_minutes;
        Ok(self.pass_of(user, &r, grace))
    }

    /// The signed pass of `r`, whose lot opens the gate `grace` minutes around the start.
    pub(super) fn pass_of(&self, user: UserId, r: &Reservation, grace: i64) -> GatePass {
        let pass = self.passes().issue(&PassClaims {
            reservation_id: r.id,
            user_id: user,
            lot_id: r.lot_id,
            plate: r.plate.clone(),
            expires_at: r.end_at.timestamp(),
        });
        GatePass {
            reservation_id: r.id,
            pass,
            entry_from: r.start_at - Duration::minutes(grace),
            entry_until: (r.start_at + Duration::minutes(grace)).min(r.end_at),
            expires_at: r.end_at,
        }
    }

    /// Pairs of reservations of `lot` that hold one spot for overlapping windows: an audit of
    /// the no-double-booking guarantee, always 0.
    pub async fn overlapping_holds(&self, lot: LotId) -> Result<i64> {
        rows::overlapping_holds(self.store().pool(), lot).await
    }

    pub(super) async fn reservation_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<Reservation>> {
        let found = rows::find(self.store().pool(), Lookup::ByKey { user, key }).await?;
        found.map(reservation).transpose()
    }

    /// One of `user`'s reservations; another driver's is not found.
    pub async fn reservation_of(&self, user: UserId, id: ReservationId) -> Result<Reservation> {
        let mut conn = self.store().pool().acquire().await?;
        self.own_reservation(&mut conn, user, id).await
    }

    /// `user`'s reservation `id`, read on `conn` (inside a transaction, say); another driver's
    /// is not found.
    pub(super) async fn own_reservation(
        &self,
        conn: &mut Conn,
        user: UserId,
        id: ReservationId,
    ) -> Result<Reservation> {
        rows::find(conn, Lookup::Own { id, user })
            .await?
            .map(reservation)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("reservation {id}")))
    }

    /// `user`'s reservations, latest start first, one page at a time, with the total count.
    pub async fn reservations_of(
        &self,
        user: UserId,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<Reservation>, i64)> {
        let pool = self.store().pool();
        let total = rows::count_of_user(pool, user).await?;
        let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
        let ids = rows::page_of_user(pool, user, i64::from(per_page), offset).await?;
        let mut conn = pool.acquire().await?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            let Ok(id) = id.parse().map(ReservationId) else {
                return Err(Error::Invalid(format!("stored reservation id {id}")));
            };
            if let Some(r) = rows::find(&mut conn, Lookup::Own { id, user }).await? {
                items.push(reservation(r)?);
            }
        }
        Ok((items, total))
    }
}

/// A stored reservation as the API shows it.
fn reservation(row: rows::ReservationRow) -> Result<Reservation> {
    let ms = |t: i64| DateTime::from_timestamp_millis(t).unwrap_or_default();
    let uuid = |v: Option<String>| v.and_then(|v| v.parse::<Uuid>().ok());
    Ok(Reservation {
        id: ReservationId(row.id.parse().map_err(|e| Error::Invalid(format!("{e}")))?),
        lot_id: LotId(row.lot_id),
        spot_id: SpotId(row.spot_id),
        spot_label: row.label,
        start_at: ms(row.start_at),
        end_at: ms(row.end_at),
        vehicle_type: row.vehicle_type.parse().map_err(Error::Invalid)?,
        vehicle_id: uuid(row.vehicle_id),
        plate: row.plate,
        status: row.status.parse().map_err(Error::Invalid)?,
        quote_cents: row.quote_cents,
        currency: row.currency,
        cancellation_id: uuid(row.cancellation_id),
        session_id: uuid(row.session_id).map(SessionId),
    })
}
