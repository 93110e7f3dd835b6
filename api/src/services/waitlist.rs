//! The waitlist: a driver who found a lot full for a window waits for it. When a spot frees up
//! (a cancellation, a no-show, an exit) the first waiter, in joining order, whose window now has
//! a free spot is booked automatically (if they asked for that) or told; one waiter per freed
//! spot. A window that starts without a spot expires.

pub use crate::domain::WaitlistStatus;
use crate::domain::error::{Error, Result};
use crate::notifications::{NewNotification, NotificationKind, enqueue};
use crate::services::Waitlist;
use crate::services::reservations::NewReservation;
use crate::store::waitlist::{self as rows, Resolution, WaitlistRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, UserId, VehicleType};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinWaitlist {
    #[schema(schema_with = crate::domain::schema::id)]
    pub lot_id: LotId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    /// Book the first spot that frees up, instead of only telling the driver.
    #[serde(default)]
    pub auto_book: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistEntry {
    pub id: Uuid,
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    pub auto_book: bool,
    pub status: WaitlistStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub reservation_id: Option<ReservationId>,
    /// Why a `failed` entry could not be served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<WaitlistRow> for WaitlistEntry {
    fn from(r: WaitlistRow) -> Self {
        Self {
            id: r.id,
            lot_id: r.lot,
            start_at: r.start_at,
            end_at: r.end_at,
            vehicle_type: r.vehicle_type,
            auto_book: r.auto_book,
            status: r.status,
            reservation_id: r.reservation_id,
            reason: r.reason,
        }
    }
}

impl Waitlist<'_> {
    /// Put `user` on the waitlist for a window that has no free spot now.
    pub async fn join_waitlist(&self, user: UserId, req: JoinWaitlist) -> Result<WaitlistEntry> {
        let now = self.now();
        let window = self
            .reservations()
            .bookable_window(req.lot_id, req.start_at, req.end_at)
            .await?;
        let free = self
            .lots()
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
        let row = WaitlistRow {
            id: Uuid::now_v7(),
            user,
            lot: req.lot_id,
            start_at: req.start_at,
            end_at: req.end_at,
            vehicle_type: req.vehicle_type,
            auto_book: req.auto_book,
            status: WaitlistStatus::Waiting,
            reservation_id: None,
            reason: None,
        };
        rows::insert(self.store().writer(), &row, now.timestamp_millis()).await?;
        Ok(row.into())
    }

    /// `user`'s waitlist entries, newest first.
    pub async fn waitlist_of(&self, user: UserId) -> Result<Vec<WaitlistEntry>> {
        let entries = rows::of_user(self.store().pool(), user).await?;
        Ok(entries.into_iter().map(WaitlistEntry::from).collect())
    }

    /// Leave the waitlist; someone else's entry is not found.
    pub async fn withdraw_from_waitlist(&self, user: UserId, id: Uuid) -> Result<()> {
        let at = self.now().timestamp_millis();
        if rows::withdraw(self.store().writer(), id, user, at).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("waiting entry {id}")))
        }
    }

    /// A spot of `lot` may have freed up: expire the windows that have started, then serve the
    /// first waiter whose window now has a free spot. Returns the entries served. A lot nobody
    /// waits for (nearly every release) costs one read and no write.
    pub async fn serve_waitlist(&self, lot: LotId) -> Result<usize> {
        let now = self.now();
        let mut waiting = rows::waiting(self.store().pool(), lot).await?;
        if waiting.iter().any(|row| row.start_at <= now) {
            rows::expire_started(self.store().writer(), lot, now.timestamp_millis()).await?;
            waiting.retain(|row| row.start_at > now);
        }
        if waiting.is_empty() {
            return Ok(0);
        }
        let rules = self.reservations().booking_rules(lot).await?;
        for row in waiting {
            let user = row.user;
            let e = WaitlistEntry::from(row);
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
                .lots()
                .free_spots(lot, window, e.vehicle_type, None)
                .await?
                .is_empty()
            {
                continue;
            }
            let name = self.lots().lot(lot).await?.name;
            let local = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
            let (status, reservation, kind, body) = if e.auto_book {
                let req = NewReservation::new(lot, e.start_at, e.end_at, e.vehicle_type);
                match self
                    .reservations()
                    .reserve(user, req, &format!("waitlist-{}", e.id))
                    .await
                {
                    Ok(r) => (
                        WaitlistStatus::Booked,
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
                    WaitlistStatus::Notified,
                    None,
                    NotificationKind::WaitlistSpotFree,
                    format!(
                        "{name}: a spot is free for {} to {}; reserve it now",
                        local(e.start_at),
                        local(e.end_at)
                    ),
                )
            };
            let resolution = Resolution {
                status,
                reservation,
                reason: None,
                at: now.timestamp_millis(),
            };
            rows::resolve(self.store().writer(), e.id, resolution).await?;
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
        let resolution = Resolution {
            status: WaitlistStatus::Failed,
            reservation: None,
            reason: Some(reason),
            at: self.now().timestamp_millis(),
        };
        if rows::resolve(self.store().writer(), e.id, resolution).await? {
            tracing::info!(lot = %lot, waitlist.id = %e.id, reason, "waitlist entry cannot be served");
            let name = self.lots().lot(lot).await?.name;
            let body = format!(
                "{name}: your place on the waitlist for {} to {} ended: {reason}",
                e.start_at.format("%Y-%m-%d %H:%M UTC"),
                e.end_at.format("%Y-%m-%d %H:%M UTC")
            );
            self.tell_waiter(
                lot,
                user,
                e,
                WaitlistStatus::Failed,
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
        status: WaitlistStatus,
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
        rows::lots_with_waiters(self.store().pool()).await
    }
}
