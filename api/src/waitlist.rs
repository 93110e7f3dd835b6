//! The waitlist: a driver who found a lot full for a window waits for it. When a spot frees up
//! (a cancellation, a no-show, an exit) the first waiter, in joining order, whose window now has
//! a free spot is booked automatically (if they asked for that) or told; one waiter per freed
//! spot. A window that starts without a spot expires.

use crate::error::{Error, Result};
use crate::notifications::{NewNotification, NotificationKind, enqueue};
use crate::reservations::NewReservation;
use crate::service::ParkingService;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, UserId, VehicleType};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinWaitlist {
    pub lot_id: LotId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle_type: VehicleType,
    /// Book the first spot that frees up, instead of only telling the driver.
    #[serde(default)]
    pub auto_book: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistEntry {
    pub id: Uuid,
    pub lot_id: LotId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle_type: VehicleType,
    pub auto_book: bool,
    /// `waiting`, `notified`, `booked`, `expired`, `withdrawn` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<ReservationId>,
    /// Why a `failed` entry could not be served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

type Row = (
    String,
    String,
    i64,
    i64,
    i64,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
);

const COLUMNS: &str = "id, user_id, lot_id, start_at, end_at, vehicle_type, auto_book, status, reservation_id, reason";

fn entry(row: Row) -> Result<(UserId, WaitlistEntry)> {
    let (id, user, lot, start, end, vt, auto, status, reservation, reason) = row;
    let bad = |what: &str| Error::Invalid(format!("stored waitlist entry {id}: {what}"));
    let at = |ms| DateTime::from_timestamp_millis(ms).ok_or_else(|| bad("time"));
    Ok((
        UserId(user.parse().map_err(|_| bad("user"))?),
        WaitlistEntry {
            id: id.parse().map_err(|_| bad("id"))?,
            lot_id: LotId(lot),
            start_at: at(start)?,
            end_at: at(end)?,
            vehicle_type: vt.parse().map_err(|_| bad("vehicle type"))?,
            auto_book: auto != 0,
            status,
            reservation_id: reservation.and_then(|r| r.parse().ok()).map(ReservationId),
            reason,
        },
    ))
}

impl ParkingService {
    /// Put `user` on the waitlist for a window that has no free spot now.
    pub async fn join_waitlist(&self, user: UserId, req: JoinWaitlist) -> Result<WaitlistEntry> {
        let now = self.now();
        let window = self
            .bookable_window(req.lot_id, req.start_at, req.end_at)
            .await?;
        let free = self
            .free_spots(req.lot_id, window, req.vehicle_type, None)
            .await?;
        if !free.is_empty() {
            return Err(Error::conflict(
                "spots_available",
                format!(
                    "{} free for this window: reserve one instead",
                    match free.len() {
                        1 => "1 spot is".to_owned(),
                        n => format!("{n} spots are"),
                    }
                ),
            ));
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO waitlist (id, user_id, lot_id, start_at, end_at, vehicle_type, auto_book, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'waiting', $8)",
        )
        .bind(id.to_string())
        .bind(user.0.to_string())
        .bind(req.lot_id.0)
        .bind(req.start_at.timestamp_millis())
        .bind(req.end_at.timestamp_millis())
        .bind(req.vehicle_type.as_str())
        .bind(i64::from(req.auto_book))
        .bind(now.timestamp_millis())
        .execute(self.store().writer())
        .await?;
        Ok(WaitlistEntry {
            id,
            lot_id: req.lot_id,
            start_at: req.start_at,
            end_at: req.end_at,
            vehicle_type: req.vehicle_type,
            auto_book: req.auto_book,
            status: "waiting".into(),
            reservation_id: None,
            reason: None,
        })
    }

    /// `user`'s waitlist entries, newest first.
    pub async fn waitlist_of(&self, user: UserId) -> Result<Vec<WaitlistEntry>> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM waitlist WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        )))
        .bind(user.0.to_string())
        .fetch_all(self.store().pool())
        .await?;
        rows.into_iter().map(|r| Ok(entry(r)?.1)).collect()
    }

    /// Leave the waitlist; someone else's entry is not found.
    pub async fn withdraw_from_waitlist(&self, user: UserId, id: Uuid) -> Result<()> {
        let done = sqlx::query(
            "UPDATE waitlist SET status = 'withdrawn', resolved_at = $1
             WHERE id = $2 AND user_id = $3 AND status = 'waiting'",
        )
        .bind(self.now().timestamp_millis())
        .bind(id.to_string())
        .bind(user.0.to_string())
        .execute(self.store().writer())
        .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Error::NotFound(format!("waiting entry {id}")))
        }
    }

    /// A spot of `lot` may have freed up: expire the windows that have started, then serve the
    /// first waiter whose window now has a free spot. Returns the entries served.
    pub async fn serve_waitlist(&self, lot: LotId) -> Result<usize> {
        let now = self.now();
        sqlx::query(
            "UPDATE waitlist SET status = 'expired', resolved_at = $1
             WHERE lot_id = $2 AND status = 'waiting' AND start_at <= $1",
        )
        .bind(now.timestamp_millis())
        .bind(lot.0)
        .execute(self.store().writer())
        .await?;
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM waitlist WHERE lot_id = $1 AND status = 'waiting'
             ORDER BY created_at, id"
        )))
        .bind(lot.0)
        .fetch_all(self.store().pool())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let rules = self.booking_rules(lot).await?;
        for row in rows {
            let (user, e) = entry(row)?;
            // A window the booking rules refuse (the lot's rules changed since the driver
            // joined) can never be served: that entry ends with its reason, the queue goes on.
            let window = match rules.window(e.start_at, e.end_at, now) {
                Ok(w) => w,
                Err(err) if err.is_client_error() => {
                    self.end_unservable(lot, user, &e, &err.to_string()).await?;
                    continue;
                }
                Err(err) => return Err(err),
            };
            if self
                .free_spots(lot, window, e.vehicle_type, None)
                .await?
                .is_empty()
            {
                continue;
            }
            let name = self.lot(lot).await?.name;
            let local = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
            let (status, reservation, kind, body) = if e.auto_book {
                let req = NewReservation::new(lot, e.start_at, e.end_at, e.vehicle_type);
                match self.reserve(user, req, &format!("waitlist-{}", e.id)).await {
                    Ok(r) => (
                        "booked",
                        Some(r.id),
                        NotificationKind::WaitlistBooked,
                        format!(
                            "{name}: a spot freed up and was booked for you, {} to {} (spot {})",
                            local(e.start_at),
                            local(e.end_at),
                            r.spot_label
                        ),
                    ),
                    // Taken meanwhile by someone else: keep waiting.
                    Err(err) if matches!(err.code(), "no_spot_available" | "spot_taken") => {
                        continue;
                    }
                    Err(err) if err.is_client_error() => {
                        self.end_unservable(lot, user, &e, &err.to_string()).await?;
                        continue;
                    }
                    Err(err) => return Err(err),
                }
            } else {
                (
                    "notified",
                    None,
                    NotificationKind::WaitlistSpotFree,
                    format!(
                        "{name}: a spot is free for {} to {}; reserve it now",
                        local(e.start_at),
                        local(e.end_at)
                    ),
                )
            };
            sqlx::query(
                "UPDATE waitlist SET status = $1, reservation_id = $2, resolved_at = $3
                 WHERE id = $4 AND status = 'waiting'",
            )
            .bind(status)
            .bind(reservation.map(|r| r.0.to_string()))
            .bind(now.timestamp_millis())
            .bind(e.id.to_string())
            .execute(self.store().writer())
            .await?;
            self.tell_waiter(lot, user, &e, status, kind, name, body)
                .await?;
            return Ok(1);
        }
        Ok(0)
    }

    /// End a waiting entry that cannot be served, with the reason, and tell its driver.
    async fn end_unservable(
        &self,
        lot: LotId,
        user: UserId,
        e: &WaitlistEntry,
        reason: &str,
    ) -> Result<()> {
        let ended = sqlx::query(
            "UPDATE waitlist SET status = 'failed', reason = $1, resolved_at = $2
             WHERE id = $3 AND status = 'waiting'",
        )
        .bind(reason)
        .bind(self.now().timestamp_millis())
        .bind(e.id.to_string())
        .execute(self.store().writer())
        .await?;
        if ended.rows_affected() == 1 {
            tracing::info!(lot = %lot, waitlist.id = %e.id, reason, "waitlist entry cannot be served");
            let name = self.lot(lot).await?.name;
            let body = format!(
                "{name}: your place on the waitlist for {} to {} ended: {reason}",
                e.start_at.format("%Y-%m-%d %H:%M UTC"),
                e.end_at.format("%Y-%m-%d %H:%M UTC")
            );
            self.tell_waiter(
                lot,
                user,
                e,
                "failed",
                NotificationKind::WaitlistEnded,
                name,
                body,
            )
            .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn tell_waiter(
        &self,
        lot: LotId,
        user: UserId,
        e: &WaitlistEntry,
        status: &str,
        kind: NotificationKind,
        title: String,
        body: String,
    ) -> Result<()> {
        enqueue(
            self.store(),
            &NewNotification {
                user_id: user,
                kind,
                dedup_key: format!("waitlist:{}:{status}", e.id),
                lot_id: Some(lot),
                title,
                body,
            },
            self.now(),
        )
        .await?;
        Ok(())
    }

    /// Reservation `r` of `lot` no longer holds its spot (committed): drop it from the
    /// availability index and serve the lot's waitlist. The release stands whatever happens
    /// to the waitlist; a failure there is logged and the periodic sweep tries again.
    pub(crate) async fn released(&self, lot: LotId, r: ReservationId) {
        self.availability().release(lot, r);
        if let Err(e) = self.serve_waitlist(lot).await {
            tracing::warn!(lot = %lot, error = %e, "serving the waitlist failed");
        }
    }

    /// Lots with someone waiting (for the periodic sweep).
    pub async fn lots_with_waiters(&self) -> Result<Vec<LotId>> {
        let lots: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT lot_id FROM waitlist WHERE status = 'waiting'")
                .fetch_all(self.store().pool())
                .await?;
        Ok(lots.into_iter().map(LotId).collect())
    }
}
