//! Reservations: a spot for a time window `[start, end)`, never double-booked.
//!
//! SQLite checks for an overlapping active reservation and inserts inside one `BEGIN IMMEDIATE`
//! transaction, which no other writer can interleave with. PostgreSQL runs writers concurrently;
//! its `no_double_booking` exclusion constraint refuses the loser of a race, which then tries
//! another spot (or is told the spot it asked for is taken).

use crate::error::{Error, Result};
use crate::service::{ParkingService, charge};
use crate::store::{append_event, is_unique_violation};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use warehouse_schema::event::ReservationWindow;
use warehouse_schema::{
    DayKind, Event, EventPayload, LotId, ReservationId, SpotId, TimeBand, UserId, VehicleType,
};

/// A time window with `start < end`, checked once at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TimeRange {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(Error::Invalid(format!(
                "the window must end after it starts ({start} .. {end})"
            )))
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Half-open overlap: touching windows do not overlap.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewReservation {
    pub lot_id: LotId,
    #[serde(default)]
    pub spot_id: Option<SpotId>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle_type: VehicleType,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub id: ReservationId,
    pub lot_id: LotId,
    pub spot_id: SpotId,
    pub spot_label: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle_type: VehicleType,
    pub status: String,
    pub quote_cents: i64,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_id: Option<uuid::Uuid>,
}

/// A spot that is free for a whole window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FreeSpot {
    pub spot_id: SpotId,
    pub label: String,
    pub vehicle_type: VehicleType,
}

/// The PostgreSQL error code of an exclusion-constraint violation.
const EXCLUSION_VIOLATION: &str = "23P01";

fn is_exclusion_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(EXCLUSION_VIOLATION))
}

/// Local midnight of `date` in `tz` (the first instant of that local day, also on DST days).
fn local_midnight(tz: Tz, date: chrono::NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_time(NaiveTime::MIN);
    loop {
        if let Some(at) = tz.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += Duration::minutes(15);
    }
}

impl ParkingService {
    /// Reserve a spot for `user`. The same `idempotency_key` with the same request returns the
    /// first reservation again; with a different request it is refused.
    pub async fn reserve(
        &self,
        user: UserId,
        req: NewReservation,
        idempotency_key: &str,
    ) -> Result<Reservation> {
        if idempotency_key.is_empty() || idempotency_key.len() > 200 {
            return Err(Error::Invalid(
                "an Idempotency-Key of 1 to 200 characters is required".into(),
            ));
        }
        let window = TimeRange::new(req.start_at, req.end_at)?;
        if let Some(existing) = self.reservation_by_key(user, idempotency_key).await? {
            return same_request(existing, &req);
        }
        const ATTEMPTS: usize = 8;
        for attempt in 1..=ATTEMPTS {
            match self.try_reserve(user, &req, window, idempotency_key).await {
                Err(Error::Storage(e)) if is_exclusion_violation(&e) => {
                    if req.spot_id.is_some() || attempt == ATTEMPTS {
                        return Err(Error::conflict(
                            "spot_taken",
                            "the spot was just reserved for an overlapping window",
                        ));
                    }
                }
                Err(Error::Storage(e)) if is_unique_violation(&e) => {
                    // The same key won a concurrent race: answer as for a retry.
                    let existing = self.reservation_by_key(user, idempotency_key).await?;
                    return existing.map_or(Err(Error::Storage(e)), |r| same_request(r, &req));
                }
                other => return other,
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn try_reserve(
        &self,
        user: UserId,
        req: &NewReservation,
        window: TimeRange,
        key: &str,
    ) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let lot = sqlx::query(
            "SELECT time_zone, currency, default_cents_per_hour, booking_window_days,
                    min_reservation_minutes, max_reservation_minutes FROM lots WHERE id = $1",
        )
        .bind(req.lot_id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("lot {}", req.lot_id)))?;
        let tz: Tz = lot.get::<String, _>("time_zone").parse().unwrap_or(Tz::UTC);
        let currency: String = lot.get("currency");
        let window_days: i64 = lot.get("booking_window_days");
        let (min, max): (i64, i64) = (
            lot.get("min_reservation_minutes"),
            lot.get("max_reservation_minutes"),
        );

        if window.start() <= now {
            return Err(Error::Invalid(
                "a reservation must start in the future".into(),
            ));
        }
        // The booking window counts whole local days: "7 days ahead" ends at local midnight.
        let today = now.with_timezone(&tz).date_naive();
        let horizon = local_midnight(tz, today + Duration::days(window_days + 1));
        if window.start() >= horizon {
            return Err(Error::Invalid(format!(
                "reservations open {window_days} days ahead (until {horizon})"
            )));
        }
        let minutes = window.duration().num_minutes();
        if minutes < min || minutes > max {
            return Err(Error::Invalid(format!(
                "a reservation lasts {min} to {max} minutes, this one {minutes}"
            )));
        }

        let free: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT s.id, s.label, s.vehicle_type FROM spots s
             WHERE s.lot_id = $1 AND s.closed = 0 AND ($2 IS NULL OR s.id = $2)
               AND NOT EXISTS (SELECT 1 FROM reservations r
                               WHERE r.spot_id = s.id AND r.status = 'active'
                                 AND r.start_at < $4 AND r.end_at > $3)
             ORDER BY s.id",
        )
        .bind(req.lot_id.0)
        .bind(req.spot_id.map(|s| s.0))
        .bind(window.start().timestamp_millis())
        .bind(window.end().timestamp_millis())
        .fetch_all(&mut *tx)
        .await?;
        let chosen = match req.spot_id {
            Some(spot) => {
                let kind: Option<String> = sqlx::query_scalar(
                    "SELECT vehicle_type FROM spots WHERE id = $1 AND lot_id = $2",
                )
                .bind(spot.0)
                .bind(req.lot_id.0)
                .fetch_optional(&mut *tx)
                .await?;
                let kind: VehicleType = kind
                    .ok_or_else(|| Error::NotFound(format!("spot {spot} in lot {}", req.lot_id)))?
                    .parse()
                    .map_err(Error::Invalid)?;
                if !req.vehicle_type.fits(kind) {
                    return Err(Error::Invalid(format!(
                        "a {} may not use a {kind} spot",
                        req.vehicle_type
                    )));
                }
                free.into_iter().next().ok_or_else(|| {
                    Error::conflict(
                        "spot_taken",
                        format!("spot {spot} is reserved for an overlapping window"),
                    )
                })?
            }
            None => req
                .vehicle_type
                .preferred_spots()
                .iter()
                .find_map(|want| free.iter().find(|(_, _, vt)| vt == want.as_str()).cloned())
                .ok_or_else(|| {
                    Error::conflict(
                        "no_spot_available",
                        format!("no {} spot is free for that window", req.vehicle_type),
                    )
                })?,
        };
        let (spot_id, spot_label, _) = chosen;

        let rate: i64 = sqlx::query_scalar(
            "SELECT cents_per_hour FROM rates
             WHERE lot_id = $1 AND band = $2 AND day_kind = $3 AND vehicle_type = $4 AND effective_from <= $5
             ORDER BY effective_from DESC LIMIT 1",
        )
        .bind(req.lot_id.0)
        .bind(TimeBand::at(window.start(), tz).as_str())
        .bind(DayKind::at(window.start(), tz).as_str())
        .bind(req.vehicle_type.as_str())
        .bind(window.start().timestamp_millis())
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or_else(|| lot.get("default_cents_per_hour"));
        let quote = charge(window.duration().num_seconds(), rate);

        let id = ReservationId::new();
        sqlx::query(
            "INSERT INTO reservations (id, lot_id, spot_id, user_id, vehicle_type, start_at, end_at, status,
                                       quote_cents, currency, idempotency_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10, $11)",
        )
        .bind(id.0.to_string())
        .bind(req.lot_id.0)
        .bind(spot_id)
        .bind(user.0.to_string())
        .bind(req.vehicle_type.as_str())
        .bind(window.start().timestamp_millis())
        .bind(window.end().timestamp_millis())
        .bind(quote)
        .bind(&currency)
        .bind(key)
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        let event = Event::new(
            now,
            req.lot_id,
            EventPayload::ReservationCreated(ReservationWindow {
                reservation_id: id,
                user_id: user,
                spot_id: SpotId(spot_id),
                start_at: window.start(),
                end_at: window.end(),
                vehicle_type: req.vehicle_type,
            }),
        );
        append_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(Reservation {
            id,
            lot_id: req.lot_id,
            spot_id: SpotId(spot_id),
            spot_label,
            start_at: window.start(),
            end_at: window.end(),
            vehicle_type: req.vehicle_type,
            status: "active".into(),
            quote_cents: quote,
            currency,
            cancellation_id: None,
        })
    }

    /// Cancel `user`'s reservation; someone else's is reported as not found.
    pub async fn cancel_reservation(&self, user: UserId, id: ReservationId) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let mut r = self
            .reservation_where(
                &mut tx,
                "r.id = $1 AND r.user_id = $2",
                &id.0.to_string(),
                &user.0.to_string(),
            )
            .await?
            .ok_or_else(|| Error::NotFound(format!("reservation {id}")))?;
        if r.status != "active" {
            return Err(Error::conflict(
                "not_active",
                format!("reservation {id} is {}", r.status),
            ));
        }
        let cancellation = uuid::Uuid::now_v7();
        sqlx::query(
            "UPDATE reservations SET status = 'cancelled', cancelled_at = $1, cancellation_id = $2 WHERE id = $3",
        )
        .bind(now.timestamp_millis())
        .bind(cancellation.to_string())
        .bind(id.0.to_string())
        .execute(&mut *tx)
        .await?;
        let event = Event::new(
            now,
            r.lot_id,
            EventPayload::ReservationCancelled(warehouse_schema::event::ReservationRef {
                reservation_id: id,
                reason: Some("driver".into()),
            }),
        );
        append_event(&mut tx, &event).await?;
        tx.commit().await?;
        r.status = "cancelled".into();
        r.cancellation_id = Some(cancellation);
        Ok(r)
    }

    async fn reservation_by_key(&self, user: UserId, key: &str) -> Result<Option<Reservation>> {
        let mut conn = self.store().pool().acquire().await?;
        self.reservation_where(
            &mut conn,
            "r.user_id = $1 AND r.idempotency_key = $2",
            &user.0.to_string(),
            key,
        )
        .await
    }

    async fn reservation_where(
        &self,
        conn: &mut sqlx::AnyConnection,
        condition: &'static str,
        a: &str,
        b: &str,
    ) -> Result<Option<Reservation>> {
        let sql = format!(
            "SELECT r.id, r.lot_id, r.spot_id, s.label, r.start_at, r.end_at, r.vehicle_type, r.status,
                    r.quote_cents, r.currency, r.cancellation_id
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
            status: row.get("status"),
            quote_cents: row.get("quote_cents"),
            currency: row.get("currency"),
            cancellation_id: row
                .get::<Option<String>, _>("cancellation_id")
                .and_then(|c| c.parse().ok()),
        }))
    }

    /// One of `user`'s reservations; another driver's is not found.
    pub async fn reservation_of(&self, user: UserId, id: ReservationId) -> Result<Reservation> {
        let mut conn = self.store().pool().acquire().await?;
        self.reservation_where(
            &mut conn,
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

    /// Spots of `lot` a `vehicle` may use that no active reservation holds during `window`.
    pub async fn free_spots(
        &self,
        lot: LotId,
        window: TimeRange,
        vehicle: VehicleType,
    ) -> Result<Vec<FreeSpot>> {
        let pool = self.store().pool();
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM lots WHERE id = $1")
            .bind(lot.0)
            .fetch_optional(pool)
            .await?;
        exists.ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT s.id, s.label, s.vehicle_type FROM spots s
             WHERE s.lot_id = $1 AND s.closed = 0
               AND NOT EXISTS (SELECT 1 FROM reservations r
                               WHERE r.spot_id = s.id AND r.status = 'active'
                                 AND r.start_at < $3 AND r.end_at > $2)
             ORDER BY s.id",
        )
        .bind(lot.0)
        .bind(window.start().timestamp_millis())
        .bind(window.end().timestamp_millis())
        .fetch_all(pool)
        .await?;
        let mut spots: Vec<FreeSpot> = rows
            .into_iter()
            .filter_map(|(id, label, vt)| {
                let vt: VehicleType = vt.parse().ok()?;
                vehicle.fits(vt).then_some(FreeSpot {
                    spot_id: SpotId(id),
                    label,
                    vehicle_type: vt,
                })
            })
            .collect();
        // Best fit first, as the reservation endpoint would choose.
        let rank = |vt: VehicleType| {
            vehicle
                .preferred_spots()
                .iter()
                .position(|p| *p == vt)
                .unwrap_or(usize::MAX)
        };
        spots.sort_by_key(|s| (rank(s.vehicle_type), s.spot_id));
        Ok(spots)
    }
}

/// A retried request gets the first answer again; a different request under the same key is
/// refused rather than silently answered with the wrong reservation.
fn same_request(existing: Reservation, req: &NewReservation) -> Result<Reservation> {
    let same = existing.lot_id == req.lot_id
        && existing.start_at == req.start_at
        && existing.end_at == req.end_at
        && existing.vehicle_type == req.vehicle_type
        && req.spot_id.is_none_or(|s| s == existing.spot_id);
    if same {
        Ok(existing)
    } else {
        Err(Error::Invalid(
            "this Idempotency-Key was used for a different reservation".into(),
        ))
    }
}
