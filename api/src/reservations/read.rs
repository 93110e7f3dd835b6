//! Reading reservations back: one of a driver's, a page of them, a gate pass, the overlap audit.

use super::*;
use crate::error::{Error, Result};
use crate::passes::PassClaims;
use crate::service::ParkingService;
use chrono::{DateTime, Duration};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, SessionId, SpotId, UserId};

impl ParkingService {
    /// The gate pass of `user`'s reservation, while it can still open a gate.
    pub async fn gate_pass(&self, user: UserId, id: ReservationId) -> Result<GatePass> {
        let r = self.reservation_of(user, id).await?;
        require_active(&r)?;
        let mut conn = self.store().pool().acquire().await?;
        let grace = self.lot_row(&mut conn, r.lot_id).await?.entry_grace_minutes;
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
        Ok(sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM reservations a JOIN reservations b
               ON a.spot_id = b.spot_id AND a.id < b.id AND a.start_at < b.end_at AND b.start_at < a.end_at
             WHERE a.lot_id = $1 AND ",
            holding!("a"),
            " AND ",
            holding!("b")
        ))
        .bind(lot.0)
        .fetch_one(self.store().pool())
        .await?)
    }

    pub(super) async fn reservation_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<Reservation>> {
        let mut conn = self.store().pool().acquire().await?;
        self.reservation_where(
            &mut conn,
            "r.user_id = $1 AND r.idempotency_key = $2",
            &user.0.to_string(),
            key,
        )
        .await
    }

    pub(crate) async fn reservation_where(
        &self,
        conn: &mut sqlx::AnyConnection,
        condition: &'static str,
        a: &str,
        b: &str,
    ) -> Result<Option<Reservation>> {
        let sql = format!(
            "SELECT r.id, r.lot_id, r.spot_id, s.label, r.start_at, r.end_at, r.vehicle_type, r.vehicle_id,
                    r.plate, r.status, r.quote_cents, r.currency, r.cancellation_id, r.session_id
             FROM reservations r JOIN spots s ON s.id = r.spot_id WHERE {condition}"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(a)
            .bind(b)
            .fetch_optional(conn)
            .await?
        else {
            return Ok(None);
        };
        let ms =
            |c: &str| DateTime::from_timestamp_millis(row.get::<i64, _>(c)).unwrap_or_default();
        let uuid = |c: &str| {
            row.get::<Option<String>, _>(c)
                .and_then(|v| v.parse::<Uuid>().ok())
        };
        Ok(Some(Reservation {
            id: ReservationId(
                row.get::<String, _>("id")
                    .parse()
                    .map_err(|e| Error::Invalid(format!("{e}")))?,
            ),
            lot_id: LotId(row.get("lot_id")),
            spot_id: SpotId(row.get("spot_id")),
            spot_label: row.get("label"),
            start_at: ms("start_at"),
            end_at: ms("end_at"),
            vehicle_type: row
                .get::<String, _>("vehicle_type")
                .parse()
                .map_err(Error::Invalid)?,
            vehicle_id: uuid("vehicle_id"),
            plate: row.get("plate"),
            status: row
                .get::<String, _>("status")
                .parse()
                .map_err(Error::Invalid)?,
            quote_cents: row.get("quote_cents"),
            currency: row.get("currency"),
            cancellation_id: uuid("cancellation_id"),
            session_id: uuid("session_id").map(SessionId),
        }))
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
        conn: &mut AnyConnection,
        user: UserId,
        id: ReservationId,
    ) -> Result<Reservation> {
        self.reservation_where(
            conn,
            "r.id = $1 AND r.user_id = $2",
            &id.0.to_string(),
            &user.0.to_string(),
        )
        .await?
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
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations WHERE user_id = $1")
            .bind(user.0.to_string())
            .fetch_one(pool)
            .await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM reservations WHERE user_id = $1 ORDER BY start_at DESC, id LIMIT $2 OFFSET $3",
        )
        .bind(user.0.to_string())
        .bind(i64::from(per_page))
        .bind(i64::from(page - 1) * i64::from(per_page))
        .fetch_all(pool)
        .await?;
        let mut conn = pool.acquire().await?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self
                .reservation_where(
                    &mut conn,
                    "r.id = $1 AND r.user_id = $2",
                    &id,
                    &user.0.to_string(),
                )
                .await?
            {
                items.push(r);
            }
        }
        Ok((items, total))
    }
}
